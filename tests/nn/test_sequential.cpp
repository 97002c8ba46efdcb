// Sequential as the trainer uses it: the whole model's backward against central finite
// differences of the loss w.r.t. every element of flat_params(); the flat layout (last layer
// first, so gradient buckets become ready from the front) and the per-layer hook that starts a
// bucket's reduction; and initialisation (reproducible from the seed, with the documented bounds
// and variances). Inputs for models with a ReLU are chosen so no finite-difference step crosses
// its kink: the first layer's pre-activations are recomputed in double and rows with any of them
// closer to zero than the largest change a step can cause are skipped.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>

#include "lockstep/nn/layer_registry.hpp"
#include "lockstep/nn/loss.hpp"
#include "lockstep/nn/sequential.hpp"
#include "nn/nn_test_util.hpp"

using lockstep::Spec;
using lockstep::Tensor;
using lockstep::nn::ForwardContext;
using lockstep::nn::Init;
using lockstep::nn::layer_spec;
using lockstep::nn::LossKind;
using lockstep::nn::Sequential;
using lockstep::testing::make_tensor;
using lockstep::testing::uniform_floats;

namespace {

Spec dense(std::int64_t units) {
  return layer_spec("dense", {{"units", std::to_string(units)}});
}
Spec act(const char* type) {
  return layer_spec(type);
}
Spec dropout(double rate) {
  return layer_spec("dropout", {{"rate", std::to_string(rate)}});
}

const lockstep::nn::Parameter& param(const Sequential& m, const std::string& name) {
  for (const auto& p : m.parameters())
    if (p.name == name) return p;
  throw std::runtime_error("no parameter " + name);
}

// Rows of `in` features whose first-layer pre-activations (x @ W0 + b0, in double) all have
// |value| >= margin.
std::vector<float> rows_off_kinks(Sequential& m, std::int64_t rows, double margin, std::uint64_t seed) {
  const auto& w = param(m, "dense0.weight");
  const auto& b = param(m, "dense0.bias");
  const std::int64_t in = w.value.dim(0), units = w.value.dim(1);
  std::vector<float> out;
  for (std::uint64_t cand = 0; static_cast<std::int64_t>(out.size()) < rows * in && cand < 1000; ++cand) {
    const auto x = uniform_floats(static_cast<std::size_t>(in), -1.0f, 1.0f, seed, cand);
    bool ok = true;
    for (std::int64_t u = 0; u < units && ok; ++u) {
      double pre = b.value.data<float>()[u];
      for (std::int64_t k = 0; k < in; ++k)
        pre += static_cast<double>(x[static_cast<std::size_t>(k)]) * w.value.data<float>()[k * units + u];
      ok = std::fabs(pre) >= margin;
    }
    if (ok) out.insert(out.end(), x.begin(), x.end());
  }
  EXPECT_EQ(static_cast<std::int64_t>(out.size()), rows * in) << "not enough rows away from the ReLU kink";
  return out;
}

struct ModelCase {
  const char* name;
  std::vector<Spec> layers;
  LossKind loss;
  bool training;
};

void PrintTo(const ModelCase& c, std::ostream* os) {
  *os << c.name;
}

class SequentialGradient : public ::testing::TestWithParam<ModelCase> {};

}  // namespace

TEST_P(SequentialGradient, BackwardMatchesFiniteDifferencesForEveryParameter) {
  const auto& c = GetParam();
  constexpr std::int64_t kIn = 5, kRows = 4;
  Sequential m({kIn}, c.layers);
  m.initialize(2024, Init::kHeUniform);
  // Nonzero biases, so their gradients and the kink margin are exercised.
  for (const auto& p : m.parameters()) {
    if (!p.spec.is_bias) continue;
    const auto v = uniform_floats(static_cast<std::size_t>(p.value.numel()), -0.3f, 0.3f, 99,
                                  static_cast<std::uint64_t>(p.offset));
    std::copy(v.begin(), v.end(), p.value.data<float>());
  }
  // A step of eps changes a first-layer pre-activation by at most eps * max(|x|, 1) = 1e-3.
  Tensor x = make_tensor({kRows, kIn}, rows_off_kinks(m, kRows, 1e-2, 5));
  const std::int64_t outs = m.output_features();
  Tensor target =
      c.loss == LossKind::kSoftmaxCrossEntropy
          ? make_tensor({kRows}, {0.0f, 2.0f, 1.0f, 2.0f})
          : make_tensor({kRows, outs}, uniform_floats(static_cast<std::size_t>(kRows * outs), 0.0f, 1.0f, 6));
  const std::vector<std::int64_t> ids{11, 5, 42, 7};
  ForwardContext ctx;
  ctx.training = c.training;
  ctx.seed = 3;
  ctx.epoch = 1;
  ctx.sample_ids = ids.data();
  const float scale = 1.0f / kRows;

  Tensor dout({kRows, outs});
  compute_loss(c.loss, m.forward(x, ctx), target, scale, &dout);
  m.backward(dout);
  const auto grads = lockstep::testing::to_vector(m.flat_grads());
  const auto f = [&] {
    return static_cast<double>(scale) * compute_loss(c.loss, m.forward(x, ctx), target, scale, nullptr).loss;
  };
  EXPECT_TRUE(lockstep::testing::check_gradient(std::string(c.name) + " dL/dparams", grads.data(),
                                                m.flat_params().data<float>(), m.num_params(), f,
                                                lockstep::testing::kF32Grad));
  // A gradient check passes trivially on a model whose gradients are all zero.
  double norm = 0.0;
  for (const float g : grads) norm += static_cast<double>(g) * g;
  EXPECT_GT(norm, 1e-4);
}

