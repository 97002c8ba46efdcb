// Building layers from specs through the registry (see layer_registry.hpp).
#include "lockstep/nn/layer_registry.hpp"

#include <map>

namespace lockstep::nn {

std::unique_ptr<Layer> make_layer(const Spec& spec, std::uint32_t index) {
  const LayerKind& kind = LayerRegistry::instance().at(spec.type, spec.where + ".type");
  for (const auto& [key, children] : spec.children) {
    bool known = false;
    for (const auto& k : kind.layer_keys) known = known || k == key;
    LOCKSTEP_CHECK(known, ConfigError, spec.where, ".", key, ": expected a scalar or a list of scalars, got layers (",
                   spec.type, " takes ", kind.params.empty() ? std::string("no parameters") : kind.params, ")");
  }
  // `trainable` is any layer's key, read here so that no layer's own reader sees it.
  std::map<std::string, Param> own = spec.params;
  bool trainable = true;
  if (const auto it = own.find("trainable"); it != own.end()) {
    ParamReader flag(own, spec.type);
    flag.get("trainable", trainable);
    own.erase(it);
  }
  ParamReader params(own, spec.type);
  auto layer = kind.make(params, spec, index);
  params.finish();  // an unknown parameter, listing the ones this type takes
  if (!trainable) layer->set_trainable(false);
  return layer;
}

Spec layer_spec(std::string type, std::vector<std::pair<std::string, std::string>> params) {
  Spec s;
  s.where = "layer " + type;
  for (auto& [k, v] : params) s.params[k] = Param{{v}, false, s.where + "." + k};
  s.type = std::move(type);
  return s;
}

}  // namespace lockstep::nn
