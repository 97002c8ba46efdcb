// YAML config: the input as a config file, through load_config, then written back (to_yaml) and
// hashed, as `lockstep train` does with every config it accepts.
#include "fuzz_support.hpp"
#include "lockstep/io/config.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace lockstep;
  const std::string path = fuzz::write_input(data, size, "config.yaml");
  fuzz::expect_clean("config", [&] {
    const io::Config c = io::load_config(path);
    io::config_hash(c);
  });
  return 0;
}
