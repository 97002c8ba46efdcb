// Conv2d, max/average/global pooling and Flatten, one layer at a time. Forward passes are compared
// with a naive direct convolution (and naive pooling) written here in double, over shapes that
// exercise stride 2, same/valid/explicit padding, dilation 2, groups 2, non-square kernels and
// batches of several samples. Backward passes are checked against central finite differences of
// sum(r * y) for the input, the weights and the bias. Config errors must name the key.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>

#include "lockstep/backend/conv_plan.hpp"
#include "lockstep/build_info.hpp"
#include "lockstep/nn/layer_registry.hpp"
#include "lockstep/nn/layers.hpp"
#include "lockstep/nn/sequential.hpp"
#include "nn/nn_test_util.hpp"

using lockstep::ConfigError;
using lockstep::Param;
using lockstep::Shape;
using lockstep::Spec;
using lockstep::Tensor;
using lockstep::nn::ForwardContext;
using lockstep::nn::Layer;
using lockstep::nn::Parameter;
using lockstep::testing::check_gradient;
using lockstep::testing::kF32Grad;
using lockstep::testing::make_tensor;
using lockstep::testing::to_vector;
using lockstep::testing::uniform_floats;
using lockstep::testing::weighted_sum;

namespace {

// A layer spec as the config reader makes it, with places to name in errors.
Spec spec(const std::string& type, std::vector<std::pair<std::string, std::vector<std::string>>> params) {
  Spec s;
  s.type = type;
  s.where = "net.yaml:7: model.layers[2]";
  for (auto& [k, v] : params) s.params[k] = Param{v, v.size() != 1, s.where + "." + k};
  return s;
}

std::unique_ptr<Layer> make(const std::string& type, std::vector<std::pair<std::string, std::vector<std::string>>> p) {
  return lockstep::nn::make_layer(spec(type, std::move(p)), 2);
}

// A layer with its parameters bound to tensors of its own (as Sequential binds them) and a batch.
struct Bench {
  std::unique_ptr<Layer> layer;
  std::vector<Parameter> params;
  Shape out;
  Tensor x, y;
  Bench(std::unique_ptr<Layer> l, const Shape& sample, std::int64_t rows, std::uint64_t seed) : layer(std::move(l)) {
    out = layer->output_shape(sample);
    const auto specs = layer->param_specs(sample);
    params.reserve(specs.size());
    for (std::size_t i = 0; i < specs.size(); ++i) {
      Parameter p;
      p.spec = specs[i];
      p.value = make_tensor(specs[i].shape, uniform_floats(static_cast<std::size_t>(lockstep::shape_numel(specs[i].shape)),
                                                           -0.5f, 0.5f, seed, 10 + i));
      p.grad = Tensor(specs[i].shape);
      p.compute = p.value;
      params.push_back(std::move(p));
    }
    std::vector<Parameter*> ptrs;
    for (auto& p : params) ptrs.push_back(&p);
    layer->bind(ptrs);
    Shape xs{rows}, ys{rows};
    xs.insert(xs.end(), sample.begin(), sample.end());
    ys.insert(ys.end(), out.begin(), out.end());
    x = make_tensor(xs, uniform_floats(static_cast<std::size_t>(lockstep::shape_numel(xs)), -1.0f, 1.0f, seed, 1));
    y = Tensor(ys);
  }
  void forward() { layer->forward(x, y, ForwardContext{}); }
};

struct ConvCase {
  const char* name;
  std::int64_t rows, channels, height, width, filters;
  std::vector<std::pair<std::string, std::vector<std::string>>> params;  // besides filters
  Shape expected_out;
};

std::vector<ConvCase> conv_cases() {
  return {
      {"3x3 valid", 2, 3, 7, 6, 4, {{"kernel", {"3"}}}, {4, 5, 4}},
      {"stride 2 same", 3, 2, 7, 8, 3, {{"kernel", {"3"}}, {"stride", {"2"}}, {"padding", {"same"}}}, {3, 4, 4}},
      {"dilation 2 padding 2", 2, 2, 8, 7, 3, {{"kernel", {"3"}}, {"dilation", {"2"}}, {"padding", {"2"}}}, {3, 8, 7}},
      {"groups 2, 2x3 kernel, padding [1, 0]", 2, 4, 6, 7, 6,
       {{"kernel", {"2", "3"}}, {"groups", {"2"}}, {"padding", {"1", "0"}}}, {6, 7, 5}},
      {"1x1, stride [2, 1], no bias", 2, 3, 5, 5, 2,
       {{"kernel", {"1"}}, {"stride", {"2", "1"}}, {"bias", {"false"}}}, {2, 3, 5}},
      {"5x5 same (even total padding)", 1, 1, 6, 6, 2, {{"kernel", {"5"}}, {"padding", {"same"}}}, {2, 6, 6}},
  };
}

std::unique_ptr<Layer> make_conv(const ConvCase& c) {
  auto p = c.params;
  p.push_back({"filters", {std::to_string(c.filters)}});
  return make("conv2d", p);
}

// The direct definition, in double: y[n, f, oy, ox] = b[f] + sum over the group's channels and the
// kernel taps of w[f, c, i, j] * x[n, g*Cg + c, oy*s - p + i*d, ox*s - p + j*d] (0 outside).
std::vector<double> direct_conv(const Bench& b, const lockstep::backend::Window2d& g, std::int64_t groups) {
  const std::int64_t rows = b.x.dim(0), F = b.out[0], C = g.channels, Cg = C / groups, Fg = F / groups;
  const float* x = b.x.data<float>();
  const float* w = b.params[0].value.data<float>();
  const float* bias = b.params.size() > 1 ? b.params[1].value.data<float>() : nullptr;
  std::vector<double> y;
  for (std::int64_t n = 0; n < rows; ++n)
    for (std::int64_t f = 0; f < F; ++f)
      for (std::int64_t oy = 0; oy < g.out_h; ++oy)
        for (std::int64_t ox = 0; ox < g.out_w; ++ox) {
          double s = bias ? bias[f] : 0.0;
          for (std::int64_t c = 0; c < Cg; ++c)
            for (std::int64_t i = 0; i < g.kernel_h; ++i)
              for (std::int64_t j = 0; j < g.kernel_w; ++j) {
                const std::int64_t iy = oy * g.stride_h - g.pad_h + i * g.dilation_h;
                const std::int64_t ix = ox * g.stride_w - g.pad_w + j * g.dilation_w;
                if (iy < 0 || iy >= g.height || ix < 0 || ix >= g.width) continue;
                const std::int64_t ch = f / Fg * Cg + c;
                s += static_cast<double>(w[((f * Cg + c) * g.kernel_h + i) * g.kernel_w + j]) *
                     x[((n * C + ch) * g.height + iy) * g.width + ix];
              }
          y.push_back(s);
        }
  return y;
}

lockstep::backend::Window2d geometry_of(const ConvCase& c) {
  // The geometry the layer must have planned, written out per case (independent of WindowSpec).
  lockstep::backend::Window2d g;
  g.channels = c.channels, g.height = c.height, g.width = c.width;
  g.out_h = c.expected_out[1], g.out_w = c.expected_out[2];
  for (const auto& [k, v] : c.params) {
    if (k == "groups" || k == "bias" || v[0] == "same") continue;
    const std::int64_t a = std::stoll(v[0]), b = v.size() > 1 ? std::stoll(v[1]) : a;
    if (k == "kernel") g.kernel_h = a, g.kernel_w = b;
    if (k == "stride") g.stride_h = a, g.stride_w = b;
    if (k == "dilation") g.dilation_h = a, g.dilation_w = b;
    if (k == "padding") g.pad_h = a, g.pad_w = b;
  }
  for (const auto& [k, v] : c.params) {
    if (k == "padding" && v[0] == "same") {  // TensorFlow: the smaller half on top
      g.pad_h = std::max<std::int64_t>((g.out_h - 1) * g.stride_h + g.dilation_h * (g.kernel_h - 1) + 1 - g.height, 0) / 2;
      g.pad_w = std::max<std::int64_t>((g.out_w - 1) * g.stride_w + g.dilation_w * (g.kernel_w - 1) + 1 - g.width, 0) / 2;
    }
  }
  return g;
}

std::int64_t groups_of(const ConvCase& c) {
  for (const auto& [k, v] : c.params)
    if (k == "groups") return std::stoll(v[0]);
  return 1;
}

// Runs body once on the im2col + GEMM reference and once on the library path (oneDNN where this
// build has it), restoring the process-wide choice afterwards.
template <typename Body>
void on_each_impl(Body&& body) {
  using lockstep::backend::ConvImpl;
  for (const ConvImpl impl : {ConvImpl::kReference, ConvImpl::kAuto}) {
    SCOPED_TRACE(impl == ConvImpl::kReference ? "im2col reference" : "library (" + lockstep::backend::conv_libraries() + ")");
    lockstep::backend::set_conv_impl(impl);
    body();
  }
  lockstep::backend::set_conv_impl(ConvImpl::kAuto);
}

}  // namespace

