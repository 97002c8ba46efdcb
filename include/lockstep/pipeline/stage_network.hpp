// The network inside a fitted pipeline stage, for `lockstep export --model model.h5 [--stage N]`
// (docs/onnx.md): the NeuralNetwork stage's whole network, whose input is the stage's flat rows
// ([N, features]) and whose outputs are its raw outputs (a classifier's logits), and the
// NeuralFeaturizer stage's truncated network (the source's layers up to its `layer`).
#pragma once

#include <cstdint>
#include <string>

#include "lockstep/io/onnx.hpp"
#include "lockstep/ml/pipeline.hpp"

namespace lockstep::pipeline {

// A fitted stage that runs a network; the stages of src/pipeline/ derive from it besides ml::Stage.
class NetworkStage {
 public:
  virtual ~NetworkStage() = default;
  // The network in export form (train::describe_network): its layers, its per-sample input shape,
  // its parameters and buffers, the same values the stage computes with.
  virtual io::NetworkFile network() const = 0;
};

// The network of stage `stage` (its index in the pipeline) of `model`, read from `path` (for
// messages); stage < 0 picks the only stage that holds a network. A pipeline without such a stage,
// one with several (stage < 0), an index out of range or a stage without a network is a
// ConfigError naming the file and listing the network stages by index and name. Every rank holds
// the same pipeline, so every rank throws alike (the error is marked agreed).
io::NetworkFile stage_network(const ml::PipelineModel& model, std::int64_t stage, const std::string& path);

}  // namespace lockstep::pipeline
