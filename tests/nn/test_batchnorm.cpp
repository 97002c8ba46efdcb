// BatchNorm and residual blocks: forward against the formulas computed independently in double,
// running statistics against PyTorch's update rule, and every gradient against central finite
// differences (training mode, so the batch statistics depend on the input too).
#include <gtest/gtest.h>

#include <cmath>
#include <memory>

#include "lockstep/nn/batchnorm.hpp"
#include "lockstep/nn/dense.hpp"
#include "lockstep/nn/activation.hpp"
#include "lockstep/nn/layer_registry.hpp"
#include "lockstep/nn/residual.hpp"
#include "lockstep/nn/sequential.hpp"
#include "nn_test_util.hpp"

using namespace lockstep;
using namespace lockstep::nn;
using lockstep::testing::check_gradient;
using lockstep::testing::make_tensor;
using lockstep::testing::to_vector;
using lockstep::testing::uniform_floats;
using lockstep::testing::weighted_sum;

namespace {

// A layer with its own parameters and buffers (what Sequential does, but keeping the input
// gradient of the first layer, which Sequential drops).
struct Bound {
  std::unique_ptr<Layer> layer;
  std::vector<Parameter> params;
  std::vector<Buffer> buffers;
  Shape in, out;
  Bound(std::unique_ptr<Layer> l, Shape input) : layer(std::move(l)), in(std::move(input)) {
    const auto specs = layer->param_specs(in);
    out = layer->output_shape(in);
    params.reserve(specs.size());
    std::vector<Parameter*> ptrs;
    for (std::size_t k = 0; k < specs.size(); ++k) {
      Parameter p;
      p.name = specs[k].name;
      p.spec = specs[k];
      const auto v = uniform_floats(static_cast<std::size_t>(shape_numel(specs[k].shape)), 0.5f, 1.5f, 77, k);
      p.value = make_tensor(specs[k].shape, v);
      p.grad = Tensor(specs[k].shape);
      p.compute = p.value;
      params.push_back(std::move(p));
      ptrs.push_back(&params.back());
    }
    layer->bind(ptrs);
    const auto bspecs = layer->buffer_specs(in);
    buffers.reserve(bspecs.size());
    std::vector<Buffer*> bptrs;
    for (const auto& bs : bspecs) {
      Buffer b;
      b.name = bs.name;
      b.spec = bs;
      b.value = make_tensor(bs.shape, std::vector<float>(static_cast<std::size_t>(shape_numel(bs.shape)), bs.initial));
      buffers.push_back(std::move(b));
      bptrs.push_back(&buffers.back());
    }
    if (!bptrs.empty()) layer->bind_buffers(bptrs);
  }
  Shape batch(std::int64_t rows, const Shape& s) const {
    Shape b{rows};
    b.insert(b.end(), s.begin(), s.end());
    return b;
  }
};

ForwardContext training() {
  ForwardContext c;
  c.training = true;
  return c;
}

// Checks d(sum r*y)/d(x) and d/d(every parameter) against central differences, in training mode.
void check_all_gradients(Bound& b, std::int64_t rows, std::uint64_t seed) {
  Tensor x = make_tensor(b.batch(rows, b.in),
                         uniform_floats(static_cast<std::size_t>(rows * shape_numel(b.in)), -2.0f, 2.0f, seed));
  Tensor y(b.batch(rows, b.out)), dx(x.shape());
  const auto r = uniform_floats(static_cast<std::size_t>(y.numel()), -1.0f, 1.0f, seed + 1);
  const auto f = [&] {
    b.layer->forward(x, y, training());
    return weighted_sum(y, r);
  };
  f();
  Tensor dy = make_tensor(y.shape(), r);
  b.layer->backward(dy, &dx);
  const auto dx_v = to_vector(dx);
  EXPECT_TRUE(check_gradient("dx", dx_v.data(), x.data<float>(), x.numel(), f, lockstep::testing::kF32Grad));
  for (auto& p : b.params) {
    const auto g = to_vector(p.grad);
    EXPECT_TRUE(check_gradient(p.name, g.data(), p.value.data<float>(), p.value.numel(), f,
                               lockstep::testing::kF32Grad));
  }
}

}  // namespace

