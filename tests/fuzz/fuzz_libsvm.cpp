// LIBSVM: the input with an inferred and a given width, then made dense the way the trainer does
// (where a huge index must be an error, not a huge allocation).
#include "fuzz_support.hpp"
#include "lockstep/data/sources.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace lockstep;
  const std::string path = fuzz::write_input(data, size, "input.svm");
  fuzz::expect_clean("libsvm inferred", [&] {
    data::Table t = data::read_libsvm_table(fuzz::world(), path);
    data::densify(fuzz::world(), t, path);
  });
  fuzz::expect_clean("libsvm num_features 8", [&] {
    data::Table t = data::read_libsvm_table(fuzz::world(), path, data::LibsvmOptions{8});
    data::densify(fuzz::world(), t, path);
  });
  return 0;
}
