// PLACEHOLDER until the onnx branch lands: see include/lockstep/io/onnx.hpp.
#include "lockstep/io/onnx.hpp"

#include "lockstep/core/error.hpp"

namespace lockstep::io {

bool is_onnx_path(const std::string& path) {
  return path.size() >= 5 && path.compare(path.size() - 5, 5, ".onnx") == 0;
}

NetworkFile read_onnx(const std::string& path) { throw DataError(path + ": ONNX import is not built yet"); }

void write_onnx(const std::string& path, const NetworkFile&) {
  throw IoError(path + ": ONNX export is not built yet");
}

}  // namespace lockstep::io
