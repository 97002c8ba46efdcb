// Optimizers over the model's flat parameter and gradient buffers: one update call per step, and
// a state (moment buffers and step count) that checkpoints save and restore exactly.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "lockstep/core/optimizer_options.hpp"
#include "lockstep/core/tensor.hpp"

namespace lockstep::nn {

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
