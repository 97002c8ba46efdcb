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

Tensor on_gpu(const Tensor& t) {
  return t.clone(Device::kCuda);
}
Tensor on_cpu(const Tensor& t) {
  return t.clone(Device::kCpu);
}

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
  using DenseLoss = backend::LossSum (*)(const Tensor&, const Tensor&, float, Tensor*);
  const std::pair<const char*, DenseLoss> dense_losses[] = {{"mse", backend::mean_squared_error},
                                                            {"mae", backend::mean_absolute_error},
                                                            {"huber", backend::huber_loss},
                                                            {"bce", backend::bce_with_logits}};
  for (const auto& [name, loss] : dense_losses) {
    Tensor dd({11, 5}), gdd = on_gpu(dd);
    const auto cl = loss(z, t, 1.0f, &dd);
    const auto gl = loss(on_gpu(z), on_gpu(t), 1.0f, &gdd);
    EXPECT_NEAR(cl.loss, gl.loss, 1e-5 * std::max(1.0, std::fabs(cl.loss))) << name;
    EXPECT_EQ(cl.correct, gl.correct) << name;
    expect_close(dd, gdd, kElementwiseRtol, (std::string(name) + " gradient").c_str());
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

// bf16: the GPU stores bf16 and computes in float32, which is what the CPU backend emulates, so
// the two agree to one bf16 rounding step (results near a rounding midpoint may land on either
// side when the float32 values differ in their last bits). Tolerance: 2^-7 relative to the scale.
constexpr double kBf16Rtol = 1.0 / 128;

Tensor bf16_of(const Tensor& t) {
  Tensor b(t.shape(), DType::kBF16, t.device());
  backend::cast(t, b);
  return b;
}
Tensor f32_of(const Tensor& t) {  // to the host, as float32
  Tensor h = t.clone(Device::kCpu), f(t.shape());
  backend::cast(h, f);
  return f;
}

TEST_F(CudaVsCpu, Bf16CastIsBitIdentical) {
  const Tensor x = random_tensor({1000}, 20, -100.0f, 100.0f);
  const Tensor c = bf16_of(x), g = bf16_of(on_gpu(x));
  expect_close(f32_of(c), f32_of(g), 0.0, "cast to bf16");
}

TEST_F(CudaVsCpu, Bf16GemmEveryOutputTypeAndTransposition) {
  for (DType out : {DType::kBF16, DType::kF32}) {
    for (bool ta : {false, true}) {
      for (bool tb : {false, true}) {
        const Tensor a = bf16_of(random_tensor(ta ? Shape{70, 17} : Shape{17, 70}, 21));
        const Tensor b = bf16_of(random_tensor(tb ? Shape{9, 70} : Shape{70, 9}, 22));
        Tensor c({17, 9}, out), gc({17, 9}, out, Device::kCuda);
        backend::gemm(ta, tb, 1.0f, a, b, 0.0f, c);
        backend::gemm(ta, tb, 1.0f, on_gpu(a), on_gpu(b), 0.0f, gc);
        expect_close(f32_of(c), f32_of(gc), out == DType::kBF16 ? kBf16Rtol : kGemmRtol, "bf16 gemm");
      }
    }
  }
}

TEST_F(CudaVsCpu, Bf16ElementwiseLossesAndUpdates) {
  Tensor y = bf16_of(random_tensor({13, 7}, 23)), gy = on_gpu(y);
  const Tensor bias = bf16_of(random_tensor({7}, 24));
  backend::add_row_vector(y, bias);
  backend::add_row_vector(gy, on_gpu(bias));
  expect_close(f32_of(y), f32_of(gy), 0.0, "bf16 add_row_vector");  // one float add, one rounding
  for (DType out : {DType::kBF16, DType::kF32}) {
    Tensor s({7}, out), gs({7}, out, Device::kCuda);
    backend::sum_rows(y, 0.0f, s);
    backend::sum_rows(gy, 0.0f, gs);
    expect_close(f32_of(s), f32_of(gs), kBf16Rtol, "bf16 sum_rows");
  }
  const Tensor dy = bf16_of(random_tensor({13, 7}, 25));
  for (auto act : {backend::Activation::kRelu, backend::Activation::kSigmoid, backend::Activation::kTanh}) {
    Tensor o({13, 7}, DType::kBF16), go({13, 7}, DType::kBF16, Device::kCuda);
    Tensor dx({13, 7}, DType::kBF16), gdx({13, 7}, DType::kBF16, Device::kCuda);
    backend::activation_forward(act, y, o);
    backend::activation_forward(act, gy, go);
    expect_close(f32_of(o), f32_of(go), kBf16Rtol, "bf16 activation_forward");
    backend::activation_backward(act, y, o, dy, dx);
    backend::activation_backward(act, gy, go, on_gpu(dy), gdx);
    expect_close(f32_of(dx), f32_of(gdx), kBf16Rtol, "bf16 activation_backward");
  }
  std::vector<std::int64_t> ids(13);
  for (std::int64_t i = 0; i < 13; ++i) ids[static_cast<std::size_t>(i)] = 100 + i;
  Tensor mask({13, 7}), gmask({13, 7}, DType::kF32, Device::kCuda);
  Tensor dr({13, 7}, DType::kBF16), gdr({13, 7}, DType::kBF16, Device::kCuda);
  backend::dropout_forward(y, ids.data(), 4, 1, 2, 0.25f, mask, dr);
  backend::dropout_forward(gy, ids.data(), 4, 1, 2, 0.25f, gmask, gdr);
  expect_close(mask, gmask, 0.0, "bf16 dropout mask");
  expect_close(f32_of(dr), f32_of(gdr), kBf16Rtol, "bf16 dropout");
  Tensor mu({13, 7}, DType::kBF16), gmu({13, 7}, DType::kBF16, Device::kCuda);
  backend::mul(dy, mask, mu);
  backend::mul(on_gpu(dy), gmask, gmu);
  expect_close(f32_of(mu), f32_of(gmu), kBf16Rtol, "bf16 mul");

  Tensor labels({13});
  for (std::int64_t i = 0; i < 13; ++i) labels.data<float>()[i] = static_cast<float>(i % 7);
  Tensor d({13, 7}, DType::kBF16), gd({13, 7}, DType::kBF16, Device::kCuda);
  const auto c = backend::softmax_cross_entropy(y, labels, 0.5f, &d);
  const auto g = backend::softmax_cross_entropy(gy, on_gpu(labels), 0.5f, &gd);
  EXPECT_NEAR(c.loss, g.loss, 1e-9 * std::max(1.0, std::fabs(c.loss)));
  EXPECT_EQ(c.correct, g.correct);
  expect_close(f32_of(d), f32_of(gd), kBf16Rtol, "bf16 softmax_cross_entropy gradient");

  const Tensor grad = bf16_of(random_tensor({1000}, 26));
  Tensor w = random_tensor({1000}, 27), v({1000}), gw = on_gpu(w), gv = on_gpu(v);
  backend::sgd_update(w, grad, v, 0.05f, 0.9f, 1e-4f, true, 1.0f);
  backend::sgd_update(gw, on_gpu(grad), gv, 0.05f, 0.9f, 1e-4f, true, 1.0f);
  expect_close(w, gw, kElementwiseRtol, "sgd with bf16 gradients");
  Tensor m({1000}), s({1000}), gm = on_gpu(m), gsq = on_gpu(s);
  backend::adam_update(w, grad, m, s, 1e-3, 0.9, 0.999, 1e-8, 0.01, true, 1, 1.0);
  backend::adam_update(gw, on_gpu(grad), gm, gsq, 1e-3, 0.9, 0.999, 1e-8, 0.01, true, 1, 1.0);
  expect_close(w, gw, kElementwiseRtol, "adamw with bf16 gradients");
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

// Batch norm and the residual add: the kernels against the CPU loops, training statistics,
// forward, the backward sums and the input gradient, on a 2-D batch [5, 3, 4, 6].
TEST_F(CudaVsCpu, BatchNormMatchesTheCpu) {
  const std::int64_t c = 3;
  Tensor x = random_tensor({5, c, 4, 6}, 71, -2.0f, 3.0f), dy = random_tensor({5, c, 4, 6}, 72);
  Tensor w = random_tensor({c}, 73, 0.5f, 1.5f), b = random_tensor({c}, 74);
  Tensor mean({c}), var({c}), invstd({c}), y(x.shape()), sdy({c}), sdyx({c}), dx(x.shape()), sum(x.shape());
  Tensor gx = on_gpu(x), gdy = on_gpu(dy), gw = on_gpu(w), gb = on_gpu(b);
  Tensor gmean = on_gpu(mean), gvar = on_gpu(var), gy = on_gpu(y), gsdy = on_gpu(sdy), gsdyx = on_gpu(sdyx),
         gdx = on_gpu(dx), gsum = on_gpu(sum);
  backend::batchnorm_stats(x, c, mean, var);
  backend::batchnorm_stats(gx, c, gmean, gvar);
  expect_close(mean, gmean, kElementwiseRtol, "mean");
  expect_close(var, gvar, kElementwiseRtol, "var");
  for (std::int64_t k = 0; k < c; ++k) invstd.data<float>()[k] = 1.0f / std::sqrt(var.data<float>()[k] + 1e-5f);
  Tensor ginv = on_gpu(invstd);
  gmean = on_gpu(mean);  // the same statistics on both sides from here on
  backend::batchnorm_forward(x, c, mean, invstd, w, b, y);
  backend::batchnorm_forward(gx, c, gmean, ginv, gw, gb, gy);
  expect_close(y, gy, kElementwiseRtol, "y");
  backend::batchnorm_backward_sums(dy, x, c, mean, invstd, sdy, sdyx);
  backend::batchnorm_backward_sums(gdy, gx, c, gmean, ginv, gsdy, gsdyx);
  expect_close(sdy, gsdy, kGemmRtol, "sum_dy");
  expect_close(sdyx, gsdyx, kGemmRtol, "sum_dy_xhat");
  backend::batchnorm_backward(dy, x, c, mean, invstd, w, sdy, sdyx, 120.0, dx);
  backend::batchnorm_backward(gdy, gx, c, gmean, ginv, gw, on_gpu(sdy), on_gpu(sdyx), 120.0, gdx);
  expect_close(dx, gdx, kGemmRtol, "dx");
  backend::add(x, dy, sum);
  backend::add(gx, gdy, gsum);
  expect_close(sum, gsum, kElementwiseRtol, "add");
}
