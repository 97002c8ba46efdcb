// From the `data:` section of a config to a Dataset: the trainer's view of data/'s Table (one
// split per call). The reading itself is data/'s source registry (data::read_source); this file
// only converts the io/ record into data/'s request and derives what the model needs from the
// rows: the feature width, the per-sample shape and the class count.
#pragma once

#include <cstdint>
#include <string>

#include "lockstep/comm/communicator.hpp"
#include "lockstep/data/source.hpp"
#include "lockstep/data/table.hpp"
#include "lockstep/io/config.hpp"

namespace lockstep::train {

struct Dataset {
  data::Table table;  // this rank's rows, contiguous
  std::int64_t num_rows = 0;
  std::int64_t num_features = 0;  // the product of sample_shape
  std::int64_t num_classes = 0;   // 1 + the largest label (labels are class indices)
  std::string description;
  data::Shape sample_shape;     // per sample: {F}, or {C, H, W} for images
  std::int64_t num_labels = 1;  // label columns per row
};

// A Dataset over a table whose global facts are agreed (data::finish_table). Collective.
Dataset make_dataset(comm::Communicator& comm, data::Table table, std::string description);

// The io/ record as data/'s source spec.
data::SourceSpec source_spec(const io::DataConfig& cfg);

enum class Split { kTrain, kTest };
// Reads one split. With data.synthetic_fallback and missing IDX files, falls back to the built-in
// synthetic set (every rank warns once). Collective.
Dataset load_split(comm::Communicator& comm, const io::DataConfig& cfg, Split split);
// Reads an arbitrary file in the configured format (for `lockstep predict --input`); data.classes
// is not applied. Collective.
Dataset load_file(comm::Communicator& comm, const io::DataConfig& cfg, const std::string& features,
                  const std::string& labels);

}  // namespace lockstep::train
