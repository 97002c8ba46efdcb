// LinearSVC by dual coordinate descent, distributed the CoCoA+ way.
//
// Each one-vs-rest problem, scaled by 1/regParam, is liblinear's primal
//   min_w 1/2 |w|^2 + sum_i C_i max(0, 1 - t_i w.x_i),  C_i = w_i / (regParam W),
// x_i the row in the working space, centred, with a bias feature B appended (the intercept of the
// centred rows is the bias coordinate times B, penalised as in liblinear; see setup()), and its dual max_a sum_i a_i -
// 1/2 |sum_i a_i t_i x_i|^2 over 0 <= a_i <= C_i. The rows are cut into `blocks` blocks of contiguous global rows; a
// round visits every row once: each block runs dual coordinate descent over its rows in an order keyed by (block,
// round), against a local copy u = w + sigma dw of the round's w with the curvature scaled by sigma = blocks (CoCoA+'s
// safe subproblem), then the blocks' dw are added (one allreduce), scaled by the step in [0, 1] that maximises the dual
// along them (1 in practice). A block is processed whole by one rank (rows move once at the start when the frame's
// shards cut blocks), so the iterates depend on the number of ranks only through the allreduce's rounding. All classes
// share a row's pass: one decode, K margins, then each class's coordinate step. After the last round one pass computes
// the margins, the intercepts are re-optimised exactly for Spark's objective (where the intercept is free) and that
// objective is reported.
#include "svm_dual_cd.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "linear_kernels.hpp"
#include "lockstep/core/rng.hpp"

namespace lockstep::ml::detail {
namespace {

constexpr std::uint64_t kSeed = 0x44434456ull;  // the coordinate orders' key ("DCDV")
constexpr int kBisections = 40;                 // intercept search: the bracket shrinks by 2^-40

struct Range {
  std::int64_t lo = 0, hi = 0;
  std::int64_t size() const { return hi - lo; }
};
std::int64_t overlap(Range a, Range b) {
  return std::max<std::int64_t>(0, std::min(a.hi, b.hi) - std::max(a.lo, b.lo));
}
Range block_rows(std::int64_t n, int blocks, int b) {
  return {n * b / blocks, n * (b + 1) / blocks};
}
// Blocks [first, second) belong to rank r: contiguous, balanced.
std::pair<int, int> rank_blocks(int blocks, int ranks, int r) {
  return {static_cast<int>(std::int64_t{blocks} * r / ranks), static_cast<int>(std::int64_t{blocks} * (r + 1) / ranks)};
}

// Rows of the frame's shards (from, in rank order) moved to the ranks' target ranges (to): both
// partition the global rows in order, so what a rank sends is its shard and what it receives its
// target range, each in order.
template <typename T>
std::vector<T> move_rows(comm::Communicator& c, const T* src, std::int64_t per_row, const std::vector<Range>& from,
                         const std::vector<Range>& to) {
  const auto P = static_cast<std::size_t>(c.size()), r = static_cast<std::size_t>(c.rank());
  std::vector<std::size_t> sc(P), rc(P);
  const auto bytes = static_cast<std::size_t>(per_row) * sizeof(T);
  for (std::size_t q = 0; q < P; ++q) {
    sc[q] = static_cast<std::size_t>(overlap(from[r], to[q])) * bytes;
    rc[q] = static_cast<std::size_t>(overlap(from[q], to[r])) * bytes;
  }
  std::vector<T> out(static_cast<std::size_t>(to[r].size() * per_row));
  c.alltoallv(src, sc, out.data(), rc);
  return out;
}

// This rank's rows (its blocks'), as stored: 8-bit codes or float32, with labels and weights.
struct Rows {
  Range range;  // global rows
  std::int64_t d = 0;
  const std::uint8_t* codes = nullptr;  // one of codes, x
  const float* x = nullptr;
  const double* y = nullptr;
  const double* w = nullptr;
  std::vector<float> scale;  // working value of feature j: stored value * scale[j] - shift[j]
  std::vector<float> shift;  // the working space's feature means (features are centred)
  std::vector<std::uint8_t> own_codes;
  std::vector<float> own_x;
  std::vector<double> own_y, own_w;
  RowMatrix dense;  // a sparse frame's rows, densified

