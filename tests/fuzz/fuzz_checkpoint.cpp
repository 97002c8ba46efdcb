// Checkpoint: the input as a checkpoint file, through io::load_checkpoint (the loader of --resume,
// evaluate and predict). Not in scripts/fuzz.sh's default list while that loader is being
// hardened; run it with `scripts/fuzz.sh 60 checkpoint`.
#include "fuzz_support.hpp"
#include "lockstep/io/checkpoint.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace lockstep;
  const std::string path = fuzz::write_input(data, size, "checkpoint.h5");
  fuzz::expect_clean("checkpoint", [&] { io::load_checkpoint(path); });
  return 0;
}
