// NaiveBayes as a pipeline stage (naive_bayes.hpp): its parameters by Spark name, its saved form
// (format version 1, the layout of lockstep-pipeline-1: log priors, theta and, for gaussian, the
// variances) and its row.
#include "lockstep/ml/naive_bayes.hpp"
#include "ml/stage_rows.hpp"

namespace lockstep::ml {

// In lockstep::ml, where ModelStage's argument-dependent lookup finds it.
void save_model(H5File& h, const std::string& g, const NaiveBayesModel& m) {
  h.set_attr(g, "modelType", m.model_type);
  put(h, g + "/pi", m.pi);
  put(h, g + "/theta", m.theta);
  if (m.sigma.size()) put(h, g + "/sigma", m.sigma);
}

namespace {

NaiveBayesModel load_naive_bayes(const H5File& h, const std::string& g) {
  NaiveBayesModel m;
  m.model_type = h.attr_string(g, "modelType");
  expect_model(m.model_type == "multinomial" || m.model_type == "bernoulli" || m.model_type == "gaussian", h, g, "",
               "attribute modelType: expected multinomial, bernoulli or gaussian, found \"" + m.model_type + "\"");
  m.pi = get_vec(h, g + "/pi");
  expect_model(m.pi.size() >= 1, h, g, "pi", "expected at least one class, found none");
  m.theta = get_mat(h, g + "/theta");
  expect_size(h, g, "theta", m.theta.rows(), m.pi.size(), "rows: one per class of pi");
  expect_model(m.theta.cols() >= 1, h, g, "theta", "expected at least one feature, found none");
  const bool gaussian = m.model_type == "gaussian";
  expect_model(h.exists(g + "/sigma") == gaussian, h, g, "sigma",
               gaussian ? "missing (a gaussian model has variances)" : "present, but only a gaussian model has one");
  if (gaussian) {
    m.sigma = get_mat(h, g + "/sigma");
    expect_model(m.sigma.rows() == m.theta.rows() && m.sigma.cols() == m.theta.cols(), h, g, "sigma",
                 "expected the shape of theta [" + std::to_string(m.theta.rows()) + ", " +
                     std::to_string(m.theta.cols()) + "]");
  }
  return m;
}

const StageRegistrar kNaiveBayes{model_row<NaiveBayesModel, NaiveBayesParams>(
    "NaiveBayes", StageTask::kClassification, 1,
    [](ParamReader& p, NaiveBayesParams& q) {  // fit_naive_bayes checks the values
      p.get("modelType", q.model_type);
      p.get("smoothing", q.smoothing);
    },
    fit_naive_bayes, load_naive_bayes)};

}  // namespace
}  // namespace lockstep::ml