INSTANTIATE_TEST_SUITE_P(Nn, SequentialGradient,
                         ::testing::Values(ModelCase{"dense_relu_dense_tanh_dense_ce",
                                                     {dense(8), act("relu"), dense(6), act("tanh"), dense(3)},
                                                     LossKind::kSoftmaxCrossEntropy,
                                                     false},
                                           ModelCase{"dense_sigmoid_dense_mse",
                                                     {dense(6), act("sigmoid"), dense(4)},
                                                     LossKind::kMeanSquaredError,
                                                     false},
                                           ModelCase{"dense_relu_dropout_dense_bce_training",
                                                     {dense(7), act("relu"), dropout(0.3), dense(2)},
                                                     LossKind::kBceWithLogits,
                                                     true}),
                         [](const ::testing::TestParamInfo<ModelCase>& info) { return std::string(info.param.name); });

// ---- layout ----

TEST(SequentialLayout, LastLayerParametersComeFirst) {
  // input 5 -> dense(4) -> relu -> dense(3) -> tanh -> dense(2)
  Sequential m({5}, {dense(4), act("relu"), dense(3), act("tanh"), dense(2)});
  ASSERT_EQ(m.num_params(), 47);  // 5*4+4 + 4*3+3 + 3*2+2
  ASSERT_EQ(m.num_layers(), 5u);
  EXPECT_EQ(m.output_features(), 2);
  // Expected offsets worked out by hand: dense4 [0, 8), dense2 [8, 23), dense0 [23, 47).
  const std::map<std::string, std::pair<std::int64_t, lockstep::Shape>> want{
      {"dense4.weight", {0, {3, 2}}}, {"dense4.bias", {6, {2}}},       {"dense2.weight", {8, {4, 3}}},
      {"dense2.bias", {20, {3}}},     {"dense0.weight", {23, {5, 4}}}, {"dense0.bias", {43, {4}}}};
  ASSERT_EQ(m.parameters().size(), want.size());
  float* base = m.flat_params().data<float>();
  float* gbase = m.flat_grads().data<float>();
  for (const auto& p : m.parameters()) {
    const auto it = want.find(p.name);
    ASSERT_NE(it, want.end()) << "unexpected parameter " << p.name;
    EXPECT_EQ(p.offset, it->second.first) << p.name;
    EXPECT_EQ(p.value.shape(), it->second.second) << p.name;
    EXPECT_EQ(p.value.data<float>(), base + p.offset) << p.name << " is not a view into flat_params()";
    EXPECT_EQ(p.grad.data<float>(), gbase + p.offset) << p.name << " is not a view into flat_grads()";
  }
  const std::vector<std::pair<std::int64_t, std::int64_t>> ranges{{23, 47}, {}, {8, 23}, {}, {0, 8}};
  for (std::size_t i = 0; i < ranges.size(); ++i) {
    const auto r = m.layer_param_range(i);
    if (ranges[i].first == ranges[i].second) {
      EXPECT_EQ(r.first, r.second) << "layer " << i << " has no parameters";
    } else {
      EXPECT_EQ(r, ranges[i]) << "layer " << i;
    }
  }
}

TEST(SequentialLayout, LayersComputeWithTheFlatBuffer) {
  // Writing the flat buffer is how checkpoints and optimizers change the model: with every
  // weight zero the output is the last layer's bias, read from the front of the buffer.
  Sequential m({5}, {dense(4), act("relu"), dense(3), act("tanh"), dense(2)});
  m.initialize(1, Init::kHeUniform);
  float* p = m.flat_params().data<float>();
  std::fill(p, p + m.num_params(), 0.0f);
  p[6] = 0.5f;
  p[7] = -1.5f;
  Tensor x = make_tensor({3, 5}, uniform_floats(15, -1.0f, 1.0f, 8));
  const Tensor& y = m.forward(x, ForwardContext{});
  ASSERT_EQ(y.shape(), (lockstep::Shape{3, 2}));
  for (std::int64_t r = 0; r < 3; ++r) {
    EXPECT_EQ(y.data<float>()[r * 2], 0.5f);
    EXPECT_EQ(y.data<float>()[r * 2 + 1], -1.5f);
  }
  // d(sum of outputs)/d(last bias) = number of rows, written at the front of flat_grads().
  m.backward(make_tensor({3, 2}, std::vector<float>(6, 1.0f)));
  EXPECT_EQ(m.flat_grads().data<float>()[6], 3.0f);
  EXPECT_EQ(m.flat_grads().data<float>()[7], 3.0f);
}

