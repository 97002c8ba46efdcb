#include "lockstep/nn/loss.hpp"

namespace lockstep::nn {

LossKind parse_loss(const std::string& name) {
  if (name == "softmax_cross_entropy" || name == "cross_entropy") return LossKind::kSoftmaxCrossEntropy;
  if (name == "mse" || name == "mean_squared_error") return LossKind::kMeanSquaredError;
  if (name == "mae" || name == "mean_absolute_error") return LossKind::kMeanAbsoluteError;
  if (name == "huber") return LossKind::kHuber;
  if (name == "bce_with_logits") return LossKind::kBceWithLogits;
  throw ConfigError("expected one of softmax_cross_entropy, mse, mae, huber, bce_with_logits; got \"" + name + "\"");
}

const char* loss_name(LossKind k) {
  switch (k) {
    case LossKind::kSoftmaxCrossEntropy:
      return "softmax_cross_entropy";
    case LossKind::kMeanSquaredError:
      return "mse";
    case LossKind::kMeanAbsoluteError:
      return "mae";
    case LossKind::kHuber:
      return "huber";
    case LossKind::kBceWithLogits:
      return "bce_with_logits";
  }
  return "?";
}

void one_hot(const Tensor& labels, std::int64_t rows, Tensor& out) {
  const std::int64_t k = out.dim(1);
  out.zero_();
  const float* y = labels.data<float>();
  float* o = out.data<float>();
  for (std::int64_t i = 0; i < rows; ++i) {
    const auto c = static_cast<std::int64_t>(y[i]);
    LOCKSTEP_CHECK(c >= 0 && c < k && static_cast<float>(c) == y[i], DataError, "label ", y[i],
                   " is not a class index in [0, ", k, ") (the model has ", k, " outputs)");
    o[i * k + c] = 1.0f;
  }
}

backend::LossSum compute_loss(LossKind k, const Tensor& output, const Tensor& target, float scale, Tensor* dout) {
  switch (k) {
    case LossKind::kSoftmaxCrossEntropy:
      return backend::softmax_cross_entropy(output, target, scale, dout);
    case LossKind::kMeanSquaredError:
      return backend::mean_squared_error(output, target, scale, dout);
    case LossKind::kMeanAbsoluteError:
      return backend::mean_absolute_error(output, target, scale, dout);
    case LossKind::kHuber:
      return backend::huber_loss(output, target, scale, dout);
    case LossKind::kBceWithLogits:
      return backend::bce_with_logits(output, target, scale, dout);
  }
  return {};
}

}  // namespace lockstep::nn
