// Linear and logistic regression and the linear SVM. One engine serves all three: coefficients
// live in the standardized space (features divided by their standard deviation, which is folded
// into the coefficients instead of copying the data), each objective evaluation is one pass over
// this rank's rows in blocks (a float32 GEMM for the margins, the loss and its derivative per
// row, a float32 GEMM for the gradient, accumulated in double) and one allreduce.
#include "lockstep/ml/linear.hpp"

#include <Eigen/Cholesky>
#include <cmath>
#include <sstream>

#include "lockstep/core/log.hpp"
#include "lockstep/ml/stats.hpp"
#include "linear_kernels.hpp"
#include "svm_dual_cd.hpp"

namespace lockstep::ml {
namespace {

using MatF = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
constexpr std::int64_t kBlock = 4096;
// The objective's pass reads each block twice (margins, then gradient): blocks of this many rows
// stay in L2 between the two products, so the data streams from memory once per evaluation
// (Fashion-MNIST, 30k rows a rank: 22 ms an evaluation against 34 ms with 4096-row blocks).
constexpr std::int64_t kFusedBlock = 192;
// L-BFGS correction pairs for logistic regression and the linear SVM: on Fashion-MNIST 25 pairs
// reach scikit-learn's objective in 45 iterations against 56 with 10 (the two-loop recursion over
// 25 pairs of 7,850 numbers costs microseconds; an evaluation, tens of milliseconds).
constexpr int kMemory = 25;

// Visits the frame's rows in blocks: fn(first_row, features_block).
template <typename F>
void for_blocks(const Frame& f, F&& fn, std::int64_t block = kBlock) {
  f.visit([&](const auto& x) {
    for (std::int64_t r0 = 0; r0 < f.rows(); r0 += block) {
      const std::int64_t m = std::min(block, f.rows() - r0);
      fn(r0, x.middleRows(r0, m));
    }
  });
}

// Rows of 8-bit codes turned into float32 per tile: 64 rows x 784 features is 200 KB, which
// stays in L2 (512 KB on an EPYC core) for the gradient product that reads the tile again.
constexpr std::int64_t kCodeBlock = 64;

// One evaluation: margins = X Wt + b per block; block_loss turns the margins into their
// (weighted) loss derivative in place and returns the block's (weighted) loss. Returns the
// allreduced [loss, G (d x K, column-major), gb (K)] with G = X^T dM, gb = column sums of dM.
// With codes (compact_features), a tile of rows is decoded to float32 (code * scale, the same
// floats as the frame's) and the same products run on it; the pass then streams 1 byte a value.
template <typename BlockLoss>
Vec linear_pass(const Frame& f, const CompactFeatures& codes, const Eigen::MatrixXf& Wt, const Eigen::RowVectorXf& b,
                BlockLoss&& block_loss) {
  const std::int64_t d = Wt.rows(), K = Wt.cols();
  Vec out = Vec::Zero(1 + d * K + K);
  Eigen::Map<Mat> G(out.data() + 1, d, K);
  MatF M;
  Eigen::MatrixXf tmp = Eigen::MatrixXf::Zero(d, K);  // float partial sums, flushed to double
  Eigen::RowVectorXf colsum = Eigen::RowVectorXf::Zero(K);
  std::int64_t since_flush = 0;
  const auto flush = [&] {
    G += tmp.cast<double>();
    out.tail(K) += colsum.transpose().cast<double>();
    tmp.setZero();
    colsum.setZero();
    since_flush = 0;
  };
  const auto block = [&](std::int64_t r0, const auto& xb) {
    M.noalias() = xb * Wt;
    M.rowwise() += b;
    out[0] += block_loss(r0, M);
    tmp.noalias() += xb.transpose() * M;
    colsum += M.colwise().sum();
    if ((since_flush += M.rows()) >= kBlock) flush();  // bound float accumulation to ~4k rows
  };
  if (!codes.empty()) {
    MatF tile(std::min(kCodeBlock, f.rows()), d);
    const float scale = codes.scale;
    for (std::int64_t r0 = 0; r0 < f.rows(); r0 += kCodeBlock) {
      const std::int64_t m = std::min(kCodeBlock, f.rows() - r0);
      const std::uint8_t* src = codes.codes.data() + r0 * d;
      float* dst = tile.data();
#ifdef LOCKSTEP_LINEAR_KERNELS
      // Wt (d x K, column-major) is K x d row-major, as tmp is: the kernels' layouts. The
      // margins kernel decodes the tile as it goes.
      M.resize(m, K);
      kernels::margins_codes(src, scale, m, d, Wt.data(), K, dst, M.data());
      M.rowwise() += b;
      out[0] += block_loss(r0, M);
      kernels::gradient(dst, m, d, M.data(), K, tmp.data());
      colsum += M.colwise().sum();
      if ((since_flush += m) >= kBlock) flush();
#else
      for (std::int64_t i = 0; i < m * d; ++i) dst[i] = static_cast<float>(src[i]) * scale;
      block(r0, tile.topRows(m));
#endif
    }
  } else {
    for_blocks(f, block, f.is_sparse() ? kBlock : kFusedBlock);
  }
  flush();
  f.comm().allreduce(std::span<double>(out.data(), static_cast<std::size_t>(out.size())), comm::ReduceOp::kSum);
  return out;
}

// The multinomial loss of a block of margins M (rows x K) and, in place, its derivative
// w_i (softmax(m_i) - onehot(y_i)). The exponentials of the whole block go through Eigen's
// vectorised float exp (within 2 ulp of std::exp) in one array padded to a multiple of 16, so
// every value takes the packet path whatever the block's size: the same bits for a row at any
// np. On Fashion-MNIST (K = 10) one double std::exp per value was a fifth of an evaluation.
void softmax_block(MatF& M, const double* y, const double* w, Eigen::ArrayXf& shifted, double& loss) {
  const std::int64_t m = M.rows(), K = M.cols(), n = m * K, padded = (n + 15) / 16 * 16;
  if (shifted.size() < padded) shifted.resize(padded);
  float* z = shifted.data();
  for (std::int64_t i = 0; i < m; ++i) {
    const float* mi = M.row(i).data();
    float mx = mi[0];
    for (std::int64_t k = 1; k < K; ++k) mx = std::max(mx, mi[k]);
    for (std::int64_t k = 0; k < K; ++k) z[i * K + k] = mi[k] - mx;
  }
  std::fill(z + n, z + padded, 0.0f);
  Eigen::Map<Eigen::ArrayXf> e(z, padded);
  // Minus the shifted margin of each row's label, read before the exp overwrites it.
  for (std::int64_t i = 0; i < m; ++i) loss -= w[i] * z[i * K + static_cast<std::int64_t>(y[i])];
  e = e.exp();
  for (std::int64_t i = 0; i < m; ++i) {
    const float* ei = z + i * K;
    float* mi = M.row(i).data();
    double sum = 0.0;
    for (std::int64_t k = 0; k < K; ++k) sum += ei[k];
    const double wi = w[i];
    loss += wi * std::log(sum);
    const double inv = wi / sum;
    const auto invf = static_cast<float>(inv);
    for (std::int64_t k = 0; k < K; ++k) mi[k] = invf * ei[k];
    // The label's entry in double: p - 1 cancels for a row classified with confidence.
    const auto yi = static_cast<std::int64_t>(y[i]);
    mi[yi] = static_cast<float>(inv * ei[yi] - wi);
  }
}

// The standardized-space problem shared by the three estimators.
struct Problem {
  std::int64_t d = 0, K = 1;
  bool fit_intercept = true;
  double weight_sum = 0.0;
  Vec inv_std;                // the scale of the working space: 1/sigma_j with standardization (0 for a
                              // constant column, whose coefficient then stays 0), else 1
  Vec pen1, pen2;             // per-feature L1 and L2 penalty weights in the working space
  double l1 = 0.0, l2 = 0.0;  // regParam * alpha, regParam * (1 - alpha)