  // Local row i in the working space.
  void decode(std::int64_t i, float* out) const {
    const float* s = scale.data();
    const float* mu = shift.data();
    if (codes != nullptr) {
      const std::uint8_t* c = codes + i * d;
      for (std::int64_t j = 0; j < d; ++j) out[j] = static_cast<float>(c[j]) * s[j] - mu[j];
    } else {
      const float* v = x + i * d;
      for (std::int64_t j = 0; j < d; ++j) out[j] = v[j] * s[j] - mu[j];
    }
  }
};

Rows gather_rows(const Frame& f, const CompactFeatures& codes, const DualCdProblem& p, int blocks) {
  comm::Communicator& c = f.comm();
  const int P = c.size();
  Rows rows;
  rows.d = f.num_features();
  std::vector<Range> from, to;
  const auto offsets = c.allgather<std::int64_t>(f.row_offset());
  const auto counts = c.allgather<std::int64_t>(f.rows());
  for (int q = 0; q < P; ++q) {
    from.push_back({offsets[static_cast<std::size_t>(q)],
                    offsets[static_cast<std::size_t>(q)] + counts[static_cast<std::size_t>(q)]});
    const auto [b0, b1] = rank_blocks(blocks, P, q);
    to.push_back({block_rows(f.global_rows(), blocks, b0).lo, block_rows(f.global_rows(), blocks, b1).lo});
  }
  rows.range = to[static_cast<std::size_t>(c.rank())];
  bool aligned = true;  // the same verdict on every rank: every rank sees every range
  for (int q = 0; q < P; ++q)
    aligned = aligned && (from[static_cast<std::size_t>(q)].lo == to[static_cast<std::size_t>(q)].lo &&
                          from[static_cast<std::size_t>(q)].hi == to[static_cast<std::size_t>(q)].hi);
  if (f.is_sparse()) rows.dense = f.to_dense();
  const float* xf = f.is_sparse() ? rows.dense.data() : f.dense_features().data();
  if (aligned) {
    if (!codes.empty())
      rows.codes = codes.codes.data();
    else
      rows.x = xf;
    rows.y = f.label().data();
    rows.w = f.weight().data();
  } else {
    if (!codes.empty()) {
      rows.own_codes = move_rows(c, codes.codes.data(), rows.d, from, to);
      rows.codes = rows.own_codes.data();
    } else {
      rows.own_x = move_rows(c, xf, rows.d, from, to);
      rows.x = rows.own_x.data();
    }
    rows.own_y = move_rows(c, f.label().data(), 1, from, to);
    rows.own_w = move_rows(c, f.weight().data(), 1, from, to);
    rows.y = rows.own_y.data();
    rows.w = rows.own_w.data();
  }
  rows.scale.resize(static_cast<std::size_t>(rows.d));
  rows.shift.assign(static_cast<std::size_t>(rows.d), 0.0f);
  const double s = codes.empty() ? 1.0 : static_cast<double>(codes.scale);
  for (std::int64_t j = 0; j < rows.d; ++j) {
    rows.scale[static_cast<std::size_t>(j)] = static_cast<float>(s * p.inv_std[j]);
    if (p.fit_intercept) rows.shift[static_cast<std::size_t>(j)] = static_cast<float>(p.mean[j] * p.inv_std[j]);
  }
  return rows;
}

#ifdef LOCKSTEP_LINEAR_KERNELS
// m[k] = x . u_k for G rows of u (row-major, d columns): x is loaded once for all G.
template <typename S, int G>
void dots(const float* x, const float* u, std::int64_t d, float* m) {
  typename S::V a[G];
  for (int k = 0; k < G; ++k) a[k] = S::zero();
  const std::int64_t dv = d - d % S::kW;
  for (std::int64_t j = 0; j < dv; j += S::kW) {
    const auto xv = S::load(x + j);
    for (int k = 0; k < G; ++k) a[k] = S::fma(xv, S::load(u + k * d + j), a[k]);
  }
  for (int k = 0; k < G; ++k) {
    float t = S::hsum(a[k]);
    for (std::int64_t j = dv; j < d; ++j) t += x[j] * u[k * d + j];
    m[k] = t;
  }
}
#endif

// m[k] = x . u_k for the K rows of u (K x d, row-major).
void margins(const float* x, const float* u, std::int64_t d, std::int64_t K, float* m) {
#ifdef LOCKSTEP_LINEAR_KERNELS
  using S = kernels::Isa;
  std::int64_t k = 0;
  for (; k + 10 <= K; k += 10) dots<S, 10>(x, u + k * d, d, m + k);
  for (; k + 4 <= K; k += 4) dots<S, 4>(x, u + k * d, d, m + k);
  for (; k < K; ++k) dots<S, 1>(x, u + k * d, d, m + k);
#else
  for (std::int64_t k = 0; k < K; ++k) {
    float s = 0.0f;
    for (std::int64_t j = 0; j < d; ++j) s += x[j] * u[k * d + j];
    m[k] = s;
  }
#endif
}

// u_k += c x for the n (k, c) listed: x is loaded once for all of them (on Fashion-MNIST about 6
// of a row's 10 classes step in a round, and the updates were half a round's instructions).
void axpys(const float* x, const std::int64_t* ks, const float* cs, int n, float* u, std::int64_t d) {
  if (n == 0) return;
  std::int64_t j0 = 0;
#ifdef LOCKSTEP_LINEAR_KERNELS
  using S = kernels::Isa;
  for (; j0 + S::kW <= d; j0 += S::kW) {
    const auto xv = S::load(x + j0);
    for (int s = 0; s < n; ++s) {
      float* p = u + ks[s] * d + j0;
      S::store(p, S::fma(S::bcast(cs + s), xv, S::load(p)));
    }
  }
#endif
  for (int s = 0; s < n; ++s)
    for (std::int64_t j = j0; j < d; ++j) u[ks[s] * d + j] += cs[s] * x[j];
}

struct Solver {
  Solver(const Rows& r, const DualCdProblem& problem, comm::Communicator& c) : rows(r), p(problem), comm_(&c) {}
  const Rows& rows;
  const DualCdProblem& p;
  std::int64_t N = 0, d = 0, K = 1;
  int blocks = 1, first = 0, last = 0;  // this rank's blocks [first, last)
  double bias = 0.0;                    // B, 0 without an intercept
  std::vector<double> wd;               // K x (d + 1): coefficients (working space), bias coordinate
  std::vector<double> alpha;            // local rows x K
  std::vector<double> box;              // C_i per local row
  std::vector<float> q;                 // sigma (|x_i|^2 + B^2) per local row
  std::vector<float> u, x;              // a block's local copy of w; one decoded row
  std::vector<double> ub;               // its bias coordinates

