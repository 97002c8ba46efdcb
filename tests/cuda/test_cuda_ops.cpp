// Every CUDA backend op against the CPU backend on the same inputs, with explicit float32
// tolerances. Without a CUDA device each test skips itself with the reason.
#include <gtest/gtest.h>

#include <cmath>

#include "lockstep/backend/cuda_runtime.hpp"
#include "lockstep/backend/ops.hpp"
#include "lockstep/core/rng.hpp"

using namespace lockstep;

namespace {

constexpr double kElementwiseRtol = 1e-5;  // same functor, possibly fused multiply-adds
constexpr double kGemmRtol = 1e-4;         // cuBLAS and Eigen sum in different orders

Tensor random_tensor(Shape shape, std::uint64_t seed, float lo = -1.0f, float hi = 1.0f) {
  Tensor t(std::move(shape));
  CounterRng rng(seed, RngStream::kUser, 0);
  for (auto& x : t.span<float>()) x = lo + (hi - lo) * rng.uniform();
  return t;
}

Tensor on_gpu(const Tensor& t) { return t.clone(Device::kCuda); }
Tensor on_cpu(const Tensor& t) { return t.clone(Device::kCpu); }

void expect_close(const Tensor& cpu, const Tensor& gpu_result, double rtol, const char* what) {
  const Tensor g = on_cpu(gpu_result);
  ASSERT_EQ(cpu.numel(), g.numel()) << what;
  double scale = 1e-6;
  for (float x : cpu.span<float>()) scale = std::max(scale, std::fabs(static_cast<double>(x)));
  for (std::int64_t i = 0; i < cpu.numel(); ++i) {
    const double a = cpu.data<float>()[i], b = g.data<float>()[i];
    ASSERT_LE(std::fabs(a - b), rtol * scale) << what << "[" << i << "]: cpu " << a << ", cuda " << b;
  }
}

class CudaVsCpu : public ::testing::Test {
 protected:
  void SetUp() override {
    if (backend::cuda::device_count() == 0) {
      GTEST_SKIP() << "no CUDA device (" << backend::cuda::runtime_info().error << ")";
    }
    backend::cuda::init_device(0);
  }
};

}  // namespace

TEST_F(CudaVsCpu, GemmAllTranspositions) {
  for (bool ta : {false, true}) {
    for (bool tb : {false, true}) {
      const Tensor a = random_tensor(ta ? Shape{33, 17} : Shape{17, 33}, 1);
      const Tensor b = random_tensor(tb ? Shape{9, 33} : Shape{33, 9}, 2);
      Tensor c = random_tensor({17, 9}, 3), gc = on_gpu(c);
      backend::gemm(ta, tb, 0.5f, a, b, 0.25f, c);
      backend::gemm(ta, tb, 0.5f, on_gpu(a), on_gpu(b), 0.25f, gc);
      expect_close(c, gc, kGemmRtol, "gemm");
    }
  }
}

TEST_F(CudaVsCpu, BiasRowSumsActivations) {
  Tensor y = random_tensor({13, 7}, 4), gy = on_gpu(y);
  const Tensor b = random_tensor({7}, 5);
  backend::add_row_vector(y, b);
  backend::add_row_vector(gy, on_gpu(b));
  expect_close(y, gy, kElementwiseRtol, "add_row_vector");
  Tensor s = random_tensor({7}, 6), gs = on_gpu(s);
  backend::sum_rows(y, 0.5f, s);
  backend::sum_rows(gy, 0.5f, gs);
  expect_close(s, gs, kElementwiseRtol, "sum_rows");
  for (auto act : {backend::Activation::kRelu, backend::Activation::kSigmoid, backend::Activation::kTanh}) {
    Tensor out({13, 7}), gout = on_gpu(out), dx({13, 7}), gdx = on_gpu(dx);
    const Tensor dy = random_tensor({13, 7}, 7);
    backend::activation_forward(act, y, out);
    backend::activation_forward(act, gy, gout);
    expect_close(out, gout, kElementwiseRtol, "activation_forward");
    backend::activation_backward(act, y, out, dy, dx);
    backend::activation_backward(act, gy, gout, on_gpu(dy), gdx);
    expect_close(dx, gdx, kElementwiseRtol, "activation_backward");
  }
}

