// Dropout over the backend's counter-keyed masks, and its registry row (see dropout.hpp).
#include "lockstep/nn/dropout.hpp"

#include "lockstep/backend/ops.hpp"
#include "lockstep/nn/layer_registry.hpp"

namespace lockstep::nn {

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

namespace {
const LayerRegistrar kDropout{
    {"dropout", "rate (a number in [0, 1); default 0)",
     [](ParamReader& p, const Spec&, std::uint32_t index) -> std::unique_ptr<Layer> {
       double rate = 0.0;
       p.get("rate", rate, ParamRange<double>{[](const double& r) { return r >= 0.0 && r < 1.0; }, "a number in [0, 1)"});
       return std::make_unique<Dropout>(static_cast<float>(rate), index);
     }}};
}  // namespace

}  // namespace lockstep::nn
