// Building layers from specs through the registry (see layer_registry.hpp).
#include "lockstep/nn/layer_registry.hpp"

namespace lockstep::nn {

std::unique_ptr<Layer> make_layer(const Spec& spec, std::uint32_t index) {
  const LayerKind& kind = LayerRegistry::instance().at(spec.type, spec.where + ".type");
  ParamReader params(spec.params, spec.type);
  auto layer = kind.make(params, spec, index);
  params.finish();  // an unknown parameter, listing the ones this type takes
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
