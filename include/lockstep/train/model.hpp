// The model a run describes, and how it is run over rows: building it from the options,
// the parameter layout checkpoints record, a fixed-shape forward pass over a rank's rows, and
// the collective evaluation of the task's metrics (accuracy for classifiers, accuracy and ROC AUC
// for a binary head, RMSE and R^2 for regression).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "lockstep/comm/communicator.hpp"
#include "lockstep/io/checkpoint.hpp"
#include "lockstep/io/config.hpp"
#include "lockstep/nn/head.hpp"
#include "lockstep/nn/sequential.hpp"
#include "lockstep/train/data_loading.hpp"

namespace lockstep::train {

// What the trainer needs of a run's configuration: everything but the data section, plus the
// run's identity (its resolved YAML and hash), which checkpoints record and resume compares.
struct TrainerOptions {
  io::ModelConfig model;
  OptimizerOptions optimizer;
  io::ScheduleConfig schedule;
  io::TrainingConfig training;
  io::CheckpointConfig checkpoint;
  io::OutputConfig output;
  std::string source;    // the config file, for messages
  std::string run_yaml;  // the whole resolved config
  std::uint64_t run_hash = 0;
  // The training data's class names (image_folder), saved in checkpoints; the Trainer sets them
  // from its training table when empty.
  std::vector<std::string> class_names;
};
TrainerOptions trainer_options(const io::Config& cfg);

// Checks the network sections against nn's registries (layer types and parameters, the loss, the
// initialiser): a ConfigError naming the file, line and key. build_model does it too; this is for
// failing before any data is read.
void check_network(const io::Config& cfg);
// Builds the model the options describe for samples of shape `input` (no initialisation).
std::unique_ptr<nn::Sequential> build_model(const TrainerOptions& options, const Shape& input);
std::unique_ptr<nn::Sequential> build_model(const io::Config& cfg, const Shape& input);
// The loss and the initialiser the options name; a ConfigError at their place otherwise.
nn::LossKind model_loss(const TrainerOptions& options);
nn::Init model_init(const TrainerOptions& options);
// What the model's outputs mean, from the loss and the output width.
nn::Head model_head(const TrainerOptions& options, const nn::Sequential& model, std::int64_t label_columns = 1);
// Layout of the flat parameter buffer, for checkpoints.
std::vector<io::ParamInfo> param_layout(const nn::Sequential& model);
// Layout of the flat buffer vector (batch norm's running statistics), for checkpoints.
std::vector<io::ParamInfo> buffer_layout(const nn::Sequential& model);

// A ConfigError naming `what` (the key or flag that chose `rows`) when a forward pass of `rows` rows,
// the input and every layer's output in float32, cannot fit in memory; before anything is allocated.
void check_batch_fits(const nn::Sequential& model, std::int64_t rows, const std::string& what);

// Forward pass over `rows` in chunks of exactly `chunk` rows (the last one zero-padded), so a row's
// output does not depend on how many rows this rank holds: GEMM blocking depends on the matrix
// shape, and a fixed shape gives the same bits at every rank count. fn(first, count, out, labels)
// sees each chunk's first `count` rows.
void forward_rows(nn::Sequential& model, const data::Table& rows, std::int64_t chunk,
                  const std::function<void(std::int64_t, std::int64_t, const Tensor&, const Tensor&)>& fn);

struct EvalResult {
  nn::Task task = nn::Task::kClassification;
  double loss = 0.0;
  double accuracy = 0.0;  // classification and binary
  double auc = 0.0;       // binary: ROC AUC
  double rmse = 0.0;      // regression, over every target column
  double r2 = 0.0;        // regression: 1 - SSE / (sum of squares about the mean), averaged over the
                          // target columns (scikit-learn's r2_score, multioutput="uniform_average")
  std::int64_t rows = 0;
  // "test_loss 0.321000  test_accuracy 0.881200", "test_loss 0.52  test_rmse 0.72  test_r2 0.47";
  // compact: 4 decimals and "acc", for the epoch line.
  std::string describe(const std::string& prefix, bool compact = false) const;
};
// The loss and the task's metrics of `model` on a dataset, over every rank. Collective.
EvalResult evaluate(comm::Communicator& comm, nn::Sequential& model, const nn::Head& head, const Dataset& data,
                    std::int64_t eval_batch);

}  // namespace lockstep::train
