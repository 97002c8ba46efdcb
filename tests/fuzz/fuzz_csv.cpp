// CSV: the input with the default options (a "label" column, every other a feature), and with a
// string column and explicit features, through read_csv_table.
#include "fuzz_support.hpp"
#include "lockstep/data/sources.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace lockstep;
  const std::string path = fuzz::write_input(data, size, "input.csv");
  fuzz::expect_clean("csv default", [&] { data::read_csv_table(fuzz::world(), path); });
  data::CsvOptions o;
  o.label_column = "y";
  o.string_columns = {"name"};
  o.feature_columns = {"a", "b"};
  fuzz::expect_clean("csv columns", [&] { data::read_csv_table(fuzz::world(), path, o); });
  data::CsvOptions multi;
  multi.label_columns = {"y", "z"};
  multi.delimiter = '\t';
  fuzz::expect_clean("csv label_columns", [&] { data::read_csv_table(fuzz::world(), path, multi); });
  return 0;
}
