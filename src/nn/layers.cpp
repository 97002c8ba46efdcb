// Dense, activation and dropout layers over backend ops.
#include "lockstep/nn/layers.hpp"

namespace lockstep::nn {

std::vector<ParamSpec> Dense::param_specs(std::int64_t in) const {
  std::vector<ParamSpec> s{{"weight", {in, units_}, in, units_, false}};
  if (use_bias_) s.push_back({"bias", {units_}, in, units_, true});
  return s;
}

void Dense::bind(std::vector<Parameter*> params) {
  weight_ = params.at(0);
  bias_ = use_bias_ ? params.at(1) : nullptr;
}

void Dense::forward(const Tensor& x, Tensor& y, const ForwardContext& ctx) {
  x_ = x;  // a view; the model keeps the activation alive until backward
  backend::gemm(false, false, 1.0f, x, weight_->compute, 0.0f, y);
  if (bias_) backend::add_row_vector(y, bias_->compute);
}

void Dense::backward(const Tensor& dy, Tensor* dx) {
  backend::gemm(true, false, 1.0f, x_, dy, 0.0f, weight_->grad);  // dW = x^T dy
  if (bias_) backend::sum_rows(dy, 0.0f, bias_->grad);
  if (dx) backend::gemm(false, true, 1.0f, dy, weight_->compute, 0.0f, *dx);  // dx = dy W^T
}

std::string ActivationLayer::type() const {
  switch (act_) {
    case backend::Activation::kRelu:
      return "relu";
    case backend::Activation::kSigmoid:
      return "sigmoid";
    case backend::Activation::kTanh:
      return "tanh";
  }
  return "?";
}

void ActivationLayer::forward(const Tensor& x, Tensor& y, const ForwardContext&) {
  backend::activation_forward(act_, x, y);
  x_ = x;
  y_ = y;
}

void ActivationLayer::backward(const Tensor& dy, Tensor* dx) {
  if (dx) backend::activation_backward(act_, x_, y_, dy, *dx);
}

void Dropout::forward(const Tensor& x, Tensor& y, const ForwardContext& ctx) {
  active_ = ctx.training && rate_ > 0.0f;
  if (!active_) {
    y.copy_from(x);
    return;
  }
  LOCKSTEP_CHECK(ctx.sample_ids != nullptr, Error, "Dropout: training forward without sample ids");
  if (mask_.shape() != x.shape() || mask_.device() != x.device()) mask_ = Tensor(x.shape(), DType::kF32, x.device());
  backend::dropout_forward(x, ctx.sample_ids, ctx.seed, ctx.epoch, index_, rate_, mask_, y);
}

void Dropout::backward(const Tensor& dy, Tensor* dx) {
  if (!dx) return;
  if (active_) {
    backend::mul(dy, mask_, *dx);
  } else {
    dx->copy_from(dy);
  }
}

}  // namespace lockstep::nn
