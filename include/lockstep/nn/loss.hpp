// Losses. Each returns the sum of per-row losses (and, for classification, the number of correct
// rows) and writes d(scale * sum) / d(output), so the trainer chooses mean or sum by `scale`.
#pragma once

#include <memory>
#include <string>

#include "lockstep/backend/ops.hpp"

namespace lockstep::nn {

enum class LossKind { kSoftmaxCrossEntropy, kMeanSquaredError, kMeanAbsoluteError, kHuber, kBceWithLogits };

LossKind parse_loss(const std::string& name);  // throws ConfigError naming the choices
const char* loss_name(LossKind k);
// Targets: class indices [rows] for cross-entropy; [rows, outputs] for the others.
backend::LossSum compute_loss(LossKind k, const Tensor& output, const Tensor& target, float scale, Tensor* doutput);
// Dense one-hot targets [rows, k] from class indices, for losses that take dense targets.
// Throws DataError for a label that is not an integer in [0, k).
void one_hot(const Tensor& labels, std::int64_t rows, Tensor& out);
// Whether targets are class indices (one float per row) or dense vectors.
inline bool loss_takes_class_index(LossKind k) {
  return k == LossKind::kSoftmaxCrossEntropy;
}

}  // namespace lockstep::nn
