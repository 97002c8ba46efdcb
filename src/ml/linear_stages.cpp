// The linear models as pipeline stages (linear.hpp): LinearRegression, LogisticRegression and
// LinearSVC — their parameters by Spark name, their saved form (format version 1, the layout of
// lockstep-pipeline-1: coefficients and intercept datasets plus scalar attributes) and their rows.
#include <limits>

#include "lockstep/ml/linear.hpp"
#include "ml/stage_rows.hpp"

namespace lockstep::ml {

// ---- saved forms (in lockstep::ml, where ModelStage's argument-dependent lookup finds them) ----

namespace {
void save_linear(H5File& h, const std::string& g, const LinearModel& m) {
  put(h, g + "/coefficients", m.coefficients);
  put(h, g + "/intercept", m.intercept);
  h.set_attr(g, "iterations", static_cast<std::int64_t>(m.iterations));
}
// coefficients [outputs, features], both >= 1 (outputs: `outputs` when given), and one intercept
// per output.
void load_linear(const H5File& h, const std::string& g, LinearModel& m, std::int64_t outputs = -1) {
  m.coefficients = get_mat(h, g + "/coefficients");
  expect_model(m.coefficients.rows() >= 1 && m.coefficients.cols() >= 1, h, g, "coefficients",
               "expected at least one output and one feature, found shape [" + std::to_string(m.coefficients.rows()) +
                   ", " + std::to_string(m.coefficients.cols()) + "]");
  if (outputs >= 0) expect_size(h, g, "coefficients", m.coefficients.rows(), outputs, "rows: the model's outputs");
  m.intercept = get_vec(h, g + "/intercept");
  expect_size(h, g, "intercept", m.intercept.size(), m.coefficients.rows(), "one per row of coefficients");
  m.iterations = static_cast<int>(int_attr_in(h, g, "iterations", 0, std::numeric_limits<int>::max()));
}
std::map<std::string, double> linear_summary(const LinearModel& m) {
  std::map<std::string, double> out{{"iterations", m.iterations}, {"evaluations", m.evaluations}};
  if (!m.objective_history.empty()) out["objective"] = m.objective_history.back();  // at the solution
  return out;
}
}  // namespace

void save_model(H5File& h, const std::string& g, const LinearRegressionModel& m) {
  save_linear(h, g, m);
}
std::map<std::string, double> model_summary(const LinearRegressionModel& m) {
  return linear_summary(m);
}

void save_model(H5File& h, const std::string& g, const LogisticRegressionModel& m) {
  save_linear(h, g, m);
  h.set_attr(g, "numClasses", m.num_classes);
  h.set_attr(g, "binomial", static_cast<std::int64_t>(m.binomial));
  h.set_attr(g, "threshold", m.threshold);
  if (!m.thresholds.empty())
    h.write<double>(g + "/thresholds", m.thresholds.data(), {static_cast<std::int64_t>(m.thresholds.size())});
}
std::map<std::string, double> model_summary(const LogisticRegressionModel& m) {
  return linear_summary(m);
}

void save_model(H5File& h, const std::string& g, const LinearSvcModel& m) {
  save_linear(h, g, m);
  h.set_attr(g, "numClasses", m.num_classes);
  h.set_attr(g, "threshold", m.threshold);
}
std::map<std::string, double> model_summary(const LinearSvcModel& m) {
  return linear_summary(m);
}

namespace {

constexpr std::int64_t kMaxClasses = std::numeric_limits<std::int32_t>::max();

LinearRegressionModel load_linear_regression(const H5File& h, const std::string& g) {
  LinearRegressionModel m;
  load_linear(h, g, m, 1);
  return m;
}

// Binomial: one row of coefficients and two classes; multinomial: a row per class.
LogisticRegressionModel load_logistic_regression(const H5File& h, const std::string& g) {
  LogisticRegressionModel m;
  m.binomial = int_attr_in(h, g, "binomial", 0, 1) != 0;
  m.num_classes = m.binomial ? int_attr_in(h, g, "numClasses", 2, 2) : int_attr_in(h, g, "numClasses", 2, kMaxClasses);
  load_linear(h, g, m, m.binomial ? 1 : m.num_classes);
  m.threshold = h.attr_double(g, "threshold");
  expect_model(m.threshold >= 0 && m.threshold <= 1, h, g, "", "attribute threshold: expected a number in [0, 1]");
  if (h.exists(g + "/thresholds")) {
    m.thresholds = h.read<double>(g + "/thresholds");
    expect_size(h, g, "thresholds", static_cast<std::int64_t>(m.thresholds.size()), m.num_classes, "numClasses");
  }
  return m;
}

// Two classes: one row of coefficients; more: one-vs-rest, a row per class.
LinearSvcModel load_linear_svc(const H5File& h, const std::string& g) {
  LinearSvcModel m;
  m.num_classes = int_attr_in(h, g, "numClasses", 2, kMaxClasses);
  load_linear(h, g, m, m.num_classes == 2 ? 1 : m.num_classes);
  m.threshold = h.attr_double(g, "threshold");
  return m;
}

// ---- parameters: the ones all three share (elasticNetParam where the estimator has it); the
// estimators check the ranges themselves, since their C++ callers need the same checks ----

template <typename P>
void read_linear(ParamReader& p, P& q) {
  p.get("maxIter", q.max_iter);
  p.get("regParam", q.reg_param);
  if constexpr (requires { q.elastic_net_param; }) p.get("elasticNetParam", q.elastic_net_param);
  p.get("tol", q.tol);
  p.get("fitIntercept", q.fit_intercept);
  p.get("standardization", q.standardization);
}

// ---- rows ----

const StageRegistrar kLinearRegression{model_row<LinearRegressionModel, LinearRegressionParams>(
    "LinearRegression", StageTask::kRegression, 1,
    [](ParamReader& p, LinearRegressionParams& q) {
      read_linear(p, q);
      p.get("solver", q.solver);
    },
    fit_linear_regression, load_linear_regression)};

const StageRegistrar kLogisticRegression{model_row<LogisticRegressionModel, LogisticRegressionParams>(
    "LogisticRegression", StageTask::kClassification, 1,
    [](ParamReader& p, LogisticRegressionParams& q) {
      read_linear(p, q);
      p.get("family", q.family);
      p.get("threshold", q.threshold);
      p.get_list("thresholds", q.thresholds);
    },
    fit_logistic_regression, load_logistic_regression)};

const StageRegistrar kLinearSvc{model_row<LinearSvcModel, LinearSvcParams>(
    "LinearSVC", StageTask::kClassification, 1,
    [](ParamReader& p, LinearSvcParams& q) {
      read_linear(p, q);
      p.get("threshold", q.threshold);
      p.get("solver", q.solver);
      p.get("numBlocks", q.num_blocks);
    },
    fit_linear_svc, load_linear_svc)};

}  // namespace
}  // namespace lockstep::ml
