// Optimizers over the model's flat parameter and gradient buffers: one update call per step, and
// a state (moment buffers and step count) that checkpoints save and restore exactly.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "lockstep/core/tensor.hpp"

namespace lockstep::nn {

struct OptimizerOptions {
  std::string type = "sgd";  // sgd | adam | adamw
  double lr = 0.01;
  double momentum = 0.0;
  bool nesterov = false;
  double weight_decay = 0.0;
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;
};

class Optimizer {
 public:
  virtual ~Optimizer() = default;
  // params and grads are the flat buffers; lr is this step's learning rate (after the schedule);
  // the gradient used is grads * grad_scale.
  void step(Tensor& params, const Tensor& grads, double lr, double grad_scale = 1.0) {
    step_range(params, grads, lr, grad_scale, 0, params.numel());
  }
  // The same update applied to elements [begin, end) only (one shard of a sharded update); counts
  // as one step. Every rank calls it once per step with its own range.
  virtual void step_range(Tensor& params, const Tensor& grads, double lr, double grad_scale, std::int64_t begin,
                          std::int64_t end) = 0;
  // Named state buffers (same length as params) and the step count, for checkpoints.
  virtual std::map<std::string, Tensor*> state() = 0;
  std::int64_t steps() const { return steps_; }
  void set_steps(std::int64_t s) { steps_ = s; }

 protected:
  std::int64_t steps_ = 0;
};

std::unique_ptr<Optimizer> make_optimizer(const OptimizerOptions& options, std::int64_t num_params);

}  // namespace lockstep::nn
