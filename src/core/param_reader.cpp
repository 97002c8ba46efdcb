// ParamReader's conversions from text, its ranges and its unknown-name check. Numbers are read
// with strtod, so "1e3" is an integer and "1.0" too (YAML writers print both); an integer that
// does not fit the requested type is an error, never a wrapped value.
#include "lockstep/core/param_reader.hpp"

#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <sstream>

#include "lockstep/core/error.hpp"

namespace lockstep {
namespace {

std::string number_text(double v) {
  std::ostringstream os;
  os << v;
  return os.str();
}

}  // namespace

template <typename T>
std::string param_type_word() {
  if constexpr (std::is_same_v<T, bool>)
    return "true or false";
  else if constexpr (std::is_integral_v<T> && std::is_unsigned_v<T>)
    return "a non-negative integer";
  else if constexpr (std::is_integral_v<T>)
    return "an integer";
  else if constexpr (std::is_floating_point_v<T>)
    return "a number";
  else
    return "a string";
}

template <typename T>
T parse_param(const Param& p, const std::string& v) {
  if constexpr (std::is_same_v<T, std::string>) {
    return v;
  } else if constexpr (std::is_same_v<T, bool>) {
    if (v == "true" || v == "True") return true;
    if (v == "false" || v == "False") return false;
    ParamReader::fail(p, param_type_word<T>(), "\"" + v + "\"");
  } else {
    if constexpr (std::is_integral_v<T>) {
      // Exact first: a 64-bit seed must not pass through a double's 53 bits.
      T exact{};
      const auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), exact);
      if (ec == std::errc() && end == v.data() + v.size()) return exact;
    }
    char* end = nullptr;
    const double d = std::strtod(v.c_str(), &end);
    if (v.empty() || *end != '\0' || !std::isfinite(d)) ParamReader::fail(p, param_type_word<T>(), "\"" + v + "\"");
    if constexpr (std::is_integral_v<T>) {
      // 2^63 and 2^64 are exact doubles, so these bounds are exact too.
      const double lo = static_cast<double>(std::numeric_limits<T>::min());
      const double hi = std::ldexp(1.0, std::numeric_limits<T>::digits);
      if (d != std::floor(d) || d < lo || d >= hi) ParamReader::fail(p, param_type_word<T>(), "\"" + v + "\"");
    }
    return static_cast<T>(d);
  }
}

#define LOCKSTEP_PARAM_TYPE(T)               \
  template std::string param_type_word<T>(); \
  template T parse_param<T>(const Param& p, const std::string& v);
LOCKSTEP_PARAM_TYPE(bool)
LOCKSTEP_PARAM_TYPE(int)
LOCKSTEP_PARAM_TYPE(std::int64_t)
LOCKSTEP_PARAM_TYPE(std::uint64_t)
LOCKSTEP_PARAM_TYPE(double)
LOCKSTEP_PARAM_TYPE(std::string)
#undef LOCKSTEP_PARAM_TYPE

ParamRange<double> at_least(double lo) {
  return {[lo](const double& v) { return v >= lo; }, "a number >= " + number_text(lo)};
}
ParamRange<double> greater_than(double lo) {
  return {[lo](const double& v) { return v > lo; }, "a number > " + number_text(lo)};
}
ParamRange<double> between(double lo, double hi) {
  return {[lo, hi](const double& v) { return v >= lo && v <= hi; },
          "a number in [" + number_text(lo) + ", " + number_text(hi) + "]"};
}
ParamRange<std::int64_t> at_least(std::int64_t lo) {
  return {[lo](const std::int64_t& v) { return v >= lo; }, "an integer >= " + std::to_string(lo)};
}
ParamRange<int> at_least(int lo) {
  return {[lo](const int& v) { return v >= lo; }, "an integer >= " + std::to_string(lo)};
}
ParamRange<std::string> one_of(std::vector<std::string> choices) {
  std::string words;
  for (const auto& c : choices) words += (words.empty() ? "" : ", ") + c;
  return {[c = std::move(choices)](const std::string& v) {
            for (const auto& x : c)
              if (x == v) return true;
            return false;
          },
          "one of " + words};
}

const Param* ParamReader::take(const std::string& name) {
  known_.insert(name);
  const auto it = params_.find(name);
  return it == params_.end() ? nullptr : &it->second;
}

void ParamReader::fail(const Param& p, const std::string& expected, const std::string& got) {
  throw ConfigError(p.where + ": expected " + expected + ", got " + got);
}

void ParamReader::finish() const {
  for (const auto& [name, p] : params_) {
    if (known_.count(name)) continue;
    std::string list;
    for (const auto& k : known_) list += (list.empty() ? "" : ", ") + k;
    throw ConfigError(p.where + ": unknown parameter of " + owner_ + " (known: " + (list.empty() ? "none" : list) +
                      ")");
  }
}

}  // namespace lockstep
