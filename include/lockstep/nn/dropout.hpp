// Dropout: inverted dropout in training, the identity otherwise. Masks are keyed on (seed, epoch,
// layer index, sample id), so they do not depend on which rank holds a row. Config:
// {type: dropout, rate: 0.2}. The shape passes through.
#pragma once

#include "lockstep/nn/layer.hpp"

namespace lockstep::nn {

class Dropout final : public Layer {
 public:
  Dropout(float rate, std::uint32_t layer_index) : rate_(rate), index_(layer_index) {}
  std::string type() const override { return "dropout"; }
  Shape output_shape(const Shape& input) const override { return input; }
  void forward(const Tensor& x, Tensor& y, const ForwardContext& ctx) override;
  void backward(const Tensor& dy, Tensor* dx) override;

 private:
  float rate_;
  std::uint32_t index_;
  bool active_ = false;
  Tensor mask_;
};

}  // namespace lockstep::nn
