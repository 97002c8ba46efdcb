// The sliding-window ops (im2col, col2im, max and average pooling) and a whole Conv2d layer
// (im2col with cuBLAS GEMMs) on the CUDA backend against the CPU backend, on geometries with
// stride, padding, dilation and non-square kernels. Without a CUDA device each test skips itself.
#include <gtest/gtest.h>

#include <cmath>

#include "lockstep/backend/cuda_runtime.hpp"
#include "lockstep/backend/ops.hpp"
#include "lockstep/core/rng.hpp"
#include "lockstep/nn/layer_registry.hpp"

using namespace lockstep;

namespace {

constexpr double kSumRtol = 1e-6;   // the same functor, summing in the same order
constexpr double kGemmRtol = 1e-4;  // cuBLAS and Eigen sum in different orders

Tensor random_tensor(Shape shape, std::uint64_t seed) {
  Tensor t(std::move(shape));
  CounterRng rng(seed, RngStream::kUser, 0);
  for (auto& x : t.span<float>()) x = 2.0f * rng.uniform() - 1.0f;
  return t;
}

void expect_close(const Tensor& cpu, const Tensor& gpu_result, double rtol, const std::string& what) {
  const Tensor g = gpu_result.clone(Device::kCpu);
  ASSERT_EQ(cpu.numel(), g.numel()) << what;
  double scale = 1e-6;
  for (float x : cpu.span<float>()) scale = std::max(scale, std::fabs(static_cast<double>(x)));
  for (std::int64_t i = 0; i < cpu.numel(); ++i) {
    const double a = cpu.data<float>()[i], b = g.data<float>()[i];
    ASSERT_LE(std::fabs(a - b), rtol * scale) << what << "[" << i << "]: cpu " << a << ", cuda " << b;
  }
}

backend::Window2d window(std::int64_t c, std::int64_t h, std::int64_t w, std::int64_t k, std::int64_t kw,
                         std::int64_t s, std::int64_t p, std::int64_t d) {
  backend::Window2d g;
  g.channels = c, g.height = h, g.width = w, g.kernel_h = k, g.kernel_w = kw, g.stride_h = s, g.stride_w = s;
  g.pad_h = p, g.pad_w = p, g.dilation_h = d, g.dilation_w = d;
  g.out_h = (h + 2 * p - d * (k - 1) - 1) / s + 1;
  g.out_w = (w + 2 * p - d * (kw - 1) - 1) / s + 1;
  return g;
}

std::vector<backend::Window2d> windows() {
  return {window(3, 9, 8, 3, 3, 1, 1, 1), window(2, 11, 10, 3, 2, 2, 1, 1), window(4, 12, 12, 3, 3, 1, 2, 2),
          window(1, 7, 9, 2, 2, 2, 0, 1)};
}

class CudaWindowOps : public ::testing::Test {
 protected:
  void SetUp() override {
    if (backend::cuda::device_count() == 0) {
      GTEST_SKIP() << "no CUDA device (" << backend::cuda::runtime_info().error << ")";
    }
    backend::cuda::init_device(0);
  }
};

}  // namespace

TEST_F(CudaWindowOps, Im2colAndCol2im) {
  constexpr std::int64_t kRows = 3;
  for (const auto& g : windows()) {
    const Tensor x = random_tensor({kRows, g.channels, g.height, g.width}, 1);
    Tensor col({kRows, g.col_rows(), g.out_plane()}), gcol(col.shape(), DType::kF32, Device::kCuda);
    backend::im2col(x, g, col);
    backend::im2col(x.clone(Device::kCuda), g, gcol);
    expect_close(col, gcol, 0.0, "im2col");
    const Tensor dcol = random_tensor(col.shape(), 2);
    Tensor dx(x.shape()), gdx(x.shape(), DType::kF32, Device::kCuda);
    backend::col2im(dcol, g, dx);
    backend::col2im(dcol.clone(Device::kCuda), g, gdx);
    expect_close(dx, gdx, kSumRtol, "col2im");
  }
}

