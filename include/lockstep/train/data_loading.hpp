// From the `data:` section of a config to a Dataset: the trainer's view of data/'s Table (one
// split per call). The reading itself is data/'s source registry (data::read_source); this file
// converts the io/ record into data/'s request, applies what every train and test split gets (a
// missing file named by its key, data.on_invalid for non-finite features) and derives what the
// model needs from the rows: the feature width, the per-sample shape and the class count.
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
  double load_seconds = 0.0;    // reading (and decoding) it: wall seconds of the slowest rank (load_split, load_file)
};

// A Dataset over a table whose global facts are agreed (data::finish_table). Collective.
Dataset make_dataset(comm::Communicator& comm, data::Table table, std::string description);

// The io/ record as data/'s source spec (without data.on_invalid, which no format reads).
data::SourceSpec source_spec(const io::DataConfig& cfg);

// data.on_invalid: what a train or test split does with a row whose features hold a NaN or an
// infinity: error (the default) or skip (leave the row out). A ConfigError at the key for any other
// value.
enum class OnInvalid { kError, kSkip };
OnInvalid on_invalid(const io::DataConfig& cfg);

enum class Split { kTrain, kTest };
// One split's rows, as every command that reads a train or test split gets them (train, evaluate,
// fit): a named file missing on any rank is one DataError naming its key and path (for the
// Fashion-MNIST paths, with the Debian package to install), and data.on_invalid is applied to the
// features (error: one agreed DataError naming the file and the lowest bad row). For a source
// whose labels are named in the data (image_folder), the test split's labels index the training
// classes: `classes` when given (a checkpoint's), else the config's train folder's (listed, not
// read). Collective.
struct ClassNames {
  std::vector<std::string> names;
  std::string from;  // for messages: the training folder, or the checkpoint
};
data::Table read_split_table(comm::Communicator& comm, const io::DataConfig& cfg, Split split,
                             const ClassNames* classes = nullptr);
// read_split_table as a Dataset. Collective.
Dataset load_split(comm::Communicator& comm, const io::DataConfig& cfg, Split split,
                   const ClassNames* classes = nullptr);
// Reads an arbitrary file in the configured format (for `lockstep predict --input`); data.classes
// is not applied. Collective.
// `classes` as for read_split_table.
Dataset load_file(comm::Communicator& comm, const io::DataConfig& cfg, const std::string& features,
                  const std::string& labels, const ClassNames* classes = nullptr);

}  // namespace lockstep::train
