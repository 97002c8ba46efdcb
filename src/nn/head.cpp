// The meaning of a network's outputs (see head.hpp).
#include "lockstep/nn/head.hpp"

#include <cmath>
#include <sstream>

namespace lockstep::nn {

const char* task_name(Task t) {
  switch (t) {
    case Task::kClassification:
      return "classification";
    case Task::kBinary:
      return "binary";
    case Task::kRegression:
      return "regression";
  }
  return "?";
}

Head::Head(LossKind loss, std::int64_t outputs, std::int64_t target_columns)
    : loss_(loss), outputs_(outputs), columns_(target_columns) {
  if (loss == LossKind::kSoftmaxCrossEntropy) {
    task_ = Task::kClassification;
  } else if (loss == LossKind::kBceWithLogits) {
    task_ = outputs == 1 ? Task::kBinary : Task::kClassification;
  } else {
    task_ = outputs == target_columns ? Task::kRegression : Task::kClassification;
  }
}

std::optional<std::string> Head::label_problem(float y) const {
  std::ostringstream os;
  if (task_ == Task::kBinary && y != 0.0f && y != 1.0f) {
    os << "label " << y << " is not 0 or 1 (a bce_with_logits head with one output is a binary classifier)";
  } else if (task_ == Task::kRegression && !std::isfinite(y)) {
    os << "label " << y << " is not a finite number (regression target)";
  } else if (task_ == Task::kClassification && !(y >= 0.0f && y < static_cast<float>(outputs_) && y == std::floor(y))) {
    os << "label " << y << " is not a class index in [0, " << outputs_ << ") (the model has " << outputs_
       << " outputs)";
  } else {
    return std::nullopt;
  }
  return os.str();
}

Tensor Head::target(const Tensor& labels, std::int64_t rows, Device device) const {
  const float* y = labels.data<float>();
  Tensor t;
  if (task_ == Task::kClassification && loss_takes_class_index(loss_)) {
    t = labels.rows(0, rows);
  } else if (task_ == Task::kClassification) {
    t = Tensor({rows, outputs_});
    one_hot(labels, rows, t);
  } else {
    const std::int64_t n = rows * (task_ == Task::kBinary ? 1 : columns_);
    t = Tensor({rows, task_ == Task::kBinary ? 1 : columns_});
    float* o = t.data<float>();
    for (std::int64_t i = 0; i < n; ++i) {
      if (const auto problem = label_problem(y[i])) throw DataError(*problem);
      o[i] = y[i];
    }
  }
  return device == Device::kCpu ? t : t.clone(device);
}

double Head::predict(const float* z, std::vector<double>& scores) const {
  const auto k = static_cast<std::size_t>(outputs_);
  scores.resize(k);
  if (task_ == Task::kRegression) {
    for (std::size_t j = 0; j < k; ++j) scores[j] = z[j];
    return z[0];
  }
  if (task_ == Task::kBinary) {
    scores[0] = 1.0 / (1.0 + std::exp(-static_cast<double>(z[0])));
    return z[0] > 0.0f ? 1.0 : 0.0;
  }
  std::size_t arg = 0;
  for (std::size_t j = 1; j < k; ++j) arg = z[j] > z[arg] ? j : arg;
  if (loss_ == LossKind::kSoftmaxCrossEntropy) {  // class probabilities
    double sum = 0.0;
    for (std::size_t j = 0; j < k; ++j) sum += scores[j] = std::exp(static_cast<double>(z[j] - z[arg]));
    for (auto& s : scores) s /= sum;
  } else if (loss_ == LossKind::kBceWithLogits) {
    for (std::size_t j = 0; j < k; ++j) scores[j] = 1.0 / (1.0 + std::exp(-static_cast<double>(z[j])));
  } else {
    for (std::size_t j = 0; j < k; ++j) scores[j] = z[j];
  }
  return static_cast<double>(arg);
}

}  // namespace lockstep::nn
