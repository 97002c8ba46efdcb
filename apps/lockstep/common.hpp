// What every subcommand shares: loading the config on every rank and checking that all ranks
// resolved the same one.
#pragma once

#include <string>
#include <vector>

#include "lockstep/comm/communicator.hpp"
#include "lockstep/io/config.hpp"

namespace lockstep::app {

struct ConfigArgs {
  std::string path;
  std::vector<std::string> overrides;
};

// Parses and validates on every rank (errors agreed), then compares the hash of the resolved
// config across ranks and refuses to go on if any rank differs.
io::Config load_config_everywhere(comm::Communicator& comm, const ConfigArgs& args);

int run_train(comm::Communicator& comm, const ConfigArgs& args, bool resume, std::int64_t max_steps);
int run_evaluate(comm::Communicator& comm, const ConfigArgs& args, const std::string& checkpoint);
int run_predict(comm::Communicator& comm, const ConfigArgs& args, const std::string& checkpoint,
                const std::string& input, const std::string& labels, const std::string& output);
int run_info(comm::Communicator& comm, const std::string& checkpoint);
int run_fit(comm::Communicator& comm, const ConfigArgs& args);
int run_transform(comm::Communicator& comm, const ConfigArgs& args, const std::string& model, const std::string& input,
                  const std::string& labels, const std::string& output);
int run_predict_pipeline(comm::Communicator& comm, const ConfigArgs& args, const std::string& model,
                         const std::string& input, const std::string& labels, const std::string& output);

}  // namespace lockstep::app
