// Dense: y = x W + b, over the input flattened per sample (a {C, H, W} input is read as its
// C*H*W values, as if a flatten layer came first). Config: {type: dense, units: 64, bias: true}.
#pragma once

#include "lockstep/nn/layer.hpp"

namespace lockstep::nn {

class Dense final : public Layer {
 public:
  explicit Dense(std::int64_t units, bool bias = true) : units_(units), use_bias_(bias) {}
  std::string type() const override { return "dense"; }
  Shape output_shape(const Shape&) const override { return {units_}; }
  std::vector<ParamSpec> param_specs(const Shape& input) const override;
  void bind(std::vector<Parameter*> params) override;
  void forward(const Tensor& x, Tensor& y, const ForwardContext& ctx) override;
  void backward(const Tensor& dy, Tensor* dx) override;
  std::int64_t units() const { return units_; }

 private:
  std::int64_t units_;
  bool use_bias_;
  Parameter* weight_ = nullptr;  // [in, units]: y = x @ W + b
  Parameter* bias_ = nullptr;
  Tensor x_;
};

}  // namespace lockstep::nn
