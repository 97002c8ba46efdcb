// Conv2d through cuDNN (src/backend/cuda/cudnn_conv.cu) against the CPU reference path (im2col +
// Eigen, backend::set_conv_impl(kReference)): forward with and without bias, backward data and
// backward weights + bias, over geometries with stride, same/valid/explicit padding, dilation,
// groups (depthwise too) and non-square kernels, at the planned batch size and a smaller one; the
// same launch twice must give the same bits (deterministic algorithms). Geometries whose padding
// cuDNN's legacy API cannot express (more at the bottom/right) must get no plan, so the layer runs
// im2col + cuBLAS. The GPU tests skip themselves without a CUDA device or without cuDNN.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "lockstep/backend/conv_plan.hpp"
#include "lockstep/backend/cuda_runtime.hpp"
#include "lockstep/build_info.hpp"
#include "lockstep/core/rng.hpp"
#include "lockstep/nn/conv2d.hpp"

using namespace lockstep;

namespace {

constexpr double kRtol = 1e-4;  // cuDNN and Eigen sum in different orders (both plain float32)

Tensor random_tensor(Shape shape, std::uint64_t seed) {
  Tensor t(std::move(shape));
  CounterRng rng(seed, RngStream::kUser, 0);
  for (auto& x : t.span<float>()) x = 2.0f * rng.uniform() - 1.0f;
  return t;
}

void expect_close(const Tensor& cpu, const Tensor& gpu_result, const std::string& what) {
  const Tensor g = gpu_result.clone(Device::kCpu);
  ASSERT_EQ(cpu.numel(), g.numel()) << what;
  double scale = 1e-6;
  for (float x : cpu.span<float>()) scale = std::max(scale, std::fabs(static_cast<double>(x)));
  for (std::int64_t i = 0; i < cpu.numel(); ++i) {
    const double a = cpu.data<float>()[i], b = g.data<float>()[i];
    ASSERT_LE(std::fabs(a - b), kRtol * scale) << what << "[" << i << "]: reference " << a << ", cudnn " << b;
  }
}

bool same_bits(const Tensor& a, const Tensor& b) {
  const Tensor x = a.clone(Device::kCpu), y = b.clone(Device::kCpu);
  return x.numel() == y.numel() && std::memcmp(x.raw(), y.raw(), static_cast<std::size_t>(x.numel()) * 4) == 0;
}

struct Case {
  std::string name;
  Shape input;  // {C, H, W}
  std::int64_t filters, groups;
  bool bias;
  nn::WindowSpec ws;
};

nn::WindowSpec window(std::int64_t kh, std::int64_t kw, std::int64_t sh, std::int64_t sw, std::int64_t dil,
                      nn::WindowSpec::Padding padding, std::int64_t ph = 0, std::int64_t pw = 0) {
  nn::WindowSpec w;
  w.kernel_h = kh, w.kernel_w = kw, w.stride_h = sh, w.stride_w = sw, w.dilation_h = dil, w.dilation_w = dil;
  w.padding = padding, w.pad_h = ph, w.pad_w = pw;
  w.where = "test";
  return w;
}

std::vector<Case> cases() {
  using P = nn::WindowSpec::Padding;
  return {
      {"3x3 same, bias", {3, 9, 8}, 6, 1, true, window(3, 3, 1, 1, 1, P::kSame)},
      {"3x3 stride 2 valid, groups 2, no bias", {4, 12, 11}, 4, 2, false, window(3, 3, 2, 2, 1, P::kValid)},
      {"3x3 dilation 2 pad 2, groups 4, bias", {4, 10, 10}, 8, 4, true, window(3, 3, 1, 1, 2, P::kExplicit, 2, 2)},
      {"2x3 stride [2, 1] pad [1, 0], bias", {2, 7, 9}, 5, 1, true, window(2, 3, 2, 1, 1, P::kExplicit, 1, 0)},
      {"depthwise 3x3 same, no bias", {6, 8, 8}, 6, 6, false, window(3, 3, 1, 1, 1, P::kSame)},
      {"1x1 stride 2, bias", {5, 9, 9}, 7, 1, true, window(1, 1, 2, 2, 1, P::kValid)},
  };
}

// What one layer pass gives: y, dx, dW and (with bias) db.
struct Results {
  Tensor y, dx, dw, db;
};

// The reference: an nn::Conv2d on the CPU with LOCKSTEP_CONV=reference's switch.
Results reference(const Case& c, const Tensor& x, const Tensor& w, const Tensor& b, const Tensor& dy) {
  backend::set_conv_impl(backend::ConvImpl::kReference);
  nn::Conv2d layer(c.filters, c.ws, c.groups, c.bias);
  const Shape out = layer.output_shape(c.input);
  std::vector<nn::Parameter> params(c.bias ? 2 : 1);
  std::vector<nn::Parameter*> ptrs;
  const Tensor values[2] = {w, b};
  for (std::size_t i = 0; i < params.size(); ++i) {
    params[i].value = params[i].compute = values[i];
    params[i].grad = Tensor(values[i].shape());
    ptrs.push_back(&params[i]);
  }
  layer.bind(ptrs);
  Results r{Tensor({x.dim(0), out[0], out[1], out[2]}), Tensor(x.shape()), {}, {}};
  layer.forward(x, r.y, nn::ForwardContext{});
  layer.backward(dy, &r.dx);
  backend::set_conv_impl(backend::ConvImpl::kAuto);
  r.dw = params[0].grad;
  if (c.bias) r.db = params[1].grad;
  return r;
}

// The same pass through the plan, on device copies.
Results through(backend::ConvPlan& plan, const Case& c, const Tensor& x, const Tensor& w, const Tensor& b,
                const Tensor& dy) {
  const Device d = Device::kCuda;
  const Tensor gx = x.clone(d), gw = w.clone(d), gb = b.clone(d), gdy = dy.clone(d);
  Results r{Tensor(dy.shape(), DType::kF32, d), Tensor(x.shape(), DType::kF32, d), Tensor(w.shape(), DType::kF32, d),
            Tensor(b.shape(), DType::kF32, d)};
  plan.forward(gx, gw, c.bias ? &gb : nullptr, r.y);
  plan.backward_weights(gx, gdy, r.dw, c.bias ? &r.db : nullptr);
  plan.backward_data(gdy, gw, r.dx);
  backend::cuda::synchronize();
  return r;
}

class CudnnConv : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!LOCKSTEP_HAVE_CUDNN) GTEST_SKIP() << "this build has no cuDNN (cudnn.h and libcudnn not found beside CUDA)";
    if (backend::cuda::device_count() == 0) {
      GTEST_SKIP() << "no CUDA device (" << backend::cuda::runtime_info().error << ")";
    }
    backend::cuda::init_device(0);
    backend::set_conv_impl(backend::ConvImpl::kAuto);
  }
};

}  // namespace

