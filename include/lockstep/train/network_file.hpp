// Networks as files: reading one (an ONNX model or a lockstep checkpoint) into an io::NetworkFile,
// building an nn::Sequential from it with its parameters, copying a file's parameters into a model
// by name and shape (transfer learning's model.init_from), and describing a model for export.
//
// Layers are named as checkpoints and summaries name them: "<type><index>" ("conv2d0", "dense6"),
// the index being the layer's place in model.layers; a parameter is "<layer>.<name>".
#pragma once

#include <cstddef>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "lockstep/comm/communicator.hpp"
#include "lockstep/io/config.hpp"
#include "lockstep/io/onnx.hpp"
#include "lockstep/nn/sequential.hpp"

namespace lockstep::train {

inline constexpr std::size_t kAllLayers = std::numeric_limits<std::size_t>::max();

// Reads `path` on every rank: an ONNX model when it ends in .onnx (io::read_onnx), else a lockstep
// checkpoint (its run config's model.layers, its input_shape attribute, its parameters and
// buffers). Errors are agreed, so every rank throws the same one. Collective.
io::NetworkFile read_network(comm::Communicator& comm, const std::string& path);

// The names of net's layers ("conv2d0", ...), in order; built from the specs through nn's registry.
std::vector<std::string> layer_names(const io::NetworkFile& net);
// The index in net.layers of the layer called `name`; a ConfigError at `where` listing the names
// otherwise.
std::size_t layer_index(const io::NetworkFile& net, const std::string& name, const std::string& where);

// Builds the network of net's first `layers` layers and sets their parameters and buffers from net.
std::unique_ptr<nn::Sequential> build_network(const io::NetworkFile& net, std::size_t layers = kAllLayers);

// Copies into `model` every parameter and buffer of its first `layers` layers from the array of the
// same name in `from`. A name `from` lacks, or a shape that differs, is a ConfigError naming both
// sides (`what` says where the request came from: "model.init_from: runs/a/checkpoint.h5").
void copy_network_state(const io::NetworkFile& from, nn::Sequential& model, std::size_t layers,
                        const std::string& what);

// Whether a network read from a file whose layers are `layers` ends in a softmax layer that a head
// trained or scored with `loss` applies again: a softmax classifier (softmax_cross_entropy) takes
// logits and applies its own softmax.
bool ends_in_folded_softmax(const std::vector<Spec>& layers, const std::string& loss);
// For predict --model: drops net's final softmax layer when ends_in_folded_softmax says so (as the
// config loader folds a configured final softmax into the loss), so the head's probabilities are
// the file's; rank 0 logs it. Returns whether it dropped one. A softmax layer has no parameters.
bool fold_final_softmax(io::NetworkFile& net, const std::string& loss);

// Transfer learning, when a run loads its config: model.init_from (with model.replace_from and
// model.base_trainable) becomes the full layer list — the source's layers before replace_from
// (all of them without it; trainable: false on each when base_trainable is false) followed by
// model.layers, the new head — and model.init_layers, how many of them take their parameters from
// the source. A config already resolved (init_layers given, as in a run's config.yaml) or without
// init_from is left alone. Without replace_from and a head, a source ending in softmax under a
// softmax classifier loses that layer (ends_in_folded_softmax; logged on rank 0). ConfigErrors naming model.init_from or model.replace_from and the file:
// a missing file, a replace_from that names no layer (listing them), a head that does not fit.
// Collective (every rank reads the source).
void resolve_init_from(comm::Communicator& comm, io::Config& cfg);

// At the start of a fresh run from a resolved config: copies the parameters and buffers of the
// model's first model.init_layers layers from model.init_from (read again, on every rank), after
// checking the source's input shape against the model's. Collective.
void load_init_from(comm::Communicator& comm, const io::ModelConfig& config, nn::Sequential& model);

// `model` (built from `specs`) as a NetworkFile in export form: every window's padding explicit as
// [top, left, bottom, right], its parameters and buffers copied out.
io::NetworkFile describe_network(const nn::Sequential& model, const std::vector<Spec>& specs);

}  // namespace lockstep::train
