// Pipelines: a list of stages from YAML (`pipeline:` in a config), fitted in order on a Frame —
// each transformer fitted and applied before the next stage sees the data — optionally ending in
// a predictor (a classifier, regressor, KMeans or a NeuralNetwork trained by the data-parallel
// trainer). A fitted pipeline saves to one HDF5 file and loads at any number of ranks.
// CrossValidator and TrainValidationSplit pick parameters from a grid by a metric.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "lockstep/io/config.hpp"
#include "lockstep/ml/frame.hpp"
#include "lockstep/ml/linear.hpp"

namespace lockstep::ml {

class Stage;  // a fitted stage (pipeline.cpp)

struct FitContext {
  std::string output_dir;  // NeuralNetwork stages log and checkpoint under <output_dir>/nn
  std::string progress = "auto";
  bool verbose = true;  // rank 0 logs each stage's fit time
};

class PipelineModel {
 public:
  PipelineModel();
  ~PipelineModel();
  PipelineModel(PipelineModel&&) noexcept;
  PipelineModel& operator=(PipelineModel&&) noexcept;

  std::size_t size() const;
  std::string stage_type(std::size_t i) const;
  bool has_predictor() const;                 // the last stage predicts
  std::string task() const;                   // classification | regression | clustering | "" (transformers only)
  Frame transform(const Frame& f) const;      // every transformer stage
  Predictions predict(const Frame& f) const;  // transformers, then the predictor
  // Feature importances of a tree predictor (empty otherwise), over its input columns.
  Vec feature_importances() const;

  // Rank 0 writes <path>.tmp and renames it into place; every rank returns once it is there.
  void save(comm::Communicator& comm, const std::string& path, const std::string& config_yaml) const;
  static PipelineModel load(comm::Communicator& comm, const std::string& path);

 private:
  friend PipelineModel fit_pipeline(const Frame&, const std::vector<io::StageConfig>&, const FitContext&, const Frame*);
  std::vector<std::shared_ptr<const Stage>> stages_;
};

// validation (optional): transformed alongside, for a NeuralNetwork stage's per-epoch test metrics.
PipelineModel fit_pipeline(const Frame& train, const std::vector<io::StageConfig>& stages, const FitContext& ctx,
                           const Frame* validation = nullptr);

// The metrics of the task on labelled rows: classification (accuracy, f1, weightedPrecision,
// weightedRecall, logLoss with probabilities, areaUnderROC and areaUnderPR for two classes),
// regression (rmse, mse, mae, r2), clustering (cost).
std::map<std::string, double> evaluate(const Frame& truth, const Predictions& p, const std::string& task);
bool larger_is_better(const std::string& metric);

struct TuningResult {
  std::vector<io::StageConfig> best_stages;
  std::vector<std::pair<std::string, double>> candidates;  // "LogisticRegression.regParam=0.01" -> mean metric
  std::string metric;
  double best = 0.0;
};
// CrossValidator: folds by (seed, global row); TrainValidationSplit: one split by (seed, row).
TuningResult tune(const Frame& train, const std::vector<io::StageConfig>& stages, const io::TuningConfig& t,
                  const FitContext& ctx);

}  // namespace lockstep::ml
