// ParamReader: typed reading of named parameters that arrive as text with their place in a file
// (Param: one value or a list, and "file.yaml:12: pipeline[1].LogisticRegression.regParam").
// get() consumes one name, converts its text to the requested type and checks an optional range;
// finish() rejects every name nobody asked for, listing the names that were asked for. Every error
// is a ConfigError that starts with the parameter's place and says what was expected and what was
// found, e.g. `x.yaml:4: pipeline[0].Normalizer.p: expected a number >= 1, got "0.5"`.
//
// The reader knows nothing about pipelines: any mapping of scalars and lists whose places are known
// can be read with it (ML stages, and the data sources' format keys). It lives in core/ so that
// every layer that owns a vocabulary (data/'s formats, ml/'s stages) can read its own parameters;
// io/ only turns YAML into Param records. io::Param and io::ParamReader remain as aliases.
#pragma once

#include <functional>
#include <map>
#include <set>
#include <string>
#include <vector>

#include <cstdint>

namespace lockstep {

// One named parameter as the config gave it: its text, and where it was written.
struct Param {
  std::vector<std::string> values;  // one for a scalar, any number for a list
  bool is_list = false;
  std::string where;  // "file.yaml:12: pipeline[1].LogisticRegression.regParam"
};

// A thing of some registered type with its parameters: a layer ({type: dense, units: 64}).
struct Spec {
  std::string type;
  std::string where;  // "file.yaml:9: model.layers[0]"
  std::map<std::string, Param> params;
  // Keys whose value is a layer or a list of layers (a residual block's `layers` and `shortcut`).
  std::map<std::string, std::vector<Spec>> children;
};

// An allowed range, with the words for it that an error message shows ("a number >= 0").
template <typename T>
struct ParamRange {
  std::function<bool(const T&)> ok;  // empty: anything of the type
  std::string expected;
};
ParamRange<double> at_least(double lo);              // "a number >= lo"
ParamRange<double> greater_than(double lo);          // "a number > lo"
ParamRange<double> between(double lo, double hi);    // "a number in [lo, hi]"
ParamRange<std::int64_t> at_least(std::int64_t lo);  // "an integer >= lo"
ParamRange<int> at_least(int lo);
ParamRange<std::string> one_of(std::vector<std::string> choices);  // "one of a, b, c"

// Converts one text value of `p` to T (bool, int, std::int64_t, std::uint64_t, double or
// std::string); an unconvertible value is a ConfigError at p.where naming the type it expected.
template <typename T>
T parse_param(const Param& p, const std::string& text);
// What a value of T is called in messages: "a number", "an integer", "true or false", ...
template <typename T>
std::string param_type_word();

class ParamReader {
 public:
  // owner names what the parameters belong to in the unknown-name message ("LogisticRegression").
  ParamReader(const std::map<std::string, Param>& params, std::string owner)
      : params_(params), owner_(std::move(owner)) {}

  // Leaves `out` (the default) alone when the name is absent; returns whether it was given.
  template <typename T>
  bool get(const std::string& name, T& out, const ParamRange<T>& range = {}) {
    const Param* p = take(name);
    if (!p) return false;
    if (p->is_list) fail(*p, expected_of<T>(range), "a list");
    T v = parse_param<T>(*p, p->values[0]);
    check(*p, v, range, p->values[0]);
    out = std::move(v);
    return true;
  }
  // A list (or a single value, read as a list of one); every element is converted and checked.
  template <typename T>
  bool get_list(const std::string& name, std::vector<T>& out, const ParamRange<T>& range = {}) {
    const Param* p = take(name);
    if (!p) return false;
    out.clear();
    for (const auto& text : p->values) {
      T v = parse_param<T>(*p, text);
      check(*p, v, range, text);
      out.push_back(std::move(v));
    }
    return true;
  }
  // The parameter as given (nullptr when absent), for checks across values (a list's length) that
  // fail() at its place. Does not count as asking for it.
  const Param* find(const std::string& name) const {
    const auto it = params_.find(name);
    return it == params_.end() ? nullptr : &it->second;
  }
  // Throws for the first (alphabetically) name that no get() asked for.
  void finish() const;

  // A ConfigError at p.where: "expected <expected>, got <got>".
  [[noreturn]] static void fail(const Param& p, const std::string& expected, const std::string& got);

 private:
  const Param* take(const std::string& name);
  template <typename T>
  static std::string expected_of(const ParamRange<T>& range) {
    return range.expected.empty() ? param_type_word<T>() : range.expected;
  }
  template <typename T>
  static void check(const Param& p, const T& v, const ParamRange<T>& range, const std::string& text) {
    if (range.ok && !range.ok(v)) fail(p, range.expected, "\"" + text + "\"");
  }
  const std::map<std::string, Param>& params_;
  std::string owner_;
  std::set<std::string> known_;
};

}  // namespace lockstep
