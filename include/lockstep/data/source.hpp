// The data-source registry: one row per format (idx, csv, libsvm, hdf5, synthetic), registered
// from the format's own file in src/data/ by a static SourceRegistrar. A row holds the format's
// name, the config keys it reads (for messages and docs), whether it reads files, and its reader:
// a collective function from (comm, the split, the format's parameters) to this rank's rows as a
// Table. The parameters arrive as core Param records with their place in the YAML, and the reader
// takes them through a ParamReader, so an unknown key or a bad value is a ConfigError naming
// `file:line: data.<key>` and listing the keys the format knows. read_source() is the one
// dispatch from config to rows: training, evaluation, prediction and `lockstep fit` all use it,
// and adding a format is adding its file (see docs/architecture.md, "Adding a data source").
#pragma once

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "lockstep/comm/communicator.hpp"
#include "lockstep/core/param_reader.hpp"
#include "lockstep/data/table.hpp"

namespace lockstep::data {

// What a config says about the data, without its format's vocabulary: the format, its own
// parameters (flattened: `synthetic: {samples: 10}` is "synthetic.samples"), and the keys every
// format shares.
struct SourceSpec {
  std::string format;
  std::string format_where;  // "file.yaml:3: data.format", for the unknown-format message
  std::map<std::string, Param> params;
  std::vector<std::string> label_columns;  // several real-valued targets (formats that have columns)
  std::vector<std::int64_t> classes;       // keep these labels, relabelled 0, 1, ... (train/test only)
  std::string classes_where = "data.classes";
  double train_fraction = 1.0;  // keep this fraction of the training split (data.train_fraction)
  std::uint64_t fraction_seed = 1;
  std::string train_fraction_where = "data.train_fraction";
};

enum class SplitKind { kTrain, kTest, kFile };

// One read: which split (a file given on the command line is kFile), its paths, and the shared keys.
struct SourceRequest {
  SplitKind split = SplitKind::kFile;
  std::string features;  // idx: the images file; the others: the file
  std::string labels;    // idx only; empty for unlabelled input
  std::vector<std::string> label_columns;
  // The training data's class names, for a source whose labels are named in the data
  // (image_folder): its rows are labelled by position in this list rather than by their own
  // (so test, predict and evaluate rows map classes as training did). Empty: the data's own.
  std::vector<std::string> class_names;
  std::string class_names_from;  // where they come from (the training folder, a checkpoint), for messages
};

struct Source {
  std::string name;
  std::vector<std::string> keys;  // the data.<key>s it reads, for the documentation
  bool reads_files = true;        // false: rows are generated (synthetic)
  bool label_columns = false;     // whether it honours data.label_columns
  // Reads this rank's split. Must read its parameters from `params` and call params.finish()
  // before touching any file, so that a config mistake is found before a long read. Collective.
  std::function<Table(comm::Communicator&, const SourceRequest&, ParamReader& params)> read;
};

void register_source(Source source);
// nullptr when no row has that name.
const Source* find_source(const std::string& name);
std::vector<std::string> source_names();  // sorted

struct SourceRegistrar {
  explicit SourceRegistrar(Source source) { register_source(std::move(source)); }
};

// The one dispatch from config to rows. Looks the format up (an unknown one is a ConfigError at
// spec.format_where listing the known formats), reads the split, applies data.classes to the
// train and test splits (never to a kFile read: predict writes a prediction for every row it is
// given) and agrees the table's global facts. `what` names the data in messages. Collective.
Table read_source(comm::Communicator& comm, const SourceSpec& spec, const SourceRequest& request,
                  const std::string& what);

}  // namespace lockstep::data
