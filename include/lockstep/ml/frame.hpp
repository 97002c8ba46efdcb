// Frame: the table that ML estimators, models and evaluators consume, built from data/'s Table
// (from_table); the NeuralNetwork stage hands it to the trainer as a Table again (to_table; the
// trainer itself knows no Frame). It lives in
// ml/, above data/, because it is written on Eigen. Each rank holds a contiguous shard of the rows:
// a feature block (dense row-major float32, or CSR), a label column and a weight column (all ones
// unless given), the names of the feature columns, and any text columns not yet indexed or
// tokenised (string columns, and the token-list columns the text stages write). Rows keep
// their global order (rank order, then row order), so a row's global index — the key of every
// random choice an estimator makes about it — does not depend on the number of ranks.
#pragma once

#include <Eigen/Core>
#include <Eigen/SparseCore>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "lockstep/comm/communicator.hpp"
#include "lockstep/data/example.hpp"
#include "lockstep/data/partitioned.hpp"
#include "lockstep/data/table.hpp"

namespace lockstep::ml {

using RowMatrix = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using CsrMatrix = Eigen::SparseMatrix<float, Eigen::RowMajor, std::int64_t>;
using Vec = Eigen::VectorXd;
using Mat = Eigen::MatrixXd;  // small, replicated matrices (coefficients, Gram matrices): double

// A token-list column (Spark's array<string>), what Tokenizer, StopWordsRemover and NGram write:
// row i's tokens are values[offsets[i]] .. values[offsets[i + 1] - 1], offsets starting at 0.
struct TokenColumn {
  std::vector<std::string> values;
  std::vector<std::int64_t> offsets{0};
  std::int64_t rows() const { return static_cast<std::int64_t>(offsets.size()) - 1; }
  std::span<const std::string> row(std::int64_t i) const {
    const auto b = static_cast<std::size_t>(offsets[static_cast<std::size_t>(i)]);
    const auto e = static_cast<std::size_t>(offsets[static_cast<std::size_t>(i) + 1]);
    return {values.data() + b, e - b};
  }
  // Closes the current row: the values pushed since the last call are its tokens.
  void end_row() { offsets.push_back(static_cast<std::int64_t>(values.size())); }
};

class Frame {
 public:
  Frame() = default;
  // Collective (the global row count and offsets are agreed). names: one per feature column, or
  // empty for f0, f1, ...; weight: empty for all ones.
  static Frame dense(comm::Communicator& comm, RowMatrix x, Vec label, Vec weight = {},
                     std::vector<std::string> names = {});
  static Frame sparse(comm::Communicator& comm, CsrMatrix x, Vec label, Vec weight = {},
                      std::vector<std::string> names = {});
  // From the data layer's sources (every rank its own split, in file order).
  static Frame from_examples(const data::Partitioned<data::Example>& rows, std::vector<std::string> names = {});
  static Frame from_sparse_examples(const data::Partitioned<data::SparseExample>& rows, std::int64_t num_features);
  // From data/'s table, the form every source fills: the dense block is copied once into the
  // feature matrix (no per-row detour), a CSR table stays CSR, and CSV's column names and text
  // columns come along. The first label column is the label. Collective.
  static Frame from_table(comm::Communicator& comm, const data::Table& t);

  comm::Communicator& comm() const { return *comm_; }
  std::int64_t rows() const { return static_cast<std::int64_t>(label_.size()); }  // on this rank
  std::int64_t global_rows() const { return global_rows_; }
  std::int64_t row_offset() const { return row_offset_; }  // global index of this rank's first row
  std::int64_t num_features() const { return num_features_; }
  bool is_sparse() const { return sparse_; }
  const RowMatrix& dense_features() const { return dense_; }
  const CsrMatrix& sparse_features() const { return csr_; }
  const Vec& label() const { return label_; }
  const Vec& weight() const { return weight_; }
  bool has_weight() const { return has_weight_; }
  const std::vector<std::string>& feature_names() const { return names_; }
  // Index of a feature column by name; throws ConfigError naming the known columns.
  std::int64_t column(const std::string& name) const;

  // Text columns (CSV string_columns), kept beside the features until a StringIndexer turns them
  // into numbers: names, and for each column this rank's values.
  const std::vector<std::string>& string_columns() const { return string_names_; }
  const std::vector<std::string>& strings(const std::string& column) const;
  Frame with_strings(std::vector<std::string> names, std::vector<std::vector<std::string>> values) const;

  // Token-list columns (TokenColumn), by name; a text stage reads a string or a token column and
  // writes a token column (with_tokens adds it, or replaces one of the same name).
  const std::vector<std::string>& token_columns() const { return token_names_; }
  bool has_tokens(const std::string& column) const;
  const TokenColumn& tokens(const std::string& column) const;  // throws ConfigError naming the known ones
  Frame with_tokens(const std::string& name, TokenColumn column) const;

  // Calls f with the feature block, dense or CSR: the estimators are written once over both.
  template <typename F>
  decltype(auto) visit(F&& f) const {
    return sparse_ ? f(csr_) : f(dense_);
  }

  // VectorAssembler: a frame whose features are the named columns, in that order. weight_column
  // (optional) moves a column into the weight; label_column (optional) into the label.
  Frame assemble(const std::vector<std::string>& feature_columns, const std::string& label_column = "",
                 const std::string& weight_column = "") const;
  // The same rows (labels, weights) with new features, e.g. a transformer's output.
  Frame with_features(RowMatrix x, std::vector<std::string> names = {}) const;
  Frame with_features(CsrMatrix x, std::vector<std::string> names = {}) const;
  Frame with_label(Vec label) const;
  // The rows of this rank whose local indices are listed, in the order listed (callers list them
  // ascending, which keeps the global row order); collective, like every constructor.
  // Cross-validation folds and train/validation splits are built with it.
  Frame subset(const std::vector<std::int64_t>& local_rows) const;
  // Dense copy of the features (CSR frames are densified).
  RowMatrix to_dense() const;
  // The frame's rows as the trainer's examples (features as float32, label).
  std::vector<data::Example> to_examples() const;
  // The frame's rows as a dense table (features as float32, the label as the one label column),
  // what the NeuralNetwork stage hands the trainer.
  data::Table to_table() const;

 private:
  void finish(comm::Communicator& comm);
  void copy_text(const Frame& from);  // string and token columns
  Frame subset_numeric(const std::vector<std::int64_t>& local_rows) const;
  comm::Communicator* comm_ = nullptr;
  bool sparse_ = false;
  RowMatrix dense_;
  CsrMatrix csr_;
  Vec label_, weight_;
  bool has_weight_ = false;
  std::vector<std::string> names_;
  std::vector<std::string> string_names_;
  std::vector<std::vector<std::string>> strings_;  // [column][local row]
  std::vector<std::string> token_names_;
  std::vector<TokenColumn> tokens_;
  std::int64_t num_features_ = 0, global_rows_ = 0, row_offset_ = 0;
};

// The class count of integer labels 0..K-1, agreed over ranks: K = 1 + the largest label. A
// label that is negative, fractional or not finite is a DataError on every rank naming its
// global row; so is a count above max_classes.
std::int64_t num_classes(const Frame& f, std::int64_t max_classes = 1 << 20);

}  // namespace lockstep::ml
