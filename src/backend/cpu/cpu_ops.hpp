// CPU backend declarations (private to src/). See include/lockstep/backend/ops.hpp for semantics.
#pragma once

#include "lockstep/backend/ops.hpp"

namespace lockstep::backend::cpu {

void gemm(bool trans_a, bool trans_b, float alpha, const Tensor& a, const Tensor& b, float beta, Tensor& c);
void add_row_vector(Tensor& y, const Tensor& bias);
void sum_rows(const Tensor& x, float beta, Tensor& out);
void activation_forward(Activation a, const Tensor& x, Tensor& y);
void activation_backward(Activation a, const Tensor& x, const Tensor& y, const Tensor& dy, Tensor& dx);
void dropout_forward(const Tensor& x, const std::int64_t* sample_ids, std::uint64_t seed, std::uint64_t epoch,
                     std::uint32_t layer, float p, Tensor& mask, Tensor& y);
void mul(const Tensor& a, const Tensor& b, Tensor& out);
LossSum softmax_cross_entropy(const Tensor& logits, const Tensor& labels, float scale, Tensor* dlogits);
LossSum mean_squared_error(const Tensor& out, const Tensor& target, float scale, Tensor* dout);
LossSum bce_with_logits(const Tensor& logits, const Tensor& target, float scale, Tensor* dlogits);
void sgd_update(Tensor& w, const Tensor& g, Tensor& velocity, float lr, float momentum, float weight_decay,
                bool nesterov, float grad_scale);
void adam_update(Tensor& w, const Tensor& g, Tensor& m, Tensor& v, double lr, double beta1, double beta2, double eps,
                 double weight_decay, bool decoupled, std::int64_t step, double grad_scale);

}  // namespace lockstep::backend::cpu
