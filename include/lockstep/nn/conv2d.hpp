// Conv2d: a 2-D convolution (cross-correlation, as PyTorch and Keras compute it) over per-sample
// {channels, height, width} inputs, to {filters, out_h, out_w}. Config:
//   {type: conv2d, filters: 32, kernel: 3 (or [kh, kw]), stride: 1,
//    padding: valid | same | N | [ph, pw] | [top, left, bottom, right],
//    dilation: 1, groups: 1, bias: true}
// Runs through the device's convolution library where the build has one (oneDNN on the CPU, cuDNN
// on CUDA; backend/conv_plan.hpp), planned once per input shape. The reference implementation,
// which the tests compare the libraries against and which runs where no library covers a call:
// im2col into a column matrix planned once per batch size, and one GEMM per sample and group
// (backend::gemm: Eigen on the CPU, cuBLAS on CUDA).
#pragma once

#include <string>

#include <memory>

#include "lockstep/backend/conv_plan.hpp"
#include "lockstep/backend/window2d.hpp"
#include "lockstep/core/param_reader.hpp"
#include "lockstep/nn/layer.hpp"

namespace lockstep::nn {

// A sliding window's size and placement as the config gives them, shared by convolution and
// pooling. padding "same" makes out = ceil(in / stride), with the extra row and column at the
// bottom and right (TensorFlow's rule); "valid" is no padding; explicit padding is N or [ph, pw]
// (symmetric) or [top, left, bottom, right] (ONNX's pads, in lockstep's order).
struct WindowSpec {
  enum class Padding { kValid, kSame, kExplicit };
  std::int64_t kernel_h = 1, kernel_w = 1, stride_h = 1, stride_w = 1, dilation_h = 1, dilation_w = 1;
  Padding padding = Padding::kValid;
  std::int64_t pad_h = 0, pad_w = 0;  // kExplicit: top and left
  std::int64_t pad_bottom = -1, pad_right = -1;  // kExplicit: bottom and right; -1: as top and left
  std::string where;                  // "file.yaml:9: model.layers[0]", for shape errors

  // The geometry over a {C, H, W} input; a ConfigError naming where + ".kernel" when the (dilated)
  // kernel does not fit the padded input, or where when the input is not {C, H, W}.
  backend::Window2d plan(const Shape& input, const std::string& layer) const;
  std::string padding_text() const;
};

// Reads kernel (required unless kernel_default > 0), stride (default: stride_default, or the kernel
// when that is 0), padding, and dilation when allow_dilation; ConfigErrors name the key.
WindowSpec read_window_spec(ParamReader& p, const Spec& spec, std::int64_t stride_default, bool allow_dilation);

class Conv2d final : public Layer {
 public:
  Conv2d(std::int64_t filters, WindowSpec window, std::int64_t groups = 1, bool bias = true);
  std::string type() const override { return "conv2d"; }
  Shape output_shape(const Shape& input) const override;
  std::vector<ParamSpec> param_specs(const Shape& input) const override;
  void bind(std::vector<Parameter*> params) override;
  void forward(const Tensor& x, Tensor& y, const ForwardContext& ctx) override;
  void backward(const Tensor& dy, Tensor* dx) override;
  bool can_accumulate_grads() const override { return false; }  // writes its gradients

 private:
  backend::Window2d geometry(const Shape& input) const;  // checks channels against groups too
  void plan_buffers(const Tensor& x);
  // The library plan for x's device, dtype and batch size, or nullptr (the reference path runs).
  backend::ConvPlan* library_plan(const Tensor& x);
  void reference_forward(const Tensor& x, Tensor& y);
  void reference_backward(const Tensor& dy, Tensor* dx);
  // View of sample n, group g of a [rows, groups * per_group...] tensor as a [r, c] matrix.
  Tensor block(const Tensor& t, std::int64_t n, std::int64_t g, std::int64_t r, std::int64_t c) const;

  std::int64_t filters_, groups_;
  WindowSpec window_;
  bool use_bias_;
  Parameter* weight_ = nullptr;  // [filters, channels / groups, kernel_h, kernel_w]
  Parameter* bias_ = nullptr;    // [filters]
  mutable backend::Window2d g_{};  // planned by output_shape() for the input the layer runs on
  Tensor x_;
  std::unique_ptr<backend::ConvPlan> plan_;  // null: none made yet, or none for this input
  bool plan_tried_ = false;
  DType plan_dtype_ = DType::kF32;
  Device plan_device_ = Device::kCpu;
  std::int64_t plan_rows_ = 0;
  backend::ConvPlan* used_plan_ = nullptr;   // what the last forward ran on, for its backward
  // Planned for the largest batch seen, on the input's device and dtype; a batch uses its first rows.
  Tensor col_, dcol_;          // [rows, channels * taps, out_plane]
  Tensor ones_;                // [out_plane] of 1: bias broadcast and bias gradient
  Tensor bias_plane_;          // [filters, out_plane]: the bias broadcast over a sample
  Tensor channel_sums_;        // [rows, filters]: dy summed over each output plane
};

}  // namespace lockstep::nn