TEST(Conv2d, OutputShapesAndParameters) {
  for (const auto& c : conv_cases()) {
    auto layer = make_conv(c);
    const Shape in{c.channels, c.height, c.width};
    EXPECT_EQ(layer->output_shape(in), c.expected_out) << c.name;
    const auto specs = layer->param_specs(in);
    const std::int64_t groups = groups_of(c);
    const auto g = geometry_of(c);
    EXPECT_EQ(specs[0].shape, (Shape{c.filters, c.channels / groups, g.kernel_h, g.kernel_w})) << c.name;
    EXPECT_EQ(specs[0].fan_in, c.channels / groups * g.kernel_h * g.kernel_w) << c.name;
    EXPECT_EQ(specs[0].fan_out, c.filters * g.kernel_h * g.kernel_w) << c.name;
    const bool bias = std::none_of(c.params.begin(), c.params.end(), [](const auto& kv) { return kv.first == "bias"; });
    ASSERT_EQ(specs.size(), bias ? 2u : 1u) << c.name;
    if (bias) {
      EXPECT_EQ(specs[1].shape, (Shape{c.filters})) << c.name;
    }
  }
}

TEST(Conv2d, ForwardMatchesDirectConvolution) {
  on_each_impl([] {
  for (const auto& c : conv_cases()) {
    Bench b(make_conv(c), {c.channels, c.height, c.width}, c.rows, 21);
    b.forward();
    const auto ref = direct_conv(b, geometry_of(c), groups_of(c));
    const auto y = to_vector(b.y);
    ASSERT_EQ(y.size(), ref.size()) << c.name;
    for (std::size_t i = 0; i < y.size(); ++i) EXPECT_NEAR(y[i], ref[i], 1e-5) << c.name << " output " << i;
  }
  });
}