TEST(BatchNorm, OneDimensionalGradientsMatchFiniteDifferences) {
  Bound b(std::make_unique<BatchNorm>(BatchNormOptions{}), {5});
  check_all_gradients(b, 6, 3);
}

TEST(BatchNorm, TwoDimensionalGradientsMatchFiniteDifferences) {
  Bound b(std::make_unique<BatchNorm>(BatchNormOptions{}), {3, 2, 3});
  check_all_gradients(b, 4, 5);
}

TEST(BatchNorm, WithoutAffineHasNoParametersAndGradientsMatch) {
  Bound b(std::make_unique<BatchNorm>(BatchNormOptions{0.1, 1e-5, false, false}), {2, 2, 2});
  EXPECT_TRUE(b.params.empty());
  check_all_gradients(b, 3, 9);
}

// Training normalises each channel over N, H and W with the biased variance, and updates the
// running statistics as PyTorch does: running = (1 - momentum) running + momentum batch, with the
// unbiased variance; num_batches_tracked counts the updates.
TEST(BatchNorm, TrainingNormalisesPerChannelAndUpdatesRunningStatisticsAsPyTorch) {
  const std::int64_t n = 3, c = 2, s = 4;
  Bound b(std::make_unique<BatchNorm>(BatchNormOptions{0.3, 1e-5, true, false}), {c, 2, 2});
  const auto xv = uniform_floats(static_cast<std::size_t>(n * c * s), -3.0f, 5.0f, 21);
  Tensor x = make_tensor({n, c, 2, 2}, xv), y(x.shape());
  std::vector<double> rm(c, 0.0), rv(c, 1.0);
  for (int step = 0; step < 2; ++step) {
    b.layer->forward(x, y, training());
    for (std::int64_t ch = 0; ch < c; ++ch) {
      double sum = 0.0, sq = 0.0;
      for (std::int64_t i = 0; i < n; ++i)
        for (std::int64_t k = 0; k < s; ++k) sum += xv[(i * c + ch) * s + k];
      const double mean = sum / (n * s);
      for (std::int64_t i = 0; i < n; ++i)
        for (std::int64_t k = 0; k < s; ++k) sq += std::pow(xv[(i * c + ch) * s + k] - mean, 2);
      const double var = sq / (n * s), unbiased = sq / (n * s - 1);
      const double w = b.params[0].value.data<float>()[ch], bias = b.params[1].value.data<float>()[ch];
      for (std::int64_t i = 0; i < n; ++i)
        for (std::int64_t k = 0; k < s; ++k) {
          const std::int64_t at = (i * c + ch) * s + k;
          EXPECT_NEAR(y.data<float>()[at], (xv[at] - mean) / std::sqrt(var + 1e-5) * w + bias, 1e-5);
        }
      rm[ch] = 0.7 * rm[ch] + 0.3 * mean;
      rv[ch] = 0.7 * rv[ch] + 0.3 * unbiased;
      EXPECT_NEAR(b.buffers[0].value.data<float>()[ch], rm[ch], 1e-5) << "running_mean, step " << step;
      EXPECT_NEAR(b.buffers[1].value.data<float>()[ch], rv[ch], 1e-5) << "running_var, step " << step;
    }
    EXPECT_EQ(b.buffers[2].value.data<float>()[0], static_cast<float>(step + 1));
  }
}

// PyTorch's BatchNorm1d(2, momentum=0.1) update worked by hand on x = [[1, 10], [2, 20], [4, 40]]:
// batch mean [7/3, 70/3], unbiased variance [7/3, 700/3], so after one training forward
// running_mean = 0.1 mean = [0.23333, 2.33333] and running_var = 0.9 + 0.1 var = [1.13333, 24.23333].
TEST(BatchNorm, RunningStatisticsMatchPyTorchOnAFixedBatch) {
  Bound b(std::make_unique<BatchNorm>(BatchNormOptions{}), {2});
  Tensor x = make_tensor({3, 2}, {1, 10, 2, 20, 4, 40}), y(x.shape());
  b.layer->forward(x, y, training());
  EXPECT_NEAR(b.buffers[0].value.data<float>()[0], 0.233333, 1e-5);
  EXPECT_NEAR(b.buffers[0].value.data<float>()[1], 2.333333, 1e-5);
  EXPECT_NEAR(b.buffers[1].value.data<float>()[0], 1.133333, 1e-5);
  EXPECT_NEAR(b.buffers[1].value.data<float>()[1], 24.233333, 1e-4);
}