TEST_F(CudaVsCpu, DropoutMasksAreBitIdentical) {
  const Tensor x = random_tensor({8, 40}, 8);
  std::vector<std::int64_t> ids{3, 1, 4, 1, 5, 9, 2, 6};
  Tensor mask({8, 40}), y({8, 40}), gmask = on_gpu(mask), gy = on_gpu(y);
  backend::dropout_forward(x, ids.data(), 42, 3, 1, 0.3f, mask, y);
  backend::dropout_forward(on_gpu(x), ids.data(), 42, 3, 1, 0.3f, gmask, gy);
  expect_close(mask, gmask, 0.0, "dropout mask");  // the same counter-based RNG: exact
  expect_close(y, gy, 0.0, "dropout output");
}

TEST_F(CudaVsCpu, Losses) {
  const Tensor z = random_tensor({11, 5}, 9, -3.0f, 3.0f);
  Tensor labels({11});
  for (std::int64_t i = 0; i < 11; ++i) labels.data<float>()[i] = static_cast<float>(i % 5);
  Tensor d({11, 5}), gd = on_gpu(d);
  const auto c = backend::softmax_cross_entropy(z, labels, 0.5f, &d);
  const auto g = backend::softmax_cross_entropy(on_gpu(z), on_gpu(labels), 0.5f, &gd);
  EXPECT_NEAR(c.loss, g.loss, 1e-9 * std::max(1.0, std::fabs(c.loss)));
  EXPECT_EQ(c.correct, g.correct);
  expect_close(d, gd, kElementwiseRtol, "softmax_cross_entropy gradient");
  const Tensor t = random_tensor({11, 5}, 10, 0.0f, 1.0f);
  for (int which = 0; which < 2; ++which) {
    Tensor dd({11, 5}), gdd = on_gpu(dd);
    const auto cl = which == 0 ? backend::mean_squared_error(z, t, 1.0f, &dd) : backend::bce_with_logits(z, t, 1.0f, &dd);
    const auto gl = which == 0 ? backend::mean_squared_error(on_gpu(z), on_gpu(t), 1.0f, &gdd)
                               : backend::bce_with_logits(on_gpu(z), on_gpu(t), 1.0f, &gdd);
    EXPECT_NEAR(cl.loss, gl.loss, 1e-5 * std::max(1.0, std::fabs(cl.loss))) << (which == 0 ? "mse" : "bce");
    EXPECT_EQ(cl.correct, gl.correct);
    expect_close(dd, gdd, kElementwiseRtol, which == 0 ? "mse gradient" : "bce gradient");
  }
}

TEST_F(CudaVsCpu, OptimizerUpdates) {
  const Tensor g = random_tensor({1000}, 11);
  Tensor w = random_tensor({1000}, 12), v = random_tensor({1000}, 13, 0.0f, 0.1f);
  Tensor gw = on_gpu(w), gv = on_gpu(v);
  backend::sgd_update(w, g, v, 0.05f, 0.9f, 1e-4f, true, 0.5f);
  backend::sgd_update(gw, on_gpu(g), gv, 0.05f, 0.9f, 1e-4f, true, 0.5f);
  expect_close(w, gw, kElementwiseRtol, "sgd weights");
  expect_close(v, gv, kElementwiseRtol, "sgd velocity");
  Tensor m = random_tensor({1000}, 14, -0.1f, 0.1f), s = random_tensor({1000}, 15, 0.0f, 0.01f);
  Tensor gm = on_gpu(m), gsq = on_gpu(s);
  backend::adam_update(w, g, m, s, 1e-3, 0.9, 0.999, 1e-8, 0.01, true, 7, 1.0);
  backend::adam_update(gw, on_gpu(g), gm, gsq, 1e-3, 0.9, 0.999, 1e-8, 0.01, true, 7, 1.0);
  expect_close(w, gw, kElementwiseRtol, "adamw weights");
  expect_close(m, gm, kElementwiseRtol, "adamw first moment");
  expect_close(s, gsq, kElementwiseRtol, "adamw second moment");
}

TEST(CudaRuntime, ReportsWhatItIs) {
  const auto info = backend::cuda::runtime_info();
  EXPECT_TRUE(info.built);
  EXPECT_GT(info.runtime_version, 0);
  if (info.devices.empty()) {
    EXPECT_FALSE(info.error.empty()) << "no devices, but no reason given";
    EXPECT_THROW(backend::cuda::init_device(0), Error);
  }
}
