// JsonLine: one JSON object on one line, for the machine-readable logs (metrics.jsonl,
// eval.jsonl). Built and written by nlohmann-json: keys keep the order they were added in,
// strings are escaped (a path with a quote, a backslash or a newline stays valid JSON; bytes that
// are not UTF-8 become U+FFFD), and non-finite numbers become null, as JSON has no NaN. Numbers
// carry 9 significant digits (what %.9g keeps), written in the shortest form that reads back to
// them (an integral value as 3.0).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

namespace lockstep::io {

class JsonLine {
 public:
  JsonLine();
  ~JsonLine();
  JsonLine(JsonLine&&) noexcept;
  JsonLine& operator=(JsonLine&&) noexcept;

  JsonLine& add(std::string_view key, double v);
  JsonLine& add(std::string_view key, std::int64_t v);
  JsonLine& add(std::string_view key, int v) { return add(key, static_cast<std::int64_t>(v)); }
  JsonLine& add(std::string_view key, bool v);
  JsonLine& add(std::string_view key, std::string_view v);
  JsonLine& add(std::string_view key, const char* v) { return add(key, std::string_view(v)); }
  // The object and a newline.
  std::string str() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// `s` as a JSON string literal, quotes included.
std::string json_string(std::string_view s);

}  // namespace lockstep::io
