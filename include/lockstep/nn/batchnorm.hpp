// BatchNorm: per-feature (flat input, N x F) or per-channel (C x H x W input, statistics over N, H
// and W) normalisation, PyTorch's BatchNorm1d/2d. Config:
//   {type: batchnorm, momentum: 0.1, eps: 1e-5, affine: true, sync: false}
// Training normalises with the batch's statistics (biased variance) and updates the running ones
// (running = (1 - momentum) running + momentum batch, with the unbiased variance); evaluation
// normalises with the running statistics. Buffers: running_mean, running_var, num_batches_tracked.
//
// Which rows make "the batch" (docs/architecture.md, "Batch norm across ranks"):
// - default mode, sync: false: each rank's local batch, as PyTorch's BatchNorm under DDP, so
//   results depend on np; the running statistics are averaged over the ranks after every step.
// - default mode, sync: true: the global batch (SyncBatchNorm): per-channel sums, and the two sums
//   of the backward pass, are summed over the ranks exactly (128-bit fixed point), so the outputs
//   have the same bits at any np.
// - deterministic mode (either sync): each fixed-size micro-batch (the same rows at any np); the
//   running statistics are updated once per step from the whole global batch's statistics,
//   summed exactly over the micro-batches of every rank, so training is bit-identical at any np.
#pragma once

#include <vector>

#include "lockstep/nn/layer.hpp"

namespace lockstep::nn {

struct BatchNormOptions {
  double momentum = 0.1;
  double eps = 1e-5;
  bool affine = true;
  bool sync = false;
};

class BatchNorm final : public Layer {
 public:
  explicit BatchNorm(BatchNormOptions o) : o_(o) {}
  std::string type() const override { return "batchnorm"; }
  Shape output_shape(const Shape& input) const override { return input; }
  std::vector<ParamSpec> param_specs(const Shape& input) const override;
  void bind(std::vector<Parameter*> params) override;
  std::vector<BufferSpec> buffer_specs(const Shape& input) const override;
  void bind_buffers(std::vector<Buffer*> buffers) override;
  void forward(const Tensor& x, Tensor& y, const ForwardContext& ctx) override;
  void backward(const Tensor& dy, Tensor* dx) override;
  bool can_accumulate_grads() const override { return false; }  // writes its gradients
  void end_step(const ForwardContext& ctx) override;
  const BatchNormOptions& options() const { return o_; }

 private:
  void batch_statistics(const Tensor& x, const ForwardContext& ctx);
  void update_running(const double* mean, const double* var, double count);
  void set_stats(const std::vector<float>& mean, const std::vector<float>& invstd, Device dev);

  BatchNormOptions o_;
  std::int64_t channels_ = 0;
  Parameter* weight_ = nullptr;
  Parameter* bias_ = nullptr;
  Buffer* running_mean_ = nullptr;
  Buffer* running_var_ = nullptr;
  Buffer* batches_ = nullptr;
  // This forward's statistics (on the model's device) and what backward needs.
  Tensor mean_, invstd_, var_, sum_dy_, sum_dy_xhat_;
  Tensor x_;
  double count_ = 0.0;  // values per channel the statistics were taken over (all ranks for sync)
  bool training_ = false, exact_ = false;
  const CrossRank* ranks_ = nullptr;
  // Deterministic mode: this step's per-micro-batch statistics, summed in fixed point:
  // [sum of means (C), sum of (var + mean^2) (C), micro-batches, values per micro-batch, bad].
  std::vector<int128> step_sums_;
};

}  // namespace lockstep::nn
