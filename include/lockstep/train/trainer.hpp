// Trainer: the data-parallel training loop.
//
// Every rank holds a replica of the model. Rank 0 initialises the parameters and broadcasts them.
// Each epoch draws a global permutation from (seed, epoch); step s processes positions
// [s*B, (s+1)*B) of it and rank r takes its slice of B/np rows, which a repartition of the cached
// training partition delivers in step order. Gradients are averaged over ranks in buckets that
// start reducing while backward is still running (default mode), or summed exactly in fixed point
// over micro-batches of a fixed shape (deterministic mode: bit-identical at any np).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "lockstep/comm/communicator.hpp"
#include "lockstep/io/checkpoint.hpp"
#include "lockstep/io/config.hpp"
#include "lockstep/nn/loss.hpp"
#include "lockstep/nn/optimizer.hpp"
#include "lockstep/nn/sequential.hpp"
#include "lockstep/train/data_loading.hpp"

namespace lockstep::train {

struct EpochMetrics {
  std::int64_t epoch = 0;        // 1-based, as printed
  std::int64_t step = 0;         // global steps done
  double train_loss = 0.0;
  double test_loss = 0.0;
  double test_accuracy = 0.0;
  double samples_per_sec = 0.0;
  double comm_seconds = 0.0;     // exposed (not hidden) gradient communication
  double compute_seconds = 0.0;  // forward, backward, optimizer and batch assembly
  double data_seconds = 0.0;     // the epoch's shuffle (repartition)
  double copy_seconds = 0.0;     // host-to-device copies of the batches (0 on the CPU)
  double epoch_seconds = 0.0;    // training loop wall time
  double lr = 0.0;
};

struct EvalResult {
  double loss = 0.0;
  double accuracy = 0.0;
  std::int64_t rows = 0;
};

// Builds the model the config describes (no initialisation).
std::unique_ptr<nn::Sequential> build_model(const io::Config& cfg, std::int64_t input_features);
// Layout of the flat parameter buffer, for checkpoints.
std::vector<io::ParamInfo> param_layout(const nn::Sequential& model);
// Forward pass over `rows` in chunks of exactly `chunk` rows (the last one zero-padded), so a row's
// output does not depend on how many rows this rank holds: GEMM blocking depends on the matrix
// shape, and a fixed shape gives the same bits at every rank count. fn(first, count, out, labels)
// sees each chunk's first `count` rows.
void forward_rows(nn::Sequential& model, const std::vector<data::Example>& rows, std::int64_t chunk,
                  const std::function<void(std::int64_t, std::int64_t, const Tensor&, const Tensor&)>& fn);
// Loss and accuracy of `model` on a dataset, allreduced. Collective.
EvalResult evaluate(comm::Communicator& comm, nn::Sequential& model, nn::LossKind loss, const Dataset& data,
                    std::int64_t eval_batch);
// Loads a checkpoint's parameters into model on every rank (rank 0 reads, then broadcasts).
io::CheckpointState load_parameters(comm::Communicator& comm, const std::string& path, nn::Sequential& model);

class Trainer {
 public:
  Trainer(comm::Communicator& comm, io::Config cfg, Dataset train, Dataset test);
  ~Trainer();

  // Continue from a checkpoint file (collective). Call before run().
  void resume_from(const std::string& checkpoint_path);
  // Stop after this many global steps, writing a checkpoint there (for time-limited allocations:
  // continue later with resume_from). 0: no limit.
  void set_max_steps(std::int64_t steps);
  bool stopped_early() const;
  // Trains for the configured epochs; returns one entry per epoch run.
  std::vector<EpochMetrics> run();

  nn::Sequential& model() { return *model_; }
  const io::Config& config() const { return cfg_; }
  std::string checkpoint_path() const;

 private:
  void setup_shared_window();
  void prepare_epoch(std::int64_t epoch);
  void save_checkpoint(std::int64_t next_epoch, std::int64_t next_step, double loss_sum, std::int64_t loss_count);
  void report_epoch(const EpochMetrics& em, const std::string& metrics_path);

  struct Impl;
  std::unique_ptr<Impl> impl_;
  comm::Communicator& comm_;
  io::Config cfg_;
  std::unique_ptr<nn::Sequential> model_;
};

}  // namespace lockstep::train
