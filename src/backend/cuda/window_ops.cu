// CUDA backend: the sliding-window ops, one thread per output element (forward) or per input
// element (the gathers of col2im and the pooling gradients), over the per-element math of
// backend/window2d.hpp that the CPU backend runs too. The convolution's products are cuBLAS GEMMs
// (nn/conv2d.cpp calls backend::gemm on views of the column matrix).
#include <cuda_runtime.h>

#include <type_traits>

#include "backend/cuda/cuda_check.hpp"
#include "backend/cuda/cuda_ops.hpp"

namespace lockstep::backend::cuda {
namespace {

constexpr int kThreads = 256;
int blocks_for(std::int64_t n) {
  const std::int64_t b = (n + kThreads - 1) / kThreads;
  return static_cast<int>(b < 65535 ? (b > 0 ? b : 1) : 65535);
}
#define LOCKSTEP_GRID_LOOP(i, n)                                                                 \
  for (std::int64_t i = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; i < (n); \
       i += static_cast<std::int64_t>(blockDim.x) * gridDim.x)

// Element i of the column tensor: (sample-plane s = n * channels + c, tap, oy, ox).
template <typename T> __global__ void im2col_kernel(const T* x, T* col, Window2d g, std::int64_t total) {
  LOCKSTEP_GRID_LOOP(i, total) {
    const std::int64_t ox = i % g.out_w, oy = i / g.out_w % g.out_h, tap = i / g.out_plane() % g.taps();
    const std::int64_t s = i / (g.out_plane() * g.taps());
    const std::int64_t iy = g.in_y(oy, tap / g.kernel_w), ix = g.in_x(ox, tap % g.kernel_w);
    const bool inside = iy >= 0 && iy < g.height && ix >= 0 && ix < g.width;
    store_f(col, i, inside ? load_f(x, s * g.in_plane() + iy * g.width + ix) : 0.0f);
  }
}
template <typename T> __global__ void col2im_kernel(const T* col, T* dx, Window2d g, std::int64_t total) {
  LOCKSTEP_GRID_LOOP(i, total) {
    const std::int64_t ix = i % g.width, iy = i / g.width % g.height, c = i / g.in_plane() % g.channels;
    const std::int64_t n = i / (g.in_plane() * g.channels);
    store_f(dx, i, fn::col2im_element(g, col + n * g.col_rows() * g.out_plane(), c, iy, ix));
  }
}
template <typename T>
__global__ void max_pool_kernel(const T* x, T* y, std::int32_t* arg, Window2d g, std::int64_t total) {
  LOCKSTEP_GRID_LOOP(i, total) {
    const std::int64_t ox = i % g.out_w, oy = i / g.out_w % g.out_h, p = i / g.out_plane();
    store_f(y, i, fn::max_pool_element(g, x + p * g.in_plane(), oy, ox, arg + i));
  }
}
template <typename T>
__global__ void max_pool_grad_kernel(const T* dy, const std::int32_t* arg, T* dx, Window2d g, std::int64_t total) {
  LOCKSTEP_GRID_LOOP(i, total) {
    const std::int64_t ix = i % g.width, iy = i / g.width % g.height, p = i / g.in_plane();
    store_f(dx, i, fn::max_pool_grad_element(g, dy + p * g.out_plane(), arg + p * g.out_plane(), iy, ix));
  }
}
template <typename T> __global__ void avg_pool_kernel(const T* x, T* y, Window2d g, std::int64_t total) {
  LOCKSTEP_GRID_LOOP(i, total) {
    const std::int64_t ox = i % g.out_w, oy = i / g.out_w % g.out_h, p = i / g.out_plane();
    store_f(y, i, fn::avg_pool_element(g, x + p * g.in_plane(), oy, ox));
  }
}
template <typename T> __global__ void avg_pool_grad_kernel(const T* dy, T* dx, Window2d g, std::int64_t total) {
  LOCKSTEP_GRID_LOOP(i, total) {
    const std::int64_t ix = i % g.width, iy = i / g.width % g.height, p = i / g.in_plane();
    store_f(dx, i, fn::avg_pool_grad_element(g, dy + p * g.out_plane(), iy, ix));
  }
}
#undef LOCKSTEP_GRID_LOOP

// Calls f with a's data as float* or bf16*, after checking that b has the same dtype.
template <typename F> void typed_pair(const Tensor& a, const Tensor& b, const char* op, F&& f) {
  LOCKSTEP_CHECK(a.dtype() == b.dtype() && (a.dtype() == DType::kF32 || a.dtype() == DType::kBF16), Error,
                 "backend::", op, " (cuda): ", dtype_name(a.dtype()), " with ", dtype_name(b.dtype()));
  if (a.dtype() == DType::kBF16) return f(static_cast<bf16*>(a.raw()), static_cast<bf16*>(b.raw()));
  return f(a.data<float>(), b.data<float>());
}
std::int64_t planes_of(const Tensor& t, const Window2d& g, const char* op) {
  const std::int64_t rows = t.ndim() == 0 ? 0 : t.dim(0);
  LOCKSTEP_CHECK(t.numel() == rows * g.channels * g.in_plane(), Error, "backend::", op, " (cuda): ",
                 shape_str(t.shape()), " is not ", rows, " samples of ", g.channels, "x", g.height, "x", g.width);
  return rows * g.channels;
}
void check_launch() { LOCKSTEP_CUDA_CHECK(cudaGetLastError()); }

}  // namespace

void im2col(const Tensor& x, const Window2d& g, Tensor& col) {
  const std::int64_t total = planes_of(x, g, "im2col") * g.taps() * g.out_plane();
  LOCKSTEP_CHECK(col.numel() == total, Error, "backend::im2col (cuda): columns ", shape_str(col.shape()));
  typed_pair(x, col, "im2col", [&](auto* px, auto* pc) {
    im2col_kernel<<<blocks_for(total), kThreads>>>(px, pc, g, total);
  });
  check_launch();
}

void col2im(const Tensor& col, const Window2d& g, Tensor& dx) {
  const std::int64_t total = planes_of(dx, g, "col2im") * g.in_plane();
  LOCKSTEP_CHECK(col.numel() == total / g.in_plane() * g.taps() * g.out_plane(), Error,
                 "backend::col2im (cuda): columns ", shape_str(col.shape()));
  typed_pair(col, dx, "col2im", [&](auto* pc, auto* pd) {
    col2im_kernel<<<blocks_for(total), kThreads>>>(pc, pd, g, total);
  });
  check_launch();
}

void max_pool_forward(const Tensor& x, const Window2d& g, Tensor& y, Tensor& argmax) {
  const std::int64_t total = planes_of(x, g, "max_pool_forward") * g.out_plane();
  LOCKSTEP_CHECK(y.numel() == total && argmax.numel() == total && argmax.dtype() == DType::kI32, Error,
                 "backend::max_pool_forward (cuda): output ", shape_str(y.shape()));
  typed_pair(x, y, "max_pool_forward", [&](auto* px, auto* py) {
    max_pool_kernel<<<blocks_for(total), kThreads>>>(px, py, argmax.data<std::int32_t>(), g, total);
  });
  check_launch();
}

void max_pool_backward(const Tensor& dy, const Tensor& argmax, const Window2d& g, Tensor& dx) {
  const std::int64_t total = planes_of(dx, g, "max_pool_backward") * g.in_plane();
  LOCKSTEP_CHECK(dy.numel() == total / g.in_plane() * g.out_plane() && argmax.numel() == dy.numel(), Error,
                 "backend::max_pool_backward (cuda): gradient ", shape_str(dy.shape()));
  typed_pair(dy, dx, "max_pool_backward", [&](auto* pdy, auto* pd) {
    max_pool_grad_kernel<<<blocks_for(total), kThreads>>>(pdy, argmax.data<std::int32_t>(), pd, g, total);
  });
  check_launch();
}

void avg_pool_forward(const Tensor& x, const Window2d& g, Tensor& y) {
  const std::int64_t total = planes_of(x, g, "avg_pool_forward") * g.out_plane();
  LOCKSTEP_CHECK(y.numel() == total, Error, "backend::avg_pool_forward (cuda): output ", shape_str(y.shape()));
  typed_pair(x, y, "avg_pool_forward", [&](auto* px, auto* py) {
    avg_pool_kernel<<<blocks_for(total), kThreads>>>(px, py, g, total);
  });
  check_launch();
}

void avg_pool_backward(const Tensor& dy, const Window2d& g, Tensor& dx) {
  const std::int64_t total = planes_of(dx, g, "avg_pool_backward") * g.in_plane();
  LOCKSTEP_CHECK(dy.numel() == total / g.in_plane() * g.out_plane(), Error,
                 "backend::avg_pool_backward (cuda): gradient ", shape_str(dy.shape()));
  typed_pair(dy, dx, "avg_pool_backward", [&](auto* pdy, auto* pd) {
    avg_pool_grad_kernel<<<blocks_for(total), kThreads>>>(pdy, pd, g, total);
  });
  check_launch();
}

}  // namespace lockstep::backend::cuda
