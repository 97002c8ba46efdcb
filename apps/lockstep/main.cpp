// lockstep: the command-line entry point. CLI11 chooses the subcommand and its files; the YAML
// config says everything else. This is the only place a process ends: an error every rank agreed
// on ends every rank normally with status 1; an error only one rank saw aborts the job, since the
// other ranks may be waiting in a collective and would otherwise hang.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <limits>

#include "common.hpp"
#include "lockstep/core/log.hpp"
#include "lockstep/core/stop_signal.hpp"
#include "lockstep/io/json_line.hpp"

namespace {
using namespace lockstep;

// What the command line chose: the subcommand and its files. The YAML config says the rest.
struct Command {
  app::ConfigArgs cfg;
  bool resume = false, auto_resume = false;
  std::int64_t max_steps = 0, stage = -1, predict_batch = app::kPredictBatch;
  std::string checkpoint, model, input, labels, output, features, features_output;
  CLI::App *train = nullptr, *evaluate = nullptr, *predict = nullptr, *fit = nullptr, *transform = nullptr,
           *info = nullptr, *export_onnx = nullptr;
};

void add_config(CLI::App* sub, Command& c) {
  sub->add_option("config", c.cfg.path, "YAML run configuration")->required();
  sub->add_option("--set", c.cfg.overrides, "Override a config key, e.g. --set training.epochs=2 (repeatable)")
      ->take_all();
}

void define_training(CLI::App& cli, Command& c) {
  c.train = cli.add_subcommand("train", "Train the model a config describes, data-parallel over the ranks");
  add_config(c.train, c);
  auto* resume =
      c.train->add_flag("--resume", c.resume, "Continue from output.dir/checkpoint.h5 (the latest complete checkpoint)");
  c.train
      ->add_flag("--auto-resume", c.auto_resume,
                 "Continue from output.dir/checkpoint.h5 if it exists, else start afresh (for batch scripts "
                 "and restart wrappers)")
      ->excludes(resume);
  c.train
      ->add_option("--max-steps", c.max_steps,
                   "Stop when the run has done this many steps in total (counted from the start of training, "
                   "including steps before a --resume) and write a checkpoint; continue with --resume")
      ->check(CLI::Range(std::int64_t{0}, std::numeric_limits<std::int64_t>::max()));

  c.evaluate = cli.add_subcommand("evaluate", "Evaluate a checkpoint on the config's test split");
  add_config(c.evaluate, c);
  c.evaluate->add_option("--checkpoint", c.checkpoint, "Checkpoint file (HDF5) written by lockstep train")->required();

  c.predict = cli.add_subcommand("predict", "Predict for images or a data file; each rank streams its own block");
  add_config(c.predict, c);
  auto* ck = c.predict->add_option("--checkpoint", c.checkpoint,
                                   "Checkpoint file (HDF5) written by lockstep train, with the config's model");
  auto* md = c.predict->add_option("--model", c.model,
                                   "A network (net.onnx, or a lockstep checkpoint with its own model) or a "
                                   "pipeline model (HDF5) written by lockstep fit; told apart by content");
  ck->excludes(md);
  c.predict
      ->add_option("--input", c.input,
                   "An image folder (every image under it, recursively), one image file, or a features file in "
                   "the config's data.format")
      ->required();
  c.predict->add_option("--labels", c.labels,
                        "IDX labels file (optional: without it the images are read unlabeled; a CSV or HDF5 "
                        "input may lack its label column or dataset; predict ignores labels)");
  c.predict
      ->add_option("--output", c.output,
                   "Output CSV, rows in input order: origin,prediction[,class],probability_0.. (one file at any "
                   "np), or a folder (OUT/) of part-NNNNN.csv files and _SUCCESS")
      ->required();
  auto* feat = c.predict->add_option("--features", c.features,
                                     "Also write the outputs of this layer (\"conv2d3\", \"dense6\") for every row");
  auto* fout = c.predict->add_option("--features-output", c.features_output,
                                     "HDF5 file for --features: /origin (strings) and /features [N, d] float32");
  feat->needs(fout);
  fout->needs(feat);
  c.predict
      ->add_option("--batch", c.predict_batch,
                   "Images (rows) per forward call of a network, the last one zero-padded; memory per rank grows "
                   "with it (training.eval_batch is evaluate's)")
      ->check(CLI::Range(std::int64_t{1}, std::int64_t{1} << 20))
      ->capture_default_str();
}

void define_pipelines(CLI::App& cli, Command& c) {
  c.fit = cli.add_subcommand("fit",
                             "Fit the config's ML pipeline (tuned if it says so) and save it to "
                             "output.dir/model.h5");
  add_config(c.fit, c);
  c.transform = cli.add_subcommand("transform", "Apply a fitted pipeline's transformers to a data file");
  add_config(c.transform, c);
  c.transform->add_option("--model", c.model, "Pipeline model (HDF5) written by lockstep fit")->required();
  c.transform->add_option("--input", c.input, "Features file, in the config's data.format")->required();
  c.transform->add_option("--labels", c.labels, "IDX labels file (optional)");
  c.transform->add_option("--output", c.output, "Output CSV: index,label,features..., input order")->required();

  c.export_onnx = cli.add_subcommand(
      "export", "Write a checkpoint's network, or a fitted pipeline stage's, as an ONNX model (docs/onnx.md)");
  auto* eck = c.export_onnx->add_option("--checkpoint", c.checkpoint, "Checkpoint file (HDF5) written by lockstep train");
  auto* emd = c.export_onnx->add_option(
      "--model", c.model, "Pipeline model (HDF5) written by lockstep fit: its NeuralNetwork or NeuralFeaturizer stage");
  eck->excludes(emd);
  c.export_onnx
      ->add_option("--stage", c.stage,
                   "With --model: the index of the stage to export (0 is the first); needed when several stages "
                   "hold a network")
      ->check(CLI::Range(std::int64_t{0}, std::numeric_limits<std::int64_t>::max()))
      ->needs(emd);
  c.export_onnx->add_option("--output", c.output, "The ONNX file to write (.onnx)")->required();

  c.info = cli.add_subcommand("info", "Version, MPI library, CUDA/NCCL support, ranks and hosts");
  c.info->add_option("--checkpoint", c.checkpoint,
                     "Also describe a checkpoint: counters, config hash, parameter digest");
}

int run(comm::Communicator& world, const Command& c) {
  if (*c.train) {
    const auto mode = c.resume ? app::Resume::kRequired : c.auto_resume ? app::Resume::kIfAny : app::Resume::kNo;
    return app::run_train(world, c.cfg, mode, c.max_steps);
  }
  if (*c.evaluate) return app::run_evaluate(world, c.cfg, c.checkpoint);
  if (*c.predict && c.model.empty() && c.checkpoint.empty())
    throw ConfigError("predict: give --checkpoint (lockstep train) or --model (a network, or lockstep fit's model)");
  const bool network = *c.predict && !c.model.empty() && app::is_network_file(world, c.model);
  if (*c.predict && !c.model.empty() && !network) {
    if (!c.features.empty()) throw ConfigError("predict: --features needs a network (--checkpoint, or --model net.onnx)");
    if (c.predict->count("--batch") > 0)
      throw ConfigError("predict: --batch is for a network (--checkpoint, or --model net.onnx); " + c.model +
                        " is a pipeline model, scored row by row");
    return app::run_predict_pipeline(world, c.cfg, c.model, c.input, c.labels, c.output);
  }
  if (*c.predict) {
    const app::PredictArgs p{network ? "" : c.checkpoint, network ? c.model : "", c.input, c.labels, c.output,
                             c.features, c.features_output, c.predict_batch};
    return app::run_predict(world, c.cfg, p);
  }
  if (*c.fit) return app::run_fit(world, c.cfg);
  if (*c.transform) return app::run_transform(world, c.cfg, c.model, c.input, c.labels, c.output);
  if (*c.export_onnx) return app::run_export(world, app::ExportArgs{c.checkpoint, c.model, c.stage, c.output});
  return app::run_info(world, c.checkpoint);
}

// How a run ended, for LOCKSTEP_STATUS_FILE: restart wrappers read it to tell an error that a
// restart cannot fix (a config or data error) from one it may (a lost rank, an I/O hiccup).
struct Outcome {
  int code = 0;
  const char* kind = "";
  bool retryable = false;
  std::string message;
};

const char* error_kind(const Error& e, bool* retryable) {
  *retryable = false;
  if (dynamic_cast<const ConfigError*>(&e)) return "config";
  if (dynamic_cast<const DataError*>(&e)) return "data";
  if (dynamic_cast<const CheckpointError*>(&e)) return "checkpoint";
  *retryable = true;
  if (dynamic_cast<const IoError*>(&e)) return "io";
  if (dynamic_cast<const CommError*>(&e)) return "comm";
  return "error";
}

// Rank 0 writes one JSON object to $LOCKSTEP_STATUS_FILE, if set. A crash never gets here, so a
// wrapper that removed the file before the run finds none.
void write_status(const comm::Communicator& world, const Outcome& o) {
  const char* path = std::getenv("LOCKSTEP_STATUS_FILE");
  if (!path || !*path || world.rank() != 0) return;
  io::JsonLine js;
  js.add("status", o.code == 0 ? "done" : o.code == kExitStopped ? "stopped" : "error").add("exit_code", o.code);
  js.add("retryable", o.code == kExitStopped || o.retryable);
  if (*o.kind) js.add("kind", o.kind).add("message", o.message);
  std::ofstream out(path, std::ios::trunc);
  out << js.str();
  if (!out.flush()) std::fprintf(stderr, "warning: LOCKSTEP_STATUS_FILE=%s: cannot write\n", path);
}

// An error every rank agreed on ends every rank normally with status 1; one that only this rank
// saw aborts the job at once, since the others may be waiting in a collective. Destructors that
// would run a collective skip it while unwinding (comm/), so the abort is reached.
int run_guarded(comm::Communicator& world, const Command& c) {
  Outcome o;
  try {
    o.code = run(world, c);
    write_status(world, o);
    return o.code;
  } catch (const Error& e) {
    if (e.agreed()) {  // every rank has it: say it once, end normally everywhere
      if (world.rank() == 0) std::fprintf(stderr, "error: %s\n", e.what());
      bool retryable = false;
      const char* kind = error_kind(e, &retryable);
      write_status(world, Outcome{1, kind, retryable, e.what()});
      return 1;
    }
    log::error(e.what());
  } catch (const std::exception& e) {
    log::error(e.what());
  }
  if (world.size() > 1) world.abort(1);
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App cli{
      "lockstep: data-parallel deep learning and ML on MPI.\n"
      "Launch with mpirun/srun: mpirun -np 4 lockstep train configs/fmnist_mlp.yaml\n"
      "ML pipelines: mpirun -np 2 lockstep fit configs/fmnist_logreg.yaml"};
  cli.require_subcommand(1);
  Command command;
  define_training(cli, command);
  define_pipelines(cli, command);
  // --help and usage errors end here, before MPI starts: help with 0, a usage error with CLI11's
  // message and 1, like every other error (not CLI11's own codes, 105 and up).
  try {
    cli.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return cli.exit(e) == 0 ? 0 : 1;
  }

  std::unique_ptr<comm::Communicator> world;
  try {
    world = comm::make_mpi_world(&argc, &argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: cannot start MPI: %s\n", e.what());
    return 1;
  }
  const int status = run_guarded(*world, command);
  world.reset();
  comm::finalize_mpi();
  return status;
}
