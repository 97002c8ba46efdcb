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
  m.pi = get_vec(h, g + "/pi");
  m.theta = get_mat(h, g + "/theta");
  if (h.exists(g + "/sigma")) m.sigma = get_mat(h, g + "/sigma");
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