TEST(SequentialLayout, HookRunsLastLayerFirstAfterItsGradientsAreWritten) {
  Sequential m({5}, {dense(4), act("relu"), dense(3), act("tanh"), dense(2)});
  m.initialize(3, Init::kHeUniform);
  Tensor x = make_tensor({3, 5}, uniform_floats(15, -1.0f, 1.0f, 9));
  m.forward(x, ForwardContext{});
  float* g = m.flat_grads().data<float>();
  std::fill(g, g + m.num_params(), std::nanf(""));
  // When layer i is done, the gradients of layers i..4 fill the front of the buffer up to here,
  // and the layers before i have not been reached yet.
  const std::int64_t ready_end[] = {47, 23, 23, 8, 8};
  std::vector<std::size_t> order;
  m.backward(make_tensor({3, 2}, uniform_floats(6, -1.0f, 1.0f, 10)), [&](std::size_t i) {
    order.push_back(i);
    ASSERT_LT(i, 5u);
    const std::int64_t end = ready_end[i];
    for (std::int64_t k = 0; k < end; ++k) ASSERT_FALSE(std::isnan(g[k])) << "layer " << i << ", element " << k;
    for (std::int64_t k = end; k < m.num_params(); ++k)
      ASSERT_TRUE(std::isnan(g[k])) << "layer " << i << " done, but element " << k << " already written";
  });
  EXPECT_EQ(order, (std::vector<std::size_t>{4, 3, 2, 1, 0}));
}

TEST(SequentialLayout, BadSpecsAndInputsAreReported) {
  EXPECT_THROW(Sequential({5}, {layer_spec("conv")}), lockstep::ConfigError);
  EXPECT_THROW(Sequential({5}, {dense(0)}), lockstep::ConfigError);
  EXPECT_THROW(Sequential({5}, {dense(3), dropout(1.0)}), lockstep::ConfigError);
  EXPECT_THROW(Sequential({5}, std::vector<lockstep::Spec>{}), lockstep::ConfigError);
  EXPECT_THROW(Sequential({0}, {dense(3)}), lockstep::ConfigError);
  Sequential m({5}, {dense(3)});
  Tensor wrong({2, 4});
  EXPECT_THROW(m.forward(wrong, ForwardContext{}), lockstep::DataError);
}

// Every layer type is a registry row, registered from its layer's own file; a row lost at link
// time (a static library dropping an unreferenced object) would make configs fail with "expected
// one of ..." missing that name.
TEST(LayerRegistry, EveryShippedLayerTypeIsRegistered) {
  EXPECT_EQ(lockstep::nn::LayerRegistry::instance().names(),
            (std::vector<std::string>{"avg_pool2d", "batchnorm", "conv2d", "dense", "dropout", "flatten",
                                      "global_avg_pool", "max_pool2d", "relu", "residual", "sigmoid", "softmax", "tanh"}));
}

TEST(LayerRegistry, ParametersAreReadWithTheirPlaces) {
  lockstep::Spec bad = dense(8);
  bad.params["units"].values = {"8.5"};
  try {
    lockstep::nn::make_layer(bad, 0);
    ADD_FAILURE() << "no error for units 8.5";
  } catch (const lockstep::ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("layer dense.units: expected an integer"), std::string::npos) << e.what();
  }
  lockstep::Spec extra = act("relu");
  extra.params["units"] = lockstep::Param{{"3"}, false, "x.yaml:4: model.layers[1].units"};
  try {
    lockstep::nn::make_layer(extra, 1);
    ADD_FAILURE() << "no error for relu with units";
  } catch (const lockstep::ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("x.yaml:4: model.layers[1].units: unknown parameter of relu"),
              std::string::npos)
        << e.what();
  }
}

