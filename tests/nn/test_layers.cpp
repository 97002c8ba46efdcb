// Layers one at a time: Dense, ReLU, Sigmoid, Tanh and Dropout. Forward passes are compared with
// the same math done independently in double; backward passes with central finite differences of
// a scalar objective sum(r * y) (so dy = r), at float32 tolerances. Dropout is checked for what
// training relies on: its mask depends only on (seed, epoch, layer, sample id), gradients flow
// through kept elements only, and about 1 - p of the elements are kept.
#include <gtest/gtest.h>

#include <cmath>

#include "lockstep/nn/layer_registry.hpp"
#include "lockstep/nn/layers.hpp"
#include "nn/nn_test_util.hpp"

using lockstep::Shape;
using lockstep::Tensor;
using lockstep::backend::Activation;
using lockstep::nn::ActivationLayer;
using lockstep::nn::Dense;
using lockstep::nn::Dropout;
using lockstep::nn::ForwardContext;
using lockstep::nn::Parameter;
using lockstep::testing::check_gradient;
using lockstep::testing::kF32Grad;
using lockstep::testing::make_tensor;
using lockstep::testing::uniform_floats;
using lockstep::testing::weighted_sum;

namespace {

Parameter make_param(const std::string& name, const Shape& shape, const std::vector<float>& values) {
  Parameter p;
  p.name = name;
  p.value = make_tensor(shape, values);
  p.grad = Tensor(shape);
  p.compute = p.value;  // float32 compute reads the master weights themselves
  return p;
}

// A Dense layer bound to parameters it does not own, as Sequential binds it.
struct DenseCase {
  static constexpr std::int64_t kRows = 3, kIn = 5, kUnits = 4;
  Parameter w = make_param("weight", {kIn, kUnits}, uniform_floats(kIn * kUnits, -1.0f, 1.0f, 11));
  Parameter b = make_param("bias", {kUnits}, uniform_floats(kUnits, -0.5f, 0.5f, 12));
  Tensor x = make_tensor({kRows, kIn}, uniform_floats(kRows * kIn, -1.0f, 1.0f, 13));
  Tensor y{Shape{kRows, kUnits}};
  Dense layer{kUnits, true};
  DenseCase() { layer.bind({&w, &b}); }
};

}  // namespace

TEST(Dense, ParamSpecsDescribeWeightAndBias) {
  Dense d(7);
  const auto specs = d.param_specs({3});
  ASSERT_EQ(specs.size(), 2u);
  EXPECT_EQ(specs[0].name, "weight");
  EXPECT_EQ(specs[0].shape, (Shape{3, 7}));
  EXPECT_EQ(specs[0].fan_in, 3);
  EXPECT_EQ(specs[0].fan_out, 7);
  EXPECT_FALSE(specs[0].is_bias);
  EXPECT_EQ(specs[1].shape, (Shape{7}));
  EXPECT_TRUE(specs[1].is_bias);
  EXPECT_EQ(Dense(7, false).param_specs({3}).size(), 1u);
  EXPECT_EQ(d.output_shape({3}), (lockstep::Shape{7}));
  EXPECT_EQ(d.output_shape({1, 2, 3}), (lockstep::Shape{7})) << "dense reads a {C, H, W} sample flattened";
  EXPECT_EQ(d.param_specs({1, 2, 3})[0].shape, (lockstep::Shape{6, 7}));
}

TEST(Dense, ForwardIsInputTimesWeightPlusBias) {
  DenseCase c;
  c.layer.forward(c.x, c.y, ForwardContext{});
  const float *x = c.x.data<float>(), *w = c.w.value.data<float>(), *b = c.b.value.data<float>(), *y = c.y.data<float>();
  for (std::int64_t i = 0; i < c.kRows; ++i) {
    for (std::int64_t u = 0; u < c.kUnits; ++u) {
      double ref = b[u], mag = std::fabs(b[u]);
      for (std::int64_t k = 0; k < c.kIn; ++k) {
        ref += static_cast<double>(x[i * c.kIn + k]) * w[k * c.kUnits + u];
        mag += std::fabs(static_cast<double>(x[i * c.kIn + k]) * w[k * c.kUnits + u]);
      }
      EXPECT_NEAR(y[i * c.kUnits + u], ref, 1e-6 * mag) << "row " << i << " unit " << u;
    }
  }
}

