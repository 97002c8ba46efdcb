// Distributed evaluators, and evaluate(): the metrics a pipeline's task reports (lockstep fit and
// tuning score pipelines with it).
#include "lockstep/ml/evaluation.hpp"

#include <algorithm>
#include <cmath>

#include "lockstep/data/partitioned.hpp"
#include "lockstep/data/wide.hpp"

namespace lockstep::ml {

MulticlassMetrics evaluate_multiclass(const Frame& t, const Predictions& p) {
  auto& comm = t.comm();
  LOCKSTEP_CHECK(p.prediction.size() == t.rows(), Error, "evaluate: ", p.prediction.size(), " predictions for ",
                 t.rows(), " rows");
  double top = -1.0;
  for (std::int64_t i = 0; i < t.rows(); ++i) top = std::max({top, t.label()[i], p.prediction[i]});
  const auto K = static_cast<std::int64_t>(comm.allreduce<double>(top, comm::ReduceOp::kMax)) + 1;
  const bool probs =
      comm.allreduce<std::int32_t>(p.probability.size() > 0 || t.rows() == 0 ? 1 : 0, comm::ReduceOp::kMin) == 1 &&
      comm.allreduce<std::int32_t>(p.probability.size() > 0 ? 1 : 0, comm::ReduceOp::kMax) == 1;
  Vec buf = Vec::Zero(K * K + 1);
  Eigen::Map<Mat> C(buf.data(), K, K);
  for (std::int64_t i = 0; i < t.rows(); ++i) {
    const auto y = static_cast<std::int64_t>(t.label()[i]), q = static_cast<std::int64_t>(p.prediction[i]);
    C(y, q) += t.weight()[i];
    if (probs) {
      const double py = y < p.probability.cols() ? p.probability(i, y) : 0.0;
      buf[K * K] -= t.weight()[i] * std::log(std::max(py, 1e-15));
    }
  }
  comm.allreduce(std::span<double>(buf.data(), static_cast<std::size_t>(buf.size())), comm::ReduceOp::kSum);
  MulticlassMetrics m;
  m.confusion = C;
  const double W = C.sum();
  const Vec actual = C.rowwise().sum(), predicted = C.colwise().sum().transpose();
  m.precision = m.recall = m.f1 = Vec::Zero(K);
  for (std::int64_t k = 0; k < K; ++k) {
    const double tp = C(k, k);
    m.precision[k] = predicted[k] > 0 ? tp / predicted[k] : 0.0;
    m.recall[k] = actual[k] > 0 ? tp / actual[k] : 0.0;
    const double s = m.precision[k] + m.recall[k];
    m.f1[k] = s > 0 ? 2 * m.precision[k] * m.recall[k] / s : 0.0;
    if (W > 0) {
      m.weighted_precision += actual[k] / W * m.precision[k];
      m.weighted_recall += actual[k] / W * m.recall[k];
      m.weighted_f1 += actual[k] / W * m.f1[k];
    }
  }
  m.accuracy = W > 0 ? C.diagonal().sum() / W : 0.0;
  m.log_loss = probs && W > 0 ? buf[K * K] / W : NAN;
  return m;
}

BinaryMetrics evaluate_binary(const Frame& t, const Vec& scores) {
  auto& comm = t.comm();
  LOCKSTEP_CHECK(scores.size() == t.rows(), Error, "evaluate: ", scores.size(), " scores for ", t.rows(), " rows");
  // (score, (positive weight, negative weight)) per row; -0.0 and 0.0 are one score.
  using Group = std::pair<double, std::pair<double, double>>;
  std::vector<Group> mine;
  std::int64_t bad = INT64_MAX;
  for (std::int64_t i = 0; i < t.rows(); ++i) {
    const double y = t.label()[i];
    if ((y != 0.0 && y != 1.0) || !std::isfinite(scores[i])) bad = std::min(bad, t.row_offset() + i);
    const double w = t.weight()[i];
    mine.push_back({scores[i] == 0.0 ? 0.0 : scores[i], {y == 1.0 ? w : 0.0, y == 1.0 ? 0.0 : w}});
  }
  agree_on_first_bad_row(
      comm, bad,
      "binary evaluation: row " + std::to_string(bad) + " has a label other than 0/1 or a score that is not finite");
  // Equal scores become one group (reduce_by_key), and the groups are sorted by descending score
  // over the ranks (sort_by): rank 0 holds the highest scores, each rank walks its own downwards.
  auto merged = data::reduce_by_key(data::Partitioned<Group>::from_local(comm, std::move(mine)),
                                    [](std::pair<double, double> a, std::pair<double, double> b) {
                                      return std::pair<double, double>(a.first + b.first, a.second + b.second);
                                    });
  const std::vector<Group> groups =
      data::sort_by(merged, [](const Group& g) { return g.first; }, /*ascending=*/false).local();
  const int np = comm.size();
  double local[2] = {0.0, 0.0};
  for (const auto& g : groups) local[0] += g.second.first, local[1] += g.second.second;
  struct Tot {
    double pos, neg;
  };
  const auto totals = comm.allgather(Tot{local[0], local[1]});
  double P = 0.0, N = 0.0, tp = 0.0, fp = 0.0;
  for (int r = 0; r < np; ++r) {
    P += totals[static_cast<std::size_t>(r)].pos, N += totals[static_cast<std::size_t>(r)].neg;
    if (r < comm.rank()) tp += totals[static_cast<std::size_t>(r)].pos, fp += totals[static_cast<std::size_t>(r)].neg;
  }
  double sums[2] = {0.0, 0.0};  // ROC area (unnormalised), PR area
  for (const auto& g : groups) {
    const double pos = g.second.first, neg = g.second.second;
    sums[0] += neg * (tp + 0.5 * pos);
    const double prev_recall = P > 0 ? tp / P : 0.0;
    const double ntp = tp + pos, nfp = fp + neg;
    const double prec = ntp + nfp > 0 ? ntp / (ntp + nfp) : 1.0;
    const double prev_prec = tp + fp > 0 ? tp / (tp + fp) : prec;  // the curve starts at (0, first precision)
    const double recall = P > 0 ? ntp / P : 0.0;
    sums[1] += (recall - prev_recall) * 0.5 * (prec + prev_prec);
    tp = ntp, fp = nfp;
  }
  comm.allreduce(std::span<double>(sums, 2), comm::ReduceOp::kSum);
  BinaryMetrics m;
  m.area_under_roc = P > 0 && N > 0 ? sums[0] / (P * N) : NAN;
  m.area_under_pr = P > 0 ? sums[1] : NAN;
  return m;
}

RegressionMetrics evaluate_regression(const Frame& t, const Vec& pred) {
  LOCKSTEP_CHECK(pred.size() == t.rows(), Error, "evaluate: ", pred.size(), " predictions for ", t.rows(), " rows");
  double s[5] = {0, 0, 0, 0, 0};  // W, sum w e^2, sum w |e|, sum w y, sum w y^2
  for (std::int64_t i = 0; i < t.rows(); ++i) {
    const double w = t.weight()[i], y = t.label()[i], e = pred[i] - y;
    s[0] += w, s[1] += w * e * e, s[2] += w * std::fabs(e), s[3] += w * y, s[4] += w * y * y;
  }
  t.comm().allreduce(std::span<double>(s, 5), comm::ReduceOp::kSum);
  const double ybar = s[3] / s[0];
  double ev = 0.0;
  for (std::int64_t i = 0; i < t.rows(); ++i) ev += t.weight()[i] * (pred[i] - ybar) * (pred[i] - ybar);
  ev = t.comm().allreduce<double>(ev, comm::ReduceOp::kSum);
  RegressionMetrics m;
  m.mse = s[1] / s[0];
  m.rmse = std::sqrt(m.mse);
  m.mae = s[2] / s[0];
  const double sst = s[4] - s[0] * ybar * ybar;
  m.r2 = sst > 0 ? 1.0 - s[1] / sst : NAN;
  m.explained_variance = ev / s[0];
  return m;
}

bool larger_is_better(const std::string& m) {
  return !(m == "rmse" || m == "mse" || m == "mae" || m == "logLoss" || m == "cost");
}

std::map<std::string, double> evaluate(const Frame& truth, const Predictions& p, const std::string& task) {
  std::map<std::string, double> out;
  if (task == "classification") {
    const auto m = evaluate_multiclass(truth, p);
    out["accuracy"] = m.accuracy;
    out["f1"] = m.weighted_f1;
    out["weightedPrecision"] = m.weighted_precision;
    out["weightedRecall"] = m.weighted_recall;
    if (std::isfinite(m.log_loss)) out["logLoss"] = m.log_loss;
    if (m.confusion.rows() <= 2) {
      // The score of class 1: its probability, else the last raw column (a margin), else the class.
      Vec score = p.probability.cols() == 2 ? Vec(p.probability.col(1))
                                            : (p.raw.cols() >= 1 ? Vec(p.raw.col(p.raw.cols() - 1)) : p.prediction);
      if (score.size() != truth.rows()) score = p.prediction;
      const auto b = evaluate_binary(truth, score);
      out["areaUnderROC"] = b.area_under_roc;
      out["areaUnderPR"] = b.area_under_pr;
    }
  } else if (task == "regression") {
    const auto m = evaluate_regression(truth, p.prediction);
    out["rmse"] = m.rmse, out["mse"] = m.mse, out["mae"] = m.mae, out["r2"] = m.r2;
  } else if (task == "clustering") {
    double c = 0.0;
    for (std::int64_t i = 0; i < truth.rows(); ++i)
      c += truth.weight()[i] * p.raw(i, static_cast<Eigen::Index>(p.prediction[i]));
    out["cost"] = truth.comm().allreduce<double>(c, comm::ReduceOp::kSum);
  }
  return out;
}

}  // namespace lockstep::ml
