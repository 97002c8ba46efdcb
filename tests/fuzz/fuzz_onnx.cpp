// ONNX: the input as an .onnx file, through io::read_onnx (the reader behind predict --model,
// model.init_from and NeuralFeaturizer's modelPath): protobuf parsing, then the conversion of the
// graph into layer specs and named parameters. A model that imports must describe tensors whose
// sizes match their values.
#include "fuzz_support.hpp"
#include "lockstep/io/onnx.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace lockstep;
  const std::string path = fuzz::write_input(data, size, "model.onnx");
  fuzz::expect_clean("onnx", [&] {
    const io::NetworkFile net = io::read_onnx(path);
    for (const auto* arrays : {&net.params, &net.buffers})
      for (const auto& a : *arrays)
        if (static_cast<std::int64_t>(a.values.size()) != shape_numel(a.shape)) std::abort();
  });
  return 0;
}
