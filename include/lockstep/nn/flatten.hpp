// Flatten: {C, H, W} (or any per-sample shape) -> {C * H * W}, the same values in row-major order.
// Dense already reads a shaped sample flattened; this layer makes it explicit, as Keras' Flatten.
// Config: {type: flatten}.
#pragma once

#include "lockstep/nn/layer.hpp"

namespace lockstep::nn {

class Flatten final : public Layer {
 public:
  std::string type() const override { return "flatten"; }
  Shape output_shape(const Shape& input) const override { return {shape_numel(input)}; }
  void forward(const Tensor& x, Tensor& y, const ForwardContext& ctx) override;
  void backward(const Tensor& dy, Tensor* dx) override;
};

}  // namespace lockstep::nn