// Shapes are per sample and flow through the layers: a {C, H, W} input reaches a dense layer as
// its C*H*W values, activations keep the shape, and a batch may come shaped or flat.
TEST(SequentialShapes, ShapedInputFlowsThroughTheLayers) {
  Sequential m({2, 3, 4}, {act("relu"), dense(5), act("tanh")});
  EXPECT_EQ(m.input_features(), 24);
  EXPECT_EQ(m.output_shape(), (lockstep::Shape{5}));
  EXPECT_EQ(m.parameters()[0].value.shape(), (lockstep::Shape{24, 5}));
  m.initialize(3, Init::kHeUniform);
  const Tensor shaped = lockstep::testing::make_tensor({2, 2, 3, 4}, lockstep::testing::uniform_floats(48, -1, 1, 5));
  const auto a = lockstep::testing::to_vector(m.forward(shaped, ForwardContext{}));
  const Tensor flat = shaped.reshape({2, 24});
  const auto b = lockstep::testing::to_vector(m.forward(flat, ForwardContext{}));
  EXPECT_EQ(a, b);
  EXPECT_NE(m.summary().find("input [2, 3, 4] -> relu -> dense(5) -> tanh"), std::string::npos) << m.summary();
}

// ---- initialisation ----

namespace {
std::vector<float> params_after_init(std::uint64_t seed, Init init) {
  Sequential m({300}, {dense(400), act("relu"), dense(10)});
  m.initialize(seed, init);
  return lockstep::testing::to_vector(m.flat_params());
}

struct Moments {
  double mean = 0, var = 0, max_abs = 0;
};
Moments moments(const lockstep::nn::Parameter& p) {
  const float* w = p.value.data<float>();
  const auto n = static_cast<double>(p.value.numel());
  Moments m;
  for (std::int64_t i = 0; i < p.value.numel(); ++i) m.mean += w[i] / n;
  for (std::int64_t i = 0; i < p.value.numel(); ++i) {
    m.var += (w[i] - m.mean) * (w[i] - m.mean) / n;
    m.max_abs = std::max(m.max_abs, std::fabs(static_cast<double>(w[i])));
  }
  return m;
}
}  // namespace

TEST(SequentialInit, SameSeedSameParametersOtherSeedOthers) {
  for (const auto init : {Init::kHeUniform, Init::kHeNormal, Init::kXavierUniform, Init::kXavierNormal}) {
    const auto a = params_after_init(17, init), b = params_after_init(17, init), c = params_after_init(18, init);
    EXPECT_EQ(a, b) << lockstep::nn::init_name(init);
    std::size_t same = 0;
    for (std::size_t i = 0; i < a.size(); ++i) same += a[i] == c[i];
    // Only the zero biases (410 of them) may coincide.
    EXPECT_LE(same, 410u + 10u) << lockstep::nn::init_name(init) << ": seeds 17 and 18 give the same parameters";
  }
}

TEST(SequentialInit, BoundsAndVariancesFollowTheScheme) {
  Sequential m({300}, {dense(400), act("relu"), dense(10)});
  struct Expect {
    Init init;
    bool uniform;
    double (*var)(double fan_in, double fan_out);
  };
  const Expect schemes[] = {
      {Init::kHeUniform, true, [](double in, double) { return 2.0 / in; }},
      {Init::kHeNormal, false, [](double in, double) { return 2.0 / in; }},
      {Init::kXavierUniform, true, [](double in, double out) { return 2.0 / (in + out); }},
      {Init::kXavierNormal, false, [](double in, double out) { return 2.0 / (in + out); }},
  };
  for (const auto& s : schemes) {
    m.initialize(5, s.init);
    for (const auto& p : m.parameters()) {
      const auto mo = moments(p);
      if (p.spec.is_bias) {
        EXPECT_EQ(mo.max_abs, 0.0) << p.name << ": biases start at zero";
        continue;
      }
      const double var = s.var(static_cast<double>(p.spec.fan_in), static_cast<double>(p.spec.fan_out));
      const std::string what = std::string(lockstep::nn::init_name(s.init)) + " " + p.name;
      EXPECT_NEAR(mo.var, var, 0.1 * var) << what;
      EXPECT_NEAR(mo.mean, 0.0, 0.1 * std::sqrt(var)) << what;
      if (s.uniform) {
        const double bound = std::sqrt(3.0 * var);  // U(-b, b) has variance b^2 / 3
        EXPECT_LE(mo.max_abs, bound) << what;
        EXPECT_GE(mo.max_abs, 0.99 * bound) << what << ": the samples should fill [-bound, bound]";
      } else {
        EXPECT_GT(mo.max_abs, 3.0 * std::sqrt(var)) << what << ": a normal sample this large has tails beyond 3 sd";
      }
    }
  }
}

TEST(SequentialInit, NamesParse) {
  for (const auto init : {Init::kHeUniform, Init::kHeNormal, Init::kXavierUniform, Init::kXavierNormal})
    EXPECT_EQ(lockstep::nn::parse_init(lockstep::nn::init_name(init)), init);
  EXPECT_THROW(lockstep::nn::parse_init("glorot"), lockstep::ConfigError);
}
