// NaiveBayes: per-class sums by allreduce; prediction by log joint likelihood.
#include "lockstep/ml/naive_bayes.hpp"

#include <cmath>

#include "lockstep/ml/stats.hpp"

namespace lockstep::ml {

NaiveBayesModel fit_naive_bayes(const Frame& f, const NaiveBayesParams& p) {
  LOCKSTEP_CHECK(p.model_type == "multinomial" || p.model_type == "bernoulli" || p.model_type == "gaussian",
                 ConfigError, "modelType: expected one of multinomial, bernoulli, gaussian; got \"", p.model_type,
                 "\"");
  LOCKSTEP_CHECK(p.smoothing >= 0, ConfigError, "smoothing: expected a number >= 0, got ", p.smoothing);
  check_finite(f);
  const std::int64_t K = num_classes(f), d = f.num_features();
  const RowMatrix x = f.to_dense();
  // Validate the feature domain, reporting the first bad (row, column) over all ranks.
  std::int64_t bad = INT64_MAX, bad_col = -1;
  if (p.model_type != "gaussian") {
    for (std::int64_t i = 0; i < x.rows() && bad == INT64_MAX; ++i)
      for (std::int64_t j = 0; j < d; ++j) {
        const float v = x(i, j);
        if (p.model_type == "multinomial" ? v < 0 : (v != 0.0f && v != 1.0f)) {
          bad = f.row_offset() + i, bad_col = j;
          break;
        }
      }
  }
  agree_on_first_bad_row(f.comm(), bad,
                         "NaiveBayes (" + p.model_type + "): row " + std::to_string(bad) + ", column " +
                             std::to_string(bad_col) + " is " +
                             (p.model_type == "multinomial" ? "negative (expected counts >= 0)" : "not 0 or 1"));
  // [class weight sums (K), per-class feature sums (K x d), per-class squared sums (K x d)]
  Vec buf = Vec::Zero(K + 2 * K * d);
  Eigen::Map<Vec> wk(buf.data(), K);
  Eigen::Map<Mat> sx(buf.data() + K, K, d), sxx(buf.data() + K + K * d, K, d);
  const bool gaussian = p.model_type == "gaussian";
  if (gaussian) {
    // Means first (a second pass centres the squares, so variances do not cancel).
    for (std::int64_t i = 0; i < x.rows(); ++i) {
      const auto c = static_cast<std::int64_t>(f.label()[i]);
      wk[c] += f.weight()[i];
      sx.row(c) += f.weight()[i] * x.row(i).cast<double>();
    }
    f.comm().allreduce(std::span<double>(buf.data(), static_cast<std::size_t>(K + K * d)), comm::ReduceOp::kSum);
    for (std::int64_t c = 0; c < K; ++c)
      if (wk[c] > 0) sx.row(c) /= wk[c];
    for (std::int64_t i = 0; i < x.rows(); ++i) {
      const auto c = static_cast<std::int64_t>(f.label()[i]);
      sxx.row(c) += f.weight()[i] * (x.row(i).cast<double>() - sx.row(c)).cwiseAbs2();
    }
    f.comm().allreduce(std::span<double>(buf.data() + K + K * d, static_cast<std::size_t>(K * d)),
                       comm::ReduceOp::kSum);
  } else {
    for (std::int64_t i = 0; i < x.rows(); ++i) {
      const auto c = static_cast<std::int64_t>(f.label()[i]);
      wk[c] += f.weight()[i];
      sx.row(c) += f.weight()[i] * x.row(i).cast<double>();
    }
    f.comm().allreduce(std::span<double>(buf.data(), static_cast<std::size_t>(K + K * d)), comm::ReduceOp::kSum);
  }
  NaiveBayesModel m;
  m.model_type = p.model_type;
  const double W = wk.sum(), lambda = p.smoothing;
  m.pi.resize(K);
  m.theta.resize(K, d);
  if (gaussian) {
    // Spark (and scikit-learn): priors without smoothing; variances plus 1e-9 times the largest
    // feature variance, so a constant feature does not divide by zero.
    const Summary s = summarize(f);
    const double eps = 1e-9 * std::max(s.variance.maxCoeff(), 0.0) + 1e-300;
    m.sigma.resize(K, d);
    for (std::int64_t c = 0; c < K; ++c) {
      m.pi[c] = wk[c] > 0 ? std::log(wk[c] / W) : -INFINITY;
      m.theta.row(c) = sx.row(c);
      m.sigma.row(c) = (wk[c] > 0 ? Eigen::RowVectorXd(sxx.row(c) / wk[c]) : Eigen::RowVectorXd::Zero(d)).array() + eps;
    }
    return m;
  }
  for (std::int64_t c = 0; c < K; ++c) {
    m.pi[c] = std::log(wk[c] + lambda) - std::log(W + static_cast<double>(K) * lambda);
    if (p.model_type == "multinomial") {
      const double total = sx.row(c).sum() + lambda * static_cast<double>(d);
      m.theta.row(c) = ((sx.row(c).array() + lambda) / total).log();
    } else {
      m.theta.row(c) = ((sx.row(c).array() + lambda) / (wk[c] + 2.0 * lambda)).log();
    }
  }
  return m;
}

Predictions NaiveBayesModel::predict(const Frame& f) const {
  LOCKSTEP_CHECK(f.num_features() == theta.cols(), DataError, "NaiveBayes: fitted on ", theta.cols(),
                 " features, the data has ", f.num_features());
  const RowMatrix x = f.to_dense();
  const std::int64_t K = pi.size(), n = x.rows();
  Predictions out;
  out.raw.resize(n, K);
  if (model_type == "multinomial") {
    for (std::int64_t i = 0; i < n; ++i) out.raw.row(i) = x.row(i).cast<double>() * theta.transpose() + pi.transpose();
  } else if (model_type == "bernoulli") {
    const Mat neg = (1.0 - theta.array().exp()).log();  // log(1 - p)
    const Mat diff = (theta - neg).transpose();
    const Eigen::RowVectorXd base = (pi + neg.rowwise().sum()).transpose();
    for (std::int64_t i = 0; i < n; ++i) out.raw.row(i) = x.row(i).cast<double>() * diff + base;
  } else {
    const Vec norm = -0.5 * (2.0 * M_PI * sigma.array()).log().matrix().rowwise().sum();
    for (std::int64_t i = 0; i < n; ++i) {
      const Eigen::RowVectorXd xi = x.row(i).cast<double>();
      for (std::int64_t c = 0; c < K; ++c)
        out.raw(i, c) = pi[c] + norm[c] - 0.5 * ((xi - theta.row(c)).array().square() / sigma.row(c).array()).sum();
    }
  }
  out.probability.resize(n, K);
  out.prediction.resize(n);
  for (std::int64_t i = 0; i < n; ++i) {
    Eigen::Index arg = 0;
    const double mx = out.raw.row(i).maxCoeff(&arg);
    const Eigen::RowVectorXd e = (out.raw.row(i).array() - mx).exp();
    out.probability.row(i) = e / e.sum();
    out.prediction[i] = static_cast<double>(arg);
  }
  return out;
}

}  // namespace lockstep::ml
