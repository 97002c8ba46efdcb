// Pipelines: a list of stages from YAML (`pipeline:` in a config), fitted in order on a Frame —
// each transformer fitted and applied before the next stage sees the data — optionally ending in
// a predictor (a classifier, regressor, KMeans, or a NeuralNetwork from the pipeline/ layer).
// Which stages exist, and how each fits, saves and loads, is the stage registry's business
// (registry.hpp); this file only strings them together. A fitted pipeline saves to one HDF5 file
// (format tag lockstep-pipeline-1, docs/checkpoint-format.md) and loads at any number of ranks.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "lockstep/io/config.hpp"
#include "lockstep/ml/evaluation.hpp"  // evaluate(truth, predictions, task), used with every pipeline
#include "lockstep/ml/frame.hpp"
#include "lockstep/ml/linear.hpp"
#include "lockstep/ml/registry.hpp"

namespace lockstep::ml {

// The format tag of /pipeline in a saved file; each stage group has its own formatVersion too.
inline constexpr const char* kPipelineFormat = "lockstep-pipeline-1";

class PipelineModel {
 public:
  PipelineModel();
  ~PipelineModel();
  PipelineModel(PipelineModel&&) noexcept;
  PipelineModel& operator=(PipelineModel&&) noexcept;

  std::size_t size() const;
  std::string stage_type(std::size_t i) const;
  const Stage& stage(std::size_t i) const;  // the fitted stage at index i (0 <= i < size())
  bool has_predictor() const;                 // the last stage predicts
  std::string task() const;                   // classification | regression | clustering | "" (transformers only)
  Frame transform(const Frame& f) const;      // every transformer stage
  Predictions predict(const Frame& f) const;  // transformers, then the predictor
  // The predictor's metrics (evaluate(), by task) on f's rows after the transformers, against the
  // transformed labels: a StringIndexer whose outputCol is `label` makes the indexed text label the
  // one scored, and rows a stage drops (handleInvalid: skip) are not scored. lockstep fit and tuning
  // score with this.
  std::map<std::string, double> evaluate(const Frame& f) const;
  // Feature importances of a tree predictor (empty otherwise), over its input columns.
  Vec feature_importances() const;

  // Rank 0 writes a temporary of its own (io::AtomicFile) and renames it into place; every rank
  // returns once it is there.
  void save(comm::Communicator& comm, const std::string& path, const std::string& config_yaml) const;
  // Refuses a file whose pipeline format tag or any stage's format version this build does not read.
  static PipelineModel load(comm::Communicator& comm, const std::string& path);

 private:
  friend PipelineModel fit_pipeline(const Frame&, const std::vector<io::StageConfig>&, const FitContext&, const Frame*);
  std::vector<std::shared_ptr<const Stage>> stages_;
};

// Reads every stage's parameters without fitting (StageKind::check): a mistake anywhere in the
// pipeline is one ConfigError at its place in the YAML, agreed on every rank. Collective.
// lockstep fit calls it before reading the data; fit_pipeline calls it before the first fit.
void check_pipeline(comm::Communicator& comm, const std::vector<io::StageConfig>& stages);

// validation (optional): transformed alongside, for a NeuralNetwork stage's per-epoch test metrics.
PipelineModel fit_pipeline(const Frame& train, const std::vector<io::StageConfig>& stages, const FitContext& ctx,
                           const Frame* validation = nullptr);

}  // namespace lockstep::ml
