// ONNX models in and out. A network crosses this boundary as a NetworkFile: the layer specs that
// `model.layers` would hold (so nn's registry builds it like any configured model) and its
// parameters and buffers named as nn::Sequential names them ("conv2d0.weight",
// "batchnorm1.running_mean"). All ONNX and protobuf code is in src/io/onnx.cpp; nothing else
// includes an ONNX header.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "lockstep/core/param_reader.hpp"
#include "lockstep/core/tensor.hpp"

namespace lockstep::io {

struct NamedArray {
  std::string name;  // "conv2d0.weight"
  Shape shape;
  std::vector<float> values;  // row-major, shape_numel(shape) of them
};

// A network and its state, independent of where it came from (an ONNX file, a lockstep checkpoint).
struct NetworkFile {
  std::string path;         // the file it was read from, for messages
  std::string description;  // "net.onnx (ONNX opset 13, written by pytorch 1.13.1)"
  Shape input;              // per-sample input shape: {784} or {channels, height, width}
  std::vector<Spec> layers; // as model.layers: nn::make_layer builds each
  std::vector<NamedArray> params;   // every parameter of the built model, by its lockstep name
  std::vector<NamedArray> buffers;  // every buffer (batch norm's running statistics)
  std::vector<std::string> class_names;  // what output k means, when the file says (checkpoints)
};

// True when `path` names an ONNX file (its extension is .onnx); lockstep checkpoints are HDF5.
bool is_onnx_path(const std::string& path);

// Reads an ONNX model whose operators lockstep has (see docs/onnx.md). Any other operator, opset,
// data type or graph shape is a DataError naming the file, the node (name and op_type) and what is
// supported; a file that is not a readable ONNX model is a DataError naming the file.
// extra_inputs: serialized TensorProto files (any data type) holding the values of the graph's
// inputs after the first (the data), in order, taken as constants: the ONNX operator test cases
// feed weights and shapes as inputs. None by default.
NetworkFile read_onnx(const std::string& path, const std::vector<std::string>& extra_inputs = {});

// Writes `net` as an ONNX model (through an AtomicFile). Its layers must be in export form:
// every window's padding explicit as [top, left, bottom, right] (train::describe_network makes it).
void write_onnx(const std::string& path, const NetworkFile& net);

// onnx::checker's verdict on the ONNX file at `path`: "" when it accepts it, else its message.
std::string check_onnx(const std::string& path);
// A serialized TensorProto (the test cases' input_0.pb, output_0.pb) as float32 values; other data
// types are a DataError naming the file.
NamedArray read_onnx_tensor(const std::string& path);
// "1.12.0": the ONNX library this build uses ("" when built without ONNX).
std::string onnx_version();

}  // namespace lockstep::io