TEST_F(CudnnConv, MatchesTheReferenceForwardAndBothBackwardPasses) {
  constexpr std::int64_t kRows = 4;
  std::uint64_t seed = 100;
  for (const Case& c : cases()) {
    SCOPED_TRACE(c.name);
    const backend::Window2d g = c.ws.plan(c.input, "conv2d");
    auto plan = backend::make_conv_plan({g, c.filters, c.groups, c.bias}, Device::kCuda, DType::kF32, kRows);
    ASSERT_NE(plan, nullptr) << "cuDNN should cover this geometry";
    EXPECT_EQ(plan->library(), "cudnn");
    for (const std::int64_t rows : {kRows, std::int64_t{2}}) {  // the planned batch, then a smaller one
      SCOPED_TRACE("rows " + std::to_string(rows));
      const Tensor x = random_tensor({rows, g.channels, g.height, g.width}, ++seed);
      const Tensor w = random_tensor({c.filters, g.channels / c.groups, g.kernel_h, g.kernel_w}, ++seed);
      const Tensor b = random_tensor({c.filters}, ++seed);
      const Tensor dy = random_tensor({rows, c.filters, g.out_h, g.out_w}, ++seed);
      const Results want = reference(c, x, w, b, dy);
      const Results got = through(*plan, c, x, w, b, dy);
      expect_close(want.y, got.y, "y");
      expect_close(want.dx, got.dx, "dx");
      expect_close(want.dw, got.dw, "dW");
      if (c.bias) expect_close(want.db, got.db, "db");
    }
  }
}