TEST(Conv2d, GradientsMatchFiniteDifferences) {
  on_each_impl([] {
  for (const auto& c : conv_cases()) {
    SCOPED_TRACE(c.name);
    Bench b(make_conv(c), {c.channels, c.height, c.width}, c.rows, 31);
    const auto r = uniform_floats(static_cast<std::size_t>(b.y.numel()), -1.0f, 1.0f, 32);
    Tensor dx(b.x.shape());
    b.forward();
    b.layer->backward(make_tensor(b.y.shape(), r), &dx);
    const auto f = [&] {
      b.forward();
      return weighted_sum(b.y, r);
    };
    const auto dw = to_vector(b.params[0].grad);
    EXPECT_TRUE(check_gradient("dL/dW", dw.data(), b.params[0].value.data<float>(), b.params[0].value.numel(), f, kF32Grad));
    if (b.params.size() > 1) {
      const auto db = to_vector(b.params[1].grad);
      EXPECT_TRUE(check_gradient("dL/db", db.data(), b.params[1].value.data<float>(), b.params[1].value.numel(), f, kF32Grad));
    }
    EXPECT_TRUE(check_gradient("dL/dx", dx.data<float>(), b.x.data<float>(), b.x.numel(), f, kF32Grad));
  }
  });
}

TEST(Conv2d, SmallerBatchAfterLargerReusesBuffersAndStaysCorrect) {
  on_each_impl([] {
  // Buffers are planned for the largest batch; a later, smaller batch (an epoch's last) uses
  // their first rows and must give the same rows as the full batch.
  const ConvCase c = conv_cases()[1];
  Bench big(make_conv(c), {c.channels, c.height, c.width}, 3, 41);
  big.forward();
  Tensor x1 = big.x.rows(0, 1).clone(), y1(Shape{1, c.expected_out[0], c.expected_out[1], c.expected_out[2]});
  big.layer->forward(x1, y1, ForwardContext{});
  const auto all = to_vector(big.y), one = to_vector(y1);
  for (std::size_t i = 0; i < one.size(); ++i) EXPECT_EQ(one[i], all[i]) << "output " << i;
  });
}

