// Evaluators, computed by collectives over each rank's predictions (Spark ML's metric names).
// Instance weights count everywhere. Binary areas are exact: the scores are sorted across ranks
// (a sample sort: splitters from samples, one all-to-all, a local sort), no rank gathers them.
#pragma once

#include <map>
#include <string>

#include "lockstep/ml/frame.hpp"
#include "lockstep/ml/linear.hpp"

namespace lockstep::ml {

struct MulticlassMetrics {
  double accuracy = 0.0;
  double weighted_precision = 0.0, weighted_recall = 0.0, weighted_f1 = 0.0;
  double log_loss = 0.0;      // NaN without probabilities
  Vec precision, recall, f1;  // per class (0 where undefined, as Spark)
  Mat confusion;              // rows: true class, columns: predicted class (weighted counts)
};
// Labels and weights from `truth`; predictions (and probabilities, for log loss) for its rows.
MulticlassMetrics evaluate_multiclass(const Frame& truth, const Predictions& p);

struct BinaryMetrics {
  double area_under_roc = 0.0;
  double area_under_pr = 0.0;  // trapezoids over (recall, precision), starting at recall 0 (Spark)
};
// scores: larger means more likely class 1 (a probability or a margin); labels 0 or 1.
BinaryMetrics evaluate_binary(const Frame& truth, const Vec& scores);

struct RegressionMetrics {
  double rmse = 0.0, mse = 0.0, mae = 0.0, r2 = 0.0, explained_variance = 0.0;
};
RegressionMetrics evaluate_regression(const Frame& truth, const Vec& prediction);

// The metrics of a task (a stage's task_name) on labelled rows, by Spark's names: classification
// (accuracy, f1, weightedPrecision, weightedRecall, logLoss with probabilities, areaUnderROC and
// areaUnderPR for two classes), regression (rmse, mse, mae, r2), clustering (cost).
std::map<std::string, double> evaluate(const Frame& truth, const Predictions& p, const std::string& task);
bool larger_is_better(const std::string& metric);

}  // namespace lockstep::ml
