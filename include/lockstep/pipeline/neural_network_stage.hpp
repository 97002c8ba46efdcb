// The pipeline/ layer joins ml/ and train/: it sits above both (neither includes it, nor each
// other). Here, the NeuralNetwork pipeline stage: a multilayer perceptron, configured like a
// `lockstep train` run (model, optimizer, schedule, training), trained by train::Trainer on the
// rows the earlier stages produced. Its registry row is in src/pipeline/neural_network_stage.cpp;
// nothing needs to include this header to use the stage, only to reuse its prediction head.
#pragma once

#include <cstdint>

#include "lockstep/ml/frame.hpp"
#include "lockstep/ml/linear.hpp"  // Predictions

#include "lockstep/nn/head.hpp"

namespace lockstep::nn {
class Sequential;
}

namespace lockstep::pipeline {

// A network's predictions for this rank's rows of f, as its head (nn::Head, the same code as
// training and `lockstep predict`) reads the outputs: a classifier's class with the outputs as raw
// and their softmax (or sigmoids) as probability; a binary head's 0/1 with Spark's two-column
// raw (-margin, margin) and probability (1 - p, p); a regression's value alone. Rows go through
// the network in chunks of eval_batch (train::forward_rows), so the result does not depend on the
// rank count.
ml::Predictions predict_with_head(nn::Sequential& model, const nn::Head& head, const ml::Frame& f,
                                  std::int64_t eval_batch);

}  // namespace lockstep::pipeline