  double target(std::int64_t i, std::int64_t k) const {
    const double y = rows.y[i];
    return K == 1 ? (y == 1.0 ? 1.0 : -1.0) : (y == static_cast<double>(k) ? 1.0 : -1.0);
  }

  // Box bounds, and the curvatures sigma (|x_i|^2 + B^2) once B is known: half the root mean
  // square norm of the (centred) rows with weight > 0. On Fashion-MNIST (regParam 1e-3, 8 blocks)
  // B = 4.1 reaches scikit-learn's objective in ~45 rounds, B = 1 (liblinear's) in more than 100:
  // a small B penalises the intercept (re-optimised exactly at the end, but the coefficients
  // have grown around the penalised one) and a large one slows the other coordinates.
  void setup(bool fit_intercept) {
    const std::int64_t n = rows.range.size();
    wd.assign(static_cast<std::size_t>(K * (d + 1)), 0.0);
    alpha.assign(static_cast<std::size_t>(n * K), 0.0);
    box.resize(static_cast<std::size_t>(n));
    q.resize(static_cast<std::size_t>(n));
    x.resize(static_cast<std::size_t>(d));
    u.resize(static_cast<std::size_t>(K * d));
    ub.resize(static_cast<std::size_t>(K));
    double moments[2] = {0.0, 0.0};  // sum of |x_i|^2 and count, over rows with weight > 0
    for (std::int64_t i = 0; i < n; ++i) {
      rows.decode(i, x.data());
      double sq = 0.0;
      for (std::int64_t j = 0; j < d; ++j)
        sq += static_cast<double>(x[static_cast<std::size_t>(j)]) * x[static_cast<std::size_t>(j)];
      q[static_cast<std::size_t>(i)] = static_cast<float>(sq);
      box[static_cast<std::size_t>(i)] = rows.w[i] / (p.reg * p.weight_sum);
      if (rows.w[i] > 0) moments[0] += sq, moments[1] += 1.0;
    }
    rows_comm().allreduce(std::span<double>(moments, 2), comm::ReduceOp::kSum);
    bias = fit_intercept ? std::max(1.0, 0.5 * std::sqrt(moments[0] / std::max(moments[1], 1.0))) : 0.0;
    for (auto& v : q) v = static_cast<float>(blocks * (static_cast<double>(v) + bias * bias));
  }

