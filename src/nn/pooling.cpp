// Max, average and global average pooling over the backend's window ops, and their rows
// (see pooling.hpp).
#include "lockstep/nn/pooling.hpp"

#include "lockstep/backend/ops.hpp"
#include "lockstep/nn/layer_registry.hpp"

namespace lockstep::nn {
namespace {

void check_batch(const Tensor& x, const backend::Window2d& g, const char* layer) {
  LOCKSTEP_CHECK(g.out_h > 0 && x.ndim() >= 1 && x.numel() == x.dim(0) * g.channels * g.in_plane(), Error, layer,
                 ": input batch ", shape_str(x.shape()), " for samples of ", g.channels, "x", g.height, "x", g.width,
                 " (output_shape sets the input shape)");
}

}  // namespace

Pool2d::Pool2d(Kind kind, WindowSpec window) : kind_(kind), window_(std::move(window)) {
  using Padding = WindowSpec::Padding;
  const auto half = [](std::int64_t pad, std::int64_t kernel) { return 2 * pad <= kernel; };
  LOCKSTEP_CHECK(window_.padding != Padding::kExplicit ||
                     (half(window_.pad_h, window_.kernel_h) && half(window_.pad_w, window_.kernel_w) &&
                      half(window_.pad_bottom, window_.kernel_h) && half(window_.pad_right, window_.kernel_w)),
                 ConfigError, window_.where, ".padding: expected at most half the kernel (",
                 window_.kernel_h / 2, "x", window_.kernel_w / 2, "), got ", window_.padding_text());
}

Shape Pool2d::output_shape(const Shape& input) const {
  g_ = window_.plan(input, type());
  return {g_.channels, g_.out_h, g_.out_w};
}

void Pool2d::forward(const Tensor& x, Tensor& y, const ForwardContext&) {
  check_batch(x, g_, "pool2d");
  rows_ = x.dim(0);
  if (kind_ == Kind::kAverage) return backend::avg_pool_forward(x, g_, y);
  if (!argmax_.defined() || argmax_.device() != x.device() || argmax_.dim(0) < rows_)
    argmax_ = Tensor({rows_, g_.channels, g_.out_h, g_.out_w}, DType::kI32, x.device());
  Tensor argmax = argmax_.rows(0, rows_);
  backend::max_pool_forward(x, g_, y, argmax);
}

void Pool2d::backward(const Tensor& dy, Tensor* dx) {
  if (!dx) return;
  if (kind_ == Kind::kAverage) return backend::avg_pool_backward(dy, g_, *dx);
  backend::max_pool_backward(dy, argmax_.rows(0, rows_), g_, *dx);
}

Shape GlobalAvgPool::output_shape(const Shape& input) const {
  WindowSpec whole;
  whole.where = where_;
  if (input.size() == 3) whole.kernel_h = input[1], whole.kernel_w = input[2];
  g_ = whole.plan(input, type());
  return {g_.channels};
}

void GlobalAvgPool::forward(const Tensor& x, Tensor& y, const ForwardContext&) {
  check_batch(x, g_, "global_avg_pool");
  backend::avg_pool_forward(x, g_, y);
}

void GlobalAvgPool::backward(const Tensor& dy, Tensor* dx) {
  if (dx) backend::avg_pool_backward(dy, g_, *dx);
}

namespace {
LayerKind pool_row(const char* name, Pool2d::Kind kind) {
  return {name, "kernel (an integer or [kh, kw]), stride (default: the kernel), padding (valid (default), same, N, [ph, pw] or [top, left, bottom, right])",
          [kind](ParamReader& p, const Spec& spec, std::uint32_t) -> std::unique_ptr<Layer> {
            return std::make_unique<Pool2d>(kind, read_window_spec(p, spec, 0, false));
          }};
}
const LayerRegistrar kMaxPool{pool_row("max_pool2d", Pool2d::Kind::kMax)};
const LayerRegistrar kAvgPool{pool_row("avg_pool2d", Pool2d::Kind::kAverage)};
const LayerRegistrar kGlobalAvgPool{{"global_avg_pool", "",
                                     [](ParamReader&, const Spec& spec, std::uint32_t) -> std::unique_ptr<Layer> {
                                       return std::make_unique<GlobalAvgPool>(spec.where);
                                     }}};
}  // namespace

}  // namespace lockstep::nn
