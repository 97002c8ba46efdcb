// `lockstep train CONFIG [--set k=v ...] [--resume]`
#include <filesystem>

#include "common.hpp"
#include "lockstep/core/log.hpp"
#include "lockstep/io/checkpoint.hpp"
#include "lockstep/train/trainer.hpp"

namespace lockstep::app {

int run_train(comm::Communicator& comm, const ConfigArgs& args, bool resume, std::int64_t max_steps) {
  io::Config cfg = load_config_everywhere(comm, args);
  if (!cfg.pipeline.empty())
    throw ConfigError(args.path + ": this config has a pipeline: run it with lockstep fit");
  if (!cfg.data.string_columns.empty())
    throw ConfigError(args.path + ": data.string_columns: text columns are read by lockstep fit only (index them with a "
                      "StringIndexer stage)");
  const std::string yaml = io::to_yaml(cfg);
  log::info("lockstep train: " + args.path + " on " + std::to_string(comm.size()) + " rank(s), config hash " +
            io::hex64(io::config_hash(cfg)));
  log::info("---- resolved config ----\n" + yaml + "-------------------------");

  auto train = train::load_split(comm, cfg.data, train::Split::kTrain);
  auto test = train::load_split(comm, cfg.data, train::Split::kTest);
  log::info("data: train " + train.description + " (" + std::to_string(train.num_rows) + " rows, " +
            std::to_string(train.num_features) + " features, " + std::to_string(train.num_classes) +
            " classes), test " + std::to_string(test.num_rows) + " rows");

  train::Trainer trainer(comm, cfg, std::move(train), std::move(test));
  comm.collectively([&] {
    if (comm.rank() == 0)
      io::write_file_atomically((std::filesystem::path(cfg.output.dir) / "config.yaml").string(), yaml);
  });
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
    log::info("checkpoint " + trainer.checkpoint_path() + "; continue with: lockstep train " + args.path + " --resume");
  } else if (!history.empty()) {
    char buf[256];
    std::snprintf(buf, sizeof buf, "done: test_accuracy %.4f after %lld epochs", history.back().test_accuracy,
                  static_cast<long long>(history.back().epoch));
    log::info(std::string(buf) + "; metrics " + cfg.output.dir + "/metrics.jsonl, checkpoint " +
              trainer.checkpoint_path());
  } else {
    log::info("nothing to do: the checkpoint has already finished all " + std::to_string(cfg.training.epochs) +
              " epochs");
  }
  return 0;
}

}  // namespace lockstep::app
