// Head: what a network's last layer means, decided once from the loss and the output width, and
// used by training, evaluation and prediction alike, so the three always agree.
//
//   loss                      outputs            task            target per row      prediction
//   softmax_cross_entropy     k >= 1             classification  class index         argmax, softmax scores
//   bce_with_logits           1                  binary          0 or 1              logit > 0, sigmoid score
//   bce_with_logits           k > 1              classification  one-hot of a class  argmax, sigmoid scores
//   mse | mae | huber         = label columns    regression      the label value(s)  the outputs (the first
//                                                                                      as "the" prediction)
//   mse | mae | huber         k > 1 (one label)  classification  one-hot of a class  argmax, raw outputs
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "lockstep/core/tensor.hpp"
#include "lockstep/nn/loss.hpp"

namespace lockstep::nn {

enum class Task { kClassification, kBinary, kRegression };
const char* task_name(Task t);

class Head {
 public:
  // target_columns: label columns per row (data.label_columns); a regression has one output per
  // column.
  Head(LossKind loss, std::int64_t outputs, std::int64_t target_columns = 1);

  LossKind loss() const { return loss_; }
  Task task() const { return task_; }
  std::int64_t outputs() const { return outputs_; }
  std::int64_t target_columns() const { return columns_; }

  // The tensor the loss compares the output with, on `device`, from host labels [rows] (or
  // [rows, target_columns] for a regression over several columns): class
  // indices, one-hot rows, 0/1 columns or the values themselves. Throws DataError for a label
  // the task cannot take (a class index out of range, a binary label other than 0 or 1, NaN).
  Tensor target(const Tensor& labels, std::int64_t rows, Device device) const;
  // What is wrong with one label value for this head (a class index out of range, a binary label
  // other than 0 or 1, a NaN regression target), or nothing. The trainer checks every label with
  // it when the data is loaded, so a bad row is an agreed error naming it, not a failure mid-step.
  std::optional<std::string> label_problem(float y) const;
  // One row's prediction from its outputs z[outputs]: the class (or the regressed value) and the
  // scores (class probabilities, the probability of class 1, or the outputs).
  double predict(const float* z, std::vector<double>& scores) const;

 private:
  LossKind loss_;
  Task task_;
  std::int64_t outputs_;
  std::int64_t columns_;
};

}  // namespace lockstep::nn