TEST(Dense, GradientsMatchFiniteDifferences) {
  DenseCase c;
  const auto r = uniform_floats(static_cast<std::size_t>(c.kRows * c.kUnits), -1.0f, 1.0f, 14);
  const Tensor dy = make_tensor({c.kRows, c.kUnits}, r);
  Tensor dx({c.kRows, c.kIn});
  c.layer.forward(c.x, c.y, ForwardContext{});
  c.layer.backward(dy, &dx);
  const std::vector<float> dw = lockstep::testing::to_vector(c.w.grad), db = lockstep::testing::to_vector(c.b.grad);
  const auto f = [&] {
    c.layer.forward(c.x, c.y, ForwardContext{});
    return weighted_sum(c.y, r);
  };
  EXPECT_TRUE(check_gradient("dL/dW", dw.data(), c.w.value.data<float>(), c.w.value.numel(), f, kF32Grad));
  EXPECT_TRUE(check_gradient("dL/db", db.data(), c.b.value.data<float>(), c.b.value.numel(), f, kF32Grad));
  EXPECT_TRUE(check_gradient("dL/dx", dx.data<float>(), c.x.data<float>(), c.x.numel(), f, kF32Grad));
}

TEST(Dense, BackwardOverwritesParameterGradients) {
  // The trainer calls backward once per micro-batch and reduces what it finds: gradients must not
  // accumulate across calls.
  DenseCase c;
  const Tensor dy = make_tensor({c.kRows, c.kUnits}, uniform_floats(12, -1.0f, 1.0f, 15));
  c.layer.forward(c.x, c.y, ForwardContext{});
  c.layer.backward(dy, nullptr);
  const auto first_w = lockstep::testing::to_vector(c.w.grad), first_b = lockstep::testing::to_vector(c.b.grad);
  c.layer.backward(dy, nullptr);
  EXPECT_EQ(lockstep::testing::to_vector(c.w.grad), first_w);
  EXPECT_EQ(lockstep::testing::to_vector(c.b.grad), first_b);
}

TEST(Dense, WithoutBiasGradientsMatchFiniteDifferences) {
  Parameter w = make_param("weight", {4, 2}, uniform_floats(8, -1.0f, 1.0f, 16));
  Dense layer(2, false);
  layer.bind({&w});
  Tensor x = make_tensor({3, 4}, uniform_floats(12, -1.0f, 1.0f, 17)), y({3, 2}), dx({3, 4});
  const auto r = uniform_floats(6, -1.0f, 1.0f, 18);
  layer.forward(x, y, ForwardContext{});
  // No bias: a zero input row gives a zero output row.
  Tensor zero({1, 4}), y0({1, 2});
  layer.forward(zero, y0, ForwardContext{});
  EXPECT_EQ(y0.data<float>()[0], 0.0f);
  EXPECT_EQ(y0.data<float>()[1], 0.0f);
  layer.forward(x, y, ForwardContext{});
  layer.backward(make_tensor({3, 2}, r), &dx);
  const auto dw = lockstep::testing::to_vector(w.grad);
  const auto f = [&] {
    layer.forward(x, y, ForwardContext{});
    return weighted_sum(y, r);
  };
  EXPECT_TRUE(check_gradient("dL/dW", dw.data(), w.value.data<float>(), w.value.numel(), f, kF32Grad));
  EXPECT_TRUE(check_gradient("dL/dx", dx.data<float>(), x.data<float>(), x.numel(), f, kF32Grad));
}

// ---- activations ----

