// `lockstep train CONFIG [--set k=v ...] [--resume] [--max-steps N]`
#include <filesystem>

#include "common.hpp"
#include "lockstep/core/log.hpp"
#include "lockstep/train/run_log.hpp"
#include "lockstep/train/trainer.hpp"

namespace lockstep::app {

int run_train(comm::Communicator& comm, const ConfigArgs& args, bool resume, std::int64_t max_steps) {
  io::Config cfg = load_config_everywhere(comm, args);
  if (!cfg.pipeline.empty()) throw ConfigError(args.path + ": this config has a pipeline: run it with lockstep fit");
  // One run at a time in output.dir, held to the end of this function, however it ends.
  const auto lock = train::lock_output_dir(comm, cfg.output.dir, "lockstep train");
  if (cfg.data.params.count("string_columns"))
    throw ConfigError(args.path +
                      ": data.string_columns: text columns are read by lockstep fit only (index them with a "
                      "StringIndexer stage)");
  const train::TrainerOptions options = train::trainer_options(cfg);
  log::info("lockstep train: " + args.path + " on " + std::to_string(comm.size()) + " rank(s), config hash " +
            io::hex64(options.run_hash));
  log::info("---- resolved config ----\n" + options.run_yaml + "-------------------------");

  auto train = train::load_split(comm, cfg.data, train::Split::kTrain);
  auto test = train::load_split(comm, cfg.data, train::Split::kTest);
  log::info("data: train " + train.description + " (" + std::to_string(train.num_rows) + " rows, " +
            std::to_string(train.num_features) + " features), test " + std::to_string(test.num_rows) + " rows");

  train::Trainer trainer(comm, options, std::move(train), std::move(test));
  train::RunLog(comm, cfg.output.dir).write("config.yaml", options.run_yaml);
  log::info("model: " + trainer.model().summary());
  if (resume) {
    const std::string path = trainer.checkpoint_path();
    comm.collectively([&] {
      if (comm.rank() == 0 && !std::filesystem::exists(path))
        throw CheckpointError("--resume: no checkpoint at " + path + " (output.dir is " + cfg.output.dir + ")");
    });
    trainer.resume_from(path);
  }
  trainer.set_max_steps(max_steps);
  const auto history = trainer.run();
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

}  // namespace lockstep::app
