// The stage registry: the one list of pipeline stages. A row holds a stage's name (Spark's:
// LogisticRegression, StandardScaler, ...), its task, the version of its saved form, how to fit it
// from a config (its parameters read with io::ParamReader) and how to load it from a model file.
// Each estimator family registers its rows from its own source file with a static StageRegistrar
// (src/ml/linear_stages.cpp, src/pipeline/neural_network_stage.cpp, ...), so adding an estimator
// touches only its own files; fitting, saving and loading pipelines, tuning's grid check, the
// "unknown stage" message and bench/ml_fit all ask this registry.
//
// Registrars run during static initialisation, and a linker keeps only the objects of a static
// library that something refers to; nothing refers to a stage file. Every executable therefore
// links lockstep whole (`$<LINK_LIBRARY:WHOLE_ARCHIVE,lockstep>`), and tests/ml/test_registry.cpp
// fails if any expected row is missing.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "lockstep/io/config.hpp"
#include "lockstep/ml/frame.hpp"
#include "lockstep/ml/linear.hpp"  // Predictions

namespace lockstep::detail {
class H5File;  // src/detail/hdf5.hpp: stage files save and load through it
}

namespace lockstep::ml {

enum class StageTask { kTransformer, kClassification, kRegression, kClustering };
// "transformer", "classification", "regression", "clustering".
std::string task_name(StageTask task);

struct FitContext {
  std::string output_dir;  // NeuralNetwork stages log and checkpoint under <output_dir>/nn
  std::string progress = "auto";
  bool verbose = true;  // rank 0 logs each stage's fit time
};

// A fitted stage: a transformer maps a Frame to a Frame, a predictor predicts. A predictor stands
// last, unless it can hand its outputs on (inner_transform(): a NeuralNetwork, whose transform()
// gives its raw outputs as features). Saved into one HDF5 group of a pipeline file.
class Stage {
 public:
  virtual ~Stage() = default;
  virtual const std::string& type() const = 0;  // the registry row's name
  virtual StageTask task() const = 0;
  bool is_predictor() const { return task() != StageTask::kTransformer; }
  virtual Frame transform(const Frame& f) const { return f; }
  // True when the stage may stand before the last one: every transformer, and a predictor whose
  // transform() hands its outputs on to the next stage.
  virtual bool inner_transform() const { return !is_predictor(); }
  virtual Predictions predict(const Frame& f) const;  // throws for transformers
  // The rows a predictor's evaluation scores: all of them, except where the stage drops some
  // (ALS with coldStartStrategy drop: rows whose user or item it never saw). Collective.
  virtual Frame evaluation_rows(const Frame& f) const { return f; }
  virtual Vec importances() const { return {}; }      // tree models: Spark's feature importances
  // What the fit reports about itself (iterations, trainingCost, ...), by Spark's summary names.
  virtual std::map<std::string, double> summary() const { return {}; }
  // Writes the model's datasets and attributes into `group` (which exists).
  virtual void save(detail::H5File& file, const std::string& group) const = 0;
};

// What a row's fit gets: the stage's config (parameters by Spark name, each with its place in the
// YAML), the rows to fit on (already through the earlier stages), the same for the validation
// rows when there are any (a NeuralNetwork's per-epoch test metrics), and the run's context.
struct StageFitArgs {
  const io::StageConfig& config;
  const Frame& train;
  const Frame* validation;
  const FitContext& context;
};

struct StageKind {
  std::string name;
  StageTask task = StageTask::kTransformer;
  // The version of the group save() writes; bump it whenever save() or load changes, so that an
  // older or newer file is refused with both versions named instead of misread.
  std::int64_t format_version = 1;
  bool tunable = true;  // tuning grids may set its parameters
  std::function<std::shared_ptr<const Stage>(const StageFitArgs&)> fit;
  std::function<std::shared_ptr<const Stage>(const detail::H5File&, const std::string& group)> load;
  // Reads the stage's parameters without fitting: a ConfigError at the parameter's place in the
  // YAML. fit_pipeline checks every stage before fitting the first. Empty: checked when fitted.
  std::function<void(const io::StageConfig&)> check;
};

// Adds a row at static initialisation; a second row with the same name is a programming error
// (reported on stderr and the process ends, since nothing can catch it before main).
struct StageRegistrar {
  explicit StageRegistrar(StageKind kind);
};

// The row named `name`, or nullptr.
const StageKind* find_stage_kind(const std::string& name);
// The row named `name`; otherwise a ConfigError at `where` listing every known stage.
const StageKind& stage_kind(const std::string& name, const std::string& where);
// Every registered name, sorted.
std::vector<std::string> stage_names();

// Fits the stage `config` names. Errors the estimator raises about its parameters are prefixed
// with config.where.
std::shared_ptr<const Stage> fit_stage(const io::StageConfig& config, const Frame& train, const Frame* validation,
                                       const FitContext& context);
// Writes the stage into `group` (created here) with its type and format version attributes.
void save_stage(const Stage& stage, detail::H5File& file, const std::string& group);
// Reads a group save_stage wrote; an unknown type or a different format version is an IoError
// naming the file, the group and (for versions) both numbers.
std::shared_ptr<const Stage> load_stage(const detail::H5File& file, const std::string& group);

}  // namespace lockstep::ml
