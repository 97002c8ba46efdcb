// Losses through nn::compute_loss: the returned sum of per-row losses against formulas evaluated
// independently in double, the written gradient d(scale * sum)/d(output) against central finite
// differences of scale * sum, and the bookkeeping a user reads in the progress line (the number
// of correct rows) and the errors bad labels raise.
#include <gtest/gtest.h>

#include <cmath>
#include <string>

#include "lockstep/nn/loss.hpp"
#include "nn/nn_test_util.hpp"

using lockstep::Tensor;
using lockstep::nn::compute_loss;
using lockstep::nn::LossKind;
using lockstep::testing::check_gradient;
using lockstep::testing::kF32Grad;
using lockstep::testing::make_tensor;
using lockstep::testing::uniform_floats;

namespace {

constexpr std::int64_t kRows = 4, kOut = 5;
constexpr float kScale = 0.25f;  // a mean over the four rows

// Per-row loss formulas, in double from the float inputs.
double ce_row(const float* z, std::int64_t k, std::int64_t label) {
  double mx = z[0];
  for (std::int64_t j = 1; j < k; ++j) mx = std::max(mx, static_cast<double>(z[j]));
  double s = 0.0;
  for (std::int64_t j = 0; j < k; ++j) s += std::exp(z[j] - mx);
  return mx + std::log(s) - z[label];
}
double mse_row(const float* o, const float* t, std::int64_t k) {
  double s = 0.0;
  for (std::int64_t j = 0; j < k; ++j) s += (static_cast<double>(o[j]) - t[j]) * (static_cast<double>(o[j]) - t[j]);
  return s / static_cast<double>(k);
}
double bce_row(const float* z, const float* t, std::int64_t k) {
  double s = 0.0;
  for (std::int64_t j = 0; j < k; ++j) {
    const double x = z[j], y = t[j];
    const double p = 1.0 / (1.0 + std::exp(-x));
    s += -(y * std::log(p) + (1.0 - y) * std::log1p(-p));
  }
  return s / static_cast<double>(k);
}

double mae_row(const float* o, const float* t, std::int64_t k) {
  double s = 0.0;
  for (std::int64_t j = 0; j < k; ++j) s += std::fabs(static_cast<double>(o[j]) - t[j]);
  return s / static_cast<double>(k);
}

double huber_row(const float* o, const float* t, std::int64_t k) {
  double s = 0.0;
  for (std::int64_t j = 0; j < k; ++j) {
    const double a = std::fabs(static_cast<double>(o[j]) - t[j]);
    s += a <= 1.0 ? 0.5 * a * a : a - 0.5;
  }
  return s / static_cast<double>(k);
}

struct LossCase {
  LossKind kind;
  const char* name;
};

Tensor targets_for(LossKind k) {
  if (k == LossKind::kSoftmaxCrossEntropy) return make_tensor({kRows}, {3.0f, 0.0f, 4.0f, 1.0f});
  if (k == LossKind::kBceWithLogits) {
    // Hard and soft targets.
    std::vector<float> t = uniform_floats(kRows * kOut, 0.0f, 1.0f, 41);
    for (std::size_t i = 0; i < t.size(); i += 2) t[i] = t[i] < 0.5f ? 0.0f : 1.0f;
    return make_tensor({kRows, kOut}, t);
  }
  return make_tensor({kRows, kOut}, uniform_floats(kRows * kOut, -1.0f, 1.0f, 42));
}

double reference_sum(LossKind k, const Tensor& out, const Tensor& target) {
  double s = 0.0;
  for (std::int64_t i = 0; i < kRows; ++i) {
    const float* o = out.data<float>() + i * kOut;
    switch (k) {
      case LossKind::kSoftmaxCrossEntropy:
        s += ce_row(o, kOut, static_cast<std::int64_t>(target.data<float>()[i]));
        break;
      case LossKind::kMeanSquaredError: s += mse_row(o, target.data<float>() + i * kOut, kOut); break;
      case LossKind::kMeanAbsoluteError: s += mae_row(o, target.data<float>() + i * kOut, kOut); break;
      case LossKind::kHuber: s += huber_row(o, target.data<float>() + i * kOut, kOut); break;
      case LossKind::kBceWithLogits: s += bce_row(o, target.data<float>() + i * kOut, kOut); break;
    }
  }
  return s;
}

void PrintTo(const LossCase& c, std::ostream* os) { *os << c.name; }

class Losses : public ::testing::TestWithParam<LossCase> {};

}  // namespace

TEST_P(Losses, SumMatchesDoubleFormula) {
  const auto k = GetParam().kind;
  const Tensor out = make_tensor({kRows, kOut}, uniform_floats(kRows * kOut, -3.0f, 3.0f, 43));
  const Tensor target = targets_for(k);
  Tensor grad({kRows, kOut});
  const double ref = reference_sum(k, out, target);
  // The returned sum does not depend on scale or on whether a gradient is requested.
  const auto with_grad = compute_loss(k, out, target, kScale, &grad);
  const auto without = compute_loss(k, out, target, 1.0f, nullptr);
  EXPECT_NEAR(with_grad.loss, ref, 1e-6 * std::fabs(ref)) << GetParam().name;
  EXPECT_EQ(with_grad.loss, without.loss);
}

