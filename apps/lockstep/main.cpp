// lockstep: the command-line entry point. CLI11 chooses the subcommand and its files; the YAML
// config says everything else. This is the only place a process ends: an error every rank agreed
// on ends every rank normally with status 1; an error only one rank saw aborts the job, since the
// other ranks may be waiting in a collective and would otherwise hang.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <limits>

#include "common.hpp"
#include "lockstep/core/log.hpp"

int main(int argc, char** argv) {
  using namespace lockstep;
  CLI::App cli{
      "lockstep: data-parallel deep learning and ML on MPI.\n"
      "Launch with mpirun/srun: mpirun -np 4 lockstep train configs/fmnist_mlp.yaml\n"
      "ML pipelines: mpirun -np 2 lockstep fit configs/fmnist_logreg.yaml"};
  cli.require_subcommand(1);
  app::ConfigArgs cfg;
  bool resume = false;
  std::int64_t max_steps = 0;
  std::string checkpoint, model, input, labels, output;

  auto add_config = [&](CLI::App* sub) {
    sub->add_option("config", cfg.path, "YAML run configuration")->required();
    sub->add_option("--set", cfg.overrides, "Override a config key, e.g. --set training.epochs=2 (repeatable)")
        ->take_all();
  };
  auto* train = cli.add_subcommand("train", "Train the model a config describes, data-parallel over the ranks");
  add_config(train);
  train->add_flag("--resume", resume, "Continue from output.dir/checkpoint.h5 (the latest complete checkpoint)");
  train
      ->add_option("--max-steps", max_steps,
                   "Stop when the run has done this many steps in total (counted from the start of training, "
                   "including steps before a --resume) and write a checkpoint; continue with --resume")
      ->check(CLI::Range(std::int64_t{0}, std::numeric_limits<std::int64_t>::max()));

  auto* evaluate = cli.add_subcommand("evaluate", "Evaluate a checkpoint on the config's test split");
  add_config(evaluate);
  evaluate->add_option("--checkpoint", checkpoint, "Checkpoint file (HDF5) written by lockstep train")->required();

  auto* predict = cli.add_subcommand("predict", "Predict for a data file; each rank predicts its split");
  add_config(predict);
  auto* ck = predict->add_option("--checkpoint", checkpoint, "Checkpoint file (HDF5) written by lockstep train");
  auto* md = predict->add_option("--model", model, "Pipeline model (HDF5) written by lockstep fit");
  ck->excludes(md);
  predict->add_option("--input", input, "Features file, in the config's data.format")->required();
  predict->add_option("--labels", labels,
                      "IDX labels file (optional: without it the images are read unlabeled; CSV, LIBSVM and "
                      "HDF5 inputs carry their own label column, which predict ignores)");
  predict
      ->add_option("--output", output,
                   "Output CSV in input order: index,prediction,score_0..score_{k-1} (--checkpoint) or "
                   "index,prediction,probability_0.. (--model)")
      ->required();

  auto* fit = cli.add_subcommand("fit",
                                 "Fit the config's ML pipeline (tuned if it says so) and save it to "
                                 "output.dir/model.h5");
  add_config(fit);
  auto* transform = cli.add_subcommand("transform", "Apply a fitted pipeline's transformers to a data file");
  add_config(transform);
  transform->add_option("--model", model, "Pipeline model (HDF5) written by lockstep fit")->required();
  transform->add_option("--input", input, "Features file, in the config's data.format")->required();
  transform->add_option("--labels", labels, "IDX labels file (optional)");
  transform->add_option("--output", output, "Output CSV: index,label,features..., input order")->required();

  auto* info = cli.add_subcommand("info", "Version, MPI library, CUDA/NCCL support, ranks and hosts");
  info->add_option("--checkpoint", checkpoint, "Also describe a checkpoint: counters, config hash, parameter digest");

  CLI11_PARSE(cli, argc, argv);  // --help and usage errors end here, before MPI starts

  std::unique_ptr<comm::Communicator> world;
  try {
    world = comm::make_mpi_world(&argc, &argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: cannot start MPI: %s\n", e.what());
    return 1;
  }
  int status = 0;
  try {
    if (*train)
      status = app::run_train(*world, cfg, resume, max_steps);
    else if (*evaluate)
      status = app::run_evaluate(*world, cfg, checkpoint);
    else if (*predict && !model.empty())
      status = app::run_predict_pipeline(*world, cfg, model, input, labels, output);
    else if (*predict && checkpoint.empty())
      throw ConfigError("predict: give --checkpoint (lockstep train) or --model (lockstep fit)");
    else if (*predict)
      status = app::run_predict(*world, cfg, checkpoint, input, labels, output);
    else if (*fit)
      status = app::run_fit(*world, cfg);
    else if (*transform)
      status = app::run_transform(*world, cfg, model, input, labels, output);
    else if (*info)
      status = app::run_info(*world, checkpoint);
  } catch (const Error& e) {
    if (e.agreed()) {  // every rank has it: say it once, end normally everywhere
      if (world->rank() == 0) std::fprintf(stderr, "error: %s\n", e.what());
    } else {
      log::error(e.what());
      if (world->size() > 1) world->abort(1);
    }
    status = 1;
  } catch (const std::exception& e) {
    log::error(e.what());
    if (world->size() > 1) world->abort(1);
    status = 1;
  }
  world.reset();
  comm::finalize_mpi();
  return status;
}
