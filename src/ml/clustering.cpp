// KMeans: k-means|| seeding, then Lloyd's iterations with allreduced cluster sums.
#include "lockstep/ml/clustering.hpp"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <set>

#include "lockstep/core/rng.hpp"
#include "lockstep/core/trace.hpp"
#include "lockstep/ml/stats.hpp"

namespace lockstep::ml {
namespace {

using MatF = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
constexpr std::int64_t kBlock = 1024;

// Squared norms of this rank's rows.
Vec row_norms(const Frame& f) {
  Vec n(f.rows());
  f.visit([&](const auto& x) {
    for (std::int64_t i = 0; i < f.rows(); ++i) n[i] = x.row(i).template cast<double>().squaredNorm();
  });
  return n;
}

// For every row: the nearest centre and the squared distance to it. visit(i, nearest, d2, block
// row view) is called per row, in order. Distances: |x|^2 - 2 x.c + |c|^2 with a float32 GEMM.
template <typename Visit>
void nearest(const Frame& f, const Vec& xnorm, const Mat& centers, Visit&& visit) {
  const Eigen::MatrixXf Ct = centers.transpose().cast<float>();
  const Vec cnorm = centers.rowwise().squaredNorm();
  MatF D;
  f.visit([&](const auto& x) {
    for (std::int64_t r0 = 0; r0 < f.rows(); r0 += kBlock) {
      const std::int64_t m = std::min(kBlock, f.rows() - r0);
      const auto xb = x.middleRows(r0, m);
      D.noalias() = xb * Ct;
      for (std::int64_t i = 0; i < m; ++i) {
        std::int64_t best = 0;
        double bd = INFINITY;
        for (std::int64_t c = 0; c < centers.rows(); ++c) {
          const double d2 = xnorm[r0 + i] - 2.0 * D(i, c) + cnorm[c];
          if (d2 < bd) bd = d2, best = c;
        }
        visit(r0 + i, best, std::max(bd, 0.0), xb, i);
      }
    }
  });
}

// Rows [global indices] gathered on every rank, in global order (a handful: k-means|| picks).
Mat gather_rows(const Frame& f, const std::vector<std::int64_t>& local_rows) {
  const std::int64_t d = f.num_features();
  std::vector<double> mine;
  f.visit([&](const auto& x) {
    for (auto i : local_rows) {
      const Vec r = x.row(i).template cast<double>().transpose();
      mine.insert(mine.end(), r.data(), r.data() + d);
    }
  });
  const std::vector<double> all = f.comm().allgather_vector(mine);
  Mat out(static_cast<std::int64_t>(all.size()) / std::max<std::int64_t>(d, 1), d);
  for (std::int64_t i = 0; i < out.rows(); ++i)
    for (std::int64_t j = 0; j < d; ++j) out(i, j) = all[static_cast<std::size_t>(i * d + j)];
  return out;
}

// Weighted k-means++ and Lloyd's on a small replicated candidate set (Spark's LocalKMeans).
Mat local_kmeans(const Mat& pts, const Vec& w, std::int64_t k, std::uint64_t seed, int iterations) {
  const std::int64_t n = pts.rows();
  CounterRng rng(seed, RngStream::kKMeans, 0xFFFFFFFFull);
  Mat c(k, pts.cols());
  // First centre: weighted draw.
  auto draw = [&](const Vec& weights) {
    const double total = weights.sum();
    double u = rng.uniform_double() * total;
    for (std::int64_t i = 0; i < n; ++i) {
      if ((u -= weights[i]) < 0) return i;
    }
    return n - 1;
  };
  c.row(0) = pts.row(draw(w));
  Vec d2 = (pts.rowwise() - c.row(0)).rowwise().squaredNorm();
  for (std::int64_t j = 1; j < k; ++j) {
    c.row(j) = pts.row(draw(w.cwiseProduct(d2)));
    d2 = d2.cwiseMin((pts.rowwise() - c.row(j)).rowwise().squaredNorm());
  }
  for (int it = 0; it < iterations; ++it) {
    Mat sums = Mat::Zero(k, pts.cols());
    Vec cnt = Vec::Zero(k);
    for (std::int64_t i = 0; i < n; ++i) {
      Eigen::Index best = 0;
      (c.rowwise() - pts.row(i)).rowwise().squaredNorm().minCoeff(&best);
      sums.row(best) += w[i] * pts.row(i);
      cnt[best] += w[i];
    }
    bool moved = false;
    for (std::int64_t j = 0; j < k; ++j) {
      if (cnt[j] <= 0) continue;
      const Eigen::RowVectorXd nc = sums.row(j) / cnt[j];
      moved |= (nc - c.row(j)).squaredNorm() > 0;
      c.row(j) = nc;
    }
    if (!moved) break;
  }
  return c;
}

void check_kmeans_params(const KMeansParams& p) {
  LOCKSTEP_CHECK(p.k >= 1, ConfigError, "k: expected an integer >= 1, got ", p.k);
  LOCKSTEP_CHECK(p.max_iter >= 0, ConfigError, "maxIter: expected an integer >= 0, got ", p.max_iter);
  LOCKSTEP_CHECK(p.init_mode == "k-means||" || p.init_mode == "random", ConfigError,
                 "initMode: expected k-means|| or random, got \"", p.init_mode, "\"");
  LOCKSTEP_CHECK(p.init_steps >= 1, ConfigError, "initSteps: expected an integer >= 1, got ", p.init_steps);
  LOCKSTEP_CHECK(p.tol >= 0, ConfigError, "tol: expected a number >= 0, got ", p.tol);
  LOCKSTEP_CHECK(p.tol_mode == "absolute" || p.tol_mode == "relative", ConfigError,
                 "tolMode: expected absolute or relative, got \"", p.tol_mode, "\"");
  LOCKSTEP_CHECK(p.algorithm == "hamerly" || p.algorithm == "lloyd", ConfigError,
                 "algorithm: expected hamerly or lloyd, got \"", p.algorithm, "\"");
}

// Distinct global rows drawn uniformly by the seed, for the first centre and for padding: one
// stream for both, so padding never repeats a row drawn before.
class RowDraw {
 public:
  RowDraw(std::uint64_t seed, std::int64_t N) : pick_(seed, RngStream::kKMeans, 0x7FFFFFFFull), N_(N) {}
  // Up to count new rows (fewer when every row has been drawn), ascending.
  std::vector<std::int64_t> operator()(std::int64_t count) {
    std::vector<std::int64_t> out;
    while (static_cast<std::int64_t>(out.size()) < count && static_cast<std::int64_t>(drawn_.size()) < N_) {
      const auto g = static_cast<std::int64_t>(pick_.below(static_cast<std::uint64_t>(N_)));
      if (drawn_.insert(g).second) out.push_back(g);
    }
    std::sort(out.begin(), out.end());
    return out;
  }

