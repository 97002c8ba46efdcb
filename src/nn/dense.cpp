// The dense layer over backend GEMMs, and its registry row (see dense.hpp).
#include "lockstep/nn/dense.hpp"

#include "lockstep/backend/ops.hpp"
#include "lockstep/nn/layer_registry.hpp"

namespace lockstep::nn {

std::vector<ParamSpec> Dense::param_specs(const Shape& input) const {
  const std::int64_t in = shape_numel(input);
  std::vector<ParamSpec> s{{"weight", {in, units_}, in, units_, false}};
  if (use_bias_) s.push_back({"bias", {units_}, in, units_, true});
  return s;
}

void Dense::bind(std::vector<Parameter*> params) {
  weight_ = params.at(0);
  bias_ = use_bias_ ? params.at(1) : nullptr;
}

// The backend reads a tensor [rows, ...] as the matrix [rows, numel / rows], which is the
// flattened input this layer multiplies.
void Dense::forward(const Tensor& x, Tensor& y, const ForwardContext&) {
  x_ = x;  // a view; the model keeps the activation alive until backward
  backend::gemm(false, false, 1.0f, x, weight_->compute, 0.0f, y);
  if (bias_) backend::add_row_vector(y, bias_->compute);
}

void Dense::backward(const Tensor& dy, Tensor* dx) {
  if (trainable_) {  // frozen: no parameter gradients
    // dW = x^T dy, or dW + x^T dy: the product over this batch's rows (one K block, rows <= 256)
    // is added to dW with one rounding, as adding a separately computed dW would be.
    const float beta = accumulate_grads_ ? 1.0f : 0.0f;
    backend::gemm(true, false, 1.0f, x_, dy, beta, weight_->grad);
    if (bias_) backend::sum_rows(dy, beta, bias_->grad);
  }
  if (dx) backend::gemm(false, true, 1.0f, dy, weight_->compute, 0.0f, *dx);  // dx = dy W^T
}

namespace {
const LayerRegistrar kDense{{"dense", "units (an integer > 0), bias (true or false; default true)",
                             [](ParamReader& p, const Spec& spec, std::uint32_t) -> std::unique_ptr<Layer> {
                               std::int64_t units = 0;
                               bool bias = true;
                               if (!p.get("units", units, at_least(std::int64_t{1})))
                                 throw ConfigError(spec.where + ".units: missing (dense layers need units > 0)");
                               p.get("bias", bias);
                               return std::make_unique<Dense>(units, bias);
                             }}};
}  // namespace

}  // namespace lockstep::nn
