// `lockstep predict CONFIG --checkpoint FILE --input DATA --output OUT.csv`. Each rank predicts its
// own split of the input; rank 0 writes the rows in input order to a temporary file and renames
// it into place.
#include <cmath>
#include <cstdio>
#include <sstream>

#include "common.hpp"
#include "lockstep/core/log.hpp"
#include "lockstep/io/checkpoint.hpp"
#include "lockstep/nn/loss.hpp"
#include "lockstep/train/trainer.hpp"

namespace lockstep::app {

int run_predict(comm::Communicator& comm, const ConfigArgs& args, const std::string& checkpoint,
                const std::string& input, const std::string& labels, const std::string& output) {
  io::Config cfg = load_config_everywhere(comm, args);
  auto data = train::load_file(comm, cfg.data, input, labels);
  auto model = train::build_model(cfg, data.num_features);
  train::load_parameters(comm, checkpoint, *model);
  const auto loss = nn::parse_loss(cfg.training.loss);

  const auto& rows = train::local_rows(data);
  const std::int64_t first = comm.exscan(static_cast<std::int64_t>(rows.size()));
  const std::int64_t k = model->output_features();
  std::ostringstream csv;
  std::optional<std::string> err;
  try {
    train::forward_rows(*model, rows, cfg.training.eval_batch,
                        [&](std::int64_t b, std::int64_t m, const Tensor& device_out, const Tensor&) {
      const Tensor out = device_out.device() == Device::kCpu ? device_out : device_out.clone(Device::kCpu);
      for (std::int64_t i = 0; i < m; ++i) {
        const float* z = out.data<float>() + i * k;
        std::vector<double> score(static_cast<std::size_t>(k));
        std::int64_t arg = 0;
        for (std::int64_t j = 1; j < k; ++j) arg = z[j] > z[arg] ? j : arg;
        if (loss == nn::LossKind::kSoftmaxCrossEntropy) {  // class probabilities
          double sum = 0.0;
          for (std::int64_t j = 0; j < k; ++j) sum += score[static_cast<std::size_t>(j)] = std::exp(double(z[j] - z[arg]));
          for (auto& s : score) s /= sum;
        } else if (loss == nn::LossKind::kBceWithLogits) {
          for (std::int64_t j = 0; j < k; ++j) score[static_cast<std::size_t>(j)] = 1.0 / (1.0 + std::exp(-double(z[j])));
        } else {
          for (std::int64_t j = 0; j < k; ++j) score[static_cast<std::size_t>(j)] = z[j];
        }
        csv << (first + b + i) << ',' << arg;
        char buf[32];
        for (double s : score) {
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
  const auto parts = comm.allgather_strings(csv.str());
  comm.collectively([&] {
    if (comm.rank() != 0) return;
    std::string all = "index,prediction";
    for (std::int64_t j = 0; j < k; ++j) all += ",score_" + std::to_string(j);
    all += '\n';
    for (const auto& p : parts) all += p;
    io::write_file_atomically(output, all);
  });
  log::info("wrote " + std::to_string(data.num_rows) + " predictions to " + output);
  return 0;
}

}  // namespace lockstep::app