TEST_P(Losses, GradientIsScaleTimesDerivativeOfTheSum) {
  const auto k = GetParam().kind;
  Tensor out = make_tensor({kRows, kOut}, uniform_floats(kRows * kOut, -3.0f, 3.0f, 44));
  const Tensor target = targets_for(k);
  Tensor grad({kRows, kOut});
  compute_loss(k, out, target, kScale, &grad);
  const auto f = [&] { return static_cast<double>(kScale) * compute_loss(k, out, target, kScale, nullptr).loss; };
  EXPECT_TRUE(check_gradient(std::string("d(") + GetParam().name + ")/dout", grad.data<float>(), out.data<float>(),
                             out.numel(), f, kF32Grad));
  // Scale enters linearly.
  Tensor grad2({kRows, kOut});
  compute_loss(k, out, target, 2.0f * kScale, &grad2);
  for (std::int64_t i = 0; i < out.numel(); ++i)
    EXPECT_FLOAT_EQ(grad2.data<float>()[i], 2.0f * grad.data<float>()[i]) << "element " << i;
}

INSTANTIATE_TEST_SUITE_P(Nn, Losses,
                         ::testing::Values(LossCase{LossKind::kSoftmaxCrossEntropy, "softmax_cross_entropy"},
                                           LossCase{LossKind::kMeanSquaredError, "mse"},
                                           LossCase{LossKind::kMeanAbsoluteError, "mae"},
                                           LossCase{LossKind::kHuber, "huber"},
                                           LossCase{LossKind::kBceWithLogits, "bce_with_logits"}),
                         [](const ::testing::TestParamInfo<LossCase>& info) { return std::string(info.param.name); });

TEST(SoftmaxCrossEntropy, CountsRowsWhoseArgmaxIsTheLabel) {
  const Tensor logits = make_tensor({5, 3}, {3.0f, 1.0f, 0.0f,     // argmax 0, label 0: right
                                             0.0f, 5.0f, 1.0f,     // argmax 1, label 2: wrong
                                             -1.0f, -2.0f, -0.5f,  // argmax 2, label 2: right
                                             2.0f, 2.5f, 1.0f,     // argmax 1, label 1: right
                                             0.1f, 0.2f, 0.3f});   // argmax 2, label 0: wrong
  const Tensor labels = make_tensor({5}, {0.0f, 2.0f, 2.0f, 1.0f, 0.0f});
  EXPECT_EQ(compute_loss(LossKind::kSoftmaxCrossEntropy, logits, labels, 1.0f, nullptr).correct, 3);
}

TEST(SoftmaxCrossEntropy, LargeLogitsStayFinite) {
  const Tensor logits = make_tensor({1, 3}, {1000.0f, 0.0f, -1000.0f});
  const Tensor labels = make_tensor({1}, {1.0f});
  Tensor grad({1, 3});
  const auto r = compute_loss(LossKind::kSoftmaxCrossEntropy, logits, labels, 1.0f, &grad);
  EXPECT_NEAR(r.loss, 1000.0, 1e-3);
  EXPECT_NEAR(grad.data<float>()[0], 1.0f, 1e-6f);
  EXPECT_NEAR(grad.data<float>()[1], -1.0f, 1e-6f);
  EXPECT_EQ(grad.data<float>()[2], 0.0f);
}

TEST(SoftmaxCrossEntropy, LabelOutsideTheClassesIsADataError) {
  const Tensor logits = make_tensor({2, 3}, uniform_floats(6, -1.0f, 1.0f, 45));
  for (const float bad : {3.0f, -1.0f, 1.5f, 100.0f}) {
    const Tensor labels = make_tensor({2}, {0.0f, bad});
    Tensor grad({2, 3});
    try {
      compute_loss(LossKind::kSoftmaxCrossEntropy, logits, labels, 1.0f, &grad);
      ADD_FAILURE() << "label " << bad << " was accepted for 3 classes";
    } catch (const lockstep::DataError& e) {
      EXPECT_NE(std::string(e.what()).find("[0, 3)"), std::string::npos) << e.what();
    }
  }
}

TEST(BceWithLogits, CountsRowsWithEveryOutputOnTheRightSide) {
  const Tensor logits = make_tensor({3, 2}, {1.0f, -1.0f, 1.0f, 1.0f, -2.0f, 3.0f});
  const Tensor targets = make_tensor({3, 2}, {1.0f, 0.0f, 1.0f, 0.0f, 0.0f, 1.0f});
  EXPECT_EQ(compute_loss(LossKind::kBceWithLogits, logits, targets, 1.0f, nullptr).correct, 2);
}

TEST(Loss, NamesParseAndUnknownNamesAreConfigErrors) {
  EXPECT_EQ(lockstep::nn::parse_loss("softmax_cross_entropy"), LossKind::kSoftmaxCrossEntropy);
  EXPECT_EQ(lockstep::nn::parse_loss("cross_entropy"), LossKind::kSoftmaxCrossEntropy);
  EXPECT_EQ(lockstep::nn::parse_loss("mse"), LossKind::kMeanSquaredError);
  EXPECT_EQ(lockstep::nn::parse_loss("bce_with_logits"), LossKind::kBceWithLogits);
  for (auto k : {LossKind::kSoftmaxCrossEntropy, LossKind::kMeanSquaredError, LossKind::kBceWithLogits})
    EXPECT_EQ(lockstep::nn::parse_loss(lockstep::nn::loss_name(k)), k);
  EXPECT_THROW(lockstep::nn::parse_loss("hinge"), lockstep::ConfigError);
}
