// `lockstep evaluate CONFIG --checkpoint FILE`: the loss and the task's metrics (accuracy, ROC AUC
// or RMSE and R^2) on the config's test split, printed and appended to output.dir/eval.jsonl, with
// the forward pass's wall time and rows per second (all ranks, from a barrier to the last result).
#include <algorithm>
#include <chrono>
#include <iomanip>
#include <sstream>

#include "common.hpp"
#include "lockstep/core/log.hpp"
#include "lockstep/io/json_line.hpp"
#include "lockstep/train/checkpointing.hpp"
#include "lockstep/train/run_log.hpp"

namespace lockstep::app {

int run_evaluate(comm::Communicator& comm, const ConfigArgs& args, const std::string& checkpoint) {
  io::Config cfg = load_config_everywhere(comm, args);
  const train::TrainerOptions options = train::trainer_options(cfg);
  // An image folder's class folders map to the classes the checkpoint was trained on.
  const train::ClassNames classes{train::checkpoint_class_names(comm, checkpoint), checkpoint};
  auto test = train::load_split(comm, cfg.data, train::Split::kTest, &classes);
  auto model = train::build_model(options, test.sample_shape);
  train::load_parameters(comm, checkpoint, *model);
  const auto head = train::model_head(options, *model, label_columns(cfg));
  comm.barrier();  // the clock starts when every rank is ready, and evaluate ends with an allreduce
  const auto start = std::chrono::steady_clock::now();
  const auto r = train::evaluate(comm, *model, head, test, cfg.training.eval_batch);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const double rows_per_second = static_cast<double>(r.rows) / std::max(seconds, 1e-9);
  std::ostringstream line;  // not operator+ chains: GCC 12 warns falsely on them (-Wrestrict, PR 105329)
  line << r.describe("test") << "  rows " << r.rows << "  (" << checkpoint << " on " << test.description << ")  "
       << std::fixed << std::setprecision(3) << seconds << " s, " << std::setprecision(0) << rows_per_second
       << " samples/s";
  log::info(line.str());
  io::JsonLine js;
  js.add("task", nn::task_name(r.task)).add("test_loss", r.loss);
  if (r.task == nn::Task::kRegression) {
    js.add("test_rmse", r.rmse).add("test_r2", r.r2);
  } else {
    js.add("test_accuracy", r.accuracy);
    if (r.task == nn::Task::kBinary) js.add("test_auc", r.auc);
  }
  js.add("rows", r.rows).add("checkpoint", checkpoint).add("world_size", comm.size());
  js.add("eval_seconds", seconds).add("samples_per_sec", rows_per_second);
  train::RunLog(comm, cfg.output.dir).append("eval.jsonl", js.str());
  return 0;
}

}  // namespace lockstep::app