  Problem(const Summary& s, std::int64_t outputs, bool intercept, bool standardization, double reg, double alpha)
      : d(s.mean.size()), K(outputs), fit_intercept(intercept), weight_sum(s.weight_sum) {
    // With standardization the optimiser works on sigma_j * beta_j (better conditioned, and the
    // penalty applies there); without, on beta itself: moving there with a 1/sigma^2 penalty
    // weight, as Spark does, conditions the problem badly when some sigma is tiny (border pixels).
    const Vec sd = s.std();
    inv_std.resize(d);
    for (std::int64_t j = 0; j < d; ++j) inv_std[j] = !standardization ? 1.0 : (sd[j] > 0 ? 1.0 / sd[j] : 0.0);
    pen1 = Vec::Ones(d);
    pen2 = Vec::Ones(d);
    l1 = reg * alpha;
    l2 = reg * (1.0 - alpha);
  }
  std::int64_t size() const { return d * K + K; }

  // The iterative solvers' working space: with an intercept, the optimiser's intercept is
  // c = b + mu . beta (mu: the feature means), so it sees centred features. A change of variables:
  // the objective and its minimiser are the same, the problem is better conditioned (the mean
  // direction no longer couples every coefficient to the intercept). On Fashion-MNIST without
  // standardization L-BFGS reaches scikit-learn's objective in 56 iterations instead of 100
  // (docs/ml.md). The data are not touched: the pass computes X beta + b as before.
  void center_intercept(const Summary& s) {
    if (fit_intercept) center = s.mean;
  }
  // Coefficients for the data as it is (original scale), double.
  Mat beta(const Vec& x) const {
    const Eigen::Map<const Mat> U(x.data(), d, K);
    return inv_std.asDiagonal() * U;
  }
  // float32 for the GEMM.
  Eigen::MatrixXf effective(const Vec& x) const { return beta(x).cast<float>(); }
  Vec intercept_of(const Vec& x) const {
    if (!fit_intercept) return Vec::Zero(K);
    Vec b = x.tail(K);
    if (center.size() > 0) b -= beta(x).transpose() * center;
    return b;
  }
  Eigen::RowVectorXf intercepts(const Vec& x) const { return intercept_of(x).transpose().cast<float>(); }
  // value and gradient from a pass's [loss, G, gb]; adds the L2 term.
  double finish(const Vec& pass, const Vec& x, Vec& grad) const {
    const Eigen::Map<const Mat> G(pass.data() + 1, d, K);
    const Eigen::Map<const Mat> B(x.data(), d, K);
    Eigen::Map<Mat> gB(grad.data(), d, K);
    if (center.size() > 0) {
      gB = inv_std.asDiagonal() * (G - center * pass.tail(K).transpose()) / weight_sum;
    } else {
      gB = inv_std.asDiagonal() * G / weight_sum;
    }
    double value = pass[0] / weight_sum;
    if (l2 > 0) {
      gB += l2 * (pen2.asDiagonal() * B);
      value += 0.5 * l2 * (pen2.asDiagonal() * B.cwiseAbs2()).sum();
    }
    if (fit_intercept) {
      grad.tail(K) = pass.tail(K) / weight_sum;
    } else {
      grad.tail(K).setZero();
    }
    return value;
  }
  Vec l1_weights() const {
    if (l1 <= 0) return Vec();
    Vec w = Vec::Zero(size());
    for (std::int64_t k = 0; k < K; ++k) w.segment(k * d, d) = l1 * pen1;
    return w;
  }
  // Into a model: coefficients (K x d) on the original scale, intercepts.
  void to_model(const Vec& x, LinearModel& m) const {
    m.coefficients = beta(x).transpose();
    m.intercept = intercept_of(x);
  }
  Vec center;  // empty, or the feature means (center_intercept)
};

void check_weights(const Frame& f) {
  std::int64_t bad = INT64_MAX;
  for (std::int64_t i = 0; i < f.rows(); ++i)
    if (!(f.weight()[i] >= 0) || !std::isfinite(f.weight()[i])) {
      bad = f.row_offset() + i;
      break;
    }
  agree_on_first_bad_row(
      f.comm(), bad, "weight at row " + std::to_string(bad) + " is negative or not finite (expected a weight >= 0)");
  if (f.global_rows() == 0)
    f.comm().agree(std::string("the training frame has no rows"), comm::Communicator::ErrorKind::kData);
}

void check_params(int max_iter, double reg, double alpha, double tol) {
  LOCKSTEP_CHECK(max_iter >= 0, ConfigError, "maxIter: expected an integer >= 0, got ", max_iter);
  LOCKSTEP_CHECK(reg >= 0 && std::isfinite(reg), ConfigError, "regParam: expected a number >= 0, got ", reg);
  LOCKSTEP_CHECK(alpha >= 0 && alpha <= 1, ConfigError, "elasticNetParam: expected a number in [0, 1], got ", alpha);
  LOCKSTEP_CHECK(tol >= 0, ConfigError, "tol: expected a number >= 0, got ", tol);
}

void check_labels_finite(const Frame& f) {
  std::int64_t bad = INT64_MAX;
  for (std::int64_t i = 0; i < f.rows(); ++i)
    if (!std::isfinite(f.label()[i])) {
      bad = f.row_offset() + i;
      break;
    }
  agree_on_first_bad_row(f.comm(), bad, "label at row " + std::to_string(bad) + " is NaN or infinite");
}

void warn_constant_columns(const Frame& f, const Summary& s, const char* who) {
  std::int64_t n = 0;
  std::string first;
  for (std::int64_t j = 0; j < s.variance.size(); ++j)
    if (!(s.variance[j] > 0)) {
      if (n++ == 0) first = f.feature_names()[static_cast<std::size_t>(j)];
    }
  if (n > 0 && f.comm().rank() == 0)
    log::warn(std::string(who) + ": " + std::to_string(n) + " constant feature column(s) (first: \"" + first +
              "\") get coefficient 0, as in Spark");
}

// Weighted class counts.
Vec class_counts(const Frame& f, std::int64_t K) {
  Vec c = Vec::Zero(K);
  for (std::int64_t i = 0; i < f.rows(); ++i) c[static_cast<std::int64_t>(f.label()[i])] += f.weight()[i];
  f.comm().allreduce(std::span<double>(c.data(), static_cast<std::size_t>(K)), comm::ReduceOp::kSum);
  return c;
}

// The column of a row's largest entry (the first on ties), as a prediction.
double argmax(const Eigen::Ref<const Eigen::RowVectorXd>& row) {
  Eigen::Index k = 0;
  row.maxCoeff(&k);
  return static_cast<double>(k);
}

}  // namespace

namespace {

// Whether every value of x is float(k) * scale with k in 0..255; fills codes (rows x features).
bool encode(const RowMatrix& x, float scale, std::vector<std::uint8_t>& codes) {
  codes.resize(static_cast<std::size_t>(x.size()));
  const float* v = x.data();
#ifdef LOCKSTEP_LINEAR_KERNELS
  return kernels::encode_codes(v, x.size(), scale, codes.data());  // the same test, 32 values a step
#else
  for (std::int64_t i = 0; i < x.size(); ++i) {
    const float k = std::nearbyint(v[i] / scale);
    if (!(k >= 0.0f && k <= 255.0f) || k * scale != v[i]) return false;
    codes[static_cast<std::size_t>(i)] = static_cast<std::uint8_t>(k);
  }
  return true;
#endif
}

// Whether any rank's shard is CSR (a collective: every rank must take the same path).
bool any_rank_sparse(const Frame& f) {
  return f.comm().allreduce<int>(f.is_sparse() ? 1 : 0, comm::ReduceOp::kMax) != 0;
}

}  // namespace

CompactFeatures compact_features(const Frame& f) {
  CompactFeatures c;
  if (any_rank_sparse(f)) return c;
  const RowMatrix& x = f.dense_features();
  double min_pos = INFINITY, max_val = 0.0;
#ifdef LOCKSTEP_LINEAR_KERNELS
  float lo = INFINITY, hi = 0.0f;  // the same extremes, 8 values a step
  kernels::value_range(x.data(), x.size(), &lo, &hi);
  min_pos = lo, max_val = hi;
#else
  for (std::int64_t i = 0; i < x.size(); ++i) {
    const double v = x.data()[i];
    if (v > 0 && v < min_pos) min_pos = v;
    max_val = std::max(max_val, v);
  }
#endif
  min_pos = f.comm().allreduce<double>(min_pos, comm::ReduceOp::kMin);
  max_val = f.comm().allreduce<double>(max_val, comm::ReduceOp::kMax);
  for (const double candidate : {min_pos, max_val / 255.0}) {
    const auto scale = static_cast<float>(candidate);
    if (!(scale > 0) || !std::isfinite(scale)) continue;
    const int ok = encode(x, scale, c.codes) ? 1 : 0;
    if (f.comm().allreduce<int>(ok, comm::ReduceOp::kMin) == 1) {
      c.scale = scale;
      c.active = true;
      return c;
    }
  }
  c.codes.clear();
  c.codes.shrink_to_fit();
  return c;
}

Mat LinearModel::margins(const Frame& f) const {
  LOCKSTEP_CHECK(f.num_features() == coefficients.cols(), DataError, "the model expects ", coefficients.cols(),
                 " features, the data has ", f.num_features());
  // One row at a time: a row's margins then depend on that row alone, not on where it falls in a
  // block, so predictions are the same bits at any number of ranks.
  const Eigen::MatrixXf Wt = coefficients.transpose().cast<float>();
  const Eigen::RowVectorXf b = intercept.transpose().cast<float>();
  Mat out(f.rows(), coefficients.rows());
  Eigen::RowVectorXf m(coefficients.rows());
  f.visit([&](const auto& x) {
    for (std::int64_t i = 0; i < f.rows(); ++i) {
      m.noalias() = x.row(i) * Wt;
      out.row(i) = (m + b).cast<double>();
    }
  });
  return out;
}

// ---------------------------------------------------------------- linear regression

namespace {

// Allreduced weighted moments, in double: [X^T W X (d x d, lower triangle), X^T W y, sum w y,
// sum w y^2].
Vec normal_moments(const Frame& f, std::int64_t d) {
  Vec buf = Vec::Zero(d * d + d + 2);
  Eigen::Map<Mat> A(buf.data(), d, d);
  Eigen::Map<Vec> xy(buf.data() + d * d, d);
  Mat xd;
  for_blocks(f, [&](std::int64_t r0, const auto& xb) {
    xd = Mat(xb.template cast<double>());
    const auto w = f.weight().segment(r0, xd.rows());
    const auto y = f.label().segment(r0, xd.rows());
    A.selfadjointView<Eigen::Lower>().rankUpdate(xd.transpose() * w.cwiseSqrt().asDiagonal());
    xy.noalias() += xd.transpose() * w.cwiseProduct(y);
    buf[d * d + d] += w.dot(y);
    buf[d * d + d + 1] += w.dot(y.cwiseAbs2());
  });
  f.comm().allreduce(std::span<double>(buf.data(), static_cast<std::size_t>(buf.size())), comm::ReduceOp::kSum);
  return buf;
}

// Minimises 1/2 b'Cs b - cs'b + the L2 penalty (no L1) by one LDLT solve.
Vec solve_ridge(const Problem& pr, const Mat& Cs, const Vec& cs) {
  Mat H = Cs;
  H.diagonal() += pr.l2 * pr.pen2;
  for (std::int64_t j = 0; j < pr.d; ++j)
    if (pr.inv_std[j] == 0) H(j, j) = 1.0;  // constant column: coefficient 0
  Eigen::LDLT<Mat> ldlt(H);
  const Vec beta = ldlt.solve(cs);
  const double resid = (H * beta - cs).norm() / std::max(cs.norm(), 1e-300);
  LOCKSTEP_CHECK(ldlt.info() == Eigen::Success && beta.allFinite() && resid < 1e-6, DataError,
                 "LinearRegression: the normal equations are singular (collinear features); set regParam > 0 "
                 "or solver: l-bfgs");
  return beta;
}

// Minimises 1/2 b'Cs b - cs'b + the elastic-net penalty by coordinate descent on the Gram matrix
// (glmnet's covariance updates); *sweeps gets the number of sweeps run.
Vec coordinate_descent(const Problem& pr, const Mat& Cs, const Vec& cs, int max_iter, double tol, int* sweeps) {
  Vec beta = Vec::Zero(pr.d);
  Vec grad = -cs;  // gradient of 1/2 b'Cb - c'b at b = 0
  int sweep = 0;
  for (; sweep < std::max(max_iter, 1); ++sweep) {
    double max_change = 0.0, max_beta = 0.0;
    for (std::int64_t j = 0; j < pr.d; ++j) {
      if (pr.inv_std[j] == 0) continue;
      const double hjj = Cs(j, j) + pr.l2 * pr.pen2[j];
      const double z = hjj * beta[j] - grad[j];
      const double t = pr.l1 * pr.pen1[j];
      const double nb = (z > t ? z - t : (z < -t ? z + t : 0.0)) / hjj;
      const double delta = nb - beta[j];
      if (delta != 0.0) {
        grad += delta * Cs.col(j);
        grad[j] += delta * pr.l2 * pr.pen2[j];
        beta[j] = nb;
      }
      max_change = std::max(max_change, std::fabs(delta));
      max_beta = std::max(max_beta, std::fabs(nb));
    }
    if (max_change <= tol * std::max(1.0, max_beta)) {
      ++sweep;
      break;
    }
  }
  *sweeps = sweep;
  return beta;
}

// The normal-equations solver: one pass for the moments, then a d x d problem solved on every
// rank alike (LDLT, or coordinate descent with an L1 term).
LinearRegressionModel fit_normal(const Frame& f, const LinearRegressionParams& p, const Summary& s, const Problem& pr) {
  const std::int64_t d = pr.d;
  const double W = s.weight_sum;
  LinearRegressionModel model;
  const Vec buf = normal_moments(f, d);
  const Eigen::Map<const Mat> A(buf.data(), d, d);
  const Eigen::Map<const Vec> xy(buf.data() + d * d, d);
  Mat C = A.selfadjointView<Eigen::Lower>();
  C /= W;
  Vec c = xy / W;
  const double ybar = buf[d * d + d] / W;
  if (p.fit_intercept) {
    C -= s.mean * s.mean.transpose();
    c -= s.mean * ybar;
  }
  // Standardized space: beta' = sigma beta.
  const Mat Cs = pr.inv_std.asDiagonal() * C * pr.inv_std.asDiagonal();
  const Vec cs = pr.inv_std.asDiagonal() * c;
  Vec beta;
  if (pr.l1 <= 0) {
    beta = solve_ridge(pr, Cs, cs);
    model.iterations = 1;
  } else {
    beta = coordinate_descent(pr, Cs, cs, p.max_iter, p.tol, &model.iterations);
  }
  Vec x(d + 1);
  x.head(d) = beta;
  pr.to_model(x, model);
  model.intercept[0] = p.fit_intercept ? ybar - model.coefficients.row(0).dot(s.mean) : 0.0;
  // Objective at the solution, from the moments: 1/2 b'Cb - c'b + 1/2 var(y) + penalties.
  const double yy = buf[d * d + d + 1] / W - (p.fit_intercept ? ybar * ybar : 0.0);
  const double obj = 0.5 * beta.dot(Cs * beta) - cs.dot(beta) + 0.5 * yy + pr.l1 * pr.pen1.dot(beta.cwiseAbs()) +
                     0.5 * pr.l2 * pr.pen2.dot(beta.cwiseAbs2());
  model.objective_history = {obj};
  model.solver = "normal";
  return model;
}

// L-BFGS / OWL-QN over the data: one pass and one allreduce per evaluation.
LinearRegressionModel fit_lbfgs(const Frame& f, const LinearRegressionParams& p, const Problem& pr, double W) {
  const std::int64_t d = pr.d;
  Vec x0 = Vec::Zero(d + 1);
  const double ybar = f.comm().allreduce<double>(f.weight().dot(f.label()), comm::ReduceOp::kSum) / W;
  if (p.fit_intercept) x0[d] = ybar;
  const Objective obj = [&](const Vec& x, Vec& grad) {
    const Vec pass = linear_pass(f, CompactFeatures(), pr.effective(x), pr.intercepts(x), [&](std::int64_t r0, MatF& M) {
      double loss = 0.0;
      for (std::int64_t i = 0; i < M.rows(); ++i) {
        const double w = f.weight()[r0 + i], e = static_cast<double>(M(i, 0)) - f.label()[r0 + i];
        loss += 0.5 * w * e * e;
        M(i, 0) = static_cast<float>(w * e);
      }
      return loss;
    });
    return pr.finish(pass, x, grad);
  };
  const auto r = minimize(obj, x0, {p.max_iter, p.tol, 10}, pr.l1_weights());
  LinearRegressionModel model;
  pr.to_model(r.x, model);
  model.iterations = r.iterations;
  model.evaluations = r.evaluations;
  model.objective_history = r.history;
  model.solver = "l-bfgs";
  return model;
}

}  // namespace

LinearRegressionModel fit_linear_regression(const Frame& f, const LinearRegressionParams& p) {
  check_params(p.max_iter, p.reg_param, p.elastic_net_param, p.tol);
  LOCKSTEP_CHECK(p.solver == "auto" || p.solver == "normal" || p.solver == "l-bfgs", ConfigError,
                 "solver: expected one of auto, normal, l-bfgs; got \"", p.solver, "\"");
  check_weights(f);
  check_labels_finite(f);
  const Summary s = summarize(f);
  if (p.standardization) warn_constant_columns(f, s, "LinearRegression");
  Problem pr(s, 1, p.fit_intercept, p.standardization, p.reg_param, p.elastic_net_param);
  const bool normal = p.solver == "normal" || (p.solver == "auto" && pr.d <= p.max_normal_features);
  if (!normal) pr.center_intercept(s);
  return normal ? fit_normal(f, p, s, pr) : fit_lbfgs(f, p, pr, s.weight_sum);
}

Predictions LinearRegressionModel::predict(const Frame& f) const {
  Predictions out;
  out.prediction = margins(f).col(0);
  return out;
}

// ---------------------------------------------------------------- logistic regression

LogisticRegressionModel fit_logistic_regression(const Frame& f, const LogisticRegressionParams& p) {
  check_params(p.max_iter, p.reg_param, p.elastic_net_param, p.tol);
  LOCKSTEP_CHECK(p.family == "auto" || p.family == "binomial" || p.family == "multinomial", ConfigError,
                 "family: expected one of auto, binomial, multinomial; got \"", p.family, "\"");
  LOCKSTEP_CHECK(p.threshold >= 0 && p.threshold <= 1, ConfigError, "threshold: expected a number in [0, 1], got ",
                 p.threshold);
  check_weights(f);
  std::int64_t K = num_classes(f);
  if (p.family == "binomial") {
    if (K > 2)
      f.comm().agree("family: binomial needs labels 0 and 1, but the labels go up to " + std::to_string(K - 1),
                     comm::Communicator::ErrorKind::kData);
    K = 2;
  }
  K = std::max<std::int64_t>(K, 2);
  if (!p.thresholds.empty()) {
    LOCKSTEP_CHECK(static_cast<std::int64_t>(p.thresholds.size()) == K, ConfigError, "thresholds: expected ", K,
                   " values (one per class), got ", p.thresholds.size());
  }
  const bool binomial = p.family == "binomial" || (p.family == "auto" && K == 2);
  const std::int64_t outputs = binomial ? 1 : K;
  const Summary s = summarize(f);
  if (p.standardization) warn_constant_columns(f, s, "LogisticRegression");
  Problem pr(s, outputs, p.fit_intercept, p.standardization, p.reg_param, p.elastic_net_param);
  pr.center_intercept(s);
  const std::int64_t d = pr.d;
  const Vec counts = class_counts(f, K);
  Vec x0 = Vec::Zero(pr.size());
  if (p.fit_intercept) {  // start from the class priors, as Spark does
    if (binomial) {
      x0[d] = std::log((counts[1] + 0.5) / (counts[0] + 0.5));
    } else {
      Vec lc = (counts.array() + 0.5).log();
      x0.tail(K) = lc.array() - lc.mean();
    }
  }
  const Vec& y = f.label();
  const Vec& w = f.weight();
  const CompactFeatures codes = p.compact ? compact_features(f) : CompactFeatures();
  Eigen::ArrayXf shifted;  // softmax_block's scratch, kept across evaluations
  const Objective obj = [&](const Vec& x, Vec& grad) {
    const Vec pass = linear_pass(f, codes, pr.effective(x), pr.intercepts(x), [&](std::int64_t r0, MatF& M) {
      double loss = 0.0;
      if (binomial) {
        for (std::int64_t i = 0; i < M.rows(); ++i) {
          const double m = M(i, 0), yi = y[r0 + i], wi = w[r0 + i];
          // log(1 + e^m) - y m, stably; d/dm = sigmoid(m) - y
          loss += wi * ((m > 0 ? m + std::log1p(std::exp(-m)) : std::log1p(std::exp(m))) - yi * m);
          M(i, 0) = static_cast<float>(wi * (1.0 / (1.0 + std::exp(-m)) - yi));
        }
      } else {
        softmax_block(M, y.data() + r0, w.data() + r0, shifted, loss);
      }
      return loss;
    });
    return pr.finish(pass, x, grad);
  };
  auto r = minimize(obj, x0, {p.max_iter, p.tol, kMemory}, pr.l1_weights());
  if (!binomial && p.reg_param == 0.0) {
    // Without a penalty, softmax coefficients are defined up to a shift shared by the classes:
    // report the centred solution (Spark does the same).
    Eigen::Map<Mat> B(r.x.data(), d, K);
    const Vec mean = B.rowwise().mean();
    B.colwise() -= mean;
    if (p.fit_intercept) r.x.tail(K).array() -= r.x.tail(K).mean();
  }
  LogisticRegressionModel model;
  pr.to_model(r.x, model);
  model.iterations = r.iterations;
  model.evaluations = r.evaluations;
  model.objective_history = r.history;
  model.solver = pr.l1 > 0 ? "owl-qn" : "l-bfgs";
  model.num_classes = K;
  model.binomial = binomial;
  model.threshold = p.threshold;
  model.thresholds = p.thresholds;
  return model;
}

Predictions LogisticRegressionModel::predict(const Frame& f) const {
  Predictions out;
  out.raw = margins(f);
  const std::int64_t n = f.rows();
  out.probability.resize(n, num_classes);
  out.prediction.resize(n);
  for (std::int64_t i = 0; i < n; ++i) {
    if (binomial) {
      const double p1 = 1.0 / (1.0 + std::exp(-out.raw(i, 0)));
      out.probability(i, 0) = 1.0 - p1;
      out.probability(i, 1) = p1;
    } else {
      const double mx = out.raw.row(i).maxCoeff();
      const Eigen::RowVectorXd e = (out.raw.row(i).array() - mx).exp();
      out.probability.row(i) = e / e.sum();
    }
    if (!thresholds.empty()) {
      std::int64_t best = 0;
      double best_v = -1.0;
      for (std::int64_t k = 0; k < num_classes; ++k) {
        const double t = thresholds[static_cast<std::size_t>(k)];
        const double v = t == 0.0 ? INFINITY : out.probability(i, k) / t;
        if (v > best_v) best_v = v, best = k;
      }
      out.prediction[i] = static_cast<double>(best);
    } else if (binomial) {
      out.prediction[i] = out.probability(i, 1) > threshold ? 1.0 : 0.0;
    } else {
      out.prediction[i] = argmax(out.probability.row(i));
    }
  }
  return out;
}

// ---------------------------------------------------------------- linear SVM

namespace {

LinearSvcModel fit_svc_lbfgs(const Frame& f, const LinearSvcParams& p, const Problem& pr,
                             const CompactFeatures& codes) {
  const std::int64_t outputs = pr.K;
  const Vec& y = f.label();
  const Vec& w = f.weight();
  // The one-vs-rest problems are independent; their sum is minimised jointly, which shares each
  // pass over the data (one GEMM computes every class's margins) and has the same minimiser.
  const Objective obj = [&](const Vec& x, Vec& grad) {
    const Vec pass = linear_pass(f, codes, pr.effective(x), pr.intercepts(x), [&](std::int64_t r0, MatF& M) {
      double loss = 0.0;
      for (std::int64_t i = 0; i < M.rows(); ++i) {
        const auto yi = static_cast<std::int64_t>(y[r0 + i]);
        const double wi = w[r0 + i];
        for (std::int64_t k = 0; k < outputs; ++k) {
          const double t = outputs == 1 ? (yi == 1 ? 1.0 : -1.0) : (yi == k ? 1.0 : -1.0);
          const double h = 1.0 - t * M(i, k);
          loss += h > 0 ? wi * h : 0.0;
          M(i, k) = h > 0 ? static_cast<float>(-wi * t) : 0.0f;
        }
      }
      return loss;
    });
    return pr.finish(pass, x, grad);
  };
  const auto r = minimize(obj, Vec::Zero(pr.size()), {p.max_iter, p.tol, kMemory});
  LinearSvcModel model;
  pr.to_model(r.x, model);
  model.iterations = r.iterations;
  model.evaluations = r.evaluations;
  model.objective_history = r.history;
  model.solver = "l-bfgs";
  return model;
}

}  // namespace

LinearSvcModel fit_linear_svc(const Frame& f, const LinearSvcParams& p) {
  check_params(p.max_iter, p.reg_param, 0.0, p.tol);
  LOCKSTEP_CHECK(p.solver == "auto" || p.solver == "l-bfgs" || p.solver == "dual-cd", ConfigError,
                 "solver: expected one of auto, l-bfgs, dual-cd; got \"", p.solver, "\"");
  LOCKSTEP_CHECK(p.solver != "dual-cd" || p.reg_param > 0, ConfigError,
                 "solver: dual-cd needs regParam > 0 (its box bounds are 1/regParam), got regParam ", p.reg_param);
  LOCKSTEP_CHECK(p.num_blocks >= 1, ConfigError, "numBlocks: expected an integer >= 1, got ", p.num_blocks);
  check_weights(f);
  const std::int64_t K = std::max<std::int64_t>(num_classes(f), 2);
  const std::int64_t outputs = K == 2 ? 1 : K;  // one-vs-rest: one hinge problem per class
  const Summary s = summarize(f);
  if (p.standardization) warn_constant_columns(f, s, "LinearSVC");
  Problem pr(s, outputs, p.fit_intercept, p.standardization, p.reg_param, 0.0);
  const CompactFeatures codes = p.compact ? compact_features(f) : CompactFeatures();
  LinearSvcModel model;
  // auto: dual coordinate descent on dense features with regParam > 0. It densifies a CSR frame
  // (term frequencies over 2^18 columns would be gigabytes), so sparse frames take L-BFGS.
  const bool sparse = any_rank_sparse(f);
  if (p.solver == "dual-cd" || (p.solver == "auto" && p.reg_param > 0 && !sparse)) {
    detail::DualCdProblem dp;
    dp.outputs = outputs;
    dp.inv_std = pr.inv_std;
    dp.mean = s.mean;
    dp.reg = p.reg_param;
    dp.weight_sum = s.weight_sum;
    dp.fit_intercept = p.fit_intercept;
    dp.max_iter = p.max_iter;
    dp.tol = p.tol;
    dp.blocks = p.num_blocks;
    auto r = detail::fit_svc_dual_cd(f, codes, dp);
    model.coefficients = std::move(r.coefficients);
    model.intercept = std::move(r.intercept);
    model.iterations = r.rounds;
    model.evaluations = r.evaluations;
    model.objective_history = std::move(r.history);
    model.solver = "dual-cd";
  } else {
    pr.center_intercept(s);
    model = fit_svc_lbfgs(f, p, pr, codes);
  }
  model.num_classes = K;
  model.threshold = p.threshold;
  return model;
}

Predictions LinearSvcModel::predict(const Frame& f) const {
  Predictions out;
  out.raw = margins(f);
  out.prediction.resize(f.rows());
  for (std::int64_t i = 0; i < f.rows(); ++i) {
    if (out.raw.cols() == 1) {
      out.prediction[i] = out.raw(i, 0) > threshold ? 1.0 : 0.0;
    } else {
      out.prediction[i] = argmax(out.raw.row(i));
    }
  }
  return out;
}

}  // namespace lockstep::ml