struct ActivationCase {
  Activation act;
  const char* name;
  double (*reference)(double);
};

void PrintTo(const ActivationCase& c, std::ostream* os) { *os << c.name; }

class Activations : public ::testing::TestWithParam<ActivationCase> {};

TEST_P(Activations, ForwardMatchesDoubleFormula) {
  const auto& p = GetParam();
  ActivationLayer layer(p.act);
  EXPECT_EQ(layer.type(), p.name);
  const auto xs = uniform_floats(200, -6.0f, 6.0f, 21);
  Tensor x = make_tensor({20, 10}, xs), y({20, 10});
  layer.forward(x, y, ForwardContext{});
  for (std::size_t i = 0; i < xs.size(); ++i) {
    const double ref = p.reference(xs[i]);
    // float32 expf/tanhf plus a division: within a few ulp (1e-6 relative).
    EXPECT_NEAR(y.data<float>()[i], ref, 1e-6 * std::max(std::fabs(ref), 1e-3)) << p.name << "(" << xs[i] << ")";
  }
}

TEST_P(Activations, BackwardMatchesFiniteDifferences) {
  const auto& p = GetParam();
  ActivationLayer layer(p.act);
  // |x| >= 0.05 keeps every perturbed input (eps = 1e-3) on one side of ReLU's kink.
  Tensor x = make_tensor({6, 7}, lockstep::testing::away_from_zero(42, 0.05f, 3.0f, 22));
  Tensor y({6, 7}), dx({6, 7});
  const auto r = uniform_floats(42, -1.0f, 1.0f, 23);
  layer.forward(x, y, ForwardContext{});
  layer.backward(make_tensor({6, 7}, r), &dx);
  const auto f = [&] {
    layer.forward(x, y, ForwardContext{});
    return weighted_sum(y, r);
  };
  EXPECT_TRUE(check_gradient(std::string("d") + p.name + "/dx", dx.data<float>(), x.data<float>(), x.numel(), f,
                             kF32Grad));
}

INSTANTIATE_TEST_SUITE_P(
    Nn, Activations,
    ::testing::Values(ActivationCase{Activation::kRelu, "relu", [](double v) { return v > 0.0 ? v : 0.0; }},
                      ActivationCase{Activation::kSigmoid, "sigmoid", [](double v) { return 1.0 / (1.0 + std::exp(-v)); }},
                      ActivationCase{Activation::kTanh, "tanh", [](double v) { return std::tanh(v); }}),
    [](const ::testing::TestParamInfo<ActivationCase>& info) { return std::string(info.param.name); });

// ---- dropout ----

namespace {

std::vector<std::int64_t> ids_from(std::int64_t first, std::int64_t stride, std::int64_t n) {
  std::vector<std::int64_t> v;
  for (std::int64_t i = 0; i < n; ++i) v.push_back(first + stride * i);
  return v;
}

ForwardContext training(const std::vector<std::int64_t>& ids, std::uint64_t seed = 7, std::uint64_t epoch = 0) {
  ForwardContext ctx;
  ctx.training = true;
  ctx.seed = seed;
  ctx.epoch = epoch;
  ctx.sample_ids = ids.data();
  return ctx;
}

// The mask a dropout layer applies, read off by pushing ones through it.
std::vector<float> mask_of(Dropout& d, const std::vector<std::int64_t>& ids, std::int64_t cols, std::uint64_t seed,
                           std::uint64_t epoch) {
  const auto rows = static_cast<std::int64_t>(ids.size());
  Tensor ones = make_tensor({rows, cols}, std::vector<float>(static_cast<std::size_t>(rows * cols), 1.0f));
  Tensor y({rows, cols});
  d.forward(ones, y, training(ids, seed, epoch));
  return lockstep::testing::to_vector(y);
}

std::vector<float> row(const std::vector<float>& m, std::int64_t cols, std::size_t r) {
  return std::vector<float>(m.begin() + static_cast<std::ptrdiff_t>(r) * cols,
                            m.begin() + static_cast<std::ptrdiff_t>(r + 1) * cols);
}

}  // namespace

