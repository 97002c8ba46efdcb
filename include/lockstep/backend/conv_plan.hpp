// Convolution through a vendor library: oneDNN on the CPU (src/backend/cpu/onednn.cpp), cuDNN on
// CUDA (src/backend/cuda/cudnn_conv.cu). nn::Conv2d asks for a plan once per input shape and keeps
// it; when there is none (no library in this build, a dtype or geometry the library does not take,
// or the library switched off) the layer runs its im2col + GEMM reference path, which the tests
// compare every plan against.
//
// Tensors are dense, row-major: x [rows, channels, height, width] (NCHW), w [filters, channels /
// groups, kernel_h, kernel_w], y [rows, filters, out_h, out_w], bias [filters]. A plan is made for
// at most max_rows rows and runs any batch of 1..max_rows rows without allocating (its primitives
// and scratch space are made on first use of a batch size and kept).
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "lockstep/backend/window2d.hpp"
#include "lockstep/core/tensor.hpp"

namespace lockstep::backend {

struct ConvDesc {
  Window2d g;                 // geometry of one sample (channels = all input channels)
  std::int64_t filters = 0;   // output channels
  std::int64_t groups = 1;
  bool bias = true;
};

class ConvPlan {
 public:
  virtual ~ConvPlan() = default;
  virtual std::string library() const = 0;  // "onednn", "cudnn": what `lockstep info` and the log name
  // y = conv(x, w) (+ bias broadcast over each output plane); overwrites y.
  virtual void forward(const Tensor& x, const Tensor& w, const Tensor* bias, Tensor& y) = 0;
  // dx = the gradient of the loss with respect to x, given dy; overwrites dx.
  virtual void backward_data(const Tensor& dy, const Tensor& w, Tensor& dx) = 0;
  // dw = sum over the batch of the weight gradient, db = dy summed over rows and planes; overwrite.
  virtual void backward_weights(const Tensor& x, const Tensor& dy, Tensor& dw, Tensor* db) = 0;
  // Both gradients of one step (x and w as the forward just given them): backward_weights, then
  // backward_data when dx is given. A plan may share work between the two (oneDNN reorders x and
  // dy into its layout once).
  virtual void backward(const Tensor& x, const Tensor& dy, const Tensor& w, Tensor& dw, Tensor* db, Tensor* dx) {
    backward_weights(x, dy, dw, db);
    if (dx) backward_data(dy, w, *dx);
  }
};

// Which convolution implementation layers use: kAuto = the library where one covers the call, else
// the reference; kReference = always im2col + GEMM. Process-wide; from LOCKSTEP_CONV (auto |
// reference) at first use, and settable (tests compare the two).
enum class ConvImpl { kAuto, kReference };
ConvImpl conv_impl();
void set_conv_impl(ConvImpl impl);

// A plan for this descriptor on device/dtype, or nullptr when conv_impl() is kReference or no
// library in this build covers it.
std::unique_ptr<ConvPlan> make_conv_plan(const ConvDesc& desc, Device device, DType dtype, std::int64_t max_rows);

// The convolution libraries this build has, for `lockstep info`: e.g. "onednn 2.6.3, cudnn 9.1.0".
std::string conv_libraries();

}  // namespace lockstep::backend
