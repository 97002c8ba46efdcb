// Batch norm over the backend's batchnorm ops, its exact cross-rank sums, and its registry row
// (see batchnorm.hpp).
#include "lockstep/nn/batchnorm.hpp"

#include <cmath>

#include "lockstep/backend/ops.hpp"
#include "lockstep/nn/layer_registry.hpp"

namespace lockstep::nn {
namespace {

// Fixed point with 60 fractional bits in 128-bit words: every value (an input, its square, a
// gradient times a normalised input) must be below 2^40 in magnitude, so that 2^26 of them add up
// without overflow. Conversion truncates; the sums are exact, so they do not depend on the order.
constexpr double kUnit = 0x1p60, kLimit = 0x1p40;

int128 fixed(double v, int128& bad) {
  if (!(std::fabs(v) < kLimit)) {  // NaN fails too
    ++bad;
    return 0;
  }
  return static_cast<int128>(v * kUnit);
}
double unfixed(int128 v) { return static_cast<double>(v) / kUnit; }

// x as float32 values on the host (a copy when it lives on a GPU or is bf16).
Tensor host_f32(const Tensor& x) {
  Tensor f = x;
  if (x.dtype() != DType::kF32) {
    f = Tensor(x.shape(), DType::kF32, x.device());
    backend::cast(x, f);
  }
  return f.device() == Device::kCpu ? f : f.clone(Device::kCpu);
}

std::vector<float> host_vector(const Tensor& t) {
  const Tensor h = t.device() == Device::kCpu ? t : t.clone(Device::kCpu);
  return std::vector<float>(h.data<float>(), h.data<float>() + h.numel());
}

// Per channel of a [N, C, S] batch: the exact sums of a and of a * b (b null: of a * a), or of a *
// xhat with xhat = (x - mean) * invstd when x is given; sums = [C sums, C sums, count, bad].
void exact_sums(const Tensor& a, const Tensor* x, const float* mean, const float* invstd, std::int64_t c,
                std::vector<int128>& sums) {
  const Tensor ha = host_f32(a), hx = x ? host_f32(*x) : Tensor();
  const std::int64_t n = a.dim(0), s = a.numel() / (n * c);
  const float* pa = ha.data<float>();
  const float* px = x ? hx.data<float>() : nullptr;
  sums.assign(static_cast<std::size_t>(2 * c + 2), 0);
  int128 bad = 0;
  for (std::int64_t i = 0; i < n; ++i) {
    for (std::int64_t ch = 0; ch < c; ++ch) {
      int128 s1 = 0, s2 = 0;
      const std::int64_t at = (i * c + ch) * s;
      for (std::int64_t k = 0; k < s; ++k) {
        const float v = pa[at + k];
        const float w = px ? (px[at + k] - mean[ch]) * invstd[ch] : v;
        s1 += fixed(v, bad);
        s2 += fixed(static_cast<double>(v) * w, bad);
      }
      sums[static_cast<std::size_t>(ch)] += s1;
      sums[static_cast<std::size_t>(c + ch)] += s2;
    }
  }
  sums[static_cast<std::size_t>(2 * c)] = n * s;
  sums[static_cast<std::size_t>(2 * c + 1)] = bad;
}

void check_exact(const std::vector<int128>& sums, std::int64_t c) {
  const int128 bad = sums[static_cast<std::size_t>(2 * c + 1)];
  LOCKSTEP_CHECK(bad == 0, Error, "batchnorm (sync or deterministic): ", static_cast<long long>(bad),
                 " values were NaN, infinite or beyond the exact sum's range (|v| < 2^40); lower the learning rate or "
                 "use sync: false and training.deterministic: false");
}

}  // namespace

std::vector<ParamSpec> BatchNorm::param_specs(const Shape& input) const {
  if (!o_.affine) return {};
  const std::int64_t c = input.at(0);
  ParamSpec w{"weight", {c}, c, c, false};
  w.is_scale = true;
  return {w, {"bias", {c}, c, c, true}};
}

void BatchNorm::bind(std::vector<Parameter*> params) {
  weight_ = o_.affine ? params.at(0) : nullptr;
  bias_ = o_.affine ? params.at(1) : nullptr;
}

std::vector<BufferSpec> BatchNorm::buffer_specs(const Shape& input) const {
  const std::int64_t c = input.at(0);
  return {{"running_mean", {c}, 0.0f}, {"running_var", {c}, 1.0f}, {"num_batches_tracked", {1}, 0.0f}};
}

void BatchNorm::bind_buffers(std::vector<Buffer*> buffers) {
  running_mean_ = buffers.at(0);
  running_var_ = buffers.at(1);
  batches_ = buffers.at(2);
  channels_ = running_mean_->spec.shape[0];
}

void BatchNorm::set_stats(const std::vector<float>& mean, const std::vector<float>& invstd, Device dev) {
  const Tensor hm = Tensor::borrow(const_cast<float*>(mean.data()), {channels_});
  const Tensor hi = Tensor::borrow(const_cast<float*>(invstd.data()), {channels_});
  mean_.copy_from(hm);
  invstd_.copy_from(hi);
  (void)dev;
}

void BatchNorm::update_running(const double* mean, const double* var, double count) {
  std::vector<float> rm = host_vector(running_mean_->value), rv = host_vector(running_var_->value),
                     nb = host_vector(batches_->value);
  const double m = o_.momentum, unbiased = count > 1.0 ? count / (count - 1.0) : 1.0;
  for (std::int64_t c = 0; c < channels_; ++c) {
    rm[c] = static_cast<float>((1.0 - m) * rm[c] + m * mean[c]);
    rv[c] = static_cast<float>((1.0 - m) * rv[c] + m * var[c] * unbiased);
  }
  nb[0] += 1.0f;
  running_mean_->value.copy_from(Tensor::borrow(rm.data(), {channels_}));
  running_var_->value.copy_from(Tensor::borrow(rv.data(), {channels_}));
  batches_->value.copy_from(Tensor::borrow(nb.data(), {1}));
}

// Training: this batch's mean and invstd into mean_/invstd_, count_, and the running statistics.
void BatchNorm::batch_statistics(const Tensor& x, const ForwardContext& ctx) {
  const std::int64_t c = channels_;
  std::vector<double> mean(c), var(c);
  exact_ = o_.sync && !ctx.deterministic && ctx.ranks != nullptr;
  if (exact_) {  // SyncBatchNorm: exact sums over every rank's rows
    std::vector<int128> sums;
    exact_sums(x, nullptr, nullptr, nullptr, c, sums);
    ctx.ranks->sum(sums.data(), sums.size());
    check_exact(sums, c);
    count_ = static_cast<double>(sums[static_cast<std::size_t>(2 * c)]);
    for (std::int64_t k = 0; k < c; ++k) {
      mean[k] = unfixed(sums[k]) / count_;
      var[k] = std::max(0.0, unfixed(sums[c + k]) / count_ - mean[k] * mean[k]);
    }
  } else {
    backend::batchnorm_stats(x, c, mean_, var_);
    const auto m = host_vector(mean_), v = host_vector(var_);
    for (std::int64_t k = 0; k < c; ++k) {
      mean[k] = m[k];
      var[k] = v[k];
    }
    count_ = static_cast<double>(x.numel() / c);
  }
  std::vector<float> mf(c), inv(c);
  for (std::int64_t k = 0; k < c; ++k) {
    mf[k] = static_cast<float>(mean[k]);
    inv[k] = static_cast<float>(1.0 / std::sqrt(var[k] + o_.eps));
  }
  set_stats(mf, inv, x.device());
  if (!ctx.deterministic) return update_running(mean.data(), var.data(), count_);
  // Deterministic mode: the step's statistics, summed exactly, update the running ones in end_step.
  if (step_sums_.empty()) step_sums_.assign(static_cast<std::size_t>(2 * c + 3), 0);
  int128 bad = 0;
  for (std::int64_t k = 0; k < c; ++k) {
    step_sums_[k] += fixed(mf[k], bad);
    step_sums_[c + k] += fixed(var[k] + static_cast<double>(mf[k]) * mf[k], bad);
  }
  step_sums_[2 * c] += 1;
  step_sums_[2 * c + 1] = static_cast<int128>(count_);
  step_sums_[2 * c + 2] += bad;
}

void BatchNorm::forward(const Tensor& x, Tensor& y, const ForwardContext& ctx) {
  const std::int64_t c = channels_;
  if (!mean_.defined() || mean_.device() != x.device()) {
    for (Tensor* t : {&mean_, &invstd_, &var_, &sum_dy_, &sum_dy_xhat_}) *t = Tensor({c}, DType::kF32, x.device());
  }
  x_ = x;
  training_ = ctx.training && trainable_;  // frozen (trainable: false): inference mode, as Keras does
  ranks_ = ctx.ranks;
  if (training_) {
    batch_statistics(x, ctx);
  } else {
    const auto rm = host_vector(running_mean_->value), rv = host_vector(running_var_->value);
    std::vector<float> inv(c);
    for (std::int64_t k = 0; k < c; ++k) inv[k] = static_cast<float>(1.0 / std::sqrt(static_cast<double>(rv[k]) + o_.eps));
    set_stats(rm, inv, x.device());
    exact_ = false;
  }
  backend::batchnorm_forward(x, c, mean_, invstd_, weight_ ? weight_->compute : Tensor(),
                             bias_ ? bias_->compute : Tensor(), y);
}

void BatchNorm::backward(const Tensor& dy, Tensor* dx) {
  const std::int64_t c = channels_;
  if (trainable_) {  // frozen: no parameter gradients, and the inference-mode dx needs no sums
    backend::batchnorm_backward_sums(dy, x_, c, mean_, invstd_, sum_dy_, sum_dy_xhat_);
    if (weight_) backend::cast(sum_dy_xhat_, weight_->grad);  // float32 or bf16 gradients
    if (bias_) backend::cast(sum_dy_, bias_->grad);
  }
  if (!dx) return;
  if (!training_) {  // the running statistics are constants: dx = dy * weight * invstd
    Tensor zero({c}, DType::kF32, dy.device());
    return backend::batchnorm_backward(dy, x_, c, mean_, invstd_, weight_ ? weight_->compute : Tensor(), zero, zero,
                                       1.0, *dx);
  }
  if (exact_) {  // SyncBatchNorm: the two sums over every rank's rows
    std::vector<int128> sums;
    const auto m = host_vector(mean_), inv = host_vector(invstd_);
    exact_sums(dy, &x_, m.data(), inv.data(), c, sums);
    ranks_->sum(sums.data(), sums.size());
    check_exact(sums, c);
    std::vector<float> s(c), sx(c);
    for (std::int64_t k = 0; k < c; ++k) {
      s[k] = static_cast<float>(unfixed(sums[k]));
      sx[k] = static_cast<float>(unfixed(sums[c + k]));
    }
    Tensor gs({c}, DType::kF32, dy.device()), gsx({c}, DType::kF32, dy.device());
    gs.copy_from(Tensor::borrow(s.data(), {c}));
    gsx.copy_from(Tensor::borrow(sx.data(), {c}));
    return backend::batchnorm_backward(dy, x_, c, mean_, invstd_, weight_ ? weight_->compute : Tensor(), gs, gsx,
                                       count_, *dx);
  }
  backend::batchnorm_backward(dy, x_, c, mean_, invstd_, weight_ ? weight_->compute : Tensor(), sum_dy_,
                              sum_dy_xhat_, count_, *dx);
}

void BatchNorm::end_step(const ForwardContext& ctx) {
  if (!trainable_) return;  // frozen: the running statistics are not updated (the same on every rank)
  const std::int64_t c = channels_;
  if (!step_sums_.empty()) {  // deterministic mode: one update from the global batch's statistics
    const int128 per_batch = step_sums_[2 * c + 1];
    step_sums_[2 * c + 1] = 0;
    if (ctx.ranks) ctx.ranks->sum(step_sums_.data(), step_sums_.size());
    LOCKSTEP_CHECK(step_sums_[2 * c + 2] == 0, Error,
                   "batchnorm: a batch statistic was NaN, infinite or beyond the exact sum's range (|v| < 2^40)");
    const double batches = static_cast<double>(step_sums_[2 * c]);
    std::vector<double> mean(c), var(c);
    for (std::int64_t k = 0; k < c; ++k) {
      mean[k] = unfixed(step_sums_[k]) / batches;
      var[k] = std::max(0.0, unfixed(step_sums_[c + k]) / batches - mean[k] * mean[k]);
    }
    step_sums_.clear();
    update_running(mean.data(), var.data(), batches * static_cast<double>(per_batch));
    return;
  }
  // Default mode, per-rank batches: the replicas' running statistics drift apart; average them.
  if (!exact_ && ctx.ranks && ctx.ranks->size() > 1) {
    auto rm = host_vector(running_mean_->value), rv = host_vector(running_var_->value);
    ctx.ranks->mean(rm.data(), rm.size());
    ctx.ranks->mean(rv.data(), rv.size());
    running_mean_->value.copy_from(Tensor::borrow(rm.data(), {c}));
    running_var_->value.copy_from(Tensor::borrow(rv.data(), {c}));
  }
}

namespace {
const LayerRegistrar kBatchNorm{
    {"batchnorm",
     "momentum (a number in [0, 1]; default 0.1), eps (a number > 0; default 1e-5), affine (true or false; default "
     "true), sync (true or false; default false)",
     [](ParamReader& p, const Spec&, std::uint32_t) -> std::unique_ptr<Layer> {
       BatchNormOptions o;
       p.get("momentum", o.momentum, between(0.0, 1.0));
       p.get("eps", o.eps, greater_than(0.0));
       p.get("affine", o.affine);
       p.get("sync", o.sync);
       return std::make_unique<BatchNorm>(o);
     }}};
}  // namespace

}  // namespace lockstep::nn