  // Coordinate steps over block b's rows in round t's order; adds the block's dw to delta
  // (K x (d + 1)) and returns the change of sum a_i.
  double block_pass(int b, int t, std::vector<double>& delta) {
    const Range br = block_rows(N, blocks, b);
    for (std::int64_t k = 0; k < K; ++k) {
      for (std::int64_t j = 0; j < d; ++j)
        u[static_cast<std::size_t>(k * d + j)] = static_cast<float>(wd[static_cast<std::size_t>(k * (d + 1) + j)]);
      ub[static_cast<std::size_t>(k)] = wd[static_cast<std::size_t>(k * (d + 1) + d)];
    }
    std::vector<std::int64_t> order(static_cast<std::size_t>(br.size()));
    std::iota(order.begin(), order.end(), br.lo - rows.range.lo);
    CounterRng g(kSeed, RngStream::kPermutation, static_cast<std::uint64_t>(b), static_cast<std::uint64_t>(t));
    for (std::size_t j = order.size(); j > 1; --j) std::swap(order[j - 1], order[g.below(j)]);
    float m[64], step_c[64];
    std::int64_t step_k[64];
    int nsteps = 0;
    double dsum = 0.0;
    const double sigma = blocks;
    for (const std::int64_t i : order) {
      const double C = box[static_cast<std::size_t>(i)];
      if (!(C > 0)) continue;
      rows.decode(i, x.data());
      for (std::int64_t k0 = 0; k0 < K; k0 += 64) {
        const std::int64_t kn = std::min<std::int64_t>(64, K - k0);
        margins(x.data(), u.data() + k0 * d, d, kn, m);
        for (std::int64_t kk = 0; kk < kn; ++kk) {
          const std::int64_t k = k0 + kk;
          const double tk = target(i, k);
          double& a = alpha[static_cast<std::size_t>(i * K + k)];
          const double G = tk * (m[kk] + ub[static_cast<std::size_t>(k)] * bias) - 1.0;
          const double na = std::clamp(a - G / q[static_cast<std::size_t>(i)], 0.0, C);
          if (na == a) continue;
          const double cstep = sigma * (na - a) * tk;
          dsum += na - a;
          a = na;
          step_k[nsteps] = k;
          step_c[nsteps++] = static_cast<float>(cstep);
          ub[static_cast<std::size_t>(k)] += cstep * bias;
        }
        axpys(x.data(), step_k, step_c, nsteps, u.data(), d);
        nsteps = 0;
      }
    }
    for (std::int64_t k = 0; k < K; ++k) {
      for (std::int64_t j = 0; j < d; ++j) {
        const auto at = static_cast<std::size_t>(k * (d + 1) + j);
        delta[at] += (static_cast<double>(u[static_cast<std::size_t>(k * d + j)]) - static_cast<float>(wd[at])) / sigma;
      }
      const auto at = static_cast<std::size_t>(k * (d + 1) + d);
      delta[at] += (ub[static_cast<std::size_t>(k)] - wd[at]) / sigma;
    }
    return dsum;
  }

