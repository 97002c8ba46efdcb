// `lockstep export --checkpoint run/checkpoint.h5 --output net.onnx`: a trained network as an ONNX
// model (docs/onnx.md). Every rank reads the checkpoint (errors agreed); rank 0 writes the file and
// checks it with onnx::checker; its errors reach every rank.
#include "common.hpp"
#include "lockstep/core/log.hpp"
#include "lockstep/io/onnx.hpp"
#include "lockstep/train/network_file.hpp"

namespace lockstep::app {

int run_export(comm::Communicator& comm, const std::string& checkpoint, const std::string& output) {
  LOCKSTEP_CHECK(io::is_onnx_path(output), ConfigError, "export --output ", output,
                 ": expected a file name ending in .onnx");
  const io::NetworkFile net = train::read_network(comm, checkpoint);
  io::NetworkFile described;
  comm.collectively(
      [&] {
        const auto model = train::build_network(net);
        described = train::describe_network(*model, net.layers);
        if (comm.rank() != 0) return;
        io::write_onnx(output, described);
        const std::string verdict = io::check_onnx(output);
        LOCKSTEP_CHECK(verdict.empty(), IoError, output, ": onnx::checker rejects the exported model: ", verdict);
      },
      comm::Communicator::ErrorKind::kIo);
  log::info("exported " + net.description + " (" + std::to_string(net.layers.size()) + " layers) to " + output +
            " (ONNX opset 13)");
  return 0;
}

}  // namespace lockstep::app
