// Batch norm (and the residual block's add) on the CPU (see include/lockstep/backend/ops.hpp): loops over [N, C, S].
// Each sample's plane of a channel is summed in 16 float lanes (vectorised, a fixed order, so the
// same bits at any rank count), the planes' sums and the channel's total in double. bf16 operands
// go through float32 copies (f32_detour.hpp).
#include <cmath>
#include <vector>

#include "backend/batchnorm_dims.hpp"
#include "backend/cpu/cpu_ops.hpp"
#include "backend/f32_detour.hpp"

namespace lockstep::backend::cpu {
namespace {

using f32_detour::any_bf16;
using f32_detour::as_f32;
using f32_detour::store_back;

using bn::Dims;
using bn::dims_of;
using bn::maybe;

constexpr int kLanes = 16;

// sum over k of f(p[k]) for one plane: kLanes float accumulators, then the lanes and the tail in double.
template <typename F>
double plane_sum(const float* p, std::int64_t n, F&& f) {
  float acc[kLanes] = {};
  std::int64_t k = 0;
  for (; k + kLanes <= n; k += kLanes)
    for (int j = 0; j < kLanes; ++j) acc[j] += f(p[k + j]);
  double s = 0.0;
  for (int j = 0; j < kLanes; ++j) s += acc[j];
  for (; k < n; ++k) s += f(p[k]);
  return s;
}

// The same over pairs: sum of a[k] and of a[k] * b(k)-style products, in one pass.
template <typename F>
void plane_sum2(const float* a, const float* b, std::int64_t n, F&& f, double& s1, double& s2) {
  float acc1[kLanes] = {}, acc2[kLanes] = {};
  std::int64_t k = 0;
  for (; k + kLanes <= n; k += kLanes)
    for (int j = 0; j < kLanes; ++j) {
      acc1[j] += a[k + j];
      acc2[j] += a[k + j] * f(b[k + j]);
    }
  for (int j = 0; j < kLanes; ++j) s1 += acc1[j], s2 += acc2[j];
  for (; k < n; ++k) s1 += a[k], s2 += static_cast<double>(a[k]) * f(b[k]);
}

}  // namespace

void batchnorm_stats(const Tensor& x, std::int64_t channels, Tensor& mean, Tensor& var) {
  if (any_bf16({&x})) return cpu::batchnorm_stats(as_f32(x), channels, mean, var);
  const Dims d = dims_of(x, channels, mean, "batchnorm_stats");
  const float* px = x.data<float>();
  float *pm = mean.data<float>(), *pv = var.data<float>();
  const double count = static_cast<double>(d.n * d.s);
  for (std::int64_t c = 0; c < d.c; ++c) {
    double sum = 0.0;
    for (std::int64_t i = 0; i < d.n; ++i) sum += plane_sum(px + (i * d.c + c) * d.s, d.s, [](float v) { return v; });
    const double mu = sum / count;
    const auto muf = static_cast<float>(mu);
    double sq = 0.0;
    for (std::int64_t i = 0; i < d.n; ++i)
      sq += plane_sum(px + (i * d.c + c) * d.s, d.s, [muf](float v) { return (v - muf) * (v - muf); });
    pm[c] = muf;
    pv[c] = static_cast<float>(sq / count);
  }
}

void batchnorm_forward(const Tensor& x, std::int64_t channels, const Tensor& mean, const Tensor& invstd,
                       const Tensor& weight, const Tensor& bias, Tensor& y) {
  if (any_bf16({&x, &weight, &bias, &y})) {
    Tensor fy = as_f32(y);
    cpu::batchnorm_forward(as_f32(x), channels, mean, invstd, as_f32(weight), as_f32(bias), fy);
    return store_back(fy, y);
  }
  const Dims d = dims_of(x, channels, mean, "batchnorm_forward");
  const float *px = x.data<float>(), *pm = mean.data<float>(), *pi = invstd.data<float>();
  const float *pw = maybe(weight), *pb = maybe(bias);
  float* py = y.data<float>();
  for (std::int64_t i = 0; i < d.n; ++i) {
    for (std::int64_t c = 0; c < d.c; ++c) {
      const float scale = pi[c] * (pw ? pw[c] : 1.0f), shift = pb ? pb[c] : 0.0f, mu = pm[c];
      const std::int64_t at = (i * d.c + c) * d.s;
      const float* __restrict xr = px + at;
      float* __restrict out = py + at;
      for (std::int64_t k = 0; k < d.s; ++k) out[k] = (xr[k] - mu) * scale + shift;
    }
  }
}

void batchnorm_backward_sums(const Tensor& dy, const Tensor& x, std::int64_t channels, const Tensor& mean,
                             const Tensor& invstd, Tensor& sum_dy, Tensor& sum_dy_xhat) {
  if (any_bf16({&dy, &x}))
    return cpu::batchnorm_backward_sums(as_f32(dy), as_f32(x), channels, mean, invstd, sum_dy, sum_dy_xhat);
  const Dims d = dims_of(x, channels, mean, "batchnorm_backward_sums");
  const float *pdy = dy.data<float>(), *px = x.data<float>(), *pm = mean.data<float>(), *pi = invstd.data<float>();
  float *ps = sum_dy.data<float>(), *psx = sum_dy_xhat.data<float>();
  for (std::int64_t c = 0; c < d.c; ++c) {
    double s = 0.0, sx = 0.0;
    const float mu = pm[c], inv = pi[c];
    for (std::int64_t i = 0; i < d.n; ++i) {
      const std::int64_t at = (i * d.c + c) * d.s;
      plane_sum2(pdy + at, px + at, d.s, [mu, inv](float v) { return (v - mu) * inv; }, s, sx);
    }
    ps[c] = static_cast<float>(s);
    psx[c] = static_cast<float>(sx);
  }
}

void batchnorm_backward(const Tensor& dy, const Tensor& x, std::int64_t channels, const Tensor& mean,
                        const Tensor& invstd, const Tensor& weight, const Tensor& sum_dy, const Tensor& sum_dy_xhat,
                        double count, Tensor& dx) {
  if (any_bf16({&dy, &x, &weight, &dx})) {
    Tensor fdx = as_f32(dx);
    cpu::batchnorm_backward(as_f32(dy), as_f32(x), channels, mean, invstd, as_f32(weight), sum_dy, sum_dy_xhat, count,
                            fdx);
    return store_back(fdx, dx);
  }
  const Dims d = dims_of(x, channels, mean, "batchnorm_backward");
  const float *pdy = dy.data<float>(), *px = x.data<float>(), *pm = mean.data<float>(), *pi = invstd.data<float>();
  const float *pw = maybe(weight), *ps = sum_dy.data<float>(), *psx = sum_dy_xhat.data<float>();
  float* pdx = dx.data<float>();
  const float inv_count = static_cast<float>(1.0 / count);
  for (std::int64_t i = 0; i < d.n; ++i) {
    for (std::int64_t c = 0; c < d.c; ++c) {
      const float k0 = pi[c] * (pw ? pw[c] : 1.0f), mdy = ps[c] * inv_count, mdyx = psx[c] * inv_count;
      const float mu = pm[c], inv = pi[c];
      const std::int64_t at = (i * d.c + c) * d.s;
      const float* __restrict xr = px + at;
      const float* __restrict dyr = pdy + at;
      float* __restrict out = pdx + at;
      for (std::int64_t k = 0; k < d.s; ++k) out[k] = k0 * (dyr[k] - mdy - (xr[k] - mu) * inv * mdyx);
    }
  }
}
void add(const Tensor& a, const Tensor& b, Tensor& out) {
  LOCKSTEP_CHECK(a.numel() == b.numel() && a.numel() == out.numel(), Error, "backend::add: ", shape_str(a.shape()),
                 " + ", shape_str(b.shape()), " into ", shape_str(out.shape()));
  if (any_bf16({&a, &b, &out})) {
    Tensor fo = as_f32(out);
    cpu::add(as_f32(a), as_f32(b), fo);
    return store_back(fo, out);
  }
  const float *pa = a.data<float>(), *pb = b.data<float>();
  float* po = out.data<float>();
  for (std::int64_t i = 0; i < a.numel(); ++i) po[i] = pa[i] + pb[i];
}

}  // namespace lockstep::backend::cpu
