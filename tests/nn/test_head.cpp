// The head decides what a network's outputs mean from the loss and the output width; training,
// evaluation and predict all go through it, so these rules are what a user sees.
#include <gtest/gtest.h>

#include <cmath>

#include "lockstep/nn/head.hpp"
#include "nn_test_util.hpp"

namespace lockstep::nn {
namespace {

TEST(Head, TaskFollowsLossAndWidth) {
  EXPECT_EQ(Head(LossKind::kSoftmaxCrossEntropy, 10).task(), Task::kClassification);
  EXPECT_EQ(Head(LossKind::kBceWithLogits, 1).task(), Task::kBinary);
  EXPECT_EQ(Head(LossKind::kBceWithLogits, 4).task(), Task::kClassification);
  EXPECT_EQ(Head(LossKind::kMeanSquaredError, 1).task(), Task::kRegression);
  EXPECT_EQ(Head(LossKind::kMeanAbsoluteError, 1).task(), Task::kRegression);
  EXPECT_EQ(Head(LossKind::kHuber, 1).task(), Task::kRegression);
  EXPECT_EQ(Head(LossKind::kMeanSquaredError, 3).task(), Task::kClassification);  // one-hot, as before
}

TEST(Head, TargetsPerTask) {
  const Tensor labels = lockstep::testing::make_tensor({3}, {1.0f, 0.0f, 1.0f});
  const Tensor ce = Head(LossKind::kSoftmaxCrossEntropy, 2).target(labels, 3, Device::kCpu);
  EXPECT_EQ(ce.shape(), (Shape{3}));
  const Tensor oh = Head(LossKind::kMeanSquaredError, 2).target(labels, 3, Device::kCpu);
  ASSERT_EQ(oh.shape(), (Shape{3, 2}));
  EXPECT_EQ(oh.data<float>()[0], 0.0f);
  EXPECT_EQ(oh.data<float>()[1], 1.0f);
  const Tensor bin = Head(LossKind::kBceWithLogits, 1).target(labels, 3, Device::kCpu);
  ASSERT_EQ(bin.shape(), (Shape{3, 1}));
  EXPECT_EQ(bin.data<float>()[2], 1.0f);
  const Tensor real = lockstep::testing::make_tensor({2}, {151.5f, -2.25f});
  const Tensor reg = Head(LossKind::kHuber, 1).target(real, 2, Device::kCpu);
  EXPECT_EQ(reg.data<float>()[0], 151.5f);
  EXPECT_EQ(reg.data<float>()[1], -2.25f);
}

TEST(Head, RejectsLabelsTheTaskCannotTake) {
  const Tensor two = lockstep::testing::make_tensor({1}, {2.0f});
  EXPECT_THROW(Head(LossKind::kBceWithLogits, 1).target(two, 1, Device::kCpu), DataError);
  const Tensor half = lockstep::testing::make_tensor({1}, {0.5f});
  EXPECT_THROW(Head(LossKind::kMeanSquaredError, 2).target(half, 1, Device::kCpu), DataError);
  const Tensor nan = lockstep::testing::make_tensor({1}, {std::nanf("")});
  EXPECT_THROW(Head(LossKind::kMeanSquaredError, 1).target(nan, 1, Device::kCpu), DataError);
}

TEST(Head, PredictionsPerTask) {
  std::vector<double> scores;
  const float logits[3] = {0.5f, 2.0f, -1.0f};
  EXPECT_EQ(Head(LossKind::kSoftmaxCrossEntropy, 3).predict(logits, scores), 1.0);
  double sum = 0.0;
  for (double s : scores) sum += s;
  EXPECT_NEAR(sum, 1.0, 1e-12);
  EXPECT_GT(scores[1], scores[0]);
  const float z = -0.3f;
  EXPECT_EQ(Head(LossKind::kBceWithLogits, 1).predict(&z, scores), 0.0);
  ASSERT_EQ(scores.size(), 1u);
  EXPECT_NEAR(scores[0], 1.0 / (1.0 + std::exp(0.3)), 1e-7);
  const float y = 42.5f;
  EXPECT_EQ(Head(LossKind::kMeanSquaredError, 1).predict(&y, scores), 42.5);
}

}  // namespace
}  // namespace lockstep::nn
