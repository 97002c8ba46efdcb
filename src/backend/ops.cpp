// Device dispatch for backend ops. CPU tensors go to cpu::, device tensors to cuda:: when the
// CUDA backend is built; mixing devices in one call is an error.
#include "lockstep/backend/ops.hpp"

#include "backend/cpu/cpu_ops.hpp"
#include "lockstep/build_info.hpp"

namespace lockstep::backend {
namespace {
[[noreturn]] void no_cuda(const char* op) {
  throw Error(std::string("backend::") + op + ": tensors are on the CUDA device, but this build has no CUDA backend");
}
bool on_cpu(const char* op, std::initializer_list<const Tensor*> ts) {
  const Device d = (*ts.begin())->device();
  for (const Tensor* t : ts) {
    LOCKSTEP_CHECK(!t->defined() || t->device() == d, Error, "backend::", op, ": tensors on different devices");
  }
  if (d == Device::kCpu) return true;
  no_cuda(op);
}
}  // namespace

void gemm(bool ta, bool tb, float alpha, const Tensor& a, const Tensor& b, float beta, Tensor& c) {
  if (on_cpu("gemm", {&a, &b, &c})) cpu::gemm(ta, tb, alpha, a, b, beta, c);
}
void add_row_vector(Tensor& y, const Tensor& bias) {
  if (on_cpu("add_row_vector", {&y, &bias})) cpu::add_row_vector(y, bias);
}
void sum_rows(const Tensor& x, float beta, Tensor& out) {
  if (on_cpu("sum_rows", {&x, &out})) cpu::sum_rows(x, beta, out);
}
void activation_forward(Activation a, const Tensor& x, Tensor& y) {
  if (on_cpu("activation_forward", {&x, &y})) cpu::activation_forward(a, x, y);
}
void activation_backward(Activation a, const Tensor& x, const Tensor& y, const Tensor& dy, Tensor& dx) {
  if (on_cpu("activation_backward", {&x, &y, &dy, &dx})) cpu::activation_backward(a, x, y, dy, dx);
}
void dropout_forward(const Tensor& x, const std::int64_t* ids, std::uint64_t seed, std::uint64_t epoch,
                     std::uint32_t layer, float p, Tensor& mask, Tensor& y) {
  if (on_cpu("dropout_forward", {&x, &mask, &y})) cpu::dropout_forward(x, ids, seed, epoch, layer, p, mask, y);
}
void mul(const Tensor& a, const Tensor& b, Tensor& out) {
  if (on_cpu("mul", {&a, &b, &out})) cpu::mul(a, b, out);
}
LossSum softmax_cross_entropy(const Tensor& logits, const Tensor& labels, float scale, Tensor* d) {
  on_cpu("softmax_cross_entropy", {&logits, &labels});
  return cpu::softmax_cross_entropy(logits, labels, scale, d);
}
LossSum mean_squared_error(const Tensor& out, const Tensor& target, float scale, Tensor* d) {
  on_cpu("mean_squared_error", {&out, &target});
  return cpu::mean_squared_error(out, target, scale, d);
}
LossSum bce_with_logits(const Tensor& logits, const Tensor& target, float scale, Tensor* d) {
  on_cpu("bce_with_logits", {&logits, &target});
  return cpu::bce_with_logits(logits, target, scale, d);
}
void sgd_update(Tensor& w, const Tensor& g, Tensor& vel, float lr, float momentum, float wd, bool nesterov,
                float grad_scale) {
  if (on_cpu("sgd_update", {&w, &g, &vel})) cpu::sgd_update(w, g, vel, lr, momentum, wd, nesterov, grad_scale);
}
void adam_update(Tensor& w, const Tensor& g, Tensor& m, Tensor& v, double lr, double b1, double b2, double eps,
                 double wd, bool decoupled, std::int64_t step, double grad_scale) {
  if (on_cpu("adam_update", {&w, &g, &m, &v}))
    cpu::adam_update(w, g, m, v, lr, b1, b2, eps, wd, decoupled, step, grad_scale);
}

}  // namespace lockstep::backend
