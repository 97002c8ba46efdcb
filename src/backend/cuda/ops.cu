// CUDA backend: products on cuBLAS, everything element-wise as kernels over the same functors the
// CPU backend runs (backend/functors.hpp), so the CPU tests exercise this math too. Reductions
// that feed metrics (loss sums, correct counts) come back to the host and are summed there in
// row order, as on the CPU.
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <cmath>
#include <type_traits>
#include <vector>

#include "backend/accuracy.hpp"
#include "backend/cuda/cuda_check.hpp"
#include "backend/cuda/cuda_ops.hpp"
#include "backend/f32_detour.hpp"
#include "lockstep/backend/functors.hpp"

namespace lockstep::backend::cuda {
namespace {

constexpr int kThreads = 256;
int blocks_for(std::int64_t n) {
  const std::int64_t b = (n + kThreads - 1) / kThreads;
  return static_cast<int>(b < 65535 ? (b > 0 ? b : 1) : 65535);
}
void check_launch() { LOCKSTEP_CUDA_CHECK(cudaGetLastError()); }

std::int64_t rows_of(const Tensor& t) { return t.ndim() == 1 ? 1 : t.dim(0); }
std::int64_t cols_of(const Tensor& t) { return t.ndim() == 1 ? t.dim(0) : t.numel() / (t.dim(0) > 0 ? t.dim(0) : 1); }

// Grid-stride loops: any n with a bounded grid.
// Storage types T (float or bf16) are read and written through load_f/store_f; arithmetic is float.
template <typename T, typename F> __global__ void unary_kernel(const T* x, T* y, std::int64_t n, F f) {
  for (std::int64_t i = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<std::int64_t>(blockDim.x) * gridDim.x)
    store_f(y, i, f(load_f(x, i)));
}
template <typename T, typename F>
__global__ void backward_kernel(const T* x, const T* y, const T* dy, T* dx, std::int64_t n, F f) {
  for (std::int64_t i = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<std::int64_t>(blockDim.x) * gridDim.x)
    store_f(dx, i, f(load_f(x, i), load_f(y, i), load_f(dy, i)));
}
template <typename T> __global__ void cast_kernel(const T* in, float* out, std::int64_t n) {
  for (std::int64_t i = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<std::int64_t>(blockDim.x) * gridDim.x)
    out[i] = load_f(in, i);
}
__global__ void round_kernel(const float* in, bf16* out, std::int64_t n) {
  for (std::int64_t i = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<std::int64_t>(blockDim.x) * gridDim.x)
    out[i] = bf16::from_float(in[i]);
}
template <typename T> __global__ void add_row_vector_kernel(T* y, const T* b, std::int64_t rows, std::int64_t cols) {
  const std::int64_t n = rows * cols;
  for (std::int64_t i = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<std::int64_t>(blockDim.x) * gridDim.x)
    store_f(y, i, load_f(y, i) + load_f(b, i % cols));
}
// One thread per column, rows in order: the same summation order as a sequential loop.
template <typename T, typename O>
__global__ void sum_rows_kernel(const T* x, O* out, std::int64_t rows, std::int64_t cols, float beta) {
  for (std::int64_t j = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; j < cols;
       j += static_cast<std::int64_t>(blockDim.x) * gridDim.x) {
    float s = 0.0f;
    for (std::int64_t i = 0; i < rows; ++i) s += load_f(x, i * cols + j);
    store_f(out, j, beta == 0.0f ? s : beta * load_f(out, j) + s);
  }
}
template <typename T> __global__ void mul_kernel(const T* a, const float* b, T* out, std::int64_t n) {
  for (std::int64_t i = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<std::int64_t>(blockDim.x) * gridDim.x)
    store_f(out, i, load_f(a, i) * b[i]);
}
template <typename T>
__global__ void dropout_kernel(const T* x, const std::int64_t* ids, fn::DropoutMask dm, float* mask, T* y,
                               std::int64_t rows, std::int64_t cols) {
  const std::int64_t n = rows * cols;
  for (std::int64_t i = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<std::int64_t>(blockDim.x) * gridDim.x) {
    const float m = dm(ids[i / cols], i % cols);
    mask[i] = m;
    store_f(y, i, load_f(x, i) * m);
  }
}
// One thread per row; k (the number of classes) is small. loss[i] and correct[i] per row.
__global__ void softmax_xent_kernel(const float* z, const float* labels, float scale, float* d, double* loss,
                                    int* correct, int* bad, std::int64_t rows, std::int64_t k) {
  for (std::int64_t i = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; i < rows;
       i += static_cast<std::int64_t>(blockDim.x) * gridDim.x) {
    const float* zi = z + i * k;
    const auto label = static_cast<std::int64_t>(labels[i]);
    if (label < 0 || label >= k || static_cast<float>(label) != labels[i]) {
      bad[i] = 1;
      loss[i] = 0.0;
      correct[i] = 0;
      continue;
    }
    bad[i] = 0;
    std::int64_t arg = 0;
    float mx = zi[0];
    for (std::int64_t j = 1; j < k; ++j)
      if (zi[j] > mx) mx = zi[j], arg = j;
    double sum = 0.0;
    for (std::int64_t j = 0; j < k; ++j) sum += exp(static_cast<double>(zi[j] - mx));
    const double log_sum = log(sum);
    loss[i] = log_sum - static_cast<double>(zi[label] - mx);
    correct[i] = arg == label;
    if (d) {
      for (std::int64_t j = 0; j < k; ++j) {
        const double p = exp(static_cast<double>(zi[j] - mx) - log_sum);
        d[i * k + j] = static_cast<float>(p - (j == label ? 1.0 : 0.0)) * scale;
      }
    }
  }
}
// Per element loss for dense targets (MSE, BCE); accuracy is decided on the host from the values.
template <typename L>
__global__ void dense_loss_kernel(const float* o, const float* t, float scale, float* d, double* loss, std::int64_t n,
                                  std::int64_t k, L l) {
  for (std::int64_t i = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<std::int64_t>(blockDim.x) * gridDim.x) {
    loss[i] = l.loss(o[i], t[i]) / static_cast<double>(k);
    if (d) d[i] = l.grad(o[i], t[i], k) * scale;
  }
}
struct Mse {
  __device__ double loss(float o, float t) const { const double e = double(o) - t; return e * e; }
  __device__ float grad(float o, float t, std::int64_t k) const {
    return static_cast<float>(2.0 * (double(o) - t) / static_cast<double>(k));
  }
};
struct Bce {
  __device__ double loss(float x, float t) const { return fn::BceWithLogits{}.loss(x, t); }
  __device__ float grad(float x, float t, std::int64_t k) const {
    return fn::BceWithLogits{}.grad(x, t) / static_cast<float>(k);
  }
};
// The shared regression functors, in the form dense_loss_kernel calls.
template <typename F> struct Regression {
  __device__ double loss(float o, float t) const { return F{}.loss(o, t); }
  __device__ float grad(float o, float t, std::int64_t k) const {
    return static_cast<float>(F{}.grad(o, t) / static_cast<double>(k));
  }
};
template <typename G, typename U> __global__ void sgd_kernel(float* w, const G* g, float* v, std::int64_t n, U u) {
  for (std::int64_t i = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<std::int64_t>(blockDim.x) * gridDim.x)
    u(w[i], load_f(g, i), v[i]);
}
template <typename G>
__global__ void adam_kernel(float* w, const G* g, float* m, float* v, std::int64_t n, fn::AdamUpdate u) {
  for (std::int64_t i = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<std::int64_t>(blockDim.x) * gridDim.x)
    u(w[i], load_f(g, i), m[i], v[i]);
}

// Calls f with the tensor's data as float* or bf16*; the other dtypes are not data tensors.
template <typename F> void typed(const Tensor& t, F&& f) {
  if (t.dtype() == DType::kBF16) return f(static_cast<bf16*>(t.raw()));
  return f(t.data<float>());
}
template <typename T> T* same(const Tensor& t, const char* op) {
  LOCKSTEP_CHECK(t.dtype() == dtype_of<T>(), Error, "backend::", op, " (cuda): expected ", dtype_name(dtype_of<T>()),
                 ", got ", dtype_name(t.dtype()));
  return static_cast<T*>(t.raw());
}
template <typename T> std::vector<T> to_host(const T* p, std::int64_t n) {
  std::vector<T> out(static_cast<std::size_t>(n));
  if (n > 0) LOCKSTEP_CUDA_CHECK(cudaMemcpy(out.data(), p, static_cast<std::size_t>(n) * sizeof(T), cudaMemcpyDeviceToHost));
  return out;
}
template <typename T> T* device_scratch(std::int64_t n, Tensor& holder, DType dt) {
  holder = Tensor({n * static_cast<std::int64_t>(sizeof(T)) / static_cast<std::int64_t>(dtype_size(dt))}, dt,
                  Device::kCuda);
  return static_cast<T*>(holder.raw());
}

}  // namespace

void cast(const Tensor& src, Tensor& dst) {
  LOCKSTEP_CHECK(src.numel() == dst.numel(), Error, "backend::cast (cuda): ", shape_str(src.shape()), " into ",
                 shape_str(dst.shape()));
  const std::int64_t n = src.numel();
  if (src.dtype() == dst.dtype()) return dst.copy_from(src);
  if (src.dtype() == DType::kBF16) {
    cast_kernel<<<blocks_for(n), kThreads>>>(same<bf16>(src, "cast"), same<float>(dst, "cast"), n);
  } else {
    round_kernel<<<blocks_for(n), kThreads>>>(same<float>(src, "cast"), same<bf16>(dst, "cast"), n);
  }
  check_launch();
}

void gemm(bool ta, bool tb, float alpha, const Tensor& a, const Tensor& b, float beta, Tensor& c) {
  // Row-major C = op(A) op(B) is column-major C^T = op(B)^T op(A)^T: swap the operands, keep the
  // transposition flags, and cuBLAS needs no copies.
  const std::int64_t ar = rows_of(a), ac = cols_of(a), br = rows_of(b), bc = cols_of(b);
  const std::int64_t m = ta ? ac : ar, k = ta ? ar : ac, kb = tb ? bc : br, n = tb ? br : bc;
  LOCKSTEP_CHECK(k == kb && rows_of(c) == m && cols_of(c) == n && a.dtype() == b.dtype(), Error,
                 "backend::gemm (cuda): ", shape_str(a.shape()), ta ? "^T" : "", " @ ", shape_str(b.shape()),
                 tb ? "^T" : "", " into ", shape_str(c.shape()), " (", dtype_name(a.dtype()), ", ",
                 dtype_name(b.dtype()), ")");
  const auto opa = ta ? CUBLAS_OP_T : CUBLAS_OP_N, opb = tb ? CUBLAS_OP_T : CUBLAS_OP_N;
  if (a.dtype() == DType::kF32) {
    LOCKSTEP_CUBLAS_CHECK(cublasSgemm(blas(), opb, opa, static_cast<int>(n), static_cast<int>(m), static_cast<int>(k),
                                      &alpha, b.data<float>(), static_cast<int>(bc), a.data<float>(),
                                      static_cast<int>(ac), &beta, same<float>(c, "gemm"), static_cast<int>(n)));
    return;
  }
  // bf16 operands, float32 accumulation (tensor cores); the product is stored as bf16 or float32.
  same<bf16>(a, "gemm");
  const cudaDataType_t ct = c.dtype() == DType::kBF16 ? CUDA_R_16BF : CUDA_R_32F;
  LOCKSTEP_CHECK(c.dtype() == DType::kBF16 || c.dtype() == DType::kF32, Error, "backend::gemm (cuda): output ",
                 dtype_name(c.dtype()));
  LOCKSTEP_CUBLAS_CHECK(cublasGemmEx(blas(), opb, opa, static_cast<int>(n), static_cast<int>(m), static_cast<int>(k),
                                     &alpha, b.raw(), CUDA_R_16BF, static_cast<int>(bc), a.raw(), CUDA_R_16BF,
                                     static_cast<int>(ac), &beta, c.raw(), ct, static_cast<int>(n), CUBLAS_COMPUTE_32F,
                                     CUBLAS_GEMM_DEFAULT));
}

void add_row_vector(Tensor& y, const Tensor& bias) {
  const std::int64_t rows = rows_of(y), cols = cols_of(y);
  typed(y, [&](auto* py) {
    using T = std::remove_pointer_t<decltype(py)>;
    add_row_vector_kernel<<<blocks_for(rows * cols), kThreads>>>(py, same<T>(bias, "add_row_vector"), rows, cols);
  });
  check_launch();
}

void sum_rows(const Tensor& x, float beta, Tensor& out) {
  const std::int64_t rows = rows_of(x), cols = cols_of(x);
  typed(x, [&](auto* px) {
    typed(out, [&](auto* po) { sum_rows_kernel<<<blocks_for(cols), kThreads>>>(px, po, rows, cols, beta); });
  });
  check_launch();
}

void activation_forward(Activation a, const Tensor& x, Tensor& y) {
  const std::int64_t n = x.numel();
  typed(x, [&](auto* px) {
    using T = std::remove_pointer_t<decltype(px)>;
    T* py = same<T>(y, "activation_forward");
    switch (a) {
      case Activation::kRelu: unary_kernel<<<blocks_for(n), kThreads>>>(px, py, n, fn::ReluForward{}); break;
      case Activation::kSigmoid: unary_kernel<<<blocks_for(n), kThreads>>>(px, py, n, fn::SigmoidForward{}); break;
      case Activation::kTanh: unary_kernel<<<blocks_for(n), kThreads>>>(px, py, n, fn::TanhForward{}); break;
    }
  });
  check_launch();
}

void activation_backward(Activation a, const Tensor& x, const Tensor& y, const Tensor& dy, Tensor& dx) {
  const std::int64_t n = x.numel();
  typed(x, [&](auto* px) {
    using T = std::remove_pointer_t<decltype(px)>;
    const char* op = "activation_backward";
    const T *py = same<T>(y, op), *pdy = same<T>(dy, op);
    T* pdx = same<T>(dx, op);
    switch (a) {
      case Activation::kRelu: backward_kernel<<<blocks_for(n), kThreads>>>(px, py, pdy, pdx, n, fn::ReluBackward{}); break;
      case Activation::kSigmoid: backward_kernel<<<blocks_for(n), kThreads>>>(px, py, pdy, pdx, n, fn::SigmoidBackward{}); break;
      case Activation::kTanh: backward_kernel<<<blocks_for(n), kThreads>>>(px, py, pdy, pdx, n, fn::TanhBackward{}); break;
    }
  });
  check_launch();
}

void dropout_forward(const Tensor& x, const std::int64_t* sample_ids, std::uint64_t seed, std::uint64_t epoch,
                     std::uint32_t layer, float p, Tensor& mask, Tensor& y) {
  const std::int64_t rows = rows_of(x), cols = cols_of(x);
  // The ids live on the host (they come with the batch); a small copy per call.
  Tensor ids({rows}, DType::kI64, Device::kCuda);
  LOCKSTEP_CUDA_CHECK(cudaMemcpy(ids.raw(), sample_ids, static_cast<std::size_t>(rows) * sizeof(std::int64_t),
                                 cudaMemcpyHostToDevice));
  typed(x, [&](auto* px) {
    using T = std::remove_pointer_t<decltype(px)>;
    dropout_kernel<<<blocks_for(rows * cols), kThreads>>>(px, ids.data<std::int64_t>(),
                                                           fn::DropoutMask{seed, epoch, layer, p}, mask.data<float>(),
                                                           same<T>(y, "dropout_forward"), rows, cols);
  });
  check_launch();
}

void mul(const Tensor& a, const Tensor& b, Tensor& out) {
  const std::int64_t n = a.numel();
  typed(a, [&](auto* pa) {
    using T = std::remove_pointer_t<decltype(pa)>;
    mul_kernel<<<blocks_for(n), kThreads>>>(pa, b.data<float>(), same<T>(out, "mul"), n);
  });
  check_launch();
}

LossSum softmax_cross_entropy(const Tensor& logits, const Tensor& labels, float scale, Tensor* dlogits) {
  if (f32_detour::any_bf16({&logits, dlogits})) {  // bf16: the loss reads few values, so float32 copies
    return f32_detour::loss(logits, dlogits,
                            [&](const Tensor& fz, Tensor* fd) { return cuda::softmax_cross_entropy(fz, labels, scale, fd); });
  }
  const std::int64_t rows = rows_of(logits), k = cols_of(logits);
  LOCKSTEP_CHECK(labels.numel() == rows, Error, "softmax_cross_entropy: ", labels.numel(), " labels for ", rows, " rows");
  Tensor lh, ch, bh;
  double* loss = device_scratch<double>(rows, lh, DType::kF64);
  int* correct = device_scratch<int>(rows, ch, DType::kI32);
  int* bad = device_scratch<int>(rows, bh, DType::kI32);
  float* d = dlogits && dlogits->defined() ? dlogits->data<float>() : nullptr;
  softmax_xent_kernel<<<blocks_for(rows), kThreads>>>(logits.data<float>(), labels.data<float>(), scale, d, loss,
                                                       correct, bad, rows, k);
  check_launch();
  const auto l = to_host(loss, rows);
  const auto c = to_host(correct, rows);
  const auto b = to_host(bad, rows);
  LossSum out;
  for (std::int64_t i = 0; i < rows; ++i) {
    LOCKSTEP_CHECK(!b[static_cast<std::size_t>(i)], DataError, "softmax_cross_entropy: row ", i,
                   " has a label that is not a class index in [0, ", k, ")");
    out.loss += l[static_cast<std::size_t>(i)];
    out.correct += c[static_cast<std::size_t>(i)];
  }
  return out;
}

namespace {
template <typename L>
LossSum dense_loss(const Tensor& o, const Tensor& t, float scale, Tensor* d, L l, bool argmax_accuracy) {
  const std::int64_t rows = rows_of(o), k = cols_of(o), n = o.numel();
  LOCKSTEP_CHECK(t.numel() == n, Error, "dense loss (cuda): ", shape_str(o.shape()), " vs ", shape_str(t.shape()));
  Tensor lh;
  double* loss = device_scratch<double>(n, lh, DType::kF64);
  dense_loss_kernel<<<blocks_for(n), kThreads>>>(o.data<float>(), t.data<float>(), scale,
                                                  d && d->defined() ? d->data<float>() : nullptr, loss, n, k, l);
  check_launch();
  const auto per = to_host(loss, n);
  const auto ho = to_host(o.data<float>(), n);
  const auto ht = to_host(t.data<float>(), n);
  LossSum out;
  for (std::int64_t i = 0; i < n; ++i) out.loss += per[static_cast<std::size_t>(i)];
  out.correct = argmax_accuracy ? accuracy::argmax_matches(ho.data(), ht.data(), rows, k)
                                : accuracy::all_signs_match(ho.data(), ht.data(), rows, k);
  return out;
}
}  // namespace

LossSum mean_squared_error(const Tensor& out, const Tensor& target, float scale, Tensor* dout) {
  if (f32_detour::any_bf16({&out, dout})) {  // bf16: the loss reads few values, so float32 copies
    return f32_detour::loss(out, dout,
                            [&](const Tensor& fz, Tensor* fd) { return cuda::mean_squared_error(fz, target, scale, fd); });
  }
  return dense_loss(out, target, scale, dout, Mse{}, true);
}

LossSum mean_absolute_error(const Tensor& out, const Tensor& target, float scale, Tensor* dout) {
  if (f32_detour::any_bf16({&out, dout})) {
    return f32_detour::loss(
        out, dout, [&](const Tensor& fz, Tensor* fd) { return cuda::mean_absolute_error(fz, target, scale, fd); });
  }
  return dense_loss(out, target, scale, dout, Regression<fn::AbsoluteError>{}, true);
}

LossSum huber_loss(const Tensor& out, const Tensor& target, float scale, Tensor* dout) {
  if (f32_detour::any_bf16({&out, dout})) {
    return f32_detour::loss(out, dout,
                            [&](const Tensor& fz, Tensor* fd) { return cuda::huber_loss(fz, target, scale, fd); });
  }
  return dense_loss(out, target, scale, dout, Regression<fn::Huber>{}, true);
}

LossSum bce_with_logits(const Tensor& logits, const Tensor& target, float scale, Tensor* dlogits) {
  if (f32_detour::any_bf16({&logits, dlogits})) {  // bf16: the loss reads few values, so float32 copies
    return f32_detour::loss(logits, dlogits,
                            [&](const Tensor& fz, Tensor* fd) { return cuda::bce_with_logits(fz, target, scale, fd); });
  }
  return dense_loss(logits, target, scale, dlogits, Bce{}, false);
}

void sgd_update(Tensor& w, const Tensor& g, Tensor& vel, float lr, float momentum, float wd, bool nesterov,
                float grad_scale) {
  const std::int64_t n = w.numel();
  typed(g, [&](auto* pg) {
    sgd_kernel<<<blocks_for(n), kThreads>>>(w.data<float>(), pg, vel.data<float>(), n,
                                            fn::SgdUpdate{lr, momentum, wd, nesterov, grad_scale});
  });
  check_launch();
}

void adam_update(Tensor& w, const Tensor& g, Tensor& m, Tensor& v, double lr, double b1, double b2, double eps,
                 double wd, bool decoupled, std::int64_t step, double grad_scale) {
  const auto u = fn::AdamUpdate::make(lr, b1, b2, eps, wd, decoupled, step, grad_scale);
  const std::int64_t n = w.numel();
  typed(g, [&](auto* pg) {
    adam_kernel<<<blocks_for(n), kThreads>>>(w.data<float>(), pg, m.data<float>(), v.data<float>(), n, u);
  });
  check_launch();
}

}  // namespace lockstep::backend::cuda