TEST(BatchNorm, EvaluationUsesTheRunningStatistics) {
  Bound b(std::make_unique<BatchNorm>(BatchNormOptions{}), {2});
  b.buffers[0].value.data<float>()[0] = 1.0f;
  b.buffers[0].value.data<float>()[1] = -2.0f;
  b.buffers[1].value.data<float>()[0] = 4.0f;
  b.buffers[1].value.data<float>()[1] = 0.25f;
  Tensor x = make_tensor({2, 2}, {3, 0, 5, 1}), y(x.shape());
  b.layer->forward(x, y, ForwardContext{});
  const float* w = b.params[0].value.data<float>();
  const float* bias = b.params[1].value.data<float>();
  EXPECT_NEAR(y.data<float>()[0], (3 - 1) / std::sqrt(4 + 1e-5) * w[0] + bias[0], 1e-5);
  EXPECT_NEAR(y.data<float>()[1], (0 + 2) / std::sqrt(0.25 + 1e-5) * w[1] + bias[1], 1e-5);
  EXPECT_NEAR(y.data<float>()[2], (5 - 1) / std::sqrt(4 + 1e-5) * w[0] + bias[0], 1e-5);
  EXPECT_EQ(b.buffers[2].value.data<float>()[0], 0.0f) << "evaluation must not update the running statistics";
}

TEST(BatchNorm, SequentialHoldsBuffersBesideParametersAndInitialisesWeightToOne) {
  Sequential m({4}, {layer_spec("dense", {{"units", "3"}}), layer_spec("batchnorm"), layer_spec("relu")});
  EXPECT_EQ(m.num_buffers(), 3 + 3 + 1);
  ASSERT_EQ(m.buffers().size(), 3u);
  EXPECT_EQ(m.buffers()[0].name, "batchnorm1.running_mean");
  EXPECT_EQ(m.buffers()[1].value.data<float>()[0], 1.0f);  // running_var starts at one
  m.initialize(1, Init::kHeUniform);
  for (const auto& p : m.parameters())
    if (p.name == "batchnorm1.weight") {
      EXPECT_EQ(to_vector(p.value), std::vector<float>(3, 1.0f));
    }
  EXPECT_NE(m.summary().find("7 buffer values"), std::string::npos) << m.summary();
}

TEST(BatchNorm, BadParametersNameTheKey) {
  auto spec = layer_spec("batchnorm", {{"momentum", "1.5"}});
  spec.where = "m.yaml:3: model.layers[1]";
  spec.params["momentum"].where = spec.where + ".momentum";
  try {
    make_layer(spec, 0);
    FAIL() << "momentum 1.5 accepted";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("model.layers[1].momentum"), std::string::npos) << e.what();
  }
  EXPECT_THROW(make_layer(layer_spec("batchnorm", {{"eps", "0"}}), 0), ConfigError);
  EXPECT_THROW(make_layer(layer_spec("batchnorm", {{"sync", "maybe"}}), 0), ConfigError);
}

namespace {
std::vector<std::unique_ptr<Layer>> layers_of(std::unique_ptr<Layer> a, std::unique_ptr<Layer> b = nullptr) {
  std::vector<std::unique_ptr<Layer>> v;
  v.push_back(std::move(a));
  if (b) v.push_back(std::move(b));
  return v;
}
}  // namespace

TEST(Residual, IdentityShortcutAddsTheInput) {
  Bound b(std::make_unique<Residual>(layers_of(std::make_unique<Dense>(3)), std::vector<std::unique_ptr<Layer>>{}),
          {3});
  Tensor x = make_tensor({2, 3}, {1, 2, 3, -1, 0, 4}), y({2, 3});
  b.layer->forward(x, y, ForwardContext{});
  const float* w = b.params[0].value.data<float>();  // [3, 3]
  const float* bias = b.params[1].value.data<float>();
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 3; ++j) {
      double inner = bias[j];
      for (int k = 0; k < 3; ++k) inner += x.data<float>()[i * 3 + k] * w[k * 3 + j];
      EXPECT_NEAR(y.data<float>()[i * 3 + j], inner + x.data<float>()[i * 3 + j], 1e-5);
    }
  check_all_gradients(b, 4, 31);
}