// ---- pooling ----

namespace {
// Distinct values far apart (a shuffled ramp), so no finite-difference step changes a maximum.
std::vector<float> ramp(std::size_t n, std::uint64_t seed) {
  std::vector<float> v(n);
  std::iota(v.begin(), v.end(), 0.0f);
  auto u = uniform_floats(n, 0.0f, 1.0f, seed);
  std::vector<std::size_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return u[a] < u[b]; });
  std::vector<float> out(n);
  for (std::size_t i = 0; i < n; ++i) out[order[i]] = 0.05f * v[i] - 1.0f;
  return out;
}

struct PoolCase {
  const char* name;
  std::int64_t rows, channels, height, width;
  std::vector<std::pair<std::string, std::vector<std::string>>> params;
  Shape expected_out;
};
std::vector<PoolCase> pool_cases() {
  return {
      {"2x2 (stride = kernel)", 2, 2, 6, 6, {{"kernel", {"2"}}}, {2, 3, 3}},
      {"3x3 stride 2 same", 2, 2, 7, 6, {{"kernel", {"3"}}, {"stride", {"2"}}, {"padding", {"same"}}}, {2, 4, 3}},
      {"3x2 stride 1 padding 1", 1, 3, 5, 4, {{"kernel", {"3", "2"}}, {"stride", {"1"}}, {"padding", {"1"}}}, {3, 5, 5}},
      {"2x2 stride 2 odd input, valid", 2, 1, 5, 7, {{"kernel", {"2"}}}, {1, 2, 3}},
  };
}

// Naive pooling in double over the taps inside the image.
std::vector<double> direct_pool(const Tensor& x, const PoolCase& c, bool max) {
  std::int64_t kh = 0, kw = 0, sh = 0, sw = 0, ph = 0, pw = 0;
  bool same = false;
  for (const auto& [k, v] : c.params) {
    const std::int64_t a = v[0] == "same" ? 0 : std::stoll(v[0]), b = v.size() > 1 ? std::stoll(v[1]) : a;
    if (k == "kernel") kh = a, kw = b;
    if (k == "stride") sh = a, sw = b;
    if (k == "padding") same = v[0] == "same", ph = a, pw = b;
  }
  if (sh == 0) sh = kh, sw = kw;
  const std::int64_t oh = c.expected_out[1], ow = c.expected_out[2];
  if (same) {
    ph = std::max<std::int64_t>((oh - 1) * sh + kh - c.height, 0) / 2;
    pw = std::max<std::int64_t>((ow - 1) * sw + kw - c.width, 0) / 2;
  }
  const float* px = x.data<float>();
  std::vector<double> y;
  for (std::int64_t p = 0; p < c.rows * c.channels; ++p)
    for (std::int64_t oy = 0; oy < oh; ++oy)
      for (std::int64_t ox = 0; ox < ow; ++ox) {
        double acc = max ? -1e300 : 0.0;
        int n = 0;
        for (std::int64_t i = 0; i < kh; ++i)
          for (std::int64_t j = 0; j < kw; ++j) {
            const std::int64_t iy = oy * sh - ph + i, ix = ox * sw - pw + j;
            if (iy < 0 || iy >= c.height || ix < 0 || ix >= c.width) continue;
            const double v = px[(p * c.height + iy) * c.width + ix];
            acc = max ? std::max(acc, v) : acc + v;
            ++n;
          }
        y.push_back(max ? acc : acc / n);
      }
  return y;
}

