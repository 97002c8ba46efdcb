// Pooling over per-sample {channels, height, width} inputs.
//   {type: max_pool2d, kernel: 2 (or [kh, kw]), stride: kernel, padding: valid | same | N | [ph, pw]}
//   {type: avg_pool2d, ...the same keys}: the mean of the window's pixels inside the image
//     (padding is not counted, as in Keras and oneDNN's exclude_padding)
//   {type: global_avg_pool}: {C, H, W} -> {C}, each channel's mean
// Explicit padding is at most half the kernel (PyTorch's rule), so every window holds a pixel.
#pragma once

#include "lockstep/nn/conv2d.hpp"

namespace lockstep::nn {

class Pool2d final : public Layer {
 public:
  enum class Kind { kMax, kAverage };
  Pool2d(Kind kind, WindowSpec window);
  std::string type() const override { return kind_ == Kind::kMax ? "max_pool2d" : "avg_pool2d"; }
  Shape output_shape(const Shape& input) const override;
  void forward(const Tensor& x, Tensor& y, const ForwardContext& ctx) override;
  void backward(const Tensor& dy, Tensor* dx) override;

 private:
  Kind kind_;
  WindowSpec window_;
  mutable backend::Window2d g_{};  // planned by output_shape()
  Tensor argmax_;                  // int32 [rows, C, out_h, out_w], planned for the largest batch
  std::int64_t rows_ = 0;
};

class GlobalAvgPool final : public Layer {
 public:
  explicit GlobalAvgPool(std::string where = "global_avg_pool") : where_(std::move(where)) {}
  std::string type() const override { return "global_avg_pool"; }
  Shape output_shape(const Shape& input) const override;
  void forward(const Tensor& x, Tensor& y, const ForwardContext& ctx) override;
  void backward(const Tensor& dy, Tensor* dx) override;

 private:
  std::string where_;              // for shape errors
  mutable backend::Window2d g_{};  // one window over the whole plane
};

}  // namespace lockstep::nn
