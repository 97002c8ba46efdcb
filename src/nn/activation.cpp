// Activation layers over the backend's element-wise functors, and their registry rows.
#include "lockstep/nn/activation.hpp"

#include "lockstep/nn/layer_registry.hpp"

namespace lockstep::nn {

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

namespace {
LayerKind activation_row(const char* name, backend::Activation a) {
  return {name, "", [a](ParamReader&, const Spec&, std::uint32_t) -> std::unique_ptr<Layer> {
            return std::make_unique<ActivationLayer>(a);
          }};
}
const LayerRegistrar kRelu{activation_row("relu", backend::Activation::kRelu)};
const LayerRegistrar kSigmoid{activation_row("sigmoid", backend::Activation::kSigmoid)};
const LayerRegistrar kTanh{activation_row("tanh", backend::Activation::kTanh)};
}  // namespace

}  // namespace lockstep::nn
