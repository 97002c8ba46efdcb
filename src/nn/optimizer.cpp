// SGD (momentum, Nesterov, weight decay) and Adam/AdamW with PyTorch's update rules.
#include "lockstep/nn/optimizer.hpp"

#include "lockstep/backend/ops.hpp"

namespace lockstep::nn {
namespace {

class Sgd final : public Optimizer {
 public:
  Sgd(const OptimizerOptions& o, std::int64_t n) : o_(o), velocity_({n}) {}
  void step_range(Tensor& params, const Tensor& grads, double lr, double grad_scale, std::int64_t begin,
                  std::int64_t end) override {
    ++steps_;
    Tensor w = params.rows(begin, end), v = velocity_.rows(begin, end);
    backend::sgd_update(w, grads.rows(begin, end), v, static_cast<float>(lr), static_cast<float>(o_.momentum),
                        static_cast<float>(o_.weight_decay), o_.nesterov, static_cast<float>(grad_scale));
  }
  std::map<std::string, Tensor*> state() override { return {{"velocity", &velocity_}}; }

 private:
  OptimizerOptions o_;
  Tensor velocity_;
};

class Adam final : public Optimizer {
 public:
  Adam(const OptimizerOptions& o, std::int64_t n, bool decoupled) : o_(o), decoupled_(decoupled), m_({n}), v_({n}) {}
  void step_range(Tensor& params, const Tensor& grads, double lr, double grad_scale, std::int64_t begin,
                  std::int64_t end) override {
    ++steps_;
    Tensor w = params.rows(begin, end), m = m_.rows(begin, end), v = v_.rows(begin, end);
    backend::adam_update(w, grads.rows(begin, end), m, v, lr, o_.beta1, o_.beta2, o_.eps, o_.weight_decay, decoupled_,
                         steps_, grad_scale);
  }
  std::map<std::string, Tensor*> state() override { return {{"exp_avg", &m_}, {"exp_avg_sq", &v_}}; }

 private:
  OptimizerOptions o_;
  bool decoupled_;
  Tensor m_, v_;
};

}  // namespace

std::unique_ptr<Optimizer> make_optimizer(const OptimizerOptions& o, std::int64_t n) {
  if (o.type == "sgd") return std::make_unique<Sgd>(o, n);
  if (o.type == "adam") return std::make_unique<Adam>(o, n, false);
  if (o.type == "adamw") return std::make_unique<Adam>(o, n, true);
  throw ConfigError("optimizer.type: expected one of sgd, adam, adamw; got \"" + o.type + "\"");
}

}  // namespace lockstep::nn