 private:
  CounterRng pick_;
  std::set<std::int64_t> drawn_;
  std::int64_t N_;
};

// count newly drawn rows, gathered on every rank in global order.
Mat gather_drawn(const Frame& f, RowDraw& draw, std::int64_t count) {
  const std::int64_t lo = f.row_offset(), hi = lo + f.rows();
  std::vector<std::int64_t> mine;
  for (auto g : draw(count))
    if (g >= lo && g < hi) mine.push_back(g - lo);
  return gather_rows(f, mine);
}

// k-means|| oversampling: from one drawn row, init_steps rounds each keeping about 2k rows with
// probability proportional to their cost (squared distance to the nearest candidate so far).
Mat oversample(const Frame& f, const Vec& xn, const KMeansParams& p, RowDraw& draw) {
  auto& comm = f.comm();
  const std::int64_t d = f.num_features(), k = p.k, lo = f.row_offset();
  Mat cand = gather_drawn(f, draw, 1);
  Vec cost = Vec::Constant(f.rows(), INFINITY);
  Mat fresh = cand;
  for (int step = 0; step < p.init_steps; ++step) {
    nearest(f, xn, fresh, [&](std::int64_t i, std::int64_t, double d2, const auto&, std::int64_t) {
      cost[i] = std::min(cost[i], d2);
    });
    const double total = comm.allreduce<double>(f.weight().dot(cost), comm::ReduceOp::kSum);
    std::vector<std::int64_t> chosen;
    if (total > 0) {
      for (std::int64_t i = 0; i < f.rows(); ++i) {
        CounterRng r(p.seed, RngStream::kKMeans, static_cast<std::uint64_t>(step + 1),
                     static_cast<std::uint64_t>(lo + i));
        if (r.uniform_double() < 2.0 * static_cast<double>(k) * f.weight()[i] * cost[i] / total) chosen.push_back(i);
      }
    }
    fresh = gather_rows(f, chosen);
    if (fresh.rows() == 0) break;
    Mat merged(cand.rows() + fresh.rows(), d);
    merged << cand, fresh;
    cand = merged;
  }
  return cand;
}

// The rows of cand that differ from every earlier row, in order.
Mat distinct_rows(const Mat& cand) {
  std::vector<std::int64_t> keep;
  for (std::int64_t i = 0; i < cand.rows(); ++i) {
    bool dup = false;
    for (auto j : keep) dup |= (cand.row(i) - cand.row(j)).squaredNorm() == 0.0;
    if (!dup) keep.push_back(i);
  }
  Mat distinct(static_cast<std::int64_t>(keep.size()), cand.cols());
  for (std::size_t i = 0; i < keep.size(); ++i) distinct.row(static_cast<std::int64_t>(i)) = cand.row(keep[i]);
  return distinct;
}

// k-means||: oversampled distinct candidates, reduced to k by weighted k-means++ when there are more.
Mat kmeans_parallel_init(const Frame& f, const Vec& xn, const KMeansParams& p, RowDraw& draw) {
  LOCKSTEP_TRACE_SCOPE("kmeans init", "kmeans");
  const Mat distinct = distinct_rows(oversample(f, xn, p, draw));
  if (distinct.rows() <= p.k) return distinct;
  // Weight each candidate by the rows closest to it.
  Vec wts = Vec::Zero(distinct.rows());
  nearest(f, xn, distinct,
          [&](std::int64_t i, std::int64_t c, double, const auto&, std::int64_t) { wts[c] += f.weight()[i]; });
  f.comm().allreduce(std::span<double>(wts.data(), static_cast<std::size_t>(wts.size())), comm::ReduceOp::kSum);
  return local_kmeans(distinct, wts, p.k, p.seed, 30);
}

// Fewer distinct candidates than k: pads with random rows.
Mat pad_centers(const Frame& f, const Mat& centers, std::int64_t k, RowDraw& draw) {
  const Mat extra = gather_drawn(f, draw, k - centers.rows());
  Mat all(centers.rows() + extra.rows(), f.num_features());
  all << centers, extra;
  return all.topRows(std::min<std::int64_t>(k, all.rows()));
}

// ---------------------------------------------------------------- Lloyd's iterations
//
// Distances: |x|^2 - 2 x.c + |c|^2 (double) with x.c in float32 over the centres rounded to
// float, summed in kLanes fixed lanes (then pairwise), so a (row, centre) pair gives the same bits
// whichever other centres or rows are computed with it. Hamerly's bounds (an upper bound on the
// distance to the assigned centre, a lower bound on every other) skip rows whose assignment cannot
// change; they carry a margin of the dot product's rounding error, so a skipped row is one whose
// computed nearest centre is provably unchanged: pruning never changes an assignment. Cluster sums
// are 64-bit fixed point (each row's contribution rounded once), kept incrementally (a row moving
// from a to b is subtracted from a and added to b), so they are exact: the same centres with or
// without pruning and at any number of ranks.

constexpr int kLanes = 8;
constexpr int kGroup = 4;

// GCC/Clang vector types: the same lane arithmetic whatever the instruction set (two SSE halves
// without AVX), so a build's results do not depend on how the compiler vectorises.
using F8 = float __attribute__((vector_size(32)));
using F4 = float __attribute__((vector_size(16)));
using D4 = double __attribute__((vector_size(32)));
using I4 = std::int64_t __attribute__((vector_size(32)));

// Dot products of one dense row with G consecutive centres (rows of C, leading dimension ld).
template <int G>
void dot_rows(const float* x, const float* C, std::int64_t d, std::int64_t ld, float* out) {
  F8 acc[G] = {};
  const std::int64_t d8 = d - d % kLanes;
  for (std::int64_t j = 0; j < d8; j += kLanes) {
    F8 xv;
    std::memcpy(&xv, x + j, sizeof xv);
#pragma GCC unroll 4
    for (int g = 0; g < G; ++g) {
      F8 cv;
      std::memcpy(&cv, C + g * ld + j, sizeof cv);
      acc[g] += xv * cv;
    }
  }
  for (int g = 0; g < G; ++g) {
    float a[kLanes];
    std::memcpy(a, &acc[g], sizeof a);
    for (std::int64_t j = d8; j < d; ++j) a[j - d8] += x[j] * C[g * ld + j];
    out[g] = ((a[0] + a[4]) + (a[1] + a[5])) + ((a[2] + a[6]) + (a[3] + a[7]));
  }
}

// x.c for a sparse row: double products summed in the row's order (a per-row order too).
double dot_sparse(const CsrMatrix& x, std::int64_t i, const float* c) {
  double s = 0.0;
  for (CsrMatrix::InnerIterator it(x, i); it; ++it) s += static_cast<double>(it.value()) * c[it.col()];
  return s;
}

// Round-to-nearest of |v| < 2^51 to an integer, exactly (adds and subtracts 1.5 * 2^52).
inline std::int64_t round_fixed(double v) {
  constexpr double kMagic = 6755399441055744.0;
  return std::bit_cast<std::int64_t>(v + kMagic) - std::bit_cast<std::int64_t>(kMagic);
}

// 2^s with s such that each value (at most vmax) is below 2^50 and n of them sum below 2^61.
double fixed_scale(double vmax, double n) {
  if (!(vmax > 0)) return std::ldexp(1.0, 40);
  const double s = std::min(50.0 - std::ceil(std::log2(vmax)), 61.0 - std::ceil(std::log2(n * vmax)));
  return std::ldexp(1.0, static_cast<int>(s));
}

// s += sign q over n values (explicit vectors: the compiler cannot see that s and q never overlap).
void add_row(std::int64_t* s, const std::int64_t* q, std::int64_t n, std::int64_t sign) {
  const std::int64_t n4 = n - n % 4;
  const I4 sv = {sign, sign, sign, sign};
  for (std::int64_t j = 0; j < n4; j += 4) {
    I4 a, b;
    std::memcpy(&a, s + j, sizeof a);
    std::memcpy(&b, q + j, sizeof b);
    a += sv * b;
    std::memcpy(s + j, &a, sizeof a);
  }
  for (std::int64_t j = n4; j < n; ++j) s[j] += sign * q[j];
}

class Lloyd {
 public:
  Lloyd(const Frame& f, const Vec& xn, const KMeansParams& p);
  int run(Mat& centers);  // iterations run; centers updated in place