TEST_F(CudaWindowOps, MaxAndAveragePooling) {
  constexpr std::int64_t kRows = 2;
  for (auto g : windows()) {
    g.dilation_h = g.dilation_w = 1;  // pooling has no dilation
    g.pad_h = std::min(g.pad_h, g.kernel_h / 2), g.pad_w = std::min(g.pad_w, g.kernel_w / 2);
    g.out_h = (g.height + 2 * g.pad_h - g.kernel_h) / g.stride_h + 1;
    g.out_w = (g.width + 2 * g.pad_w - g.kernel_w) / g.stride_w + 1;
    const Tensor x = random_tensor({kRows, g.channels, g.height, g.width}, 3);
    const Shape ys{kRows, g.channels, g.out_h, g.out_w};
    const Tensor dy = random_tensor(ys, 4);
    Tensor y(ys), arg(ys, DType::kI32), dx(x.shape());
    Tensor gy(ys, DType::kF32, Device::kCuda), garg(ys, DType::kI32, Device::kCuda),
        gdx(x.shape(), DType::kF32, Device::kCuda);
    const Tensor gx = x.clone(Device::kCuda), gdy = dy.clone(Device::kCuda);
    backend::max_pool_forward(x, g, y, arg);
    backend::max_pool_forward(gx, g, gy, garg);
    expect_close(y, gy, 0.0, "max_pool_forward");
    backend::max_pool_backward(dy, arg, g, dx);
    backend::max_pool_backward(gdy, garg, g, gdx);
    expect_close(dx, gdx, kSumRtol, "max_pool_backward");
    backend::avg_pool_forward(x, g, y);
    backend::avg_pool_forward(gx, g, gy);
    expect_close(y, gy, kSumRtol, "avg_pool_forward");
    backend::avg_pool_backward(dy, g, dx);
    backend::avg_pool_backward(gdy, g, gdx);
    expect_close(dx, gdx, kSumRtol, "avg_pool_backward");
  }
}

TEST_F(CudaWindowOps, Conv2dLayerForwardAndBackward) {
  // The same layer config on each device: groups 2, stride 2, same padding, bias.
  Spec s;
  s.type = "conv2d";
  s.where = "test";
  for (auto [k, v] : std::vector<std::pair<std::string, std::string>>{
           {"filters", "6"}, {"kernel", "3"}, {"stride", "2"}, {"padding", "same"}, {"groups", "2"}})
    s.params[k] = Param{{v}, false, "test." + k};
  const Shape in{4, 9, 10};
  const Tensor x = random_tensor({3, 4, 9, 10}, 5);
  std::vector<Tensor> results[2];
  for (int dev = 0; dev < 2; ++dev) {
    const Device d = dev == 0 ? Device::kCpu : Device::kCuda;
    auto layer = nn::make_layer(s, 0);
    const Shape out = layer->output_shape(in);
    const auto specs = layer->param_specs(in);
    std::vector<nn::Parameter> params(specs.size());
    std::vector<nn::Parameter*> ptrs;
    for (std::size_t i = 0; i < specs.size(); ++i) {
      params[i].spec = specs[i];
      params[i].value = random_tensor(specs[i].shape, 10 + i).clone(d);
      params[i].grad = Tensor(specs[i].shape, DType::kF32, d);
      params[i].compute = params[i].value;
      ptrs.push_back(&params[i]);
    }
    layer->bind(ptrs);
    Tensor y({3, out[0], out[1], out[2]}, DType::kF32, d), dx(x.shape(), DType::kF32, d);
    layer->forward(x.clone(d), y, nn::ForwardContext{});
    layer->backward(random_tensor(y.shape(), 6).clone(d), &dx);
    results[dev] = {y.clone(Device::kCpu), dx.clone(Device::kCpu), params[0].grad.clone(Device::kCpu),
                    params[1].grad.clone(Device::kCpu)};
  }
  const char* names[] = {"y", "dx", "dW", "db"};
  for (std::size_t i = 0; i < 4; ++i) expect_close(results[0][i], results[1][i], kGemmRtol, names[i]);
}
