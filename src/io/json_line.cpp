// JSON lines for the run logs (see json_line.hpp), through nlohmann-json.
#include "lockstep/io/json_line.hpp"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <nlohmann/json.hpp>

namespace lockstep::io {
namespace {
std::string dump(const nlohmann::ordered_json& j) {
  return j.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
}
}  // namespace

struct JsonLine::Impl {
  nlohmann::ordered_json obj = nlohmann::ordered_json::object();
};

JsonLine::JsonLine() : impl_(std::make_unique<Impl>()) {}
JsonLine::~JsonLine() = default;
JsonLine::JsonLine(JsonLine&&) noexcept = default;
JsonLine& JsonLine::operator=(JsonLine&&) noexcept = default;

std::string json_string(std::string_view s) {
  return dump(nlohmann::ordered_json(std::string(s)));
}

JsonLine& JsonLine::add(std::string_view k, double v) {
  auto& slot = impl_->obj[std::string(k)];
  if (!std::isfinite(v)) {
    slot = nullptr;
    return *this;
  }
  // The 9 significant digits the logs have always carried (float32 needs 9 to round-trip).
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.9g", v);
  slot = std::strtod(buf, nullptr);
  return *this;
}

JsonLine& JsonLine::add(std::string_view k, std::int64_t v) {
  impl_->obj[std::string(k)] = v;
  return *this;
}

JsonLine& JsonLine::add(std::string_view k, bool v) {
  impl_->obj[std::string(k)] = v;
  return *this;
}

JsonLine& JsonLine::add(std::string_view k, std::string_view v) {
  impl_->obj[std::string(k)] = std::string(v);
  return *this;
}

std::string JsonLine::str() const {
  return dump(impl_->obj) + "\n";
}

}  // namespace lockstep::io
