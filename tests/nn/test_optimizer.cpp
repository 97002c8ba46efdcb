// Optimizers against a plain double-precision re-implementation of PyTorch's documented update
// rules (torch.optim.SGD with dampening 0, torch.optim.Adam and AdamW without amsgrad), over a few
// steps with changing gradients and learning rates. The float32 implementation may differ from
// the double reference by rounding only: 1e-6 relative on weights of magnitude >= 0.5, where a
// wrong rule (say, Nesterov's look-ahead missing) moves a weight by about lr * momentum ~ 1e-2.
// Also: restoring the state buffers and the step count continues a run bit for bit.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "lockstep/nn/optimizer.hpp"
#include "nn/nn_test_util.hpp"

using lockstep::Tensor;
using lockstep::nn::make_optimizer;
using lockstep::OptimizerOptions;
using lockstep::testing::make_tensor;
using lockstep::testing::uniform_floats;

namespace {

constexpr std::int64_t kN = 64;
constexpr int kSteps = 6;
constexpr double kLr[kSteps] = {0.05, 0.03, 0.05, 0.01, 0.04, 0.02};  // as a schedule would vary it
constexpr double kParamRtol = 1e-6;
// State buffers: 1e-6 relative, floored at 0.1 of the buffer's largest element (they mix
// gradients of both signs, so single elements can be near zero after cancellation).
constexpr double kStateRtol = 1e-6;

// PyTorch's rules, in double.
struct Reference {
  OptimizerOptions o;
  std::vector<double> w, buf, m, v;
  int t = 0;

  Reference(const OptimizerOptions& opts, const std::vector<float>& w0)
      : o(opts), w(w0.begin(), w0.end()), buf(w0.size()), m(w0.size()), v(w0.size()) {}

  void step(const std::vector<float>& grad, double lr) {
    ++t;
    for (std::size_t i = 0; i < w.size(); ++i) {
      double g = grad[i];
      if (o.type == "sgd") {
        g += o.weight_decay * w[i];
        if (o.momentum != 0.0) {
          buf[i] = t == 1 ? g : o.momentum * buf[i] + g;
          g = o.nesterov ? g + o.momentum * buf[i] : buf[i];
        }
        w[i] -= lr * g;
        continue;
      }
      if (o.type == "adamw") {
        w[i] *= 1.0 - lr * o.weight_decay;
      } else {
        g += o.weight_decay * w[i];
      }
      m[i] = o.beta1 * m[i] + (1.0 - o.beta1) * g;
      v[i] = o.beta2 * v[i] + (1.0 - o.beta2) * g * g;
      const double bias1 = 1.0 - std::pow(o.beta1, t), bias2 = 1.0 - std::pow(o.beta2, t);
      const double denom = std::sqrt(v[i]) / std::sqrt(bias2) + o.eps;
      w[i] -= lr / bias1 * m[i] / denom;
    }
  }
};

struct OptCase {
  const char* name;
  OptimizerOptions o;
};

OptimizerOptions opts(const char* type, double momentum, bool nesterov, double wd) {
  OptimizerOptions o;
  o.type = type;
  o.momentum = momentum;
  o.nesterov = nesterov;
  o.weight_decay = wd;
  return o;
}

// Weights of magnitude in [1, 2): they stay well away from zero over six steps.
std::vector<float> initial_weights() { return lockstep::testing::away_from_zero(kN, 1.0f, 2.0f, 51); }
std::vector<float> gradient(int step) {
  return uniform_floats(kN, -1.0f, 1.0f, 52, static_cast<std::uint64_t>(step));
}

// Relative to the element, with a floor at `floor` times the buffer's largest magnitude.
::testing::AssertionResult close(const char* what, const float* got, const std::vector<double>& want, double rtol,
                                 double floor = 1e-3) {
  double scale = 0.0;
  for (const double x : want) scale = std::max(scale, std::fabs(x));
  for (std::size_t i = 0; i < want.size(); ++i) {
    const double tol = rtol * std::max(std::fabs(want[i]), floor * scale);
    if (!(std::fabs(got[i] - want[i]) <= tol))
      return ::testing::AssertionFailure() << what << "[" << i << "]: got " << got[i] << ", PyTorch's rule gives "
                                           << want[i] << " (tolerance " << tol << ")";
  }
  return ::testing::AssertionSuccess();
}

void PrintTo(const OptCase& c, std::ostream* os) { *os << c.name; }

class Optimizers : public ::testing::TestWithParam<OptCase> {};

}  // namespace

