// KMeans as a pipeline stage (clustering.hpp): its parameters by Spark name, its saved form
// (format version 1, the layout of lockstep-pipeline-1: the centres and the training cost) and its row.
#include "lockstep/ml/clustering.hpp"
#include "ml/stage_rows.hpp"

namespace lockstep::ml {

// In lockstep::ml, where ModelStage's argument-dependent lookup finds them.
void save_model(H5File& h, const std::string& g, const KMeansModel& m) {
  put(h, g + "/centers", m.centers);
  h.set_attr(g, "trainingCost", m.training_cost);
}
std::map<std::string, double> model_summary(const KMeansModel& m) {
  return {{"trainingCost", m.training_cost}, {"iterations", m.iterations}};
}

namespace {

KMeansModel load_kmeans(const H5File& h, const std::string& g) {
  KMeansModel m;
  m.centers = get_mat(h, g + "/centers");
  expect_model(m.centers.rows() >= 1 && m.centers.cols() >= 1, h, g, "centers",
               "expected at least one centre of at least one feature, found shape [" + std::to_string(m.centers.rows()) +
                   ", " + std::to_string(m.centers.cols()) + "]");
  m.training_cost = h.attr_double(g, "trainingCost");
  return m;
}

const StageRegistrar kKMeans{model_row<KMeansModel, KMeansParams>(
    "KMeans", StageTask::kClustering, 1,
    [](ParamReader& p, KMeansParams& q) {  // fit_kmeans checks the ranges
      p.get("k", q.k);
      p.get("maxIter", q.max_iter);
      p.get("tol", q.tol);
      p.get("seed", q.seed);
      p.get("initMode", q.init_mode);
      p.get("initSteps", q.init_steps);
      p.get("tolMode", q.tol_mode);
      p.get("algorithm", q.algorithm);
    },
    fit_kmeans, load_kmeans)};

}  // namespace
}  // namespace lockstep::ml
