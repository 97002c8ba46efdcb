// Registry<Kind>: a vocabulary (layer types, data formats, ...) as one list of named rows, filled
// at static initialisation by the files that implement them. Adding a kind is adding its own file
// with a Registrar in it; the code that turns configs into objects looks names up here and lists
// the known ones in its errors, so no second list exists to forget.
//
// Rows are registered before main() runs, from objects that nothing refers to by name: the
// libraries holding them are linked whole-archive (src/CMakeLists.txt), or a linker would drop
// them. Kind needs a `std::string name` member.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>
#include <vector>

#include "lockstep/core/error.hpp"

namespace lockstep {

template <typename Kind>
class Registry {
 public:
  static Registry& instance() {
    static Registry registry;  // constructed on first use: safe from any static initialiser
    return registry;
  }
  // A second row with one name is a programming error that nothing can catch before main().
  void add(Kind kind) {
    const std::string name = kind.name;
    if (!rows_.emplace(name, std::move(kind)).second) {
      std::fprintf(stderr, "lockstep: \"%s\" is registered twice\n", name.c_str());
      std::abort();
    }
  }
  const Kind* find(const std::string& name) const {
    const auto it = rows_.find(name);
    return it == rows_.end() ? nullptr : &it->second;
  }
  // The row named `name`; otherwise a ConfigError "<where>: expected one of <names>; got "<name>"".
  const Kind& at(const std::string& name, const std::string& where) const {
    if (const Kind* k = find(name)) return *k;
    throw ConfigError(where + ": expected one of " + names_joined() + "; got \"" + name + "\"");
  }
  std::vector<std::string> names() const {
    std::vector<std::string> out;
    for (const auto& kv : rows_) out.push_back(kv.first);
    return out;
  }
  std::string names_joined() const {
    std::string out;
    for (const auto& kv : rows_) out += (out.empty() ? "" : ", ") + kv.first;
    return out;
  }

 private:
  std::map<std::string, Kind> rows_;
};

template <typename Kind>
struct Registrar {
  explicit Registrar(Kind kind) { Registry<Kind>::instance().add(std::move(kind)); }
};

}  // namespace lockstep