TEST(Dropout, EvaluationAndRateZeroAreIdentity) {
  const auto xs = uniform_floats(24, -2.0f, 2.0f, 31);
  const auto ids = ids_from(0, 1, 4);
  for (const bool train : {false, true}) {
    Dropout d(train ? 0.0f : 0.5f, 1);
    Tensor x = make_tensor({4, 6}, xs), y({4, 6}), dx({4, 6});
    ForwardContext ctx = training(ids);
    ctx.training = train;
    d.forward(x, y, ctx);
    EXPECT_EQ(lockstep::testing::to_vector(y), xs);
    const Tensor dy = make_tensor({4, 6}, uniform_floats(24, -1.0f, 1.0f, 32));
    d.backward(dy, &dx);
    EXPECT_EQ(lockstep::testing::to_vector(dx), lockstep::testing::to_vector(dy));
  }
}

TEST(Dropout, TrainingScalesKeptElementsAndBackwardIsMaskTimesDy) {
  const float p = 0.4f;
  const float keep_scale = 1.0f / (1.0f - p);
  const std::int64_t rows = 16, cols = 33;  // odd width: masks come in groups of four columns
  const auto ids = ids_from(1000, 3, rows);
  Dropout d(p, 2);
  Tensor x = make_tensor({rows, cols}, lockstep::testing::away_from_zero(rows * cols, 0.1f, 2.0f, 33));
  Tensor y({rows, cols}), dx({rows, cols});
  d.forward(x, y, training(ids));
  std::vector<float> mask(static_cast<std::size_t>(rows * cols));
  for (std::size_t i = 0; i < mask.size(); ++i) {
    const float xi = x.data<float>()[i], yi = y.data<float>()[i];
    ASSERT_TRUE(yi == 0.0f || yi == xi * keep_scale) << "element " << i << ": x " << xi << ", y " << yi;
    mask[i] = yi == 0.0f ? 0.0f : keep_scale;
  }
  const auto r = uniform_floats(mask.size(), -1.0f, 1.0f, 34);
  d.backward(make_tensor({rows, cols}, r), &dx);
  for (std::size_t i = 0; i < mask.size(); ++i) ASSERT_EQ(dx.data<float>()[i], r[i] * mask[i]) << "element " << i;
  // And the same through finite differences (the mask is fixed by the ids, so this is exact).
  const auto f = [&] {
    d.forward(x, y, training(ids));
    return weighted_sum(y, r);
  };
  EXPECT_TRUE(check_gradient("ddropout/dx", dx.data<float>(), x.data<float>(), x.numel(), f, kF32Grad));
}

TEST(Dropout, MaskIsAFunctionOfSeedEpochLayerAndSampleId) {
  const std::int64_t cols = 64;
  Dropout a(0.5f, 3), b(0.5f, 3), other_layer(0.5f, 4);
  // The same samples at other batch positions, in another batch and in another layer object.
  const std::vector<std::int64_t> ids_a{5, 9, 13, 2}, ids_b{13, 77, 5};
  const auto ma = mask_of(a, ids_a, cols, 7, 1), mb = mask_of(b, ids_b, cols, 7, 1);
  EXPECT_EQ(row(ma, cols, 0), row(mb, cols, 2)) << "sample 5";
  EXPECT_EQ(row(ma, cols, 2), row(mb, cols, 0)) << "sample 13";
  // Any change of sample, epoch, seed or layer gives another mask (64 columns: equal by chance
  // with probability 2^-64).
  EXPECT_NE(row(ma, cols, 1), row(mb, cols, 1)) << "samples 9 and 77";
  EXPECT_NE(row(ma, cols, 0), row(ma, cols, 2)) << "samples 5 and 13";
  EXPECT_NE(row(mask_of(a, ids_a, cols, 7, 2), cols, 0), row(ma, cols, 0)) << "epoch 1 vs 2";
  EXPECT_NE(row(mask_of(a, ids_a, cols, 8, 1), cols, 0), row(ma, cols, 0)) << "seed 7 vs 8";
  EXPECT_NE(row(mask_of(other_layer, ids_a, cols, 7, 1), cols, 0), row(ma, cols, 0)) << "layer 3 vs 4";
  // Repeating the forward pass repeats the mask.
  EXPECT_EQ(mask_of(a, ids_a, cols, 7, 1), ma);
}

