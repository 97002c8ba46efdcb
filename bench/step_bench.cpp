// Microbenchmarks of one data-parallel training step's pieces on one rank, for the MLP of
// configs/fmnist_mlp.yaml: forward+backward at the per-rank batch sizes of np = 1, 2 and 4, the
// optimizer update, and the deterministic mode's exact-sum accumulation. Collectives are timed
// by the side-by-side run (bench/fmnist_vs_pytorch.sh), not here.
#include <benchmark/benchmark.h>

#include "lockstep/backend/ops.hpp"
#include "lockstep/comm/gradient_buckets.hpp"
#include "lockstep/nn/layer_registry.hpp"
#include "lockstep/nn/loss.hpp"
#include "lockstep/nn/optimizer.hpp"
#include "lockstep/nn/sequential.hpp"

using namespace lockstep;

namespace {
std::vector<Spec> mlp() {
  const auto dense = [](const char* units) { return nn::layer_spec("dense", {{"units", units}}); };
  return {dense("256"), nn::layer_spec("relu"), dense("128"), nn::layer_spec("relu"), dense("10")};
}
}  // namespace

static void BM_ForwardBackward(benchmark::State& state) {
  const std::int64_t b = state.range(0);
  nn::Sequential model({784}, mlp());
  model.initialize(1, nn::Init::kHeUniform);
  Tensor x({b, 784}), y({b}), dout({b, 10});
  for (std::int64_t i = 0; i < x.numel(); ++i) x.data<float>()[i] = static_cast<float>(i % 255) / 255.0f;
  for (std::int64_t i = 0; i < b; ++i) y.data<float>()[i] = static_cast<float>(i % 10);
  for (auto _ : state) {
    const Tensor& out = model.forward(x, nn::ForwardContext{});
    nn::compute_loss(nn::LossKind::kSoftmaxCrossEntropy, out, y, 1.0f / static_cast<float>(b), &dout);
    model.backward(dout);
    benchmark::DoNotOptimize(model.flat_grads().raw());
  }
  const double flops = 2.0 * static_cast<double>(b) * (784 * 256 + 256 * 128 + 128 * 10) * 3 -
                       2.0 * static_cast<double>(b) * 784 * 256;  // no input gradient for layer 0
  state.counters["GFLOP/s"] =
      benchmark::Counter(flops * static_cast<double>(state.iterations()) / 1e9, benchmark::Counter::kIsRate);
  state.counters["samples/s"] =
      benchmark::Counter(static_cast<double>(b * state.iterations()), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_ForwardBackward)->Arg(16)->Arg(32)->Arg(64);

// The tiled step's work on one rank (tiled_step.hpp): `tiles` tiles of `rows` rows, each forward
// and backward, the owner's gradients summed in place (the second tile on accumulates).
static void BM_TiledForwardBackward(benchmark::State& state) {
  const std::int64_t rows = state.range(0), tiles = state.range(1);
  nn::Sequential model({784}, mlp());
  model.initialize(1, nn::Init::kHeUniform);
  Tensor x({rows, 784}), y({rows}), dout({rows, 10});
  for (std::int64_t i = 0; i < x.numel(); ++i) x.data<float>()[i] = static_cast<float>(i % 255) / 255.0f;
  for (std::int64_t i = 0; i < rows; ++i) y.data<float>()[i] = static_cast<float>(i % 10);
  for (auto _ : state) {
    for (std::int64_t t = 0; t < tiles; ++t) {
      model.set_accumulate_grads(t > 0);
      const Tensor& out = model.forward(x, nn::ForwardContext{});
      nn::compute_loss(nn::LossKind::kSoftmaxCrossEntropy, out, y, 1.0f / static_cast<float>(rows * tiles), &dout);
      model.backward(dout);
    }
    benchmark::DoNotOptimize(model.flat_grads().raw());
  }
  state.counters["samples/s"] =
      benchmark::Counter(static_cast<double>(rows * tiles * state.iterations()), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_TiledForwardBackward)->Args({16, 2})->Args({32, 1})->Args({8, 4});

// Each GEMM of the MLP's dense layers on its own, for the achieved GFLOP/s against the peak that a
// large square product reaches: kind 0 the forward x W, 1 the weight gradient x^T dy, 2 the input
// gradient dy W^T; args: rows, in, out, kind.
static void BM_LayerGemm(benchmark::State& state) {
  const std::int64_t m = state.range(0), in = state.range(1), out = state.range(2), kind = state.range(3);
  Tensor x({m, in}), w({in, out}), dy({m, out}), y({m, out}), dw({in, out}), dx({m, in});
  for (Tensor* t : {&x, &w, &dy})
    for (std::int64_t i = 0; i < t->numel(); ++i) t->data<float>()[i] = static_cast<float>(i % 17) * 0.01f;
  for (auto _ : state) {
    if (kind == 0) backend::gemm(false, false, 1.0f, x, w, 0.0f, y);
    if (kind == 1) backend::gemm(true, false, 1.0f, x, dy, 0.0f, dw);
    if (kind == 2) backend::gemm(false, true, 1.0f, dy, w, 0.0f, dx);
    benchmark::ClobberMemory();
  }
  state.counters["GFLOP/s"] = benchmark::Counter(2.0 * static_cast<double>(m * in * out * state.iterations()) / 1e9,
                                                 benchmark::Counter::kIsRate);
}
BENCHMARK(BM_LayerGemm)
    ->ArgNames({"rows", "in", "out", "kind"})
    ->ArgsProduct({{16, 32}, {784}, {256}, {0, 1, 2}})
    ->ArgsProduct({{16, 32}, {256}, {128}, {0, 1, 2}})
    ->Args({1024, 1024, 1024, 0});

static void BM_SgdNesterovUpdate(benchmark::State& state) {
  nn::Sequential model({784}, mlp());
  auto opt = nn::make_optimizer({"sgd", 0.05, 0.9, true, 0.0}, model.num_params());
  for (auto _ : state) opt->step(model.flat_params(), model.flat_grads(), 0.05, 0.5);
  state.counters["params/s"] =
      benchmark::Counter(static_cast<double>(model.num_params() * state.iterations()), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_SgdNesterovUpdate);

static void BM_ExactSumAdd(benchmark::State& state) {
  const std::int64_t n = 235146;
  comm::ExactGradientSum sum(n);
  std::vector<float> g(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i) g[static_cast<std::size_t>(i)] = 1e-3f * static_cast<float>(i % 97 - 48);
  for (auto _ : state) {
    sum.add(g.data());
    if (state.iterations() % 1000 == 0) sum.reset();
  }
  state.counters["params/s"] =
      benchmark::Counter(static_cast<double>(n * state.iterations()), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_ExactSumAdd);

BENCHMARK_MAIN();
