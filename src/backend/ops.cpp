// Device dispatch for backend ops. CPU tensors go to cpu::, device tensors to cuda:: when the
// CUDA backend is built; mixing devices in one call is an error.
#include "lockstep/backend/ops.hpp"

#include "backend/cpu/cpu_ops.hpp"
#include "lockstep/build_info.hpp"
#if LOCKSTEP_HAVE_CUDA
#include "backend/cuda/cuda_ops.hpp"
#endif

namespace lockstep::backend {
using TL = std::initializer_list<const Tensor*>;

namespace {
// True for CPU tensors, false for CUDA ones; all tensors of one call must share a device.
bool on_cpu(const char* op, std::initializer_list<const Tensor*> ts) {
  const Device d = (*ts.begin())->device();
  for (const Tensor* t : ts) {
    LOCKSTEP_CHECK(!t->defined() || t->device() == d, Error, "backend::", op, ": tensors on different devices");
  }
  if (d == Device::kCpu) return true;
#if !LOCKSTEP_HAVE_CUDA
  throw Error(std::string("backend::") + op + ": tensors are on the CUDA device, but this build has no CUDA backend");
#else
  return false;
#endif
}
}  // namespace

#if LOCKSTEP_HAVE_CUDA
#define LOCKSTEP_DISPATCH(op, tensors, ...) \
  (on_cpu(#op, tensors) ? cpu::op(__VA_ARGS__) : cuda::op(__VA_ARGS__))
#else
#define LOCKSTEP_DISPATCH(op, tensors, ...) (on_cpu(#op, tensors), cpu::op(__VA_ARGS__))
#endif

void cast(const Tensor& src, Tensor& dst) { LOCKSTEP_DISPATCH(cast, (TL{&src, &dst}), src, dst); }
void gemm(bool ta, bool tb, float alpha, const Tensor& a, const Tensor& b, float beta, Tensor& c) {
  LOCKSTEP_DISPATCH(gemm, (TL{&a, &b, &c}), ta, tb, alpha, a, b, beta, c);
}
void add_row_vector(Tensor& y, const Tensor& bias) {
  LOCKSTEP_DISPATCH(add_row_vector, (TL{&y, &bias}), y, bias);
}
void sum_rows(const Tensor& x, float beta, Tensor& out) {
  LOCKSTEP_DISPATCH(sum_rows, (TL{&x, &out}), x, beta, out);
}
void activation_forward(Activation a, const Tensor& x, Tensor& y) {
  LOCKSTEP_DISPATCH(activation_forward, (TL{&x, &y}), a, x, y);
}
void activation_backward(Activation a, const Tensor& x, const Tensor& y, const Tensor& dy, Tensor& dx) {
  LOCKSTEP_DISPATCH(activation_backward, (TL{&x, &y, &dy, &dx}), a, x, y, dy, dx);
}
void dropout_forward(const Tensor& x, const std::int64_t* ids, std::uint64_t seed, std::uint64_t epoch,
                     std::uint32_t layer, float p, Tensor& mask, Tensor& y) {
  LOCKSTEP_DISPATCH(dropout_forward, (TL{&x, &mask, &y}), x, ids, seed, epoch, layer, p, mask, y);
}
void mul(const Tensor& a, const Tensor& b, Tensor& out) {
  LOCKSTEP_DISPATCH(mul, (TL{&a, &b, &out}), a, b, out);
}
LossSum softmax_cross_entropy(const Tensor& logits, const Tensor& labels, float scale, Tensor* d) {
  return LOCKSTEP_DISPATCH(softmax_cross_entropy, (TL{&logits, &labels}), logits, labels, scale, d);
}
LossSum mean_squared_error(const Tensor& out, const Tensor& target, float scale, Tensor* d) {
  return LOCKSTEP_DISPATCH(mean_squared_error, (TL{&out, &target}), out, target, scale, d);
}
LossSum mean_absolute_error(const Tensor& out, const Tensor& target, float scale, Tensor* d) {
  return LOCKSTEP_DISPATCH(mean_absolute_error, (TL{&out, &target}), out, target, scale, d);
}
LossSum huber_loss(const Tensor& out, const Tensor& target, float scale, Tensor* d) {
  return LOCKSTEP_DISPATCH(huber_loss, (TL{&out, &target}), out, target, scale, d);
}
LossSum bce_with_logits(const Tensor& logits, const Tensor& target, float scale, Tensor* d) {
  return LOCKSTEP_DISPATCH(bce_with_logits, (TL{&logits, &target}), logits, target, scale, d);
}
void im2col(const Tensor& x, const Window2d& g, Tensor& col) { LOCKSTEP_DISPATCH(im2col, (TL{&x, &col}), x, g, col); }
void col2im(const Tensor& col, const Window2d& g, Tensor& dx) { LOCKSTEP_DISPATCH(col2im, (TL{&col, &dx}), col, g, dx); }
void max_pool_forward(const Tensor& x, const Window2d& g, Tensor& y, Tensor& argmax) {
  LOCKSTEP_DISPATCH(max_pool_forward, (TL{&x, &y, &argmax}), x, g, y, argmax);
}
void max_pool_backward(const Tensor& dy, const Tensor& argmax, const Window2d& g, Tensor& dx) {
  LOCKSTEP_DISPATCH(max_pool_backward, (TL{&dy, &argmax, &dx}), dy, argmax, g, dx);
}
void avg_pool_forward(const Tensor& x, const Window2d& g, Tensor& y) {
  LOCKSTEP_DISPATCH(avg_pool_forward, (TL{&x, &y}), x, g, y);
}
void avg_pool_backward(const Tensor& dy, const Window2d& g, Tensor& dx) {
  LOCKSTEP_DISPATCH(avg_pool_backward, (TL{&dy, &dx}), dy, g, dx);
}
void sgd_update(Tensor& w, const Tensor& g, Tensor& vel, float lr, float momentum, float wd, bool nesterov,
                float grad_scale) {
  LOCKSTEP_DISPATCH(sgd_update, (TL{&w, &g, &vel}), w, g, vel, lr, momentum, wd, nesterov, grad_scale);
}
void adam_update(Tensor& w, const Tensor& g, Tensor& m, Tensor& v, double lr, double b1, double b2, double eps,
                 double wd, bool decoupled, std::int64_t step, double grad_scale) {
  LOCKSTEP_DISPATCH(adam_update, (TL{&w, &g, &m, &v}), w, g, m, v, lr, b1, b2, eps, wd, decoupled, step, grad_scale);
}
void batchnorm_stats(const Tensor& x, std::int64_t c, Tensor& mean, Tensor& var) {
  LOCKSTEP_DISPATCH(batchnorm_stats, (TL{&x, &mean, &var}), x, c, mean, var);
}
void batchnorm_forward(const Tensor& x, std::int64_t c, const Tensor& mean, const Tensor& invstd, const Tensor& w,
                       const Tensor& b, Tensor& y) {
  LOCKSTEP_DISPATCH(batchnorm_forward, (TL{&x, &mean, &invstd, &w, &b, &y}), x, c, mean, invstd, w, b, y);
}
void batchnorm_backward_sums(const Tensor& dy, const Tensor& x, std::int64_t c, const Tensor& mean,
                             const Tensor& invstd, Tensor& sdy, Tensor& sdyx) {
  LOCKSTEP_DISPATCH(batchnorm_backward_sums, (TL{&dy, &x, &mean, &invstd, &sdy, &sdyx}), dy, x, c, mean, invstd, sdy,
                    sdyx);
}
void batchnorm_backward(const Tensor& dy, const Tensor& x, std::int64_t c, const Tensor& mean, const Tensor& invstd,
                        const Tensor& w, const Tensor& sdy, const Tensor& sdyx, double count, Tensor& dx) {
  LOCKSTEP_DISPATCH(batchnorm_backward, (TL{&dy, &x, &mean, &invstd, &w, &sdy, &sdyx, &dx}), dy, x, c, mean, invstd,
                    w, sdy, sdyx, count, dx);
}
void add(const Tensor& a, const Tensor& b, Tensor& out) {
  LOCKSTEP_DISPATCH(add, (TL{&a, &b, &out}), a, b, out);
}

}  // namespace lockstep::backend