TEST(Residual, DenseShortcutWithBatchNormGradientsMatchFiniteDifferences) {
  auto inner = layers_of(std::make_unique<Dense>(3), std::make_unique<BatchNorm>(BatchNormOptions{}));
  inner.push_back(std::make_unique<ActivationLayer>(backend::Activation::kTanh));
  Bound b(std::make_unique<Residual>(std::move(inner), layers_of(std::make_unique<Dense>(3))), {5});
  EXPECT_EQ(b.out, Shape{3});
  ASSERT_EQ(b.params.size(), 6u);
  EXPECT_EQ(b.params[2].name, "batchnorm1.weight");
  EXPECT_EQ(b.params[4].name, "shortcut.dense0.weight");
  ASSERT_EQ(b.buffers.size(), 3u);
  EXPECT_EQ(b.buffers[0].name, "batchnorm1.running_mean");
  check_all_gradients(b, 6, 41);
}

TEST(Residual, MismatchedShapesNameTheShortcutKey) {
  Residual r(layers_of(std::make_unique<Dense>(3)), {}, "m.yaml:5: model.layers[2]");
  try {
    r.output_shape({4});
    FAIL() << "4 -> 3 with an identity shortcut accepted";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("model.layers[2].shortcut"), std::string::npos) << e.what();
  }
}

// In a model, the block is one layer: its range in the flat buffers covers every inner parameter,
// and backward has written all of their gradients when the ready hook names it.
TEST(Residual, ItsParameterRangeCoversTheInnerLayersWhenTheHookRuns) {
  Spec block = layer_spec("residual");
  block.children["layers"] = {layer_spec("dense", {{"units", "4"}}), layer_spec("batchnorm"), layer_spec("relu")};
  block.children["shortcut"] = {layer_spec("dense", {{"units", "4"}})};
  Sequential m({3}, {layer_spec("dense", {{"units", "5"}}), block, layer_spec("dense", {{"units", "2"}})});
  m.initialize(2, Init::kHeUniform);
  const auto range = m.layer_param_range(1);
  EXPECT_EQ(range.second - range.first, (5 * 4 + 4) + (4 + 4) + (5 * 4 + 4));
  EXPECT_EQ(m.num_buffers(), 4 + 4 + 1);
  EXPECT_EQ(m.buffers()[0].name, "residual1.batchnorm1.running_mean");
  Tensor x = make_tensor({4, 3}, uniform_floats(12, -1.0f, 1.0f, 8));
  m.forward(x, training());
  m.flat_grads().zero_();
  Tensor dy = make_tensor({4, 2}, uniform_floats(8, -1.0f, 1.0f, 9));
  bool checked = false;
  m.backward(dy, [&](std::size_t layer) {
    if (layer != 1) return;
    const float* g = m.flat_grads().data<float>();
    std::int64_t nonzero = 0;
    for (std::int64_t i = range.first; i < range.second; ++i) nonzero += g[i] != 0.0f;
    EXPECT_GT(nonzero, (range.second - range.first) / 2);
    checked = true;
  });
  EXPECT_TRUE(checked);
}

TEST(Residual, ConfigErrorsNameTheKey) {
  Spec no_layers = layer_spec("residual");
  no_layers.where = "m.yaml:4: model.layers[0]";
  try {
    make_layer(no_layers, 0);
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("model.layers[0].layers: missing"), std::string::npos) << e.what();
  }
  Spec dense = layer_spec("dense", {{"units", "3"}});
  dense.where = "m.yaml:6: model.layers[1]";
  dense.children["extra"] = {layer_spec("relu")};
  try {
    make_layer(dense, 0);
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("model.layers[1].extra"), std::string::npos) << e.what();
  }
  Spec bad_shortcut = layer_spec("residual", {{"shortcut", "projection"}});
  bad_shortcut.children["layers"] = {layer_spec("relu")};
  EXPECT_THROW(make_layer(bad_shortcut, 0), ConfigError);
}
