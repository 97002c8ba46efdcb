// Linear models fitted by collectives, with Spark MLlib's parameters and defaults:
//   LinearRegression   squared error; normal equations from an allreduced Gram matrix (closed
//                      form for L2, coordinate descent on the Gram matrix for L1/elastic net) when
//                      the feature count allows, L-BFGS / OWL-QN over the data otherwise;
//   LogisticRegression binomial (sigmoid) or multinomial (softmax), L-BFGS, OWL-QN with L1;
//   LinearSVC          hinge loss, dual coordinate descent (CoCoA+ over blocks of rows) or L-BFGS;
//                      one-vs-rest for more than two classes.
// Objectives (W = sum of row weights w_i; beta excludes the intercept, which is never penalised):
//   (1/W) sum_i w_i loss_i(beta, b) + regParam * (elasticNetParam * |beta|_1
//                                                 + (1 - elasticNetParam) / 2 * |beta|_2^2)
// With standardization (the default) the penalty applies to the coefficients of the features
// divided by their standard deviations, as in Spark; coefficients are always reported on the
// original scale. docs/ml.md lists where this differs from scikit-learn.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "lockstep/ml/frame.hpp"
#include "lockstep/ml/optim.hpp"

namespace lockstep::ml {

// What a fitted classifier or regressor says about this rank's rows.
struct Predictions {
  Vec prediction;   // class index or regression value, one per row
  Mat probability;  // rows x classes (classifiers with probabilities; empty otherwise)
  Mat raw;          // rows x outputs: margins, votes or distances (empty when not meaningful)
};

// Dense features that are all exactly float(code) * scale, code an integer in 0..255 and scale
// one float for the whole frame (8-bit images as data/'s IDX reader scales them, float(byte) *
// (1/255), or raw bytes): LogisticRegression and LinearSVC then stream these codes, a quarter of
// the float32 bytes, and decode each tile of rows to the very same float32 values. The scale tried
// is the smallest positive value, then the largest / 255. Inactive when any value on any rank is
// not of that form, or the frame is sparse. Collective.
struct CompactFeatures {
  std::vector<std::uint8_t> codes;  // this rank's rows x features, row-major
  float scale = 0.0f;
  bool active = false;  // the same on every rank
  bool empty() const { return !active; }
};
CompactFeatures compact_features(const Frame& f);

struct LinearRegressionParams {
  int max_iter = 100;
  double reg_param = 0.0;
  double elastic_net_param = 0.0;
  double tol = 1e-6;
  bool fit_intercept = true;
  bool standardization = true;
  std::string solver = "auto";              // auto | normal | l-bfgs
  std::int64_t max_normal_features = 4096;  // auto picks normal equations up to this many features
};

struct LinearModel {
  Mat coefficients;  // outputs x features, on the original feature scale
  Vec intercept;     // one per output
  int iterations = 0;
  int evaluations = 0;  // passes over the data
  std::vector<double> objective_history;
  std::string solver;                 // what actually ran
  Mat margins(const Frame& f) const;  // local rows x outputs: X beta^T + b
};

struct LinearRegressionModel : LinearModel {
  Predictions predict(const Frame& f) const;
};
LinearRegressionModel fit_linear_regression(const Frame& f, const LinearRegressionParams& p);

struct LogisticRegressionParams {
  int max_iter = 100;
  double reg_param = 0.0;
  double elastic_net_param = 0.0;
  double tol = 1e-6;
  bool fit_intercept = true;
  bool standardization = true;
  std::string family = "auto";     // auto | binomial | multinomial
  double threshold = 0.5;          // binomial: predict 1 when P(1) > threshold
  std::vector<double> thresholds;  // any: predict argmax p_k / t_k (overrides threshold)
  bool compact = true;             // stream CompactFeatures when exact (false: float32 always)
};

struct LogisticRegressionModel : LinearModel {
  std::int64_t num_classes = 2;
  bool binomial = true;  // one coefficient row, P(1) = sigmoid(margin)
  double threshold = 0.5;
  std::vector<double> thresholds;
  Predictions predict(const Frame& f) const;
};
LogisticRegressionModel fit_logistic_regression(const Frame& f, const LogisticRegressionParams& p);

struct LinearSvcParams {
  int max_iter = 100;
  double reg_param = 0.0;
  double tol = 1e-6;
  bool fit_intercept = true;
  bool standardization = true;
  double threshold = 0.0;  // binary: predict 1 when the margin > threshold
  bool compact = true;     // stream CompactFeatures when exact (false: float32 always)
  // auto | l-bfgs | dual-cd. auto: dual-cd when regParam > 0 (its box bounds are 1/regParam), else
  // l-bfgs. dual-cd: dual coordinate descent over num_blocks blocks of contiguous global rows,
  // the same at any number of ranks; ranks beyond num_blocks idle (docs/ml.md).
  std::string solver = "auto";
  int num_blocks = 4;
};

struct LinearSvcModel : LinearModel {
  std::int64_t num_classes = 2;
  double threshold = 0.0;
  Predictions predict(const Frame& f) const;  // several classes: the largest one-vs-rest margin
};
LinearSvcModel fit_linear_svc(const Frame& f, const LinearSvcParams& p);

}  // namespace lockstep::ml