 private:
  void set_centres(const Mat& centers);
  void dots(std::int64_t i, std::int64_t c0, int count, double* d2) const;
  void assign_all(std::int64_t i);
  void assign(std::int64_t i);
  void move_row(std::int64_t i, std::int64_t from, std::int64_t to);
  void loosen(const std::vector<float>& old);
  double err2(std::int64_t i) const {
    const double r = std::sqrt(xn_[i]) + cmax_;
    return K_ * r * r;
  }
  bool converged(const Mat& before, const Mat& after) const;

  const Frame& f_;
  const Vec& xn_;
  const KMeansParams& p_;
  const std::int64_t n_, d_, k_, kp_;  // kp_: k rounded up to kGroup (zero centres)
  bool prune_;
  double K_ = 0.0;              // squared-distance error per (|x| + max |c|)^2
  double sx_ = 1.0, sw_ = 1.0;  // fixed-point scales of w x and w
  double var_ = 0.0;            // mean biased feature variance (tolMode relative)
  const RowMatrix* dense_ = nullptr;  // the frame's rows, one of the two
  const CsrMatrix* sparse_ = nullptr;
  std::vector<float> cf_;       // kp x d, the centres rounded to float
  Vec cn_, half_gap_;           // |c_f|^2; half the distance to the nearest other centre
  double cmax_ = 0.0;
  std::vector<std::int64_t> sums_;  // k x d, then k weights
  std::vector<std::int32_t> a_;     // assigned centre, -1 before the first assignment
  Vec u_, l_;                       // Hamerly's bounds (distances, not squared)
  std::vector<std::int64_t> q_;     // scratch: one row's fixed-point contribution
  std::vector<double> d2_;          // scratch: one row's squared distances
};

Lloyd::Lloyd(const Frame& f, const Vec& xn, const KMeansParams& p)
    : f_(f),
      xn_(xn),
      p_(p),
      n_(f.rows()),
      d_(f.num_features()),
      k_(p.k),
      kp_((p.k + kGroup - 1) / kGroup * kGroup),
      prune_(p.algorithm == "hamerly") {
  // The float dot's rounding: ceil(d / kLanes) fused products per lane and three lane sums, then
  // the double formula; a squared distance is off by at most K (|x| + max |c|)^2.
  K_ = 2.0 * (std::ceil(static_cast<double>(d_) / kLanes) + 5.0) * std::ldexp(1.0, -24) * 1.01 + 1e-13;
  Vec acc = Vec::Zero(d_ + 2);  // [sum w x_j..., sum w, sum w |x|^2]
  double mx[2] = {0.0, 0.0};    // max |w x|, max |w|
  const Vec& w = f.weight();
  f.visit([&](const auto& x) {
    using X = std::decay_t<decltype(x)>;
    if constexpr (std::is_same_v<X, CsrMatrix>) {
      sparse_ = &x;
      for (std::int64_t i = 0; i < n_; ++i)
        for (typename X::InnerIterator it(x, i); it; ++it) {
          mx[0] = std::max(mx[0], std::fabs(w[i] * it.value()));
          acc[it.col()] += w[i] * it.value();
        }
    } else {
      dense_ = &x;
      for (std::int64_t i = 0; i < n_; ++i) {
        if (d_ > 0) mx[0] = std::max(mx[0], std::fabs(w[i]) * x.row(i).cwiseAbs().maxCoeff());
        acc.head(d_) += w[i] * x.row(i).template cast<double>().transpose();
      }
    }
  });
  for (std::int64_t i = 0; i < n_; ++i) mx[1] = std::max(mx[1], std::fabs(w[i])), acc[d_] += w[i], acc[d_ + 1] += w[i] * xn[i];
  f.comm().allreduce(std::span<double>(acc.data(), static_cast<std::size_t>(acc.size())), comm::ReduceOp::kSum);
  f.comm().allreduce(std::span<double>(mx, 2), comm::ReduceOp::kMax);
  const double N = static_cast<double>(std::max<std::int64_t>(f.global_rows(), 1));
  sx_ = fixed_scale(mx[0], N);
  sw_ = fixed_scale(mx[1], N);
  const double W = acc[d_];
  if (W > 0 && d_ > 0)
    var_ = std::max(0.0, (acc[d_ + 1] / W - (acc.head(d_) / W).squaredNorm()) / static_cast<double>(d_));
  sums_.assign(static_cast<std::size_t>(k_ * d_ + k_), 0);
  a_.assign(static_cast<std::size_t>(n_), -1);
  u_ = Vec::Constant(n_, INFINITY);
  l_ = Vec::Zero(n_);
  q_.resize(static_cast<std::size_t>(d_));
  d2_.resize(static_cast<std::size_t>(kp_));
}

void Lloyd::set_centres(const Mat& centers) {
  cf_.assign(static_cast<std::size_t>(kp_ * d_), 0.0f);
  cn_ = Vec::Zero(kp_);
  for (std::int64_t c = 0; c < k_; ++c)
    for (std::int64_t j = 0; j < d_; ++j) {
      const float v = static_cast<float>(centers(c, j));
      cf_[static_cast<std::size_t>(c * d_ + j)] = v;
      cn_[c] += static_cast<double>(v) * v;
    }
  cmax_ = std::sqrt(cn_.maxCoeff());
  half_gap_ = Vec::Constant(k_, INFINITY);
  for (std::int64_t c = 0; c < k_; ++c)
    for (std::int64_t e = c + 1; e < k_; ++e) {
      double s = 0.0;
      for (std::int64_t j = 0; j < d_; ++j) {
        const double t = static_cast<double>(cf_[static_cast<std::size_t>(c * d_ + j)]) - cf_[static_cast<std::size_t>(e * d_ + j)];
        s += t * t;
      }
      half_gap_[c] = std::min(half_gap_[c], 0.5 * std::sqrt(s));
      half_gap_[e] = std::min(half_gap_[e], 0.5 * std::sqrt(s));
    }
}

// Computed squared distances of row i to centres [c0, c0 + count); count is 1 or kp_.
void Lloyd::dots(std::int64_t i, std::int64_t c0, int count, double* d2) const {
  if (sparse_) {
    for (std::int64_t c = c0; c < c0 + count; ++c)
      d2[c - c0] = xn_[i] - 2.0 * dot_sparse(*sparse_, i, cf_.data() + c * d_) + cn_[c];
    return;
  }
  const float* x = dense_->row(i).data();
  float dp[kGroup];
  if (count == 1) {
    dot_rows<1>(x, cf_.data() + c0 * d_, d_, d_, dp);
    d2[0] = xn_[i] - 2.0 * static_cast<double>(dp[0]) + cn_[c0];
    return;
  }
  for (std::int64_t c = c0; c < c0 + count; c += kGroup) {
    dot_rows<kGroup>(x, cf_.data() + c * d_, d_, d_, dp);
    for (int g = 0; g < kGroup; ++g) d2[c - c0 + g] = xn_[i] - 2.0 * static_cast<double>(dp[g]) + cn_[c + g];
  }
}

// Every distance of row i: the nearest centre (the lowest index among equals), fresh bounds.
void Lloyd::assign_all(std::int64_t i) {
  dots(i, 0, static_cast<int>(kp_), d2_.data());
  std::int64_t best = 0;
  double b1 = INFINITY, b2 = INFINITY;
  for (std::int64_t c = 0; c < k_; ++c) {
    const double v = d2_[static_cast<std::size_t>(c)];
    if (v < b1) {
      b2 = b1, b1 = v, best = c;
    } else if (v < b2) {
      b2 = v;
    }
  }
  const double e2 = err2(i);
  u_[i] = std::sqrt(std::max(b1 + e2, 0.0));
  l_[i] = std::sqrt(std::max(b2 - e2, 0.0));
  if (best != a_[static_cast<std::size_t>(i)]) move_row(i, a_[static_cast<std::size_t>(i)], best);
}

// Hamerly: row i keeps its centre a when every other centre is provably farther, by the bounds
// (first as they are, then with the exact distance to a), with room for the rounding error.
void Lloyd::assign(std::int64_t i) {
  const std::int32_t a = a_[static_cast<std::size_t>(i)];
  if (a >= 0) {
    const double e2 = err2(i);
    auto kept = [&] {
      const double L = std::max(l_[i], 2.0 * half_gap_[a] - u_[i]);
      return L > 0 && u_[i] * u_[i] + 2.0 * e2 < L * L;
    };
    if (kept()) return;
    double da = 0.0;
    dots(i, a, 1, &da);
    u_[i] = std::sqrt(std::max(da + e2, 0.0));
    if (kept()) return;
  }
  assign_all(i);
}

// Row i leaves centre from (none when -1) for centre to: its fixed-point contribution moves.
void Lloyd::move_row(std::int64_t i, std::int64_t from, std::int64_t to) {
  const double ws = f_.weight()[i] * sx_;
  const std::int64_t wq = round_fixed(f_.weight()[i] * sw_);
  std::int64_t* cnt = sums_.data() + k_ * d_;
  if (from >= 0) cnt[from] -= wq;
  cnt[to] += wq;
  a_[static_cast<std::size_t>(i)] = static_cast<std::int32_t>(to);
  if (sparse_) {
    for (CsrMatrix::InnerIterator it(*sparse_, i); it; ++it) {
      const std::int64_t q = round_fixed(static_cast<double>(it.value()) * ws);
      if (from >= 0) sums_[static_cast<std::size_t>(from * d_ + it.col())] -= q;
      sums_[static_cast<std::size_t>(to * d_ + it.col())] += q;
    }
    return;
  }
  const float* x = dense_->row(i).data();
  std::int64_t* q = q_.data();
  constexpr double kMagic = 6755399441055744.0;
  const D4 wv = {ws, ws, ws, ws}, mv = {kMagic, kMagic, kMagic, kMagic};
  const I4 mb = std::bit_cast<I4>(mv);
  const std::int64_t d4 = d_ - d_ % 4;
  for (std::int64_t j = 0; j < d4; j += 4) {
    F4 xf;
    std::memcpy(&xf, x + j, sizeof xf);
    const D4 t = __builtin_convertvector(xf, D4) * wv + mv;
    const I4 qi = std::bit_cast<I4>(t) - mb;
    std::memcpy(q + j, &qi, sizeof qi);
  }
  for (std::int64_t j = d4; j < d_; ++j) q[j] = round_fixed(static_cast<double>(x[j]) * ws);
  if (from >= 0) add_row(sums_.data() + from * d_, q, d_, -1);
  add_row(sums_.data() + to * d_, q, d_, 1);
}

// The centres moved (old: their previous float copy): bounds widen by the moves.
void Lloyd::loosen(const std::vector<float>& old) {
  Vec moved(k_);
  for (std::int64_t c = 0; c < k_; ++c) {
    double s = 0.0;
    for (std::int64_t j = 0; j < d_; ++j) {
      const double t = static_cast<double>(cf_[static_cast<std::size_t>(c * d_ + j)]) - old[static_cast<std::size_t>(c * d_ + j)];
      s += t * t;
    }
    moved[c] = std::sqrt(s) * (1.0 + 1e-12);
  }
  Eigen::Index top = 0;
  const double p1 = moved.maxCoeff(&top);
  double p2 = 0.0;
  for (std::int64_t c = 0; c < k_; ++c)
    if (c != top) p2 = std::max(p2, moved[c]);
  for (std::int64_t i = 0; i < n_; ++i) {
    const std::int32_t a = a_[static_cast<std::size_t>(i)];
    if (a < 0) continue;
    u_[i] += moved[a];
    l_[i] -= a == top ? p2 : p1;
  }
}

// tolMode absolute (Spark): no centre moved farther than tol. relative (scikit-learn): the sum of
// the squared moves is at most tol times the mean (biased) variance of the features.
bool Lloyd::converged(const Mat& before, const Mat& after) const {
  const Vec moved = (after - before).rowwise().squaredNorm();
  if (p_.tol_mode == "relative") return moved.sum() <= p_.tol * var_;
  return std::sqrt(moved.maxCoeff()) <= p_.tol;
}

int Lloyd::run(Mat& centers) {
  set_centres(centers);
  std::vector<std::int64_t> total(sums_.size());
  for (int it = 0; it < p_.max_iter; ++it) {
    LOCKSTEP_TRACE_SCOPE("kmeans iteration", "kmeans", "iter", it);
    if (!prune_) {  // every distance, sums from zero (the reference pruning must match)
      std::fill(sums_.begin(), sums_.end(), 0);
      std::fill(a_.begin(), a_.end(), -1);
    }
    for (std::int64_t i = 0; i < n_; ++i) prune_ ? assign(i) : assign_all(i);
    total = sums_;
    f_.comm().allreduce(std::span<std::int64_t>(total), comm::ReduceOp::kSum);
    const Mat before = centers;
    for (std::int64_t c = 0; c < k_; ++c) {
      const auto wc = total[static_cast<std::size_t>(k_ * d_ + c)];
      if (wc <= 0) continue;  // an empty cluster keeps its centre (as Spark)
      const double W = static_cast<double>(wc) / sw_;
      for (std::int64_t j = 0; j < d_; ++j)
        centers(c, j) = static_cast<double>(total[static_cast<std::size_t>(c * d_ + j)]) / sx_ / W;
    }
    const std::vector<float> old = cf_;
    set_centres(centers);
    if (prune_) loosen(old);
    if (converged(before, centers)) return it + 1;
  }
  return p_.max_iter;
}

}  // namespace

Predictions KMeansModel::predict(const Frame& f) const {
  LOCKSTEP_CHECK(f.num_features() == centers.cols(), DataError, "KMeans: the model has ", centers.cols(),
                 " features, the data ", f.num_features());
  // Row by row in double, so a row's cluster does not depend on the number of ranks.
  Predictions out;
  out.prediction.resize(f.rows());
  out.raw.resize(f.rows(), centers.rows());
  f.visit([&](const auto& x) {
    for (std::int64_t i = 0; i < f.rows(); ++i) {
      const Eigen::RowVectorXd xi = x.row(i).template cast<double>();
      Eigen::Index best = 0;
      out.raw.row(i) = (centers.rowwise() - xi).rowwise().squaredNorm().transpose();
      out.raw.row(i).minCoeff(&best);
      out.prediction[i] = static_cast<double>(best);
    }
  });
  return out;
}

double KMeansModel::cost(const Frame& f) const {
  double c = 0.0;
  const Vec xn = row_norms(f);
  nearest(f, xn, centers,
          [&](std::int64_t i, std::int64_t, double d2, const auto&, std::int64_t) { c += f.weight()[i] * d2; });
  return f.comm().allreduce<double>(c, comm::ReduceOp::kSum);
}

KMeansModel fit_kmeans(const Frame& f, const KMeansParams& p) {
  check_kmeans_params(p);
  check_finite(f);
  const std::int64_t N = f.global_rows(), k = p.k;
  if (k > N)
    f.comm().agree("k = " + std::to_string(k) + " is larger than the number of rows (" + std::to_string(N) + ")",
                   comm::Communicator::ErrorKind::kConfig);
  const Vec xn = row_norms(f);
  RowDraw draw(p.seed, N);
  Mat centers = p.init_mode == "random" ? gather_drawn(f, draw, k) : kmeans_parallel_init(f, xn, p, draw);
  if (centers.rows() < k) centers = pad_centers(f, centers, k, draw);
  KMeansModel model;
  model.iterations = Lloyd(f, xn, p).run(centers);
  model.centers = centers;
  model.training_cost = model.cost(f);
  return model;
}

}  // namespace lockstep::ml
