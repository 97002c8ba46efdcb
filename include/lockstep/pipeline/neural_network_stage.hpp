// The pipeline/ layer joins ml/ and train/: it sits above both (neither includes it, nor each
// other). Here, the NeuralNetwork pipeline stage: a multilayer perceptron, configured like a
// `lockstep train` run (model, optimizer, schedule, training), trained by train::Trainer on the
// rows the earlier stages produced. Its registry row is in src/pipeline/neural_network_stage.cpp;
// nothing needs to include this header to use the stage, only to reuse its prediction head.
#pragma once

#include <cstdint>

#include "lockstep/ml/frame.hpp"
#include "lockstep/ml/linear.hpp"  // Predictions

namespace lockstep::nn {
class Sequential;
}

namespace lockstep::pipeline {

// A classifier network's predictions for this rank's rows of f: raw = the network's outputs,
// probability = their softmax, prediction = the index of the largest output. Rows go through the
// network in chunks of eval_batch (train::forward_rows), so the result does not depend on the rank count.
ml::Predictions predict_classes(nn::Sequential& model, const ml::Frame& f, std::int64_t eval_batch);

}  // namespace lockstep::pipeline
