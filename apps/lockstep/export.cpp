// `lockstep export --checkpoint run/checkpoint.h5 --output net.onnx`: a trained network as an ONNX
// model (docs/onnx.md); `--model runs/x/model.h5 [--stage N]`: the network of a fitted pipeline's
// NeuralNetwork or NeuralFeaturizer stage. Every rank reads the file (errors agreed); rank 0 writes
// the ONNX file and checks it with onnx::checker; its errors reach every rank.
#include "common.hpp"
#include "lockstep/core/log.hpp"
#include "lockstep/io/onnx.hpp"
#include "lockstep/ml/pipeline.hpp"
#include "lockstep/pipeline/stage_network.hpp"
#include "lockstep/train/network_file.hpp"

namespace lockstep::app {

namespace {

// The network to export: a checkpoint's, or a pipeline stage's (already in export form).
io::NetworkFile source_network(comm::Communicator& comm, const ExportArgs& a) {
  // The command line is the same on every rank: every rank throws these alike.
  if (a.checkpoint.empty() == a.model.empty())
    throw_agreed<ConfigError>(
        "export: give --checkpoint (lockstep train) or --model (a pipeline model written by lockstep fit)");
  if (!a.checkpoint.empty()) return train::read_network(comm, a.checkpoint);
  const ml::PipelineModel pipeline = ml::PipelineModel::load(comm, a.model);
  return pipeline::stage_network(pipeline, a.stage, a.model);
}

}  // namespace

int run_export(comm::Communicator& comm, const ExportArgs& a) {
  if (!io::is_onnx_path(a.output))
    throw_agreed<ConfigError>(detail::concat("export --output ", a.output, ": expected a file name ending in .onnx"));
  const io::NetworkFile net = source_network(comm, a);
  comm.collectively(
      [&] {
        const auto model = train::build_network(net);
        const io::NetworkFile described = train::describe_network(*model, net.layers);
        if (comm.rank() != 0) return;
        io::write_onnx(a.output, described);
        const std::string verdict = io::check_onnx(a.output);
        LOCKSTEP_CHECK(verdict.empty(), IoError, a.output, ": onnx::checker rejects the exported model: ", verdict);
      },
      comm::Communicator::ErrorKind::kIo);
  std::string msg = "exported ";
  msg += net.description;
  msg += " (" + std::to_string(net.layers.size()) + " layers, input " + shape_str(net.input) + " per sample) to ";
  msg += a.output;
  msg += " (ONNX opset 13)";
  log::info(msg);
  return 0;
}

}  // namespace lockstep::app
