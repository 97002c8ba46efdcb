// Trainer: the data-parallel training loop.
//
// Every rank holds a replica of the model. Rank 0 initialises the parameters and broadcasts them.
// Each epoch the batch stream shuffles the rows (a global permutation from (seed, epoch)) and
// hands each rank its slice of every step. A step is the textbook one: next batch, forward,
// loss, backward (which tells the gradient sync as each layer's gradients land), finish the
// sync, optimizer step. How the replicas agree on the gradient is a GradientSync strategy
// (buckets reduced during backward, a node-local shared window, or the exact fixed-point sum of
// deterministic mode); checkpoints and the run log have files of their own.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "lockstep/comm/communicator.hpp"
#include "lockstep/io/config.hpp"
#include "lockstep/nn/sequential.hpp"
#include "lockstep/train/data_loading.hpp"
#include "lockstep/train/model.hpp"

namespace lockstep::train {

struct EpochMetrics {
  std::int64_t epoch = 0;  // 1-based, as printed
  std::int64_t step = 0;   // global steps done
  double train_loss = 0.0;
  EvalResult test;  // loss and the task's metrics on the test split
  double samples_per_sec = 0.0;
  double comm_seconds = 0.0;     // exposed (not hidden) gradient communication
  double compute_seconds = 0.0;  // forward, backward, optimizer and batch assembly
  double data_seconds = 0.0;     // the epoch's shuffle (repartition)
  double copy_seconds = 0.0;     // host-to-device copies of the batches (0 on the CPU)
  double epoch_seconds = 0.0;    // training loop wall time
  double lr = 0.0;
};

class Trainer {
 public:
  Trainer(comm::Communicator& comm, TrainerOptions options, Dataset train, Dataset test);
  Trainer(comm::Communicator& comm, const io::Config& cfg, Dataset train, Dataset test)
      : Trainer(comm, trainer_options(cfg), std::move(train), std::move(test)) {}
  ~Trainer();

  // Continue from a checkpoint file (collective). Call before run().
  void resume_from(const std::string& checkpoint_path);
  // Stop after this many global steps, writing a checkpoint there (for time-limited allocations:
  // continue later with resume_from). 0: no limit.
  void set_max_steps(std::int64_t steps);
  bool stopped_early() const;
  // The signal (SIGUSR1, SIGTERM) whose request stopped the run early, on every rank alike, or 0.
  // Requests are taken while install_stop_signals() is in effect (lockstep train installs it).
  int stopped_by_signal() const;
  // Steps done so far, counted from the start of training (including those before a resume).
  std::int64_t global_step() const;
  // Trains for the configured epochs; returns one entry per epoch run.
  std::vector<EpochMetrics> run();

  nn::Sequential& model() { return *model_; }
  const TrainerOptions& options() const { return options_; }
  std::string checkpoint_path() const;

 private:
  struct Impl;
  void setup_device();
  void check_setup();
  void check_labels(const Dataset& d);
  void make_sync();
  void step(std::int64_t epoch, std::int64_t s);
  void step_tiled(std::int64_t s, nn::ForwardContext& ctx);
  bool after_step(std::int64_t epoch, std::int64_t s);
  EpochMetrics finish_epoch(std::int64_t epoch, std::int64_t first_step, double data_seconds, double loop_seconds);
  void save(std::int64_t next_epoch, std::int64_t next_step);
  void stop_here_at_step();

  comm::Communicator& comm_;
  TrainerOptions options_;
  std::unique_ptr<nn::Sequential> model_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace lockstep::train
