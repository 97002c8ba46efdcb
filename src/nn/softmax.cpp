// Softmax over each sample's features: {type: softmax}. A sample of any shape is read as its
// numel(shape) values (as dense reads it), so y[i] = exp(x[i] - max) / sum_j exp(x[j] - max) over
// all of them; the shape passes through. Backward: dx = y * (dy - sum_j dy[j] y[j]).
//
// It exists for imported networks that end in a Softmax (ONNX) and for exporting probabilities;
// the training loss already applies its own softmax to logits. The math runs on the host in float32
// with double sums (samples are a few classes wide), so every device gives the same bits.
#include "lockstep/backend/ops.hpp"
#include "lockstep/nn/layer_registry.hpp"

#include <algorithm>
#include <cmath>

namespace lockstep::nn {
namespace {

// `t` as float32 values on the host (a copy when it is on a device or in bf16).
std::vector<float> host_floats(const Tensor& t) {
  Tensor f = t;
  if (t.dtype() != DType::kF32) {
    f = Tensor(t.shape(), DType::kF32, t.device());
    backend::cast(t, f);
  }
  if (f.device() != Device::kCpu) f = f.clone(Device::kCpu);
  return std::vector<float>(f.data<float>(), f.data<float>() + f.numel());
}

// Writes host float32 `v` into `dst` (any device and dtype).
void store(const std::vector<float>& v, Tensor& dst) {
  const Tensor src = Tensor::borrow(const_cast<float*>(v.data()), dst.shape());
  if (dst.dtype() == DType::kF32) return dst.copy_from(src);
  backend::cast(src.clone(dst.device()), dst);
}

class Softmax final : public Layer {
 public:
  std::string type() const override { return "softmax"; }
  Shape output_shape(const Shape& input) const override { return input; }
  void forward(const Tensor& x, Tensor& y, const ForwardContext&) override {
    const std::int64_t rows = x.dim(0), n = rows > 0 ? x.numel() / rows : 0;
    std::vector<float> v = host_floats(x);
    for (std::int64_t r = 0; r < rows; ++r) {
      float* row = v.data() + r * n;
      const float top = *std::max_element(row, row + n);
      double sum = 0.0;
      for (std::int64_t j = 0; j < n; ++j) sum += row[j] = std::exp(row[j] - top);
      const float inv = static_cast<float>(1.0 / sum);
      for (std::int64_t j = 0; j < n; ++j) row[j] *= inv;
    }
    store(v, y);
    y_ = v;
    cols_ = n;
  }
  void backward(const Tensor& dy, Tensor* dx) override {
    if (!dx) return;
    std::vector<float> g = host_floats(dy);
    const std::int64_t rows = cols_ > 0 ? static_cast<std::int64_t>(g.size()) / cols_ : 0;
    for (std::int64_t r = 0; r < rows; ++r) {
      float* gr = g.data() + r * cols_;
      const float* yr = y_.data() + r * cols_;
      double dot = 0.0;
      for (std::int64_t j = 0; j < cols_; ++j) dot += static_cast<double>(gr[j]) * yr[j];
      for (std::int64_t j = 0; j < cols_; ++j) gr[j] = static_cast<float>(yr[j] * (gr[j] - dot));
    }
    store(g, *dx);
  }

 private:
  std::vector<float> y_;  // the last forward's output, on the host
  std::int64_t cols_ = 0;
};

const LayerRegistrar kSoftmax{{"softmax", "",
                               [](ParamReader&, const Spec&, std::uint32_t) -> std::unique_ptr<Layer> {
                                 return std::make_unique<Softmax>();
                               }}};

}  // namespace
}  // namespace lockstep::nn
