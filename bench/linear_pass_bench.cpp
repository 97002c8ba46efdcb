// The products of one LogisticRegression/LinearSVC evaluation on one rank's Fashion-MNIST shard
// (30,000 rows x 784 8-bit codes, 10 outputs), tile by tile as src/ml/linear.cpp runs them:
// Eigen's GEMM (after a decoding pass) against the AVX2/FMA kernels (src/ml/linear_kernels.hpp,
// the margins kernel decoding as it goes), alternating, best of
// ROUNDS; then a STREAM-like triad for the memory bandwidth. No MPI. Usage:
//   build/bench/linear_pass_bench [ROUNDS=7]
#include <Eigen/Core>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "../src/ml/linear_kernels.hpp"

namespace {
using MatF = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using Clock = std::chrono::steady_clock;
constexpr std::int64_t kRows = 30000, kD = 784, kK = 10, kTile = 64;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// One pass: decode each tile, margins, gradient. Returns the seconds taken.
double pass(const std::vector<std::uint8_t>& codes, const Eigen::MatrixXf& Wt, bool kernels, Eigen::MatrixXf& tmp) {
  MatF tile(kTile, kD), M(kTile, kK);
  const auto t0 = Clock::now();
  for (std::int64_t r0 = 0; r0 + kTile <= kRows; r0 += kTile) {
    const std::uint8_t* src = codes.data() + r0 * kD;
#ifdef LOCKSTEP_LINEAR_KERNELS
    if (kernels) {  // the margins kernel decodes the tile as it goes
      lockstep::ml::kernels::margins_codes(src, 1.0f / 255.0f, kTile, kD, Wt.data(), kK, tile.data(), M.data());
      lockstep::ml::kernels::gradient(tile.data(), kTile, kD, M.data(), kK, tmp.data());
      continue;
    }
#endif
    (void)kernels;
    for (std::int64_t i = 0; i < kTile * kD; ++i) tile.data()[i] = static_cast<float>(src[i]) * (1.0f / 255.0f);
    M.noalias() = tile * Wt;
    tmp.noalias() += tile.transpose() * M;
  }
  return seconds_since(t0);
}
}  // namespace

int main(int argc, char** argv) {
  const int rounds = argc > 1 ? std::atoi(argv[1]) : 7;
  std::vector<std::uint8_t> codes(static_cast<std::size_t>(kRows * kD));
  for (std::size_t i = 0; i < codes.size(); ++i) codes[i] = static_cast<std::uint8_t>((i * 2654435761u) >> 24);
  const Eigen::MatrixXf Wt = Eigen::MatrixXf::Random(kD, kK) * 0.01f;
  Eigen::MatrixXf tmp_e = Eigen::MatrixXf::Zero(kD, kK), tmp_k = tmp_e;
  double best_e = 1e30, best_k = 1e30;
  for (int r = 0; r < rounds; ++r) {
    best_e = std::min(best_e, pass(codes, Wt, false, tmp_e));
    best_k = std::min(best_k, pass(codes, Wt, true, tmp_k));
  }
  const double flops = 4.0 * kRows * kD * kK;
  std::printf("pass over %lld x %lld codes, %lld outputs, %lld-row tiles (best of %d, alternating)\n",
              static_cast<long long>(kRows), static_cast<long long>(kD), static_cast<long long>(kK),
              static_cast<long long>(kTile), rounds);
  std::printf("  eigen   %.2f ms  %.1f GFLOP/s\n", best_e * 1e3, flops / best_e / 1e9);
#ifdef LOCKSTEP_LINEAR_KERNELS
  std::printf("  kernels %.2f ms  %.1f GFLOP/s  (x%.2f; max |diff| %.2g)\n", best_k * 1e3, flops / best_k / 1e9,
              best_e / best_k, static_cast<double>((tmp_e - tmp_k).cwiseAbs().maxCoeff() / tmp_e.cwiseAbs().maxCoeff()));
#else
  std::printf("  kernels: not built (no AVX2/FMA)\n");
#endif
  // Triad a = b + s c over 3 x 200 MB.
  const std::size_t n = 50'000'000;
  std::vector<float> a(n), b(n, 1.0f), c(n, 2.0f);
  double best_t = 1e30;
  for (int r = 0; r < 5; ++r) {
    const auto t0 = Clock::now();
    for (std::size_t i = 0; i < n; ++i) a[i] = b[i] + 3.0f * c[i];
    best_t = std::min(best_t, seconds_since(t0));
  }
  std::printf("triad %.1f GB/s (best of 5; %g)\n", 3.0 * 4.0 * static_cast<double>(n) / best_t / 1e9,
              static_cast<double>(a[n / 2]));
  return 0;
}
