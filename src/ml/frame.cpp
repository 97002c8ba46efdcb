// Frame construction, column selection and the label checks every classifier shares.
#include "lockstep/ml/frame.hpp"
#include "lockstep/data/image_folder.hpp"

#include <algorithm>
#include <cmath>
#include <optional>
#include <sstream>

namespace lockstep::ml {

void Frame::finish(comm::Communicator& comm) {
  comm_ = &comm;
  const std::int64_t n = static_cast<std::int64_t>(label_.size());
  if (weight_.size() == 0) {
    weight_ = Vec::Ones(n);
  } else {
    has_weight_ = true;
  }
  std::optional<std::string> err;
  if (weight_.size() != n) {
    err = "frame: " + std::to_string(weight_.size()) + " weights for " + std::to_string(n) + " rows";
  } else if ((sparse_ ? csr_.rows() : dense_.rows()) != n) {
    err = "frame: " + std::to_string(sparse_ ? csr_.rows() : dense_.rows()) + " feature rows for " + std::to_string(n) +
          " labels";
  }
  comm.agree(err, comm::Communicator::ErrorKind::kData);
  // Feature count: agreed (an empty shard has no opinion).
  const std::int64_t local_d = n > 0 || sparse_ ? (sparse_ ? csr_.cols() : dense_.cols()) : -1;
  num_features_ = comm.allreduce<std::int64_t>(local_d, comm::ReduceOp::kMax);
  const std::int64_t low = comm.allreduce<std::int64_t>(local_d < 0 ? num_features_ : local_d, comm::ReduceOp::kMin);
  if (low != num_features_) {
    comm.agree(std::string("frame: ranks hold rows of different widths (") + std::to_string(low) + " and " +
                   std::to_string(num_features_) + " features)",
               comm::Communicator::ErrorKind::kData);
  }
  if (num_features_ < 0) num_features_ = 0;
  if (!sparse_ && dense_.cols() != num_features_) dense_.resize(0, num_features_);
  if (sparse_ && csr_.cols() != num_features_) csr_.resize(csr_.rows(), num_features_);
  row_offset_ = comm.exscan(n);
  global_rows_ = comm.allreduce<std::int64_t>(n, comm::ReduceOp::kSum);
  if (names_.empty()) {
    for (std::int64_t j = 0; j < num_features_; ++j) names_.push_back("f" + std::to_string(j));
  }
  std::optional<std::string> name_err;
  if (static_cast<std::int64_t>(names_.size()) != num_features_)
    name_err =
        "frame: " + std::to_string(names_.size()) + " column names for " + std::to_string(num_features_) + " features";
  comm.agree(name_err, comm::Communicator::ErrorKind::kConfig);
}

Frame Frame::dense(comm::Communicator& comm, RowMatrix x, Vec label, Vec weight, std::vector<std::string> names) {
  Frame f;
  f.dense_ = std::move(x);
  f.label_ = std::move(label);
  f.weight_ = std::move(weight);
  f.names_ = std::move(names);
  f.finish(comm);
  return f;
}

Frame Frame::sparse(comm::Communicator& comm, CsrMatrix x, Vec label, Vec weight, std::vector<std::string> names) {
  Frame f;
  f.sparse_ = true;
  f.csr_ = std::move(x);
  f.csr_.makeCompressed();
  f.label_ = std::move(label);
  f.weight_ = std::move(weight);
  f.names_ = std::move(names);
  f.finish(comm);
  return f;
}

Frame Frame::from_examples(const data::Partitioned<data::Example>& rows, std::vector<std::string> names) {
  auto& comm = rows.comm();
  std::vector<data::Example> copy;
  const std::vector<data::Example>* local = rows.cached_local();
  if (!local) {
    copy = rows.local();
    local = &copy;
  }
  const auto n = static_cast<std::int64_t>(local->size());
  const std::int64_t d = n > 0 ? static_cast<std::int64_t>((*local)[0].features.size()) : 0;
  RowMatrix x(n, d);
  Vec y(n);
  std::optional<std::string> err;
  for (std::int64_t i = 0; i < n && !err; ++i) {
    const auto& e = (*local)[static_cast<std::size_t>(i)];
    if (static_cast<std::int64_t>(e.features.size()) != d) {
      err = "frame: row " + std::to_string(i) + " of rank " + std::to_string(comm.rank()) + " has " +
            std::to_string(e.features.size()) + " features, the first row has " + std::to_string(d);
      break;
    }
    std::copy(e.features.begin(), e.features.end(), x.row(i).data());
    y[i] = e.label;
  }
  comm.agree(err, comm::Communicator::ErrorKind::kData);
  return dense(comm, std::move(x), std::move(y), {}, std::move(names));
}

Frame Frame::from_sparse_examples(const data::Partitioned<data::SparseExample>& rows, std::int64_t num_features) {
  auto& comm = rows.comm();
  const auto local = rows.local();
  const auto n = static_cast<std::int64_t>(local.size());
  std::vector<Eigen::Triplet<float, std::int64_t>> t;
  Vec y(n);
  for (std::int64_t i = 0; i < n; ++i) {
    const auto& e = local[static_cast<std::size_t>(i)];
    for (std::size_t k = 0; k < e.indices.size(); ++k) t.emplace_back(i, e.indices[k], e.values[k]);
    y[i] = e.label;
  }
  CsrMatrix x(n, num_features);
  x.setFromTriplets(t.begin(), t.end());
  return sparse(comm, std::move(x), std::move(y));
}

std::int64_t Frame::column(const std::string& name) const {
  for (std::size_t j = 0; j < names_.size(); ++j)
    if (names_[j] == name) return static_cast<std::int64_t>(j);
  std::ostringstream os;
  os << "no feature column \"" << name << "\" (the columns are";
  for (std::size_t j = 0; j < names_.size() && j < 20; ++j) os << (j ? ", " : " ") << names_[j];
  if (names_.size() > 20) os << ", ... (" << names_.size() << " in all)";
  os << ")";
  throw ConfigError(os.str());
}

Frame Frame::assemble(const std::vector<std::string>& cols, const std::string& label_column,
                      const std::string& weight_column) const {
  std::vector<std::int64_t> idx;
  for (const auto& c : cols) idx.push_back(column(c));
  const RowMatrix x = to_dense();
  RowMatrix out(rows(), static_cast<std::int64_t>(idx.size()));
  for (std::size_t k = 0; k < idx.size(); ++k) out.col(static_cast<std::int64_t>(k)) = x.col(idx[k]);
  Vec y = label_, w = has_weight_ ? weight_ : Vec();
  if (!label_column.empty()) y = x.col(column(label_column)).cast<double>();
  if (!weight_column.empty()) w = x.col(column(weight_column)).cast<double>();
  Frame f = dense(*comm_, std::move(out), std::move(y), std::move(w), cols);
  f.copy_text(*this);
  return f;
}

void Frame::copy_text(const Frame& from) {
  string_names_ = from.string_names_;
  strings_ = from.strings_;
  token_names_ = from.token_names_;
  tokens_ = from.tokens_;
}

Frame Frame::with_features(RowMatrix x, std::vector<std::string> names) const {
  Frame f = dense(*comm_, std::move(x), label_, has_weight_ ? weight_ : Vec(), std::move(names));
  f.copy_text(*this);
  return f;
}

Frame Frame::with_features(CsrMatrix x, std::vector<std::string> names) const {
  Frame f = sparse(*comm_, std::move(x), label_, has_weight_ ? weight_ : Vec(), std::move(names));
  f.copy_text(*this);
  return f;
}

bool Frame::has_tokens(const std::string& column) const {
  return std::find(token_names_.begin(), token_names_.end(), column) != token_names_.end();
}

const TokenColumn& Frame::tokens(const std::string& column) const {
  for (std::size_t c = 0; c < token_names_.size(); ++c)
    if (token_names_[c] == column) return tokens_[c];
  std::string known;
  for (const auto& n : token_names_) known += (known.empty() ? "" : ", ") + n;
  throw ConfigError("no token column \"" + column + "\" (the token columns are: " +
                    (known.empty() ? "none; a Tokenizer or RegexTokenizer writes one" : known) + ")");
}

Frame Frame::with_tokens(const std::string& name, TokenColumn column) const {
  std::optional<std::string> err;
  if (column.rows() != rows())
    err = "frame: token column \"" + name + "\" has " + std::to_string(column.rows()) + " rows, the frame " +
          std::to_string(rows());
  comm_->agree(err, comm::Communicator::ErrorKind::kData);
  Frame f = *this;
  const auto it = std::find(f.token_names_.begin(), f.token_names_.end(), name);
  if (it != f.token_names_.end()) {
    f.tokens_[static_cast<std::size_t>(it - f.token_names_.begin())] = std::move(column);
  } else {
    f.token_names_.push_back(name);
    f.tokens_.push_back(std::move(column));
  }
  return f;
}

const std::vector<std::string>& Frame::strings(const std::string& column) const {
  for (std::size_t c = 0; c < string_names_.size(); ++c)
    if (string_names_[c] == column) return strings_[c];
  std::string known;
  for (const auto& n : string_names_) known += (known.empty() ? "" : ", ") + n;
  throw ConfigError("no string column \"" + column + "\" (the string columns are: " +
                    (known.empty() ? "none; list them in data.string_columns" : known) + ")");
}

Frame Frame::with_strings(std::vector<std::string> names, std::vector<std::vector<std::string>> values) const {
  std::optional<std::string> err;
  for (const auto& v : values)
    if (static_cast<std::int64_t>(v.size()) != rows())
      err =
          "frame: a string column with " + std::to_string(v.size()) + " values for " + std::to_string(rows()) + " rows";
  comm_->agree(err, comm::Communicator::ErrorKind::kData);
  Frame f = *this;
  f.string_names_ = std::move(names);
  f.strings_ = std::move(values);
  return f;
}

Frame Frame::with_label(Vec label) const {
  Frame f = *this;
  f.label_ = std::move(label);
  return f;
}

Frame Frame::subset(const std::vector<std::int64_t>& keep) const {
  std::vector<std::vector<std::string>> kept(strings_.size());
  for (std::size_t c = 0; c < strings_.size(); ++c)
    for (auto i : keep) kept[c].push_back(strings_[c][static_cast<std::size_t>(i)]);
  Frame f = subset_numeric(keep).with_strings(string_names_, std::move(kept));
  for (std::size_t c = 0; c < tokens_.size(); ++c) {
    TokenColumn t;
    for (auto i : keep) {
      const auto row = tokens_[c].row(i);
      t.values.insert(t.values.end(), row.begin(), row.end());
      t.end_row();
    }
    f.token_names_.push_back(token_names_[c]);
    f.tokens_.push_back(std::move(t));
  }
  return f;
}

Frame Frame::subset_numeric(const std::vector<std::int64_t>& keep) const {
  const auto n = static_cast<std::int64_t>(keep.size());
  Vec y(n), w(n);
  for (std::int64_t k = 0; k < n; ++k)
    y[k] = label_[keep[static_cast<std::size_t>(k)]], w[k] = weight_[keep[static_cast<std::size_t>(k)]];
  if (sparse_) {
    std::vector<Eigen::Triplet<float, std::int64_t>> t;
    for (std::int64_t k = 0; k < n; ++k)
      for (CsrMatrix::InnerIterator it(csr_, keep[static_cast<std::size_t>(k)]); it; ++it)
        t.emplace_back(k, it.col(), it.value());
    CsrMatrix x(n, num_features_);
    x.setFromTriplets(t.begin(), t.end());
    return sparse(*comm_, std::move(x), std::move(y), has_weight_ ? w : Vec(), names_);
  }
  RowMatrix x(n, num_features_);
  for (std::int64_t k = 0; k < n; ++k) x.row(k) = dense_.row(keep[static_cast<std::size_t>(k)]);
  return dense(*comm_, std::move(x), std::move(y), has_weight_ ? w : Vec(), names_);
}

RowMatrix Frame::to_dense() const {
  return sparse_ ? RowMatrix(csr_) : dense_;
}

Frame Frame::from_table(comm::Communicator& comm, const data::Table& t) {
  // Per-epoch image augmentation is the trainer's; a frame takes the rows as test rows.
  if (t.augment.active()) return from_table(comm, data::without_augment(t));
  Vec y(t.rows);
  for (std::int64_t i = 0; i < t.rows; ++i) y[i] = t.label(i);
  Frame f;
  if (t.sparse) {
    // Eigen's compressed storage is exactly CSR: the arrays are copied in as they stand.
    CsrMatrix x(t.rows, t.num_features());
    x.reserve(static_cast<std::int64_t>(t.values.size()));
    for (std::int64_t i = 0; i < t.rows; ++i)
      for (std::int64_t k = t.indptr[static_cast<std::size_t>(i)]; k < t.indptr[static_cast<std::size_t>(i + 1)]; ++k)
        x.insert(i, t.indices[static_cast<std::size_t>(k)]) = t.values[static_cast<std::size_t>(k)];
    f = sparse(comm, std::move(x), std::move(y), {}, t.feature_names);
  } else {
    RowMatrix x = Eigen::Map<const RowMatrix>(t.features.data(), t.rows, t.num_features());
    f = dense(comm, std::move(x), std::move(y), {}, t.feature_names);
  }
  if (t.text_names.empty()) return f;
  return f.with_strings(t.text_names, t.text);
}

data::Table Frame::to_table() const {
  data::Table t;
  t.sample_shape = {num_features_};
  t.rows = rows();
  t.global_rows = global_rows_;
  t.row_offset = row_offset_;
  const RowMatrix x = to_dense();
  t.features.assign(x.data(), x.data() + x.size());
  t.labels.resize(static_cast<std::size_t>(rows()));
  for (std::int64_t i = 0; i < rows(); ++i) t.labels[static_cast<std::size_t>(i)] = static_cast<float>(label_[i]);
  return t;
}

std::vector<data::Example> Frame::to_examples() const {
  const RowMatrix x = to_dense();
  std::vector<data::Example> out(static_cast<std::size_t>(rows()));
  for (std::int64_t i = 0; i < rows(); ++i) {
    auto& e = out[static_cast<std::size_t>(i)];
    e.features.assign(x.row(i).data(), x.row(i).data() + x.cols());
    e.label = static_cast<float>(label_[i]);
  }
  return out;
}

std::int64_t num_classes(const Frame& f, std::int64_t max_classes) {
  std::int64_t bad_row = -1;
  double bad_value = 0.0, top = -1.0;
  for (std::int64_t i = 0; i < f.rows(); ++i) {
    const double y = f.label()[i];
    if (!std::isfinite(y) || y < 0 || y != std::floor(y) || y >= static_cast<double>(max_classes)) {
      bad_row = f.row_offset() + i;
      bad_value = y;
      break;
    }
    top = std::max(top, y);
  }
  std::ostringstream os;
  if (bad_row >= 0)
    os << "label " << bad_value << " at row " << bad_row << " is not a class index (expected an integer in [0, "
       << max_classes << "))";
  agree_on_first_bad_row(f.comm(), bad_row < 0 ? INT64_MAX : bad_row, os.str());
  const double k = f.comm().allreduce<double>(top, comm::ReduceOp::kMax) + 1.0;
  return static_cast<std::int64_t>(k);
}

}  // namespace lockstep::ml
