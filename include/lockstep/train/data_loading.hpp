// From the `data:` section of a config to cached partitions of examples, one split per call.
#pragma once

#include <cstdint>
#include <string>

#include "lockstep/comm/communicator.hpp"
#include "lockstep/core/tensor.hpp"
#include "lockstep/data/example.hpp"
#include "lockstep/data/partitioned.hpp"
#include "lockstep/io/config.hpp"

namespace lockstep::train {

struct Dataset {
  data::Partitioned<data::Example> rows;
  std::int64_t num_rows = 0;
  std::int64_t num_features = 0;
  std::int64_t num_classes = 0;  // 1 + the largest label (labels are class indices)
  std::string description;
  Shape sample_shape;  // per sample: {num_features} for flat rows
};

// This rank's rows. Every loader returns a cached partition, so this is a reference, not a copy.
const std::vector<data::Example>& local_rows(const Dataset& d);

enum class Split { kTrain, kTest };
// Reads one split. With data.synthetic_fallback and missing IDX files, falls back to the built-in
// synthetic set (every rank warns once). Collective.
Dataset load_split(comm::Communicator& comm, const io::DataConfig& cfg, Split split);
// Reads an arbitrary file in the configured format (for `lockstep predict --input`).
Dataset load_file(comm::Communicator& comm, const io::DataConfig& cfg, const std::string& features,
                  const std::string& labels);

}  // namespace lockstep::train