  // One round; returns the dual objective (scaled by regParam, like Spark's primal).
  double round(int t, double& sum_alpha) {
    std::vector<double> buf(static_cast<std::size_t>(K * (d + 1) + 1), 0.0);
    alpha_start = alpha;
    for (int b = first; b < last; ++b) buf.back() += block_pass(b, t, buf);
    rows_comm().allreduce(std::span<double>(buf.data(), buf.size()), comm::ReduceOp::kSum);
    // The dual along the combined step, sum a + g dS - 1/2 |w + g dw|^2, is a concave quadratic
    // in g: its maximiser on [0, 1] (both ends in the box).
    double wdw = 0.0, dwdw = 0.0;
    for (std::size_t i = 0; i < wd.size(); ++i) wdw += wd[i] * buf[i], dwdw += buf[i] * buf[i];
    const double gamma = dwdw > 0 ? std::clamp((buf.back() - wdw) / dwdw, 0.0, 1.0) : 1.0;
    double sq = 0.0;
    for (std::size_t i = 0; i < wd.size(); ++i) {
      wd[i] += gamma * buf[i];
      sq += wd[i] * wd[i];
    }
    if (gamma != 1.0)
      for (std::size_t i = 0; i < alpha.size(); ++i) alpha[i] = alpha_start[i] + gamma * (alpha[i] - alpha_start[i]);
    sum_alpha += gamma * buf.back();
    return p.reg * (sum_alpha - 0.5 * sq);
  }
  std::vector<double> alpha_start;

  comm::Communicator* comm_;
  comm::Communicator& rows_comm() const { return *comm_; }

  // Local rows x K margins at w (bias coordinate excluded).
  std::vector<float> final_margins() {
    const std::int64_t n = rows.range.size();
    std::vector<float> M(static_cast<std::size_t>(n * K));
    for (std::int64_t k = 0; k < K; ++k)
      for (std::int64_t j = 0; j < d; ++j)
        u[static_cast<std::size_t>(k * d + j)] = static_cast<float>(wd[static_cast<std::size_t>(k * (d + 1) + j)]);
    for (std::int64_t i = 0; i < n; ++i) {
      rows.decode(i, x.data());
      for (std::int64_t k0 = 0; k0 < K; k0 += 64)
        margins(x.data(), u.data() + k0 * d, d, std::min<std::int64_t>(64, K - k0), M.data() + i * K + k0);
    }
    return M;
  }

  // Allreduced weighted hinge sums per class at intercepts b.
  Vec hinge(const std::vector<float>& M, const Vec& b) const {
    Vec h = Vec::Zero(K);
    for (std::int64_t i = 0; i < rows.range.size(); ++i)
      for (std::int64_t k = 0; k < K; ++k)
        h[k] += rows.w[i] * std::max(0.0, 1.0 - target(i, k) * (M[static_cast<std::size_t>(i * K + k)] + b[k]));
    rows_comm().allreduce(std::span<double>(h.data(), static_cast<std::size_t>(K)), comm::ReduceOp::kSum);
    return h;
  }