TEST_F(CudnnConv, TheSameLaunchGivesTheSameBits) {
  // Deterministic algorithms only: no atomics in the weight or data gradients.
  const Case c = cases()[2];
  const backend::Window2d g = c.ws.plan(c.input, "conv2d");
  constexpr std::int64_t kRows = 16;
  auto plan = backend::make_conv_plan({g, c.filters, c.groups, c.bias}, Device::kCuda, DType::kF32, kRows);
  ASSERT_NE(plan, nullptr);
  const Tensor x = random_tensor({kRows, g.channels, g.height, g.width}, 1);
  const Tensor w = random_tensor({c.filters, g.channels / c.groups, g.kernel_h, g.kernel_w}, 2);
  const Tensor b = random_tensor({c.filters}, 3);
  const Tensor dy = random_tensor({kRows, c.filters, g.out_h, g.out_w}, 4);
  const Results first = through(*plan, c, x, w, b, dy), again = through(*plan, c, x, w, b, dy);
  EXPECT_TRUE(same_bits(first.y, again.y));
  EXPECT_TRUE(same_bits(first.dx, again.dx));
  EXPECT_TRUE(same_bits(first.dw, again.dw));
  EXPECT_TRUE(same_bits(first.db, again.db));
}

TEST_F(CudnnConv, ALayerOnCudaMatchesTheReference) {
  // Through nn::Conv2d as training runs it (the plan chosen by the layer, kept across batches).
  const Case c = cases()[0];
  const backend::Window2d g = c.ws.plan(c.input, "conv2d");
  const Tensor x = random_tensor({3, g.channels, g.height, g.width}, 7);
  const Tensor w = random_tensor({c.filters, g.channels, g.kernel_h, g.kernel_w}, 8);
  const Tensor b = random_tensor({c.filters}, 9);
  const Tensor dy = random_tensor({3, c.filters, g.out_h, g.out_w}, 10);
  const Results want = reference(c, x, w, b, dy);
  nn::Conv2d layer(c.filters, c.ws, c.groups, c.bias);
  layer.output_shape(c.input);
  nn::Parameter pw, pb;
  pw.value = pw.compute = w.clone(Device::kCuda);
  pw.grad = Tensor(w.shape(), DType::kF32, Device::kCuda);
  pb.value = pb.compute = b.clone(Device::kCuda);
  pb.grad = Tensor(b.shape(), DType::kF32, Device::kCuda);
  layer.bind({&pw, &pb});
  Tensor y(dy.shape(), DType::kF32, Device::kCuda), dx(x.shape(), DType::kF32, Device::kCuda);
  layer.forward(x.clone(Device::kCuda), y, nn::ForwardContext{});
  layer.backward(dy.clone(Device::kCuda), &dx);
  expect_close(want.y, y, "y");
  expect_close(want.dx, dx, "dx");
  expect_close(want.dw, pw.grad, "dW");
  expect_close(want.db, pb.grad, "db");
}

// Needs no device: the padding check comes before cuDNN is touched.
TEST(CudnnConvPlan, PaddingOnlyAtTheBottomOrRightGetsNoPlan) {
  backend::set_conv_impl(backend::ConvImpl::kAuto);
  using P = nn::WindowSpec::Padding;
  // "same" with an odd total padding: 2x2 stride 1 pads 0 above, 1 below; 3x3 stride 2 on an even
  // input pads 0 above, 1 below.
  for (const nn::WindowSpec& ws : {window(2, 2, 1, 1, 1, P::kSame), window(3, 3, 2, 2, 1, P::kSame)}) {
    const backend::Window2d g = ws.plan({3, 8, 8}, "conv2d");
    EXPECT_EQ(g.out_h, 8 / ws.stride_h);
    EXPECT_EQ(backend::make_conv_plan({g, 4, 1, true}, Device::kCuda, DType::kF32, 2), nullptr)
        << "kernel " << ws.kernel_h << " stride " << ws.stride_h;
  }
}

TEST(CudnnConvPlan, InfoNamesTheLibraries) {
  const std::string libs = backend::conv_libraries();
  if (LOCKSTEP_HAVE_CUDNN) {
    EXPECT_NE(libs.find("cudnn 9."), std::string::npos) << libs;
  }
  if (LOCKSTEP_HAVE_DNNL) {
    EXPECT_NE(libs.find("onednn 2."), std::string::npos) << libs;
  }
}
