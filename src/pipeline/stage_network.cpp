// The network inside a fitted pipeline stage (see stage_network.hpp).
#include "lockstep/pipeline/stage_network.hpp"

#include <sstream>
#include <vector>

#include "lockstep/core/error.hpp"

namespace lockstep::pipeline {

namespace {

const NetworkStage* as_network(const ml::PipelineModel& model, std::size_t i) {
  return dynamic_cast<const NetworkStage*>(&model.stage(i));
}

io::NetworkFile described(const ml::PipelineModel& model, std::size_t i, const std::string& path) {
  io::NetworkFile net = as_network(model, i)->network();
  net.path = path;
  std::ostringstream d;
  d << path << " stage " << i << " (" << model.stage_type(i) << ")";
  net.description = d.str();
  return net;
}

}  // namespace

io::NetworkFile stage_network(const ml::PipelineModel& model, std::int64_t stage, const std::string& path) {
  std::vector<std::size_t> candidates;
  std::ostringstream list;
  for (std::size_t i = 0; i < model.size(); ++i) {
    if (as_network(model, i) == nullptr) continue;
    list << (candidates.empty() ? "" : ", ") << i << " (" << model.stage_type(i) << ")";
    candidates.push_back(i);
  }
  std::ostringstream msg;
  msg << path << ": ";
  const auto n = static_cast<std::int64_t>(model.size());
  if (candidates.empty()) {
    msg << "no stage of this pipeline holds a network (a NeuralNetwork or NeuralFeaturizer stage); its stages:";
    for (std::size_t i = 0; i < model.size(); ++i) msg << (i ? ", " : " ") << i << " (" << model.stage_type(i) << ")";
    throw_agreed<ConfigError>(msg.str());
  }
  if (stage < 0) {
    if (candidates.size() == 1) return described(model, candidates.front(), path);
    msg << "--stage: this pipeline has " << candidates.size() << " stages holding a network, " << list.str()
        << "; give --stage with the index of one";
    throw_agreed<ConfigError>(msg.str());
  }
  if (stage >= n || as_network(model, static_cast<std::size_t>(stage)) == nullptr) {
    msg << "--stage " << stage << ": ";
    if (stage >= n) msg << "the pipeline has " << n << " stages (0 to " << n - 1 << ")";
    else msg << "stage " << stage << " is a " << model.stage_type(static_cast<std::size_t>(stage)) << ", which holds no network";
    msg << "; the stages holding a network: " << list.str();
    throw_agreed<ConfigError>(msg.str());
  }
  return described(model, static_cast<std::size_t>(stage), path);
}

}  // namespace lockstep::pipeline