void check_pool(const char* type, bool max) {
  for (const auto& c : pool_cases()) {
    SCOPED_TRACE(std::string(type) + " " + c.name);
    Bench b(make(type, c.params), {c.channels, c.height, c.width}, c.rows, 51);
    ASSERT_EQ(b.out, c.expected_out);
    b.x = make_tensor(b.x.shape(), ramp(static_cast<std::size_t>(b.x.numel()), 52));
    b.forward();
    const auto ref = direct_pool(b.x, c, max);
    const auto y = to_vector(b.y);
    ASSERT_EQ(y.size(), ref.size());
    for (std::size_t i = 0; i < y.size(); ++i) EXPECT_NEAR(y[i], ref[i], 1e-5) << "output " << i;
    const auto r = uniform_floats(static_cast<std::size_t>(b.y.numel()), -1.0f, 1.0f, 53);
    Tensor dx(b.x.shape());
    b.layer->backward(make_tensor(b.y.shape(), r), &dx);
    const auto f = [&] {
      b.forward();
      return weighted_sum(b.y, r);
    };
    EXPECT_TRUE(check_gradient("dL/dx", dx.data<float>(), b.x.data<float>(), b.x.numel(), f, kF32Grad));
  }
}
}  // namespace

TEST(MaxPool2d, ForwardAndGradientsMatchDirectPooling) { check_pool("max_pool2d", true); }
TEST(AvgPool2d, ForwardAndGradientsMatchDirectPoolingWithoutCountingPadding) { check_pool("avg_pool2d", false); }

TEST(GlobalAvgPool, ChannelMeansAndTheirGradient) {
  Bench b(make("global_avg_pool", {}), {3, 4, 5}, 2, 61);
  ASSERT_EQ(b.out, (Shape{3}));
  b.forward();
  const float* x = b.x.data<float>();
  for (std::int64_t p = 0; p < 6; ++p) {
    double s = 0.0;
    for (std::int64_t i = 0; i < 20; ++i) s += x[p * 20 + i];
    EXPECT_NEAR(b.y.data<float>()[p], s / 20.0, 1e-6) << "plane " << p;
  }
  const auto r = uniform_floats(6, -1.0f, 1.0f, 62);
  Tensor dx(b.x.shape());
  b.layer->backward(make_tensor(b.y.shape(), r), &dx);
  const auto f = [&] {
    b.forward();
    return weighted_sum(b.y, r);
  };
  EXPECT_TRUE(check_gradient("dL/dx", dx.data<float>(), b.x.data<float>(), b.x.numel(), f, kF32Grad));
}

TEST(Flatten, KeepsValuesInRowMajorOrder) {
  Bench b(make("flatten", {}), {2, 3, 4}, 2, 71);
  EXPECT_EQ(b.out, (Shape{24}));
  b.forward();
  EXPECT_EQ(to_vector(b.y), to_vector(b.x));
  Tensor dx(b.x.shape());
  const Tensor dy = make_tensor(b.y.shape(), uniform_floats(48, -1.0f, 1.0f, 72));
  b.layer->backward(dy, &dx);
  EXPECT_EQ(to_vector(dx), to_vector(dy));
}

// ---- config errors name the key ----

#define EXPECT_CONTAINS(text, part)                                   \
  do {                                                                \
    const std::string t_ = (text);                                    \
    EXPECT_NE(t_.find(part), std::string::npos) << "message: " << t_; \
  } while (0)

