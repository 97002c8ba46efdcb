// `lockstep evaluate CONFIG --checkpoint FILE`: loss and accuracy on the config's test split.
#include <filesystem>
#include <fstream>
#include <sstream>

#include "common.hpp"
#include "lockstep/core/log.hpp"
#include "lockstep/nn/loss.hpp"
#include "lockstep/train/trainer.hpp"

namespace lockstep::app {

int run_evaluate(comm::Communicator& comm, const ConfigArgs& args, const std::string& checkpoint) {
  io::Config cfg = load_config_everywhere(comm, args);
  auto test = train::load_split(comm, cfg.data, train::Split::kTest);
  auto model = train::build_model(cfg, test.num_features);
  train::load_parameters(comm, checkpoint, *model);
  const auto r = train::evaluate(comm, *model, nn::parse_loss(cfg.training.loss), test, cfg.training.eval_batch);
  char buf[256];
  std::snprintf(buf, sizeof buf, "test_loss %.6f test_accuracy %.6f rows %lld", r.loss, r.accuracy,
                static_cast<long long>(r.rows));
  std::ostringstream line;  // not operator+ chains: GCC 12 warns falsely on them (-Wrestrict, PR 105329)
  line << buf << "  (" << checkpoint << " on " << test.description << ")";
  log::info(line.str());
  if (comm.rank() == 0) {
    std::filesystem::create_directories(cfg.output.dir);
    std::ofstream js(std::filesystem::path(cfg.output.dir) / "eval.jsonl", std::ios::app);
    std::snprintf(buf, sizeof buf, "{\"test_loss\":%.9g,\"test_accuracy\":%.9g,\"rows\":%lld,", r.loss, r.accuracy,
                  static_cast<long long>(r.rows));
    js << buf << "\"checkpoint\":\"" << checkpoint << "\",\"world_size\":" << comm.size() << "}\n";
  }
  return 0;
}

}  // namespace lockstep::app
