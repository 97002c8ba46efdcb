// The layers of an MLP: Dense, activations (ReLU, Sigmoid, Tanh) and Dropout.
#pragma once

#include "lockstep/backend/ops.hpp"
#include "lockstep/nn/layer.hpp"

namespace lockstep::nn {

class Dense final : public Layer {
 public:
  explicit Dense(std::int64_t units, bool bias = true) : units_(units), use_bias_(bias) {}
  std::string type() const override { return "dense"; }
  std::int64_t output_features(std::int64_t) const override { return units_; }
  std::vector<ParamSpec> param_specs(std::int64_t in) const override;
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

class ActivationLayer final : public Layer {
 public:
  explicit ActivationLayer(backend::Activation a) : act_(a) {}
  std::string type() const override;
  std::int64_t output_features(std::int64_t in) const override { return in; }
  void forward(const Tensor& x, Tensor& y, const ForwardContext& ctx) override;
  void backward(const Tensor& dy, Tensor* dx) override;

 private:
  backend::Activation act_;
  Tensor x_, y_;
};

class Dropout final : public Layer {
 public:
  Dropout(float rate, std::uint32_t layer_index) : rate_(rate), index_(layer_index) {}
  std::string type() const override { return "dropout"; }
  std::int64_t output_features(std::int64_t in) const override { return in; }
  void forward(const Tensor& x, Tensor& y, const ForwardContext& ctx) override;
  void backward(const Tensor& dy, Tensor* dx) override;

 private:
  float rate_;
  std::uint32_t index_;
  bool active_ = false;
  Tensor mask_;
};

}  // namespace lockstep::nn