TEST_P(Optimizers, MatchPyTorchUpdateRules) {
  const auto& c = GetParam();
  const auto w0 = initial_weights();
  Tensor w = make_tensor({kN}, w0);
  auto opt = make_optimizer(c.o, kN);
  Reference ref(c.o, w0);
  for (int s = 0; s < kSteps; ++s) {
    const auto g = gradient(s);
    opt->step(w, make_tensor({kN}, g), kLr[s]);
    ref.step(g, kLr[s]);
    ASSERT_TRUE(close("w", w.data<float>(), ref.w, kParamRtol)) << c.name << ", after step " << s + 1;
  }
  EXPECT_EQ(opt->steps(), kSteps);
  auto state = opt->state();
  if (c.o.type == "sgd") {
    ASSERT_EQ(state.size(), 1u);
    ASSERT_TRUE(state.count("velocity"));
    if (c.o.momentum != 0.0) {
      EXPECT_TRUE(close("velocity", state["velocity"]->data<float>(), ref.buf, kStateRtol, 0.1));
    }
  } else {
    ASSERT_EQ(state.size(), 2u);
    ASSERT_TRUE(state.count("exp_avg") && state.count("exp_avg_sq"));
    EXPECT_TRUE(close("exp_avg", state["exp_avg"]->data<float>(), ref.m, kStateRtol, 0.1));
    EXPECT_TRUE(close("exp_avg_sq", state["exp_avg_sq"]->data<float>(), ref.v, kStateRtol, 0.1));
  }
  for (const auto& [name, t] : state) EXPECT_EQ(t->numel(), kN) << name;
}

TEST_P(Optimizers, RestoredStateContinuesBitForBit) {
  const auto& c = GetParam();
  const auto w0 = initial_weights();
  Tensor straight = make_tensor({kN}, w0);
  auto a = make_optimizer(c.o, kN);
  for (int s = 0; s < kSteps; ++s) a->step(straight, make_tensor({kN}, gradient(s)), kLr[s]);

  Tensor resumed = make_tensor({kN}, w0);
  auto b = make_optimizer(c.o, kN);
  for (int s = 0; s < kSteps / 2; ++s) b->step(resumed, make_tensor({kN}, gradient(s)), kLr[s]);
  // What a checkpoint carries: the state buffers and the step count, into a fresh optimizer.
  auto restored = make_optimizer(c.o, kN);
  auto from = b->state();
  for (auto& [name, t] : restored->state()) t->copy_from(*from.at(name));
  restored->set_steps(b->steps());
  b.reset();
  for (int s = kSteps / 2; s < kSteps; ++s) restored->step(resumed, make_tensor({kN}, gradient(s)), kLr[s]);
  EXPECT_EQ(std::memcmp(straight.data<float>(), resumed.data<float>(), kN * sizeof(float)), 0) << c.name;
}

INSTANTIATE_TEST_SUITE_P(Nn, Optimizers,
                         ::testing::Values(OptCase{"sgd", opts("sgd", 0.0, false, 0.0)},
                                           OptCase{"sgd_weight_decay", opts("sgd", 0.0, false, 0.1)},
                                           OptCase{"sgd_momentum", opts("sgd", 0.9, false, 0.0)},
                                           OptCase{"sgd_momentum_weight_decay", opts("sgd", 0.9, false, 0.05)},
                                           OptCase{"sgd_nesterov", opts("sgd", 0.9, true, 0.0)},
                                           OptCase{"sgd_nesterov_weight_decay", opts("sgd", 0.8, true, 0.05)},
                                           OptCase{"adam", opts("adam", 0.0, false, 0.0)},
                                           OptCase{"adam_l2", opts("adam", 0.0, false, 0.1)},
                                           OptCase{"adamw", opts("adamw", 0.0, false, 0.1)}),
                         [](const ::testing::TestParamInfo<OptCase>& info) { return std::string(info.param.name); });

TEST(Optimizer, AdamAndAdamWDifferWhenWeightDecayIsOn) {
  // L2 in the gradient is rescaled by Adam's denominator; decoupled decay is not. A build that
  // mixed them up would pass neither MatchPyTorchUpdateRules case, and this says which.
  const auto w0 = initial_weights();
  Tensor a = make_tensor({kN}, w0), b = make_tensor({kN}, w0);
  auto adam = make_optimizer(opts("adam", 0.0, false, 0.1), kN);
  auto adamw = make_optimizer(opts("adamw", 0.0, false, 0.1), kN);
  const Tensor g = make_tensor({kN}, gradient(0));
  adam->step(a, g, 0.05);
  adamw->step(b, g, 0.05);
  EXPECT_NE(lockstep::testing::to_vector(a), lockstep::testing::to_vector(b));
}

TEST(Optimizer, UnknownTypeIsAConfigError) {
  EXPECT_THROW(make_optimizer(opts("rmsprop", 0.0, false, 0.0), 4), lockstep::ConfigError);
}

// Regression: (1 - beta2) formed in float32 from the float-rounded 0.999f is 0.00099998713, 1.3e-5
// relative below 0.001, and every exp_avg_sq element a checkpoint stores would carry that error
// (the weights would not: the bias correction, formed from the same float, cancels it). PyTorch
// forms 1 - beta in double and rounds once.
TEST(Adam, SecondMomentMatchesPyTorchToFloatPrecision) {
  const auto o = opts("adam", 0.0, false, 0.0);
  const auto w0 = initial_weights();
  Tensor w = make_tensor({kN}, w0);
  auto opt = make_optimizer(o, kN);
  Reference ref(o, w0);
  const auto g = gradient(0);
  opt->step(w, make_tensor({kN}, g), kLr[0]);
  ref.step(g, kLr[0]);
  EXPECT_TRUE(close("exp_avg_sq", opt->state()["exp_avg_sq"]->data<float>(), ref.v, kStateRtol, 0.1));
}
