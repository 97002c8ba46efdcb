// JsonLine: one JSON object on one line, for the machine-readable logs (metrics.jsonl,
// eval.jsonl). Strings are escaped, so a path with a quote or a backslash stays valid JSON;
// non-finite numbers become null, as JSON has no NaN.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace lockstep::io {

class JsonLine {
 public:
  JsonLine& add(std::string_view key, double v);
  JsonLine& add(std::string_view key, std::int64_t v);
  JsonLine& add(std::string_view key, int v) { return add(key, static_cast<std::int64_t>(v)); }
  JsonLine& add(std::string_view key, bool v);
  JsonLine& add(std::string_view key, std::string_view v);
  JsonLine& add(std::string_view key, const char* v) { return add(key, std::string_view(v)); }
  // The object and a newline.
  std::string str() const { return "{" + body_ + "}\n"; }

 private:
  void key(std::string_view k);
  std::string body_;
};

// `s` as a JSON string literal, quotes included.
std::string json_string(std::string_view s);

}  // namespace lockstep::io
