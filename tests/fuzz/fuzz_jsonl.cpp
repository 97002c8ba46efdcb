// JSON lines: the input through the registry's jsonl reader, with a label, a numeric and a text
// member, and with several label members and no text.
#include "fuzz_support.hpp"
#include "lockstep/data/source.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace lockstep;
  const std::string path = fuzz::write_input(data, size, "input.jsonl");
  data::SourceRequest req;
  req.features = path;
  data::SourceSpec spec{"jsonl", "", {}, {}, {}};
  spec.params["feature_columns"] = Param{{"a", "b"}, true, "data.feature_columns"};
  spec.params["string_columns"] = Param{{"text"}, true, "data.string_columns"};
  fuzz::expect_clean("jsonl columns", [&] { data::read_source(fuzz::world(), spec, req, "fuzz input"); });
  data::SourceSpec labels{"jsonl", "", {}, {}, {}};
  req.label_columns = {"y", "z"};
  req.split = data::SplitKind::kTrain;
  fuzz::expect_clean("jsonl label_columns", [&] { data::read_source(fuzz::world(), labels, req, "fuzz input"); });
  return 0;
}