  // Per class, the intercept minimising the weighted hinge sum (the penalty does not involve it):
  // bisection on the sign of its slope, between the smallest and largest kink t_i - m_i. Row i
  // is on its hinge's sloped side at b when w_i t_i (kink_i - b) > 0; per class, the kinks and
  // w_i t_i are laid out contiguously so the slope's loop vectorises.
  Vec best_intercepts(const std::vector<float>& M) const {
    const std::int64_t n = rows.range.size();
    std::vector<double> kink(static_cast<std::size_t>(n * K)), tw(kink.size());
    Vec lo = Vec::Constant(K, INFINITY), hi = Vec::Constant(K, -INFINITY);
    for (std::int64_t k = 0; k < K; ++k)
      for (std::int64_t i = 0; i < n; ++i) {
        const double tk = target(i, k), v = tk - M[static_cast<std::size_t>(i * K + k)];
        kink[static_cast<std::size_t>(k * n + i)] = v;
        tw[static_cast<std::size_t>(k * n + i)] = tk * rows.w[i];
        lo[k] = std::min(lo[k], v);
        hi[k] = std::max(hi[k], v);
      }
    rows_comm().allreduce(std::span<double>(lo.data(), static_cast<std::size_t>(K)), comm::ReduceOp::kMin);
    rows_comm().allreduce(std::span<double>(hi.data(), static_cast<std::size_t>(K)), comm::ReduceOp::kMax);
    for (int it = 0; it < kBisections; ++it) {
      const Vec mid = (lo + hi) / 2;
      Vec slope = Vec::Zero(K);  // of the weighted hinge sum at mid (right derivative)
      for (std::int64_t k = 0; k < K; ++k) {
        const double* kv = kink.data() + k * n;
        const double* t = tw.data() + k * n;
        const double b = mid[k];
        double sum = 0.0;
        for (std::int64_t i = 0; i < n; ++i) sum += t[i] * (kv[i] - b) > 0 ? t[i] : 0.0;
        slope[k] = -sum;
      }
      rows_comm().allreduce(std::span<double>(slope.data(), static_cast<std::size_t>(K)), comm::ReduceOp::kSum);
      for (std::int64_t k = 0; k < K; ++k) (slope[k] < 0 ? lo[k] : hi[k]) = mid[k];
    }
    return (lo + hi) / 2;
  }
};

}  // namespace

DualCdResult fit_svc_dual_cd(const Frame& f, const CompactFeatures& codes, const DualCdProblem& p) {
  comm::Communicator& c = f.comm();
  const int blocks = p.blocks;
  const Rows rows = gather_rows(f, codes, p, blocks);
  Solver s(rows, p, c);
  s.N = f.global_rows();
  s.d = rows.d;
  s.K = p.outputs;
  s.blocks = blocks;
  std::tie(s.first, s.last) = rank_blocks(blocks, c.size(), c.rank());
  s.setup(p.fit_intercept);
  DualCdResult r;
  double sum_alpha = 0.0, prev = 0.0;
  for (int t = 0; t < p.max_iter; ++t) {
    const double dual = s.round(t, sum_alpha);
    r.history.push_back(dual);
    ++r.rounds;
    if (t > 0 && std::fabs(dual - prev) <= p.tol * std::fabs(dual)) break;
    prev = dual;
  }
  const std::int64_t d = s.d, K = s.K;
  const std::vector<float> M = s.final_margins();
  Vec b = Vec::Zero(K);
  for (std::int64_t k = 0; k < K; ++k) b[k] = s.wd[static_cast<std::size_t>(k * (d + 1) + d)] * s.bias;
  Vec h = s.hinge(M, b);
  if (p.fit_intercept) {  // keep, per class, the better of the bias coordinate and the exact intercept
    const Vec b2 = s.best_intercepts(M);
    const Vec h2 = s.hinge(M, b2);
    for (std::int64_t k = 0; k < K; ++k)
      if (h2[k] < h[k]) b[k] = b2[k], h[k] = h2[k];
  }
  r.coefficients.resize(K, d);
  double sq = 0.0;
  for (std::int64_t k = 0; k < K; ++k)
    for (std::int64_t j = 0; j < d; ++j) {
      const double v = s.wd[static_cast<std::size_t>(k * (d + 1) + j)];
      sq += v * v;
      r.coefficients(k, j) = v * p.inv_std[j];
      b[k] -= v * rows.shift[static_cast<std::size_t>(j)];  // the intercept of the uncentred features
    }
  r.intercept = b;
  r.history.push_back(h.sum() / p.weight_sum + 0.5 * p.reg * sq);
  r.evaluations = r.rounds + 1;
  return r;
}

}  // namespace lockstep::ml::detail
