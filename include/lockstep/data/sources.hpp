// Sources: the readers behind the registry's rows (source.hpp). Each fills a Table directly
// (`*_table`); the Partitioned<Example> forms are thin views kept for callers that want one
// object per row (tests, the partition layer's examples). Each rank reads only its own contiguous split of a file, and
// the global order of rows (rank order, then partition order) is the file order whatever the number of ranks. Every
// reader is collective: a problem that one rank finds (a missing file, a bad row) becomes the
// same DataError on every rank, naming the file, the line or record, what was expected and what
// was found.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "lockstep/comm/communicator.hpp"
#include "lockstep/core/param_reader.hpp"
#include "lockstep/data/example.hpp"
#include "lockstep/data/partitioned.hpp"
#include "lockstep/data/source.hpp"
#include "lockstep/data/table.hpp"

namespace lockstep::data {

// IDX (the MNIST format), plain or gzip-compressed (detected from the content, not the name).
// Images of any rank >= 1 are flattened; pixels are multiplied by `scale`. An empty labels_path
// reads unlabeled images (every label 0), for prediction.
struct IdxOptions {
  float scale = 1.0f / 255.0f;
};
// The table's sample shape is the file's trailing dimensions; images of rank 3 (N, H, W) give
// {1, H, W}, one channel.
Table read_idx_table(comm::Communicator& comm, const std::string& images_path, const std::string& labels_path,
                     const IdxOptions& options = {});
Partitioned<Example> read_idx(comm::Communicator& comm, const std::string& images_path, const std::string& labels_path,
                              const IdxOptions& options = {});
// Header-only look at an IDX file: its dimensions (first is the record count). Collective.
std::vector<std::int64_t> idx_dims(comm::Communicator& comm, const std::string& path);

// CSV with a header line. `label_column` names the label; `feature_columns` selects features by
// name (empty: every column but the label). Fields must be numbers. Quoted fields with embedded
// newlines are not supported (the file is split between ranks at line boundaries).
struct CsvOptions {
  std::string label_column = "label";
  std::vector<std::string> feature_columns;
  char delimiter = ',';
  // Columns kept as text (for StringIndexer) rather than parsed as numbers. They are never
  // features; when the label column is one of them, the rows' labels are 0 until indexed.
  std::vector<std::string> string_columns = {};
  // Several real-valued targets: these columns are the labels, in order (label_column is then
  // not used), and are never features.
  std::vector<std::string> label_columns = {};
  // A file given to predict may lack the label column(s) altogether (new data has no labels): its
  // rows then get labels 0 (as many as label_columns, or one), which predict never writes out.
  bool labels_optional = false;
};
// What a CSV says beside the numbers: the names of the feature columns, in feature order, and for
// each of this rank's rows its string_columns values, in order.
struct CsvDetails {
  std::vector<std::string> feature_names;
  std::vector<std::vector<std::string>> strings;
};
// feature_names and the string_columns' text travel in the table.
Table read_csv_table(comm::Communicator& comm, const std::string& path, const CsvOptions& options = {});
Partitioned<Example> read_csv(comm::Communicator& comm, const std::string& path, const CsvOptions& options = {},
                              CsvDetails* details = nullptr);

// LIBSVM / SVMlight: "label index:value ..." with 1-based, strictly increasing indices.
// num_features = 0 infers it as the largest index seen on any rank.
struct LibsvmOptions {
  std::int64_t num_features = 0;
};
struct LibsvmData {
  Partitioned<SparseExample> rows;
  std::int64_t num_features;
};
// A CSR table (sparse = true) of num_features columns.
Table read_libsvm_table(comm::Communicator& comm, const std::string& path, const LibsvmOptions& options = {});
LibsvmData read_libsvm(comm::Communicator& comm, const std::string& path, const LibsvmOptions& options = {});

// HDF5: a 2-D float dataset of features (rows x features) and a 1-D dataset of labels of any
// numeric type, each rank reading its hyperslab of rows.
struct Hdf5Options {
  std::string features_dataset = "/features";
  std::string labels_dataset = "/labels";
  // A file given to predict may lack the labels dataset: its rows then get this many labels of 0
  // (0: the dataset is required).
  std::int64_t labels_if_absent = 0;
};
// Features of rank > 2 keep their trailing dimensions as the sample shape.
Table read_hdf5_table(comm::Communicator& comm, const std::string& path, const Hdf5Options& options = {});
Partitioned<Example> read_hdf5(comm::Communicator& comm, const std::string& path, const Hdf5Options& options = {});

// A seeded synthetic classification set: `classes` Gaussian blobs in `features` dimensions.
// Row i depends only on (seed, i), so it is identical at any rank count.
struct SyntheticOptions {
  std::int64_t samples = 1000;
  std::int64_t features = 16;
  std::int64_t classes = 4;
  std::uint64_t seed = 1;
  float noise = 1.0f;
  std::int64_t first_row = 0;  // the rows are [first_row, first_row + samples) of the seed's stream
};
// The synthetic keys (data.synthetic.{samples, test_samples, features, classes, seed, noise}) as
// options for one split: the test split is the rows after the training rows of the same stream.
// Read by the synthetic source.
SyntheticOptions synthetic_options(ParamReader& params, SplitKind split);
Table make_synthetic_table(comm::Communicator& comm, const SyntheticOptions& options);
Partitioned<Example> make_synthetic(comm::Communicator& comm, const SyntheticOptions& options);

// A dense table's rows as one Example each (the first label column), cached. Collective.
Partitioned<Example> to_examples(comm::Communicator& comm, const Table& t);

}  // namespace lockstep::data