namespace {
std::string shape_error(const std::string& type, std::vector<std::pair<std::string, std::vector<std::string>>> p,
                        const Shape& input) {
  try {
    auto layer = make(type, std::move(p));
    layer->output_shape(input);
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "(no error)";
}
}  // namespace

TEST(Conv2d, ConfigErrorsNameTheKey) {
  EXPECT_CONTAINS(shape_error("conv2d", {{"filters", {"4"}}, {"kernel", {"5"}}}, {1, 4, 4}),
              ("net.yaml:7: model.layers[2].kernel: the 5x5 kernel is larger than its input 4x4"));
  EXPECT_CONTAINS(shape_error("conv2d", {{"filters", {"4"}}, {"kernel", {"3"}}, {"dilation", {"2"}}}, {1, 4, 9}),
              ("model.layers[2].kernel: the 3x3 kernel (5x5 with dilation) is larger than its input 4x9"));
  EXPECT_CONTAINS(shape_error("conv2d", {{"filters", {"6"}}, {"kernel", {"3"}}, {"groups", {"4"}}}, {4, 8, 8}),
              ("model.layers[2].groups: expected a divisor of filters (6), got 4"));
  EXPECT_CONTAINS(shape_error("conv2d", {{"filters", {"6"}}, {"kernel", {"3"}}, {"groups", {"2"}}}, {3, 8, 8}),
              ("model.layers[2].groups: expected a divisor of the 3 input channels, got 2"));
  EXPECT_CONTAINS(shape_error("conv2d", {{"filters", {"4"}}, {"kernel", {"3"}}, {"padding", {"full"}}}, {1, 8, 8}),
              ("model.layers[2].padding: expected same, valid, an integer >= 0, a list [pad_h, pad_w] or [top, left, bottom, right], got \"full\""));
  EXPECT_CONTAINS(shape_error("conv2d", {{"filters", {"4"}}, {"kernel", {"3", "3", "3"}}}, {1, 8, 8}),
              ("model.layers[2].kernel: expected an integer in [1, 16777216] or a list [kernel_h, kernel_w]"));
  EXPECT_CONTAINS(shape_error("conv2d", {{"filters", {"4"}}}, {1, 8, 8}), ("model.layers[2].kernel: missing"));
  EXPECT_CONTAINS(shape_error("conv2d", {{"kernel", {"3"}}}, {1, 8, 8}), ("model.layers[2].filters: missing"));
  EXPECT_CONTAINS(shape_error("conv2d", {{"filters", {"4"}}, {"kernel", {"3"}}}, {784}),
              ("model.layers[2]: conv2d needs a per-sample input of shape {channels, height, width}, got [784]"));
  EXPECT_CONTAINS(shape_error("conv2d", {{"filters", {"4"}}, {"kernel", {"3"}}, {"strides", {"2"}}}, {1, 8, 8}),
              ("strides"));
  EXPECT_CONTAINS(shape_error("max_pool2d", {{"kernel", {"2"}}, {"padding", {"2"}}}, {1, 8, 8}),
              ("model.layers[2].padding: expected at most half the kernel (1x1), got [2, 2]"));
  EXPECT_CONTAINS(shape_error("max_pool2d", {{"kernel", {"3"}}}, {1, 2, 8}),
              ("model.layers[2].kernel: the 3x3 kernel is larger than its input 2x8"));
  EXPECT_CONTAINS(shape_error("global_avg_pool", {}, {10}), ("model.layers[2]: global_avg_pool needs"));
}

TEST(Conv2d, SmallCnnInSequentialCountsParametersAndShapes) {
  // The configs/fmnist_cnn.yaml network: 56,714 parameters.
  std::vector<Spec> specs{spec("conv2d", {{"filters", {"16"}}, {"kernel", {"3"}}}), spec("relu", {}),
                          spec("max_pool2d", {{"kernel", {"2"}}}),
                          spec("conv2d", {{"filters", {"32"}}, {"kernel", {"3"}}}), spec("relu", {}),
                          spec("max_pool2d", {{"kernel", {"2"}}}), spec("flatten", {}),
                          spec("dense", {{"units", {"64"}}}), spec("relu", {}), spec("dense", {{"units", {"10"}}})};
  lockstep::nn::Sequential net({1, 28, 28}, specs);
  EXPECT_EQ(net.num_params(), 160 + 4640 + 800 * 64 + 64 + 650);
  EXPECT_EQ(net.num_params(), 56714);
  EXPECT_EQ(net.output_shape(), (Shape{10}));
  EXPECT_EQ(net.layer(5).output_shape({32, 11, 11}), (Shape{32, 5, 5}));
}

TEST(Conv2d, LibraryPlanMatchesTheReferenceOnEveryOutputAndGradient) {
  // The oneDNN plan (the layer's default on the CPU) against the im2col + GEMM reference on the
  // same inputs: forward, dx, dW and db.
  using lockstep::backend::ConvImpl;
  for (const auto& c : conv_cases()) {
    SCOPED_TRACE(c.name);
    std::vector<std::vector<float>> got[2];
    for (const ConvImpl impl : {ConvImpl::kReference, ConvImpl::kAuto}) {
      lockstep::backend::set_conv_impl(impl);
      Bench b(make_conv(c), {c.channels, c.height, c.width}, c.rows, 51);
      const auto r = uniform_floats(static_cast<std::size_t>(b.y.numel()), -1.0f, 1.0f, 52);
      Tensor dx(b.x.shape());
      b.forward();
      b.layer->backward(make_tensor(b.y.shape(), r), &dx);
      auto& out = got[impl == ConvImpl::kAuto];
      out = {to_vector(b.y), to_vector(dx), to_vector(b.params[0].grad)};
      if (b.params.size() > 1) out.push_back(to_vector(b.params[1].grad));
    }
    lockstep::backend::set_conv_impl(ConvImpl::kAuto);
    const char* what[] = {"y", "dx", "dW", "db"};
    ASSERT_EQ(got[0].size(), got[1].size());
    for (std::size_t k = 0; k < got[0].size(); ++k)
      for (std::size_t i = 0; i < got[0][k].size(); ++i)
        ASSERT_NEAR(got[1][k][i], got[0][k][i], 1e-5 * (1.0 + std::fabs(got[0][k][i]))) << what[k] << "[" << i << "]";
  }
}

TEST(Conv2d, CpuConvolutionsRunOnOneDnnWhereTheBuildHasIt) {
  lockstep::backend::ConvDesc d;
  d.g.channels = 3, d.g.height = 8, d.g.width = 8, d.g.kernel_h = d.g.kernel_w = 3, d.g.out_h = d.g.out_w = 6;
  d.filters = 4;
  auto plan = lockstep::backend::make_conv_plan(d, lockstep::Device::kCpu, lockstep::DType::kF32, 8);
  if (!LOCKSTEP_HAVE_DNNL) {
    EXPECT_EQ(plan, nullptr);
    GTEST_SKIP() << "this build has no oneDNN (apt-get install libdnnl-dev): convolutions use im2col + GEMM";
  }
  ASSERT_NE(plan, nullptr);
  EXPECT_EQ(plan->library(), "onednn");
  EXPECT_NE(lockstep::backend::conv_libraries().find("onednn 2."), std::string::npos);
  // bf16 and the reference switch take the reference path.
  EXPECT_EQ(lockstep::backend::make_conv_plan(d, lockstep::Device::kCpu, lockstep::DType::kBF16, 8), nullptr);
  lockstep::backend::set_conv_impl(lockstep::backend::ConvImpl::kReference);
  EXPECT_EQ(lockstep::backend::make_conv_plan(d, lockstep::Device::kCpu, lockstep::DType::kF32, 8), nullptr);
  lockstep::backend::set_conv_impl(lockstep::backend::ConvImpl::kAuto);
}

// padding: [top, left, bottom, right] (ONNX's asymmetric pads): "same" with a 2x2 kernel is
// [0, 0, 1, 1], and a pool's padding may differ per side; three values are an error naming the key.
TEST(Conv2d, FourSidedPaddingMatchesSameAndChangesTheOutputSize) {
  const auto spec = [](std::vector<std::string> pad) {
    Spec s = lockstep::nn::layer_spec("conv2d", {{"filters", "2"}, {"kernel", "2"}});
    s.params["padding"] = Param{std::move(pad), true, "layer conv2d.padding"};
    return s;
  };
  lockstep::nn::Sequential same({1, 5, 5}, {lockstep::nn::layer_spec("conv2d", {{"filters", "2"}, {"kernel", "2"}, {"padding", "same"}})});
  lockstep::nn::Sequential four({1, 5, 5}, {spec({"0", "0", "1", "1"})});
  same.initialize(5, lockstep::nn::Init::kHeUniform);
  four.initialize(5, lockstep::nn::Init::kHeUniform);
  EXPECT_EQ(four.output_shape(), (Shape{2, 5, 5}));
  Tensor x = lockstep::testing::make_tensor({2, 1, 5, 5}, lockstep::testing::uniform_floats(50, -1.0f, 1.0f, 8));
  const auto a = lockstep::testing::to_vector(same.forward(x, ForwardContext{}));
  const auto b = lockstep::testing::to_vector(four.forward(x, ForwardContext{}));
  EXPECT_EQ(a, b);
  lockstep::nn::Sequential top_only({1, 5, 5}, {spec({"2", "0", "0", "1"})});
  EXPECT_EQ(top_only.output_shape(), (Shape{2, 6, 5}));
  try {
    lockstep::nn::make_layer(spec({"1", "1", "1"}), 0);
    ADD_FAILURE() << "three paddings were accepted";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("layer conv2d.padding: expected"), std::string::npos) << e.what();
  }
}
