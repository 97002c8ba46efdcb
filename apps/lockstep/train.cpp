// `lockstep train CONFIG [--set k=v ...] [--resume] [--max-steps N]`
#include <cstdio>
#include <filesystem>

#include "common.hpp"
#include "lockstep/core/log.hpp"
#include "lockstep/core/stop_signal.hpp"
#include "lockstep/core/trace.hpp"
#include "lockstep/train/run_log.hpp"
#include "lockstep/train/trace_file.hpp"
#include "lockstep/train/trainer.hpp"

namespace lockstep::app {
namespace {
std::string seconds_text(double s) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f", s);
  return buf;
}

int train_locked(comm::Communicator& comm, const ConfigArgs& args, const io::Config& cfg, Resume resume,
                 std::int64_t max_steps);
}  // namespace

int run_train(comm::Communicator& comm, const ConfigArgs& args, Resume resume, std::int64_t max_steps) {
  // From here a SIGUSR1 or SIGTERM stops the run: every rank after the same step, with a
  // checkpoint; during start-up, before training begins (see below).
  install_stop_signals();
  io::Config cfg = load_config_everywhere(comm, args);
  if (!cfg.pipeline.empty()) throw ConfigError(args.path + ": this config has a pipeline: run it with lockstep fit");
  // One run at a time in output.dir, held to the end of this function, however it ends.
  const auto lock = train::lock_output_dir(comm, cfg.output.dir, "lockstep train");
  // output.trace: the timeline of everything from here on; written when the run ends without an
  // error (an error leaves no trace.json: gathering it would need every rank in a collective).
  if (cfg.output.trace) train::start_trace(comm);
  const int rc = train_locked(comm, args, cfg, resume, max_steps);
  if (cfg.output.trace) train::write_trace(comm, train::RunLog(comm, cfg.output.dir).path("trace.json"));
  return rc;
}

namespace {
int train_locked(comm::Communicator& comm, const ConfigArgs& args, const io::Config& cfg, Resume resume,
                 std::int64_t max_steps) {
  if (cfg.data.params.count("string_columns"))
    throw ConfigError(args.path +
                      ": data.string_columns: text columns are read by lockstep fit only (index them with a "
                      "StringIndexer stage)");
  const train::TrainerOptions options = train::trainer_options(cfg);
  log::info("lockstep train: " + args.path + " on " + std::to_string(comm.size()) + " rank(s), config hash " +
            io::hex64(options.run_hash));
  log::info("---- resolved config ----\n" + options.run_yaml + "-------------------------");

  trace::Scope load_scope("load data", "setup");
  auto train = train::load_split(comm, cfg.data, train::Split::kTrain);
  auto test = train::load_split(comm, cfg.data, train::Split::kTest);
  load_scope.end();
  log::info("data: train " + train.description + " (" + std::to_string(train.num_rows) + " rows, " +
            std::to_string(train.num_features) + " features), test " + std::to_string(test.num_rows) +
            " rows; loaded in " + seconds_text(train.load_seconds) + " + " + seconds_text(test.load_seconds) + " s");

  train::Trainer trainer(comm, options, std::move(train), std::move(test));
  train::RunLog(comm, cfg.output.dir).write("config.yaml", options.run_yaml);
  log::info("model: " + trainer.model().summary());
  if (resume != Resume::kNo) {
    const std::string path = trainer.checkpoint_path();
    std::int32_t found = comm.rank() == 0 && std::filesystem::exists(path) ? 1 : 0;
    comm.broadcast(found, 0);
    if (!found && resume == Resume::kRequired)
      throw_agreed<CheckpointError>("--resume: no checkpoint at " + path + " (output.dir is " + cfg.output.dir + ")");
    if (found) trainer.resume_from(path);
    if (!found) log::info("--auto-resume: no checkpoint at " + path + " yet; starting afresh");
  }
  trainer.set_max_steps(max_steps);
  if (const int sig = comm.allreduce<std::int32_t>(stop_signal(), comm::ReduceOp::kMax)) {
    log::info(std::string("stopped by ") + signal_name(sig) + " before training began; nothing new to save");
    return kExitStopped;
  }
  const auto history = trainer.run();
  restore_stop_signals();
  if (trainer.stopped_by_signal()) {
    log::info(std::string("stopped by ") + signal_name(trainer.stopped_by_signal()) + " at global step " +
              std::to_string(trainer.global_step()) + ": checkpoint " + trainer.checkpoint_path() +
              "; continue with: " + resume_command(args));
    return kExitStopped;
  }
  if (trainer.stopped_early()) {
    log::info("checkpoint " + trainer.checkpoint_path() + "; continue with: " + resume_command(args));
  } else if (!history.empty()) {
    log::info("done: " + history.back().test.describe("test") + " after " + std::to_string(history.back().epoch) +
              " epochs; metrics " + cfg.output.dir + "/metrics.jsonl, checkpoint " + trainer.checkpoint_path());
  } else {
    log::info("nothing to do: the checkpoint has already finished all " + std::to_string(cfg.training.epochs) +
              " epochs");
  }
  return 0;
}
}  // namespace

}  // namespace lockstep::app
