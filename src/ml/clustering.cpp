// KMeans: k-means|| seeding, then Lloyd's iterations with allreduced cluster sums.
#include "lockstep/ml/clustering.hpp"

#include <algorithm>
#include <cmath>
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

// Lloyd's iterations from centers (updated in place); returns the number run. Cluster sums
// accumulate in double (row-major, so each row's add is a contiguous sweep); the allreduce
// carries [sums, counts, cost].
int lloyd(const Frame& f, const Vec& xn, const KMeansParams& p, Mat& centers) {
  const std::int64_t k = p.k, d = f.num_features();
  Vec buf(k * d + k + 1);
  Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor> sums(k, d);
  int it = 0;
  for (; it < p.max_iter; ++it) {
    LOCKSTEP_TRACE_SCOPE("kmeans iteration", "kmeans", "iter", it);
    buf.setZero();
    sums.setZero();
    Eigen::Map<Vec> cnt(buf.data() + k * d, k);
    double cost = 0.0;
    nearest(f, xn, centers, [&](std::int64_t i, std::int64_t c, double d2, const auto& xb, std::int64_t bi) {
      const double wi = f.weight()[i];
      sums.row(c) += wi * xb.row(bi).template cast<double>();
      cnt[c] += wi;
      cost += wi * d2;
    });
    std::copy(sums.data(), sums.data() + k * d, buf.data());
    buf[k * d + k] = cost;
    f.comm().allreduce(std::span<double>(buf.data(), static_cast<std::size_t>(buf.size())), comm::ReduceOp::kSum);
    const Eigen::Map<const Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>> total(buf.data(), k,
                                                                                                         d);
    double moved = 0.0;
    for (std::int64_t c = 0; c < k; ++c) {
      if (cnt[c] <= 0) continue;  // an empty cluster keeps its centre (as Spark)
      const Eigen::RowVectorXd nc = total.row(c) / cnt[c];
      moved = std::max(moved, (nc - centers.row(c)).norm());
      centers.row(c) = nc;
    }
    if (moved <= p.tol) return it + 1;
  }
  return it;
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
  model.iterations = lloyd(f, xn, p, centers);
  model.centers = centers;
  model.training_cost = model.cost(f);
  return model;
}

}  // namespace lockstep::ml
