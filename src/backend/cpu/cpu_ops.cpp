// CPU backend: matrix products on Eigen, element-wise work through the shared functors.
// Everything here is single-threaded per rank: on an MPI cluster the ranks are the parallelism,
// and a fixed evaluation order is what keeps results reproducible.
#include "backend/cpu/cpu_ops.hpp"

#include <malloc.h>

#include <Eigen/Core>
#include <algorithm>
#include <vector>
#include <cmath>

#include "backend/accuracy.hpp"
#include "backend/f32_detour.hpp"
#include "lockstep/backend/functors.hpp"

namespace lockstep::backend::cpu {
namespace {

// Eigen's GEMM allocates its packing buffers on every product. With glibc's defaults, blocks over
// the mmap threshold are mapped and unmapped each time, so every training step paid page faults
// and page clearing (about 15% of a Fashion-MNIST epoch). Keep such blocks on the heap, and keep
// the heap.
const bool kMallocTuned = [] {
  mallopt(M_MMAP_THRESHOLD, 32 << 20);  // glibc's maximum
  mallopt(M_TRIM_THRESHOLD, 256 << 20);
  return true;
}();

using RowMat = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using ConstMapMat = Eigen::Map<const RowMat>;

std::int64_t rows_of(const Tensor& t) {
  return t.ndim() == 1 ? 1 : t.dim(0);
}
std::int64_t cols_of(const Tensor& t) {
  return t.ndim() == 1 ? t.dim(0) : t.numel() / std::max<std::int64_t>(t.dim(0), 1);
}

ConstMapMat cmat(const Tensor& t) {
  return ConstMapMat(t.data<float>(), rows_of(t), cols_of(t));
}
Eigen::Map<RowMat> mmat(Tensor& t) {
  return Eigen::Map<RowMat>(t.data<float>(), rows_of(t), cols_of(t));
}

void check_same(const Tensor& a, const Tensor& b, const char* op) {
  LOCKSTEP_CHECK(a.numel() == b.numel(), Error, "backend::", op, ": ", shape_str(a.shape()), " vs ",
                 shape_str(b.shape()));
}

template <typename F>
void unary(const Tensor& x, Tensor& y, F f) {
  check_same(x, y, "unary");
  const float* px = x.data<float>();
  float* py = y.data<float>();
  const std::int64_t n = x.numel();
  for (std::int64_t i = 0; i < n; ++i) py[i] = f(px[i]);
}
template <typename F>
void backward3(const Tensor& x, const Tensor& y, const Tensor& dy, Tensor& dx, F f) {
  check_same(x, dx, "backward");
  const float *px = x.data<float>(), *py = y.data<float>(), *pdy = dy.data<float>();
  float* pdx = dx.data<float>();
  const std::int64_t n = x.numel();
  for (std::int64_t i = 0; i < n; ++i) pdx[i] = f(px[i], py[i], pdy[i]);
}

// bf16 operands: the CPU has no bf16 arithmetic, so such a call runs the float32 kernel on float
// copies and rounds its outputs back to bf16 once (backend/f32_detour.hpp). That is what the CUDA
// backend computes (bf16 storage, float32 arithmetic), which lets the CPU tests check bf16
// training and the GPU's kernels against it. It is an emulation for checking, not a fast path.
using f32_detour::any_bf16;
using f32_detour::as_f32;
using f32_detour::store_back;

}  // namespace

void cast(const Tensor& src, Tensor& dst) {
  LOCKSTEP_CHECK(src.numel() == dst.numel(), Error, "backend::cast: ", shape_str(src.shape()), " into ",
                 shape_str(dst.shape()));
  const std::int64_t n = src.numel();
  const auto conv = [n](const auto* in, auto* out) {
    for (std::int64_t i = 0; i < n; ++i) store_f(out, i, load_f(in, i));
  };
  const bool sb = src.dtype() == DType::kBF16, db = dst.dtype() == DType::kBF16;
  if (sb == db) return dst.copy_from(src);
  if (sb)
    conv(src.data<bf16>(), dst.data<float>());
  else
    conv(src.data<float>(), dst.data<bf16>());
}

void gemm(bool ta, bool tb, float alpha, const Tensor& a, const Tensor& b, float beta, Tensor& c) {
  if (any_bf16({&a, &b, &c})) {
    LOCKSTEP_CHECK(a.dtype() == b.dtype(), Error, "backend::gemm: operands of different dtypes");
    Tensor fc = as_f32(c);
    cpu::gemm(ta, tb, alpha, as_f32(a), as_f32(b), beta, fc);
    return store_back(fc, c);
  }
  auto A = cmat(a);
  auto B = cmat(b);
  auto C = mmat(c);
  const auto m = ta ? A.cols() : A.rows(), ka = ta ? A.rows() : A.cols();
  const auto kb = tb ? B.cols() : B.rows(), n = tb ? B.rows() : B.cols();
  LOCKSTEP_CHECK(ka == kb && C.rows() == m && C.cols() == n, Error, "backend::gemm: ", shape_str(a.shape()),
                 ta ? "^T" : "", " @ ", shape_str(b.shape()), tb ? "^T" : "", " into ", shape_str(c.shape()));
  if (beta == 0.0f) {
    if (!ta && !tb)
      C.noalias() = alpha * (A * B);
    else if (ta && !tb)
      C.noalias() = alpha * (A.transpose() * B);
    else if (!ta && tb)
      C.noalias() = alpha * (A * B.transpose());
    else
      C.noalias() = alpha * (A.transpose() * B.transpose());
    return;
  }
  if (beta != 1.0f) C *= beta;
  if (!ta && !tb)
    C.noalias() += alpha * (A * B);
  else if (ta && !tb)
    C.noalias() += alpha * (A.transpose() * B);
  else if (!ta && tb)
    C.noalias() += alpha * (A * B.transpose());
  else
    C.noalias() += alpha * (A.transpose() * B.transpose());
}

void add_row_vector(Tensor& y, const Tensor& bias) {
  if (any_bf16({&y, &bias})) {
    Tensor fy = as_f32(y);
    cpu::add_row_vector(fy, as_f32(bias));
    return store_back(fy, y);
  }
  auto Y = mmat(y);
  LOCKSTEP_CHECK(bias.numel() == Y.cols(), Error, "backend::add_row_vector: bias ", shape_str(bias.shape()), " for ",
                 shape_str(y.shape()));
  Eigen::Map<const Eigen::RowVectorXf> b(bias.data<float>(), Y.cols());
  Y.rowwise() += b;
}

void sum_rows(const Tensor& x, float beta, Tensor& out) {
  if (any_bf16({&x, &out})) {
    Tensor fo = as_f32(out);
    cpu::sum_rows(as_f32(x), beta, fo);
    return store_back(fo, out);
  }
  // Row by row, each column summed in row order: the same bits whatever the alignment of x and
  // out, and beta = 1 adds the finished sums with one rounding, so a running sum of several
  // batches' bias gradients is the sum of separately computed ones (the tiled step relies on it).
  const std::int64_t rows = x.dim(0), cols = x.numel() / std::max<std::int64_t>(rows, 1);
  const float* px = x.data<float>();
  float* po = out.data<float>();
  thread_local std::vector<float> sums;
  sums.assign(static_cast<std::size_t>(cols), 0.0f);
  float* ps = sums.data();
  for (std::int64_t r = 0; r < rows; ++r) {
    const float* row = px + r * cols;
    for (std::int64_t c = 0; c < cols; ++c) ps[c] += row[c];
  }
  if (beta == 0.0f) {
    std::copy(ps, ps + cols, po);
  } else if (beta == 1.0f) {
    for (std::int64_t c = 0; c < cols; ++c) po[c] += ps[c];
  } else {
    for (std::int64_t c = 0; c < cols; ++c) po[c] = beta * po[c] + ps[c];
  }
}

void activation_forward(Activation a, const Tensor& x, Tensor& y) {
  if (any_bf16({&x, &y})) {
    Tensor fy = as_f32(y);
    cpu::activation_forward(a, as_f32(x), fy);
    return store_back(fy, y);
  }
  switch (a) {
    case Activation::kRelu:
      return unary(x, y, fn::ReluForward{});
    case Activation::kSigmoid:
      return unary(x, y, fn::SigmoidForward{});
    case Activation::kTanh:
      return unary(x, y, fn::TanhForward{});
  }
}

void activation_backward(Activation a, const Tensor& x, const Tensor& y, const Tensor& dy, Tensor& dx) {
  if (any_bf16({&x, &y, &dy, &dx})) {
    Tensor fdx = as_f32(dx);
    cpu::activation_backward(a, as_f32(x), as_f32(y), as_f32(dy), fdx);
    return store_back(fdx, dx);
  }
  switch (a) {
    case Activation::kRelu:
      return backward3(x, y, dy, dx, fn::ReluBackward{});
    case Activation::kSigmoid:
      return backward3(x, y, dy, dx, fn::SigmoidBackward{});
    case Activation::kTanh:
      return backward3(x, y, dy, dx, fn::TanhBackward{});
  }
}

void dropout_forward(const Tensor& x, const std::int64_t* ids, std::uint64_t seed, std::uint64_t epoch,
                     std::uint32_t layer, float p, Tensor& mask, Tensor& y) {
  if (any_bf16({&x, &y})) {
    Tensor fy = as_f32(y);
    cpu::dropout_forward(as_f32(x), ids, seed, epoch, layer, p, mask, fy);
    return store_back(fy, y);
  }
  const fn::DropoutMask dm{seed, epoch, layer, p};
  const std::int64_t rows = rows_of(x), cols = cols_of(x);
  const float* px = x.data<float>();
  float* pm = mask.data<float>();
  float* py = y.data<float>();
  for (std::int64_t i = 0; i < rows; ++i) {
    for (std::int64_t j = 0; j < cols; ++j) {
      const float m = dm(ids[i], j);
      pm[i * cols + j] = m;
      py[i * cols + j] = px[i * cols + j] * m;
    }
  }
}

void mul(const Tensor& a, const Tensor& b, Tensor& out) {
  if (any_bf16({&a, &b, &out})) {
    Tensor fo = as_f32(out);
    cpu::mul(as_f32(a), as_f32(b), fo);
    return store_back(fo, out);
  }
  check_same(a, b, "mul");
  const float *pa = a.data<float>(), *pb = b.data<float>();
  float* po = out.data<float>();
  for (std::int64_t i = 0; i < a.numel(); ++i) po[i] = pa[i] * pb[i];
}

LossSum softmax_cross_entropy(const Tensor& logits, const Tensor& labels, float scale, Tensor* dlogits) {
  if (any_bf16({&logits, dlogits})) {
    return f32_detour::loss(logits, dlogits, [&](const Tensor& fz, Tensor* fd) {
      return cpu::softmax_cross_entropy(fz, labels, scale, fd);
    });
  }
  const std::int64_t rows = rows_of(logits), k = cols_of(logits);
  LOCKSTEP_CHECK(labels.numel() == rows, Error, "softmax_cross_entropy: ", labels.numel(), " labels for ", rows,
                 " rows");
  const float* z = logits.data<float>();
  const float* y = labels.data<float>();
  float* d = dlogits && dlogits->defined() ? dlogits->data<float>() : nullptr;
  LossSum out;
  for (std::int64_t i = 0; i < rows; ++i) {
    const float* zi = z + i * k;
    const auto label = static_cast<std::int64_t>(y[i]);
    LOCKSTEP_CHECK(label >= 0 && label < k && static_cast<float>(label) == y[i], DataError,
                   "softmax_cross_entropy: label ", y[i], " is not a class index in [0, ", k, ")");
    std::int64_t arg = 0;
    float mx = zi[0];
    for (std::int64_t j = 1; j < k; ++j) {
      if (zi[j] > mx) {
        mx = zi[j];
        arg = j;
      }
    }
    double sum = 0.0;
    for (std::int64_t j = 0; j < k; ++j) sum += std::exp(static_cast<double>(zi[j] - mx));
    const double log_sum = std::log(sum);
    out.loss += log_sum - static_cast<double>(zi[label] - mx);
    out.correct += arg == label;
    if (d) {
      float* di = d + i * k;
      for (std::int64_t j = 0; j < k; ++j) {
        const double pj = std::exp(static_cast<double>(zi[j] - mx) - log_sum);
        di[j] = static_cast<float>(pj - (j == label ? 1.0 : 0.0)) * scale;
      }
    }
  }
  return out;
}

LossSum mean_squared_error(const Tensor& o, const Tensor& t, float scale, Tensor* dout) {
  if (any_bf16({&o, dout})) {
    return f32_detour::loss(o, dout,
                            [&](const Tensor& fz, Tensor* fd) { return cpu::mean_squared_error(fz, t, scale, fd); });
  }
  check_same(o, t, "mean_squared_error");
  const std::int64_t rows = rows_of(o), k = cols_of(o);
  const float *po = o.data<float>(), *pt = t.data<float>();
  float* d = dout && dout->defined() ? dout->data<float>() : nullptr;
  LossSum out;
  // Per-row loss is the mean over outputs of the squared error (PyTorch's MSELoss per sample).
  for (std::int64_t i = 0; i < rows * k; ++i) {
    const double e = static_cast<double>(po[i]) - pt[i];
    out.loss += e * e / static_cast<double>(k);
    if (d) d[i] = static_cast<float>(2.0 * e / static_cast<double>(k)) * scale;
  }
  out.correct = accuracy::argmax_matches(po, pt, rows, k);
  return out;
}

namespace {
template <typename L>
LossSum elementwise_loss(const Tensor& o, const Tensor& t, float scale, Tensor* dout, L l, const char* what) {
  check_same(o, t, what);
  const std::int64_t rows = rows_of(o), k = cols_of(o);
  const float *po = o.data<float>(), *pt = t.data<float>();
  float* d = dout && dout->defined() ? dout->data<float>() : nullptr;
  LossSum out;
  for (std::int64_t i = 0; i < rows * k; ++i) {
    out.loss += l.loss(po[i], pt[i]) / static_cast<double>(k);
    if (d) d[i] = static_cast<float>(l.grad(po[i], pt[i]) / static_cast<double>(k)) * scale;
  }
  out.correct = accuracy::argmax_matches(po, pt, rows, k);
  return out;
}
}  // namespace

LossSum mean_absolute_error(const Tensor& o, const Tensor& t, float scale, Tensor* dout) {
  if (any_bf16({&o, dout})) {
    return f32_detour::loss(o, dout,
                            [&](const Tensor& fz, Tensor* fd) { return cpu::mean_absolute_error(fz, t, scale, fd); });
  }
  return elementwise_loss(o, t, scale, dout, fn::AbsoluteError{}, "mean_absolute_error");
}

LossSum huber_loss(const Tensor& o, const Tensor& t, float scale, Tensor* dout) {
  if (any_bf16({&o, dout})) {
    return f32_detour::loss(o, dout, [&](const Tensor& fz, Tensor* fd) { return cpu::huber_loss(fz, t, scale, fd); });
  }
  return elementwise_loss(o, t, scale, dout, fn::Huber{}, "huber_loss");
}

LossSum bce_with_logits(const Tensor& z, const Tensor& t, float scale, Tensor* dz) {
  if (any_bf16({&z, dz})) {
    return f32_detour::loss(z, dz,
                            [&](const Tensor& fz, Tensor* fd) { return cpu::bce_with_logits(fz, t, scale, fd); });
  }
  check_same(z, t, "bce_with_logits");
  const std::int64_t rows = rows_of(z), k = cols_of(z);
  const float *pz = z.data<float>(), *pt = t.data<float>();
  float* d = dz && dz->defined() ? dz->data<float>() : nullptr;
  const fn::BceWithLogits f;
  LossSum out;
  for (std::int64_t i = 0; i < rows * k; ++i) {
    out.loss += static_cast<double>(f.loss(pz[i], pt[i])) / static_cast<double>(k);
    if (d) d[i] = f.grad(pz[i], pt[i]) / static_cast<float>(k) * scale;
  }
  out.correct = accuracy::all_signs_match(pz, pt, rows, k);
  return out;
}

void sgd_update(Tensor& w, const Tensor& g, Tensor& vel, float lr, float momentum, float wd, bool nesterov,
                float grad_scale) {
  if (any_bf16({&g})) return sgd_update(w, as_f32(g), vel, lr, momentum, wd, nesterov, grad_scale);
  float* pw = w.data<float>();
  const float* pg = g.data<float>();
  float* pv = vel.data<float>();
  const std::int64_t n = w.numel();
  // One loop per variant, with the functor's branches resolved outside it, so each vectorises.
  auto run = [&](const fn::SgdUpdate u) {
    for (std::int64_t i = 0; i < n; ++i) u(pw[i], pg[i], pv[i]);
  };
  if (momentum == 0.0f)
    run(fn::SgdUpdate{lr, 0.0f, wd, false, grad_scale});
  else if (nesterov)
    run(fn::SgdUpdate{lr, momentum, wd, true, grad_scale});
  else
    run(fn::SgdUpdate{lr, momentum, wd, false, grad_scale});
}

void adam_update(Tensor& w, const Tensor& g, Tensor& m, Tensor& v, double lr, double b1, double b2, double eps,
                 double wd, bool decoupled, std::int64_t step, double grad_scale) {
  if (any_bf16({&g})) return adam_update(w, as_f32(g), m, v, lr, b1, b2, eps, wd, decoupled, step, grad_scale);
  const auto u = fn::AdamUpdate::make(lr, b1, b2, eps, wd, decoupled, step, grad_scale);
  float* pw = w.data<float>();
  const float* pg = g.data<float>();
  float *pm = m.data<float>(), *pv = v.data<float>();
  const std::int64_t n = w.numel();
  for (std::int64_t i = 0; i < n; ++i) u(pw[i], pg[i], pm[i], pv[i]);
}

}  // namespace lockstep::backend::cpu
