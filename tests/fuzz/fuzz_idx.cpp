// IDX (plain or gzip): the input as images without labels, and as both images and labels (which
// needs one value per record), through read_idx_table.
#include "fuzz_support.hpp"
#include "lockstep/data/sources.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace lockstep;
  const std::string path = fuzz::write_input(data, size, "input.idx");
  fuzz::expect_clean("idx images", [&] { data::read_idx_table(fuzz::world(), path, ""); });
  fuzz::expect_clean("idx images+labels", [&] { data::read_idx_table(fuzz::world(), path, path); });
  fuzz::expect_clean("idx dims", [&] { data::idx_dims(fuzz::world(), path); });
  return 0;
}
