// Element-wise activation layers: relu, sigmoid, tanh. Config: {type: relu}, or Keras style as a
// dense layer's `activation:`. The shape passes through.
#pragma once

#include "lockstep/backend/ops.hpp"
#include "lockstep/nn/layer.hpp"

namespace lockstep::nn {

class ActivationLayer final : public Layer {
 public:
  explicit ActivationLayer(backend::Activation a) : act_(a) {}
  std::string type() const override;
  Shape output_shape(const Shape& input) const override { return input; }
  void forward(const Tensor& x, Tensor& y, const ForwardContext& ctx) override;
  void backward(const Tensor& dy, Tensor* dx) override;

 private:
  backend::Activation act_;
  Tensor x_, y_;
};

}  // namespace lockstep::nn
