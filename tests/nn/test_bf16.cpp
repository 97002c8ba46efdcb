// bf16 mixed precision on the CPU backend (the rounding itself is tested in tests/core): the ops
// (float32 arithmetic, one rounding when a bf16 result is stored) and a whole model, whose bf16 forward and backward
// must track the float32 ones to within bf16's precision while the float32 master weights stay as they were. The CUDA
// tests compare the GPU's bf16 kernels with this.
#include <gtest/gtest.h>

#include <cmath>

#include "lockstep/backend/ops.hpp"
#include "lockstep/core/bfloat16.hpp"
#include "lockstep/nn/layer_registry.hpp"
#include "lockstep/nn/sequential.hpp"
#include "nn_test_util.hpp"

using namespace lockstep;
using namespace lockstep::nn;
using lockstep::testing::make_tensor;
using lockstep::testing::uniform_floats;

namespace {

Tensor to_bf16(const Tensor& t) {
  Tensor b(t.shape(), DType::kBF16);
  backend::cast(t, b);
  return b;
}
Tensor to_f32(const Tensor& t) {
  Tensor f(t.shape());
  backend::cast(t, f);
  return f;
}
double max_abs(const Tensor& t) {
  double m = 0.0;
  for (float x : t.span<float>()) m = std::max(m, std::fabs(static_cast<double>(x)));
  return m;
}
double max_diff(const Tensor& a, const Tensor& b) {
  double m = 0.0;
  for (std::int64_t i = 0; i < a.numel(); ++i)
    m = std::max(m, std::fabs(static_cast<double>(a.data<float>()[i]) - b.data<float>()[i]));
  return m;
}
constexpr double kBf16Eps = 1.0 / 128;  // spacing of bf16 values in [1, 2): 7 mantissa bits

}  // namespace

TEST(Bf16, OpsComputeInFloatAndRoundTheStoredResultOnce) {
  const Tensor a = make_tensor({6, 40}, uniform_floats(240, -1.0f, 1.0f, 1));
  const Tensor b = make_tensor({40, 5}, uniform_floats(200, -1.0f, 1.0f, 2));
  const Tensor a16 = to_bf16(a), b16 = to_bf16(b);
  // Reference: the exact product of the bf16-rounded inputs, in double.
  const Tensor ra = to_f32(a16), rb = to_f32(b16);
  Tensor c32({6, 5}), c16({6, 5}, DType::kBF16);
  backend::gemm(false, false, 1.0f, a16, b16, 0.0f, c32);  // bf16 inputs, float32 output
  backend::gemm(false, false, 1.0f, a16, b16, 0.0f, c16);  // bf16 inputs, bf16 output
  const Tensor c16f = to_f32(c16);
  for (std::int64_t i = 0; i < 6; ++i) {
    for (std::int64_t j = 0; j < 5; ++j) {
      double ref = 0.0;
      for (std::int64_t k = 0; k < 40; ++k) ref += double(ra.data<float>()[i * 40 + k]) * rb.data<float>()[k * 5 + j];
      EXPECT_NEAR(c32.data<float>()[i * 5 + j], ref, 1e-5) << i << "," << j;
      // One rounding: within half a bf16 step of the float32 result.
      const float f = c32.data<float>()[i * 5 + j];
      EXPECT_LE(std::fabs(c16f.data<float>()[i * 5 + j] - f), std::fabs(f) * kBf16Eps / 2 + 1e-30) << i << "," << j;
    }
  }
  // Element-wise ops read bf16, compute in float and store bf16.
  Tensor y16({6, 40}, DType::kBF16);
  backend::activation_forward(backend::Activation::kTanh, a16, y16);
  const Tensor y = to_f32(y16);
  for (std::int64_t i = 0; i < a.numel(); ++i)
    ASSERT_EQ(y.data<float>()[i], round_bf16(std::tanh(ra.data<float>()[i]))) << i;
  // Losses read bf16 logits and write bf16 gradients.
  const Tensor labels = make_tensor({6}, {0, 1, 2, 3, 4, 0});
  Tensor d32({6, 5}), d16({6, 5}, DType::kBF16);
  const auto r32 = backend::softmax_cross_entropy(c16f, labels, 0.5f, &d32);
  const auto r16 = backend::softmax_cross_entropy(c16, labels, 0.5f, &d16);
  EXPECT_DOUBLE_EQ(r16.loss, r32.loss);
  EXPECT_EQ(r16.correct, r32.correct);
  const Tensor d16f = to_f32(d16);
  for (std::int64_t i = 0; i < d32.numel(); ++i) ASSERT_EQ(d16f.data<float>()[i], round_bf16(d32.data<float>()[i]));
}

