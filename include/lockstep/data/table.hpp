// Table: one rank's rows of a data set as contiguous blocks, the form every source fills and the
// trainer and the ML frame read. Features are one float block [rows x F] (F the number of values
// of one sample, whose shape is `sample_shape`: {F} for flat rows, {C, H, W} for images), labels
// one float block [rows x L] (L label columns: 1 for a class or a single target). A LIBSVM source
// leaves the dense block empty and fills CSR arrays instead; a CSV source may add the names of
// its feature columns and text columns (for StringIndexer stages). Rows keep the global order of
// the file (rank order, then row order); `row_offset` is the global index of this rank's first
// row. One allocation per block instead of one heap vector per row is what lets a 60k x 784 set
// cost its bytes and little more, and lets rows move between ranks as plain byte ranges.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "lockstep/comm/communicator.hpp"

namespace lockstep::data {

using Shape = std::vector<std::int64_t>;

// Per-epoch augmentation a source asks of the trainer (image_folder's random crop and random
// horizontal flip of C x H x W rows): applied at batch assembly (train/batch_stream.cpp) with
// data::augment_row (image_folder.hpp), keyed by (seed, epoch, global row) so that it is the same
// at any number of ranks. The rows stay as read (sample_shape); the model sees augmented_shape().
struct Augment {
  bool hflip = false;                   // flip each row left-right with probability 1/2
  std::int64_t crop_h = 0, crop_w = 0;  // > 0: a random crop_h x crop_w window of each row
  bool active() const { return hflip || crop_h > 0; }
};

struct Table {
  Shape sample_shape;           // the shape of one sample; its product is num_features()
  std::int64_t num_labels = 1;  // L, label values per row
  std::int64_t rows = 0;        // on this rank
  std::int64_t global_rows = 0;
  std::int64_t row_offset = 0;  // global index of this rank's first row
  std::vector<float> features;  // [rows x F], row-major; empty when sparse
  std::vector<float> labels;    // [rows x L]
  // CSR (LIBSVM): row i's entries are [indptr[i], indptr[i+1]) of indices (0-based) and values.
  bool sparse = false;
  std::vector<std::int64_t> indptr;
  std::vector<std::int32_t> indices;
  std::vector<float> values;
  std::vector<std::string> feature_names;      // CSV: one per feature column; empty otherwise
  std::vector<std::string> text_names;         // CSV string_columns
  std::vector<std::vector<std::string>> text;  // [text column][local row]
  Augment augment;                             // training rows of image sources only
  // The class names behind the labels, label k is class_names[k] (image_folder's class folders,
  // or the training folder's for its test rows); empty for sources whose labels are numbers.
  std::vector<std::string> class_names;

  std::int64_t num_features() const {
    std::int64_t n = 1;
    for (const auto d : sample_shape) n *= d;
    return sample_shape.empty() ? 0 : n;
  }
  const float* row(std::int64_t i) const { return features.data() + i * num_features(); }
  float label(std::int64_t i, std::int64_t l = 0) const { return labels[static_cast<std::size_t>(i * num_labels + l)]; }
};

// Agrees the global facts: global_rows and row_offset, and that every rank has the same sample
// shape and label width (a rank with no rows takes the others'). Collective; a mismatch is a
// DataError on every rank naming `what`.
void finish_table(comm::Communicator& comm, Table& t, const std::string& what);

// Keeps the local rows i with keep[i] != 0, in order (features, CSR entries, labels, text);
// first_label, when given, replaces each kept row's first label by first_label[i]. Local: call
// finish_table afterwards.
void keep_rows(Table& t, const std::vector<char>& keep, const std::vector<float>* first_label = nullptr);

// The rows whose first label is one of `classes`, relabelled by position in that list (the
// data.classes selection); a no-op for an empty list. Local, then finish_table. Collective. A label
// that is not an integer, or no row left, is one agreed ConfigError at `where` ("x.yaml:9: data.classes").
void select_classes(comm::Communicator& comm, Table& t, const std::vector<std::int64_t>& classes,
                    const std::string& what, const std::string& where = "data.classes");

// data.train_fraction: keeps row i (its global index) when fraction_kept(seed, i, fraction), so the
// kept rows do not depend on how they are spread over ranks; a no-op for fraction >= 1. No row left
// is one agreed ConfigError at `where`. Collective.
bool fraction_kept(std::uint64_t seed, std::int64_t global_row, double fraction);
void select_fraction(comm::Communicator& comm, Table& t, double fraction, std::uint64_t seed, const std::string& what,
                     const std::string& where = "data.train_fraction");

// The dense form of a CSR table (features zero-filled, then scattered). Local. A dense block
// larger than this machine's memory (a LIBSVM index of 2^31 makes every row 8 GiB) is a DataError
// naming `what` and the size, thrown before allocating.
void densify(Table& t, const std::string& what = "densify");
// The same on every rank, with the size check agreed: any rank's error is every rank's. Collective.
void densify(comm::Communicator& comm, Table& t, const std::string& what);

// Row-wise repartition: local row i goes to rank dest[i] (-1: dropped). Each destination receives
// its rows as contiguous bytes in one alltoallv (features, then labels, then the rows' global
// indices), ordered by source rank, then by local order. The result holds only the features and
// labels of dense tables (what the trainer's shuffle moves); `global_ids` receives each arrived
// row's global index. Collective.
Table repartition_rows(comm::Communicator& comm, const Table& t, std::span<const int> dest,
                       std::vector<std::int64_t>* global_ids = nullptr);

// Working memory of repartition_rows_into, kept between calls (the trainer's shuffle, once an
// epoch): buffers that were written before are not faulted in again.
struct RepartitionScratch {
  std::vector<char> send, recv;
};
// repartition_rows into `out`, reusing its storage and the scratch's (capacity only grows; a
// first allocation asks for huge pages). Collective.
void repartition_rows_into(comm::Communicator& comm, const Table& t, std::span<const int> dest, Table& out,
                           std::vector<std::int64_t>* global_ids, RepartitionScratch& scratch);
// Allocates and writes (so that the pages are resident) the buffers for about `rows` rows of t
// moving each way: a later repartition_rows_into of that size faults in no memory.
void prepare_repartition(const Table& t, std::int64_t rows, Table& out, RepartitionScratch& scratch);

}  // namespace lockstep::data
