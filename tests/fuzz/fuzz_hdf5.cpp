// HDF5 data: the input as a file of /features and /labels, through read_hdf5_table. libhdf5
// parses the file; see docs/fuzzing.md for what it does with corrupt ones.
#include "fuzz_support.hpp"
#include "lockstep/data/sources.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace lockstep;
  const std::string path = fuzz::write_input(data, size, "input.h5");
  fuzz::expect_clean("hdf5", [&] { data::read_hdf5_table(fuzz::world(), path); });
  return 0;
}
