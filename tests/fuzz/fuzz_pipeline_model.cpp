// Pipeline model: the input as a saved ML pipeline (lockstep fit's model.h5), through
// ml::PipelineModel::load on a one-rank world. Not in scripts/fuzz.sh's default list while that
// loader is being hardened; run it with `scripts/fuzz.sh 60 pipeline_model`.
#include "fuzz_support.hpp"
#include "lockstep/ml/pipeline.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace lockstep;
  const std::string path = fuzz::write_input(data, size, "model.h5");
  fuzz::expect_clean("pipeline model", [&] { ml::PipelineModel::load(fuzz::world(), path); });
  return 0;
}
