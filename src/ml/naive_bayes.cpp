// NaiveBayes: per-class sums by allreduce; prediction by log joint likelihood.
#include "lockstep/ml/naive_bayes.hpp"

#include <cmath>

#include "lockstep/ml/stats.hpp"

namespace lockstep::ml {
namespace {

// fn(column, value) for the stored values of row i: every column of a dense row, the non-zeros
// of a CSR row (in column order either way).
template <typename X, typename Fn>
void for_row(const X& x, std::int64_t i, Fn&& fn) {
  if constexpr (std::is_same_v<X, CsrMatrix>) {
    for (CsrMatrix::InnerIterator it(x, i); it; ++it) fn(it.col(), it.value());
  } else {
    for (std::int64_t j = 0; j < x.cols(); ++j) fn(j, x(i, j));
  }
}

}  // namespace

NaiveBayesModel fit_naive_bayes(const Frame& f, const NaiveBayesParams& p) {
  LOCKSTEP_CHECK(p.model_type == "multinomial" || p.model_type == "bernoulli" || p.model_type == "gaussian",
                 ConfigError, "modelType: expected one of multinomial, bernoulli, gaussian; got \"", p.model_type,
                 "\"");
  LOCKSTEP_CHECK(p.smoothing >= 0, ConfigError, "smoothing: expected a number >= 0, got ", p.smoothing);
  check_finite(f);
  const std::int64_t K = num_classes(f), d = f.num_features();
  // Validate the feature domain, reporting the first bad (row, column) over all ranks. Sparse
  // frames (term frequencies) are read as they stand: only their stored values can be bad.
  std::int64_t bad = INT64_MAX, bad_col = -1;
  const auto bad_value = [&](float v) { return p.model_type == "multinomial" ? v < 0 : (v != 0.0f && v != 1.0f); };
  if (p.model_type != "gaussian") {
    f.visit([&](const auto& x) {
      for (std::int64_t i = 0; i < x.rows() && bad == INT64_MAX; ++i)
        for_row(x, i, [&](std::int64_t j, float v) {
          if (bad == INT64_MAX && bad_value(v)) bad = f.row_offset() + i, bad_col = j;
        });
    });
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
  const auto class_sums = [&] {
    f.visit([&](const auto& x) {
      for (std::int64_t i = 0; i < x.rows(); ++i) {
        const auto c = static_cast<std::int64_t>(f.label()[i]);
        const double w = f.weight()[i];
        wk[c] += w;
        for_row(x, i, [&](std::int64_t j, float v) { sx(c, j) += w * static_cast<double>(v); });
      }
    });
    f.comm().allreduce(std::span<double>(buf.data(), static_cast<std::size_t>(K + K * d)), comm::ReduceOp::kSum);
  };
  class_sums();
  if (gaussian) {
    // A second pass centres the squares, so variances do not cancel.
    for (std::int64_t c = 0; c < K; ++c)
      if (wk[c] > 0) sx.row(c) /= wk[c];
    const RowMatrix x = f.to_dense();
    for (std::int64_t i = 0; i < x.rows(); ++i) {
      const auto c = static_cast<std::int64_t>(f.label()[i]);
      sxx.row(c) += f.weight()[i] * (x.row(i).cast<double>() - sx.row(c)).cwiseAbs2();
    }
    f.comm().allreduce(std::span<double>(buf.data() + K + K * d, static_cast<std::size_t>(K * d)),
                       comm::ReduceOp::kSum);
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
  const std::int64_t K = pi.size(), n = f.rows();
  Predictions out;
  out.raw.resize(n, K);
  if (model_type == "multinomial" || model_type == "bernoulli") {
    // Bernoulli: log(1 - p) for every feature, plus (log p - log(1 - p)) where x = 1.
    Mat coef = theta;
    Eigen::RowVectorXd base = pi.transpose();
    if (model_type == "bernoulli") {
      const Mat neg = (1.0 - theta.array().exp()).log();
      coef = theta - neg;
      base += neg.rowwise().sum().transpose();
    }
    f.visit([&](const auto& x) {
      for (std::int64_t i = 0; i < n; ++i) {
        Eigen::RowVectorXd r = base;
        for_row(x, i, [&](std::int64_t j, float v) {
          if (v != 0.0f) r += static_cast<double>(v) * coef.col(j).transpose();
        });
        out.raw.row(i) = r;
      }
    });
  } else {
    const RowMatrix x = f.to_dense();
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
