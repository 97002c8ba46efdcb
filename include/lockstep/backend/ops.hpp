// The math the layers, losses and optimizers need, over Tensors. Each function dispatches on the
// tensors' device: the CPU backend (Eigen) or, in CUDA builds, the CUDA backend (cuBLAS and
// kernels over the functors in functors.hpp). Tensors are row-major. Data tensors (activations,
// their gradients, weight copies, parameter gradients) may be float32 or bfloat16 (`precision:
// bf16`); the arithmetic is float32 either way and a bf16 result is rounded once, when stored.
// Labels, targets, dropout masks, master weights and optimizer state are float32.
#pragma once

#include <cstdint>

#include "lockstep/backend/window2d.hpp"
#include "lockstep/core/tensor.hpp"

namespace lockstep::backend {

enum class Activation : std::uint8_t { kRelu, kSigmoid, kTanh };

// dst = src converted (float32 <-> bfloat16, or a plain copy when the dtypes match).
void cast(const Tensor& src, Tensor& dst);
// c = alpha * op(a) @ op(b) + beta * c, 2-D. a and b share a dtype; c may be float32 when they
// are bf16 (cuBLAS: bf16 inputs, float32 accumulation).
void gemm(bool trans_a, bool trans_b, float alpha, const Tensor& a, const Tensor& b, float beta, Tensor& c);
// y[i, :] += bias
void add_row_vector(Tensor& y, const Tensor& bias);
// out = beta * out + sum over rows of x
void sum_rows(const Tensor& x, float beta, Tensor& out);
void activation_forward(Activation a, const Tensor& x, Tensor& y);
void activation_backward(Activation a, const Tensor& x, const Tensor& y, const Tensor& dy, Tensor& dx);
// y = x * mask, mask from fn::DropoutMask keyed by sample_ids (one per row).
void dropout_forward(const Tensor& x, const std::int64_t* sample_ids, std::uint64_t seed, std::uint64_t epoch,
                     std::uint32_t layer, float p, Tensor& mask, Tensor& y);
void mul(const Tensor& a, const Tensor& b, Tensor& out);  // element-wise
// Softmax cross-entropy against integer labels (stored as float). Writes d(sum of losses * scale)
// / dlogits into dlogits (if defined) and returns the sum of per-row losses (in double) and the
// number of rows whose arg-max equals the label.
struct LossSum {
  double loss = 0.0;
  std::int64_t correct = 0;
};
LossSum softmax_cross_entropy(const Tensor& logits, const Tensor& labels, float scale, Tensor* dlogits);
LossSum mean_squared_error(const Tensor& out, const Tensor& target, float scale, Tensor* dout);
LossSum bce_with_logits(const Tensor& logits, const Tensor& target, float scale, Tensor* dlogits);
// Regression losses against dense targets, per row the mean over outputs of |o - t| (L1) or of the
// Huber loss with delta 1; `correct` counts rows whose argmax matches the target's.
LossSum mean_absolute_error(const Tensor& out, const Tensor& target, float scale, Tensor* dout);
LossSum huber_loss(const Tensor& out, const Tensor& target, float scale, Tensor* dout);

// Sliding windows over a batch [rows, channels, height, width] (any shape holding rows samples of
// g's size; geometry and per-element math in window2d.hpp).
// col [rows, channels * kernel_h * kernel_w, out_h * out_w]: col[n, (c*kh + i)*kw + j, oy*out_w + ox]
// = x[n, c, in_y(oy, i), in_x(ox, j)], 0 outside the image.
void im2col(const Tensor& x, const Window2d& g, Tensor& col);
// The adjoint of im2col: dx[n, c, y, x] = the sum of the col entries copied from it (overwrites dx).
void col2im(const Tensor& col, const Window2d& g, Tensor& dx);
// y [rows, channels, out_h, out_w]; argmax (int32, y's shape) keeps the input position each output
// took, for the backward pass.
void max_pool_forward(const Tensor& x, const Window2d& g, Tensor& y, Tensor& argmax);
void max_pool_backward(const Tensor& dy, const Tensor& argmax, const Window2d& g, Tensor& dx);
// The mean of the taps inside the image.
void avg_pool_forward(const Tensor& x, const Window2d& g, Tensor& y);
void avg_pool_backward(const Tensor& dy, const Window2d& g, Tensor& dx);

// grad_scale multiplies g before the update (1 / ranks when g holds a sum over ranks).
void sgd_update(Tensor& w, const Tensor& g, Tensor& velocity, float lr, float momentum, float weight_decay,
                bool nesterov, float grad_scale = 1.0f);
void adam_update(Tensor& w, const Tensor& g, Tensor& m, Tensor& v, double lr, double beta1, double beta2, double eps,
                 double weight_decay, bool decoupled, std::int64_t step, double grad_scale = 1.0);

// Batch norm over x viewed as [N, C, S]: rows N, channels C = `channels`, S = numel / (N C) values
// per channel and row (S = 1 for flat features, H W for images). Statistics are float32 [C].
// mean, var = per-channel mean and biased variance (accumulated in double).
void batchnorm_stats(const Tensor& x, std::int64_t channels, Tensor& mean, Tensor& var);
// y = (x - mean) * invstd * weight + bias; weight and bias may be undefined (1 and 0).
void batchnorm_forward(const Tensor& x, std::int64_t channels, const Tensor& mean, const Tensor& invstd,
                       const Tensor& weight, const Tensor& bias, Tensor& y);
// Per channel: sum_dy = sum of dy, sum_dy_xhat = sum of dy * (x - mean) * invstd (weight and bias
// gradients, and the two sums the input gradient needs).
void batchnorm_backward_sums(const Tensor& dy, const Tensor& x, std::int64_t channels, const Tensor& mean,
                             const Tensor& invstd, Tensor& sum_dy, Tensor& sum_dy_xhat);
// dx = weight * invstd * (dy - sum_dy / count - xhat * sum_dy_xhat / count), count = the values per
// channel the statistics were taken over (over every rank for sync batch norm).
void batchnorm_backward(const Tensor& dy, const Tensor& x, std::int64_t channels, const Tensor& mean,
                        const Tensor& invstd, const Tensor& weight, const Tensor& sum_dy, const Tensor& sum_dy_xhat,
                        double count, Tensor& dx);
// out = a + b, element-wise (out may be a or b).
void add(const Tensor& a, const Tensor& b, Tensor& out);

}  // namespace lockstep::backend
