// Checkpoints as the trainer uses them: rank 0 reads a file and every rank receives it; rank 0
// writes the replicated state; and the resume policy, which decides whether a checkpoint may
// continue under the current configuration (the keys that decide which rows each step sees, or
// what the parameters mean, must not change; epochs, schedule, output and checkpointing may).
#pragma once

#include <cstdint>
#include <string>

#include "lockstep/comm/communicator.hpp"
#include "lockstep/io/checkpoint.hpp"
#include "lockstep/nn/optimizer.hpp"
#include "lockstep/nn/sequential.hpp"
#include "lockstep/train/model.hpp"

namespace lockstep::train {

// Loads a checkpoint's parameters into model on every rank (rank 0 reads, then broadcasts); the
// parameters must be this model's by name and shape. Returns the whole state. Collective.
io::CheckpointState load_parameters(comm::Communicator& comm, const std::string& path, nn::Sequential& model);

// The class names a checkpoint's training data had (empty when its source names none, or the
// file predates them), on every rank, before the model is built: what evaluate and predict map an
// image folder's class folders to. Rank 0 reads; errors agreed. Collective.
std::vector<std::string> checkpoint_class_names(comm::Communicator& comm, const std::string& path);

// Where a run stands: what the next step is, and the running loss of the interrupted epoch.
struct TrainingPosition {
  std::int64_t epoch = 0;          // 0-based, the epoch to run next
  std::int64_t step_in_epoch = 0;  // the step of that epoch to run next
  std::int64_t global_step = 0;
  double loss_sum = 0.0;  // this rank's share; summed over ranks when saved
  std::int64_t loss_count = 0;
};

// Rank 0 writes the model, the optimizer state and the position (the loss summed over ranks),
// first keeping the current file as the newest older generation (checkpoint.keep). Collective.
void save_training_checkpoint(comm::Communicator& comm, const std::string& path, const nn::Sequential& model,
                              nn::Optimizer& optimizer, const TrainingPosition& position,
                              const TrainerOptions& options);

// Loads parameters and optimizer state from the newest intact generation of `path` (rank 0
// decides: a damaged newest checkpoint is a warning naming it, and the previous one kept by
// checkpoint.keep is used) and checks that it may continue under `options` (ConfigError-like
// CheckpointError naming the keys that differ) with its step inside an epoch of
// `steps_per_epoch` steps. Returns the position; the running loss is rank 0's (the others get 0).
// Collective.
TrainingPosition resume_training(comm::Communicator& comm, const std::string& path, nn::Sequential& model,
                                 nn::Optimizer& optimizer, const TrainerOptions& options,
                                 std::int64_t steps_per_epoch);

}  // namespace lockstep::train
