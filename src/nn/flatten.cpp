// Flatten: a copy into the next layer's buffer (activations are separate buffers), and its row.
#include "lockstep/nn/flatten.hpp"

#include "lockstep/nn/layer_registry.hpp"

namespace lockstep::nn {

void Flatten::forward(const Tensor& x, Tensor& y, const ForwardContext&) { y.copy_from(x.reshape(y.shape())); }

void Flatten::backward(const Tensor& dy, Tensor* dx) {
  if (dx) dx->copy_from(dy.reshape(dx->shape()));
}

namespace {
const LayerRegistrar kFlatten{{"flatten", "",
                               [](ParamReader&, const Spec&, std::uint32_t) -> std::unique_ptr<Layer> {
                                 return std::make_unique<Flatten>();
                               }}};
}  // namespace

}  // namespace lockstep::nn