TEST(Bf16, OptimizersTakeBf16GradientsIntoFloat32State) {
  const Tensor g = make_tensor({50}, uniform_floats(50, -1.0f, 1.0f, 3));
  const Tensor g16 = to_bf16(g), g_rounded = to_f32(g16);
  Tensor w1 = make_tensor({50}, uniform_floats(50, -1.0f, 1.0f, 4)), w2 = w1.clone();
  Tensor v1({50}), v2({50}), m1({50}), m2({50});
  backend::sgd_update(w1, g16, v1, 0.1f, 0.9f, 1e-4f, true, 0.5f);
  backend::sgd_update(w2, g_rounded, v2, 0.1f, 0.9f, 1e-4f, true, 0.5f);
  EXPECT_EQ(max_diff(w1, w2), 0.0);
  backend::adam_update(w1, g16, m1, v1, 1e-3, 0.9, 0.999, 1e-8, 0.01, true, 1, 1.0);
  backend::adam_update(w2, g_rounded, m2, v2, 1e-3, 0.9, 0.999, 1e-8, 0.01, true, 1, 1.0);
  EXPECT_EQ(max_diff(w1, w2), 0.0);
}

TEST(Bf16, MixedPrecisionModelTracksFloat32AndKeepsMasterWeights) {
  const std::vector<lockstep::Spec> specs{
      nn::layer_spec("dense", {{"units", "32"}}), nn::layer_spec("relu"), nn::layer_spec("dropout", {{"rate", "0.25"}}),
      nn::layer_spec("dense", {{"units", "16"}}), nn::layer_spec("tanh"), nn::layer_spec("dense", {{"units", "5"}})};
  Sequential ref({20}, specs);
  ref.initialize(5, Init::kHeUniform);
  for (DType grads : {DType::kF32, DType::kBF16}) {
    Sequential m({20}, specs);
    m.flat_params().copy_from(ref.flat_params());
    m.set_precision(DType::kBF16, grads);
    EXPECT_EQ(m.compute_dtype(), DType::kBF16);
    EXPECT_EQ(m.grad_dtype(), grads);
    const Tensor master = m.flat_params().clone();

    const Tensor x = make_tensor({8, 20}, uniform_floats(160, -1.0f, 1.0f, 6));
    const std::vector<std::int64_t> ids{0, 1, 2, 3, 4, 5, 6, 7};
    const ForwardContext ctx{true, 3, 0, ids.data()};
    const Tensor out32 = ref.forward(x, ctx).clone();
    const Tensor& out = m.forward(x, ctx);
    ASSERT_EQ(out.dtype(), DType::kBF16);
    const Tensor out16 = to_f32(out);
    // Three layers, each rounding its inputs and outputs to 8 significant bits.
    EXPECT_LE(max_diff(out16, out32), 0.05 * max_abs(out32));
    EXPECT_EQ(max_diff(m.flat_params(), master), 0.0) << "forward changed the master weights";

    // Backward from the same loss gradient: parameter gradients agree to bf16 precision.
    const Tensor labels = make_tensor({8}, {0, 1, 2, 3, 4, 0, 1, 2});
    Tensor d32({8, 5}), d16({8, 5}, DType::kBF16);
    backend::softmax_cross_entropy(out32, labels, 1.0f / 8, &d32);
    backend::softmax_cross_entropy(out, labels, 1.0f / 8, &d16);
    ref.backward(d32);
    m.backward(d16);
    const Tensor g = to_f32(m.flat_grads());
    double num = 0.0, den = 0.0;
    for (std::int64_t i = 0; i < g.numel(); ++i) {
      const double e = double(g.data<float>()[i]) - ref.flat_grads().data<float>()[i];
      num += e * e;
      den += double(ref.flat_grads().data<float>()[i]) * ref.flat_grads().data<float>()[i];
    }
    EXPECT_LT(std::sqrt(num / den), 0.05) << "relative L2 error of bf16 gradients (" << dtype_name(grads) << ")";
    EXPECT_GT(den, 0.0);
  }
}

TEST(Bf16, PrecisionChoicesAreChecked) {
  Sequential m({4}, {nn::layer_spec("dense", {{"units", "2"}})});
  EXPECT_THROW(m.set_precision(DType::kF32, DType::kBF16), ConfigError);  // bf16 grads need bf16 compute
  EXPECT_THROW(m.set_precision(DType::kF64, DType::kF32), ConfigError);
  m.set_precision(DType::kBF16, DType::kBF16);
  float p[64], g[64];
  EXPECT_THROW(m.relocate(p, g, true), Error);  // the shared window holds float32 gradients
}
