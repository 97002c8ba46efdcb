// Batch norm (and the residual block's add) on the GPU (see include/lockstep/backend/ops.hpp). Per-channel sums: one block per
// channel, each thread a strided share of the channel's N*S values in double, then a fixed tree in
// shared memory, so a sum has the same bits every run. bf16 operands go through float32 copies.
#include <cuda_runtime.h>

#include "backend/batchnorm_dims.hpp"
#include "backend/cuda/cuda_check.hpp"
#include "backend/cuda/cuda_ops.hpp"
#include "backend/f32_detour.hpp"

namespace lockstep::backend::cuda {
namespace {

constexpr int kThreads = 256;
using f32_detour::any_bf16;
using f32_detour::as_f32;
using f32_detour::store_back;

using bn::Dims;
using bn::dims_of;
using bn::maybe;
int blocks_for(std::int64_t n) {
  const std::int64_t b = (n + kThreads - 1) / kThreads;
  return static_cast<int>(b < 65535 ? (b > 0 ? b : 1) : 65535);
}

// Sums two values per thread over the block (a fixed tree); thread 0 holds the results.
__device__ void block_sum2(double& a, double& b) {
  __shared__ double sa[kThreads], sb[kThreads];
  sa[threadIdx.x] = a;
  sb[threadIdx.x] = b;
  __syncthreads();
  for (int w = kThreads / 2; w > 0; w /= 2) {
    if (threadIdx.x < w) {
      sa[threadIdx.x] += sa[threadIdx.x + w];
      sb[threadIdx.x] += sb[threadIdx.x + w];
    }
    __syncthreads();
  }
  a = sa[0];
  b = sb[0];
}

__global__ void stats_kernel(const float* x, float* mean, float* var, Dims d) {
  const std::int64_t c = blockIdx.x, m = d.n * d.s;
  double sum = 0.0, unused = 0.0;
  for (std::int64_t j = threadIdx.x; j < m; j += kThreads) sum += x[((j / d.s) * d.c + c) * d.s + j % d.s];
  block_sum2(sum, unused);
  const double mu = sum / static_cast<double>(m);
  double sq = 0.0;
  unused = 0.0;
  for (std::int64_t j = threadIdx.x; j < m; j += kThreads) {
    const double v = x[((j / d.s) * d.c + c) * d.s + j % d.s] - mu;
    sq += v * v;
  }
  block_sum2(sq, unused);
  if (threadIdx.x == 0) {
    mean[c] = static_cast<float>(mu);
    var[c] = static_cast<float>(sq / static_cast<double>(m));
  }
}

__global__ void forward_kernel(const float* x, const float* mean, const float* invstd, const float* w, const float* b,
                               float* y, Dims d) {
  const std::int64_t n = d.n * d.c * d.s;
  for (std::int64_t i = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<std::int64_t>(blockDim.x) * gridDim.x) {
    const std::int64_t c = (i / d.s) % d.c;
    y[i] = (x[i] - mean[c]) * (invstd[c] * (w ? w[c] : 1.0f)) + (b ? b[c] : 0.0f);
  }
}

__global__ void backward_sums_kernel(const float* dy, const float* x, const float* mean, const float* invstd,
                                     float* sum_dy, float* sum_dy_xhat, Dims d) {
  const std::int64_t c = blockIdx.x, m = d.n * d.s;
  double s = 0.0, sx = 0.0;
  for (std::int64_t j = threadIdx.x; j < m; j += kThreads) {
    const std::int64_t i = ((j / d.s) * d.c + c) * d.s + j % d.s;
    s += dy[i];
    sx += static_cast<double>(dy[i]) * ((x[i] - mean[c]) * invstd[c]);
  }
  block_sum2(s, sx);
  if (threadIdx.x == 0) {
    sum_dy[c] = static_cast<float>(s);
    sum_dy_xhat[c] = static_cast<float>(sx);
  }
}

__global__ void backward_kernel(const float* dy, const float* x, const float* mean, const float* invstd,
                                const float* w, const float* sdy, const float* sdyx, float inv_count, float* dx,
                                Dims d) {
  const std::int64_t n = d.n * d.c * d.s;
  for (std::int64_t i = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<std::int64_t>(blockDim.x) * gridDim.x) {
    const std::int64_t c = (i / d.s) % d.c;
    const float xhat = (x[i] - mean[c]) * invstd[c];
    dx[i] = invstd[c] * (w ? w[c] : 1.0f) * (dy[i] - sdy[c] * inv_count - xhat * (sdyx[c] * inv_count));
  }
}

void check_launch() { LOCKSTEP_CUDA_CHECK(cudaGetLastError()); }

__global__ void add_kernel(const float* a, const float* b, float* out, std::int64_t n) {
  for (std::int64_t i = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<std::int64_t>(blockDim.x) * gridDim.x)
    out[i] = a[i] + b[i];
}

}  // namespace

void batchnorm_stats(const Tensor& x, std::int64_t channels, Tensor& mean, Tensor& var) {
  if (any_bf16({&x})) return cuda::batchnorm_stats(as_f32(x), channels, mean, var);
  const Dims d = dims_of(x, channels, mean, "batchnorm_stats");
  stats_kernel<<<static_cast<unsigned>(d.c), kThreads>>>(x.data<float>(), mean.data<float>(), var.data<float>(), d);
  check_launch();
}

void batchnorm_forward(const Tensor& x, std::int64_t channels, const Tensor& mean, const Tensor& invstd,
                       const Tensor& weight, const Tensor& bias, Tensor& y) {
  if (any_bf16({&x, &weight, &bias, &y})) {
    Tensor fy = as_f32(y);
    cuda::batchnorm_forward(as_f32(x), channels, mean, invstd, as_f32(weight), as_f32(bias), fy);
    return store_back(fy, y);
  }
  const Dims d = dims_of(x, channels, mean, "batchnorm_forward");
  forward_kernel<<<blocks_for(x.numel()), kThreads>>>(x.data<float>(), mean.data<float>(), invstd.data<float>(),
                                                      maybe(weight), maybe(bias), y.data<float>(), d);
  check_launch();
}

void batchnorm_backward_sums(const Tensor& dy, const Tensor& x, std::int64_t channels, const Tensor& mean,
                             const Tensor& invstd, Tensor& sum_dy, Tensor& sum_dy_xhat) {
  if (any_bf16({&dy, &x}))
    return cuda::batchnorm_backward_sums(as_f32(dy), as_f32(x), channels, mean, invstd, sum_dy, sum_dy_xhat);
  const Dims d = dims_of(x, channels, mean, "batchnorm_backward_sums");
  backward_sums_kernel<<<static_cast<unsigned>(d.c), kThreads>>>(dy.data<float>(), x.data<float>(),
                                                                 mean.data<float>(), invstd.data<float>(),
                                                                 sum_dy.data<float>(), sum_dy_xhat.data<float>(), d);
  check_launch();
}

void batchnorm_backward(const Tensor& dy, const Tensor& x, std::int64_t channels, const Tensor& mean,
                        const Tensor& invstd, const Tensor& weight, const Tensor& sum_dy, const Tensor& sum_dy_xhat,
                        double count, Tensor& dx) {
  if (any_bf16({&dy, &x, &weight, &dx})) {
    Tensor fdx = as_f32(dx);
    cuda::batchnorm_backward(as_f32(dy), as_f32(x), channels, mean, invstd, as_f32(weight), sum_dy, sum_dy_xhat,
                             count, fdx);
    return store_back(fdx, dx);
  }
  const Dims d = dims_of(x, channels, mean, "batchnorm_backward");
  backward_kernel<<<blocks_for(x.numel()), kThreads>>>(dy.data<float>(), x.data<float>(), mean.data<float>(),
                                                       invstd.data<float>(), maybe(weight), sum_dy.data<float>(),
                                                       sum_dy_xhat.data<float>(), static_cast<float>(1.0 / count),
                                                       dx.data<float>(), d);
  check_launch();
}
void add(const Tensor& a, const Tensor& b, Tensor& out) {
  LOCKSTEP_CHECK(a.numel() == b.numel() && a.numel() == out.numel(), Error, "backend::add: ", shape_str(a.shape()),
                 " + ", shape_str(b.shape()), " into ", shape_str(out.shape()));
  if (any_bf16({&a, &b, &out})) {
    Tensor fo = as_f32(out);
    cuda::add(as_f32(a), as_f32(b), fo);
    return store_back(fo, out);
  }
  add_kernel<<<blocks_for(a.numel()), kThreads>>>(a.data<float>(), b.data<float>(), out.data<float>(), a.numel());
  check_launch();
}

}  // namespace lockstep::backend::cuda
