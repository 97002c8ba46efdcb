// `lockstep predict CONFIG --checkpoint FILE --input DATA --output OUT.csv`. Each rank predicts its
// own split of the input; rank 0 writes the rows in input order to a temporary file and renames
// it into place. What a prediction is (a class and its probabilities, a binary class and the
// probability of 1, or a regressed value) follows the model's head, as in training.
#include <cstdio>
#include <sstream>

#include "common.hpp"
#include "lockstep/core/log.hpp"
#include "lockstep/train/checkpointing.hpp"
#include "lockstep/train/run_log.hpp"

namespace lockstep::app {

int run_predict(comm::Communicator& comm, const ConfigArgs& args, const std::string& checkpoint,
                const std::string& input, const std::string& labels, const std::string& output) {
  io::Config cfg = load_config_everywhere(comm, args);
  const train::TrainerOptions options = train::trainer_options(cfg);
  const train::ClassNames classes{train::checkpoint_class_names(comm, checkpoint), checkpoint};
  auto data = train::load_file(comm, cfg.data, input, labels, &classes);
  auto model = train::build_model(options, data.sample_shape);
  train::load_parameters(comm, checkpoint, *model);
  const nn::Head head = train::model_head(options, *model, label_columns(cfg));

  const auto& rows = data.table;
  const std::int64_t first = rows.row_offset;
  const std::int64_t k = model->output_features();
  std::ostringstream csv;
  std::optional<std::string> err;
  try {
    std::vector<double> scores;
    train::forward_rows(*model, rows, cfg.training.eval_batch,
                        [&](std::int64_t b, std::int64_t m, const Tensor& device_out, const Tensor&) {
                          const Tensor out =
                              device_out.device() == Device::kCpu ? device_out : device_out.clone(Device::kCpu);
                          char buf[32];
                          for (std::int64_t i = 0; i < m; ++i) {
                            const double prediction = head.predict(out.data<float>() + i * k, scores);
                            std::snprintf(buf, sizeof buf, "%.9g", prediction);
                            csv << (first + b + i) << ',' << buf;
                            for (double s : scores) {
                              std::snprintf(buf, sizeof buf, ",%.6g", s);
                              csv << buf;
                            }
                            csv << '\n';
                          }
                        });
  } catch (const std::exception& e) {
    err = e.what();
  }
  comm.agree(err);
  std::string header = "index,prediction";
  for (std::int64_t j = 0; j < k; ++j) header += ",score_" + std::to_string(j);
  train::write_gathered(comm, output, header + "\n", csv.str());
  log::info("wrote " + std::to_string(data.num_rows) + " predictions to " + output);
  return 0;
}

}  // namespace lockstep::app