TEST(Dropout, KeepsAboutOneMinusPOfTheElementsAndPreservesTheMean) {
  const std::int64_t rows = 2000, cols = 128;  // 256000 elements: the keep rate's sd is below 1e-3
  const auto ids = ids_from(0, 1, rows);
  for (const float p : {0.1f, 0.5f, 0.8f}) {
    Dropout d(p, 0);
    const auto m = mask_of(d, ids, cols, 123, 0);
    double kept = 0.0, sum = 0.0;
    for (const float v : m) {
      kept += v != 0.0f;
      sum += v;
    }
    const double n = static_cast<double>(m.size());
    EXPECT_NEAR(kept / n, 1.0 - p, 0.01) << "p = " << p;
    EXPECT_NEAR(sum / n, 1.0, 0.03) << "p = " << p << ": inverted dropout must keep E[y] = x";
  }
}

TEST(Dropout, TrainingWithoutSampleIdsIsAnError) {
  Dropout d(0.5f, 0);
  Tensor x({2, 3}), y({2, 3});
  ForwardContext ctx;
  ctx.training = true;
  EXPECT_THROW(d.forward(x, y, ctx), lockstep::Error);
}

// ---- softmax ----

TEST(Softmax, ForwardIsEachRowsProbabilitiesOverAllFeatures) {
  auto layer = lockstep::nn::make_layer(lockstep::nn::layer_spec("softmax"), 0);
  EXPECT_EQ(layer->type(), "softmax");
  EXPECT_EQ(layer->output_shape({2, 3, 2}), (Shape{2, 3, 2}));
  // Per-sample {2, 3}: the softmax runs over all six values of a sample, not over the last axis.
  const auto xs = uniform_floats(24, -30.0f, 30.0f, 31);
  Tensor x = make_tensor({4, 2, 3}, xs), y({4, 2, 3});
  layer->forward(x, y, ForwardContext{});
  for (int r = 0; r < 4; ++r) {
    double top = -1e300, sum = 0.0;
    for (int j = 0; j < 6; ++j) top = std::max(top, static_cast<double>(xs[r * 6 + j]));
    for (int j = 0; j < 6; ++j) sum += std::exp(xs[r * 6 + j] - top);
    for (int j = 0; j < 6; ++j) {
      const double ref = std::exp(xs[r * 6 + j] - top) / sum;
      EXPECT_NEAR(y.data<float>()[r * 6 + j], ref, 1e-6 * std::max(ref, 1e-6)) << "row " << r << " col " << j;
    }
  }
}

TEST(Softmax, BackwardMatchesFiniteDifferences) {
  auto layer = lockstep::nn::make_layer(lockstep::nn::layer_spec("softmax"), 0);
  Tensor x = make_tensor({5, 7}, uniform_floats(35, -3.0f, 3.0f, 32)), y({5, 7}), dx({5, 7});
  const auto r = uniform_floats(35, -1.0f, 1.0f, 33);
  layer->forward(x, y, ForwardContext{});
  layer->backward(make_tensor({5, 7}, r), &dx);
  const auto f = [&] {
    layer->forward(x, y, ForwardContext{});
    return weighted_sum(y, r);
  };
  EXPECT_TRUE(check_gradient("dsoftmax/dx", dx.data<float>(), x.data<float>(), x.numel(), f, kF32Grad));
}
