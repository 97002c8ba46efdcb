// The layer types, as one registry: each row is a name, the parameters it takes (for messages and
// docs) and a factory that reads them with a ParamReader. Each layer registers its row from its
// own .cpp file, so adding a layer type is adding its files (and any backend ops it needs); the
// config reader keeps no list of layer types or of their keys.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "lockstep/core/param_reader.hpp"
#include "lockstep/core/registry.hpp"
#include "lockstep/nn/layer.hpp"

namespace lockstep::nn {

struct LayerKind {
  std::string name;
  std::string params;  // what it takes, e.g. "units (an integer > 0), bias (true or false; default true)"
  // Reads the parameters (unknown ones are reported by the caller) and builds the layer. index is
  // the layer's position in the model, which keys per-layer randomness (dropout masks).
  std::function<std::unique_ptr<Layer>(ParamReader& params, const Spec& spec, std::uint32_t index)> make;
  // Keys that hold layers (spec.children) this type reads, e.g. residual's layers and shortcut.
  std::vector<std::string> layer_keys = {};
};
using LayerRegistry = Registry<LayerKind>;
using LayerRegistrar = Registrar<LayerKind>;

// The layer `spec` describes. An unknown type is a ConfigError at spec.where listing the known
// ones; an unknown or bad parameter one naming the parameter and what the layer takes.
std::unique_ptr<Layer> make_layer(const Spec& spec, std::uint32_t index);
// A spec of a parameterless layer ({type: relu}), for code that builds models by hand.
Spec layer_spec(std::string type, std::vector<std::pair<std::string, std::string>> params = {});

}  // namespace lockstep::nn
