// Config -> Dataset through data/'s source registry. The model needs the feature width and the
// class count; both come from the data (the largest label on any rank), not from trust in the
// config.
#include "lockstep/train/data_loading.hpp"

#include <algorithm>
#include <cmath>
#include <chrono>
#include <filesystem>

#include "lockstep/core/log.hpp"
#include "lockstep/core/param_reader.hpp"
#include "lockstep/data/image_folder.hpp"

namespace lockstep::train {

Dataset make_dataset(comm::Communicator& comm, data::Table table, std::string description) {
  Dataset d;
  double max_label = -1.0;
  for (std::int64_t i = 0; i < table.rows; ++i) max_label = std::max(max_label, static_cast<double>(table.label(i)));
  // Real-valued labels (regression) may be anything; the class count only matters for classifiers.
  const double top = comm.allreduce<double>(max_label, comm::ReduceOp::kMax);
  d.num_classes = top < 1e9 ? static_cast<std::int64_t>(top) + 1 : std::int64_t{1000000000};
  d.num_rows = table.global_rows;
  // An image source's random crop (Table::augment) gives the model a smaller sample than a row.
  d.sample_shape = data::augmented_shape(table);
  d.num_features = 1;
  for (const auto n : d.sample_shape) d.num_features *= n;
  d.num_labels = table.num_labels;
  d.description = std::move(description);
  // The trainer reads dense rows; LIBSVM's CSR is spread out once here.
  data::densify(comm, table, d.description);
  d.table = std::move(table);
  return d;
}

data::SourceSpec source_spec(const io::DataConfig& cfg) {
  // data.on_invalid belongs to no format: every split's rows get it here, after the read.
  auto params = cfg.params;
  params.erase("on_invalid");
  data::SourceSpec spec;
  spec.format = cfg.format;
  spec.format_where = cfg.format_where;
  spec.params = std::move(params);
  spec.label_columns = cfg.label_columns;
  spec.classes = cfg.classes;
  spec.classes_where = cfg.classes_where;
  spec.train_fraction = cfg.train_fraction;
  spec.fraction_seed = cfg.fraction_seed;
  spec.train_fraction_where = cfg.train_fraction_where;
  return spec;
}

OnInvalid on_invalid(const io::DataConfig& cfg) {
  std::map<std::string, Param> mine;
  if (const auto it = cfg.params.find("on_invalid"); it != cfg.params.end()) mine.insert(*it);
  ParamReader p(mine, "data");
  std::string v = "error";
  p.get("on_invalid", v, one_of({"error", "skip"}));
  return v == "skip" ? OnInvalid::kSkip : OnInvalid::kError;
}

namespace {

// Where the Debian package puts Fashion-MNIST (the example configs read it from there).
constexpr const char* kFashionMnistDir = "/usr/share/datasets/fashion-mnist/";

// Every named file of the split exists on every rank, or one agreed DataError names the config key
// and the path (before a reader's own, less helpful, "cannot open").
void check_files_exist(comm::Communicator& comm, const io::DataSplitConfig& paths, const std::string& split) {
  comm.collectively([&] {
    for (const auto& [key, path] : {std::pair{"features", &paths.features}, std::pair{"labels", &paths.labels}}) {
      if (path->empty() || std::filesystem::exists(*path)) continue;
      std::string msg = "data." + split + "." + key + ": " + *path + " not found";
      if (path->rfind(kFashionMnistDir, 0) == 0)
        msg += " (Fashion-MNIST: on Debian, apt-get install dataset-fashion-mnist)";
      throw DataError(msg);
    }
  });
}

// The lowest local row with a NaN or infinite feature (INT64_MAX for none) and its column; with
// `keep`, every such row is marked 0 there.
std::int64_t find_non_finite(const data::Table& t, std::int64_t& column, std::vector<char>* keep) {
  std::int64_t first = INT64_MAX;
  const std::int64_t f = t.num_features();
  for (std::int64_t i = 0; i < t.rows; ++i) {
    std::int64_t bad_col = -1;
    if (t.sparse) {
      for (auto k = t.indptr[static_cast<std::size_t>(i)]; k < t.indptr[static_cast<std::size_t>(i + 1)] && bad_col < 0;
           ++k)
        if (!std::isfinite(t.values[static_cast<std::size_t>(k)])) bad_col = t.indices[static_cast<std::size_t>(k)];
    } else {
      const float* x = t.row(i);
      for (std::int64_t j = 0; j < f && bad_col < 0; ++j)
        if (!std::isfinite(x[j])) bad_col = j;
    }
    if (bad_col < 0) continue;
    if (first == INT64_MAX) first = i, column = bad_col;
    if (!keep) break;
    (*keep)[static_cast<std::size_t>(i)] = 0;
  }
  return first;
}

// data.on_invalid on a loaded split: error (one agreed DataError naming the file and the lowest
// row with a NaN or infinite feature, whichever rank holds it) or skip (such rows are dropped and
// rank 0 says how many). Collective.
void apply_on_invalid(comm::Communicator& comm, OnInvalid mode, data::Table& t, const std::string& what) {
  std::int64_t column = -1;
  std::vector<char> keep(static_cast<std::size_t>(t.rows), 1);
  const std::int64_t first = find_non_finite(t, column, mode == OnInvalid::kSkip ? &keep : nullptr);
  if (mode == OnInvalid::kError) {
    const std::int64_t row = first == INT64_MAX ? INT64_MAX : t.row_offset + first;
    std::string message;
    if (row != INT64_MAX) {
      const auto c = static_cast<std::size_t>(column);
      message = what + ": row " + std::to_string(row) + ": feature column " + std::to_string(column) +
                (c < t.feature_names.size() ? " (\"" + t.feature_names[c] + "\")" : std::string()) +
                " is NaN or infinite (data.on_invalid: error; drop or impute such rows, or set data.on_invalid: "
                "skip to leave them out)";
    }
    comm::agree_on_first_bad_row(comm, row, message);
    return;
  }
  const std::int64_t before = t.global_rows;
  if (comm.allreduce<std::int64_t>(first == INT64_MAX ? 0 : 1, comm::ReduceOp::kSum) == 0) return;
  data::keep_rows(t, keep);
  data::finish_table(comm, t, what);
  log::info("note: " + what + ": skipped " + std::to_string(before - t.global_rows) + " of " + std::to_string(before) +
            " rows with a NaN or infinite feature (data.on_invalid: skip)");
  LOCKSTEP_CHECK(t.global_rows > 0, DataError, what,
                 ": every row has a NaN or infinite feature (data.on_invalid: skip)");
}

// What messages call a split: its features file, or "synthetic train"/"synthetic test".
std::string split_what(const io::DataConfig& cfg, Split split) {
  const auto& paths = split == Split::kTrain ? cfg.train : cfg.test;
  const std::string name = split == Split::kTrain ? "train" : "test";
  return cfg.format == "synthetic" || paths.features.empty() ? "synthetic " + name : paths.features;
}

// For a test or prediction read of image_folder: the training classes its labels index, the
// given ones (a checkpoint's) or the config's train folder's (when that folder is there).
void set_training_classes(comm::Communicator& comm, const io::DataConfig& cfg, const ClassNames* given,
                          data::SourceRequest& req) {
  if (cfg.format != "image_folder") return;
  if (given && !given->names.empty()) {
    req.class_names = given->names;
    req.class_names_from = given->from;
    return;
  }
  std::int32_t there = 0;
  if (comm.rank() == 0 && !cfg.train.features.empty()) {
    std::error_code ec;
    there = std::filesystem::is_directory(cfg.train.features, ec) ? 1 : 0;
  }
  comm.broadcast(there, 0);
  if (!there) return;
  req.class_names = data::image_folder_classes(comm, cfg.train.features);
  req.class_names_from = cfg.train.features;
}

}  // namespace

data::Table read_split_table(comm::Communicator& comm, const io::DataConfig& cfg, Split split,
                             const ClassNames* classes) {
  const auto& paths = split == Split::kTrain ? cfg.train : cfg.test;
  OnInvalid mode = OnInvalid::kError;
  comm.collectively([&] { mode = on_invalid(cfg); });
  if (cfg.format != "synthetic") check_files_exist(comm, paths, split == Split::kTrain ? "train" : "test");
  data::SourceRequest req;
  req.split = split == Split::kTrain ? data::SplitKind::kTrain : data::SplitKind::kTest;
  req.features = paths.features;
  req.labels = paths.labels;
  if (split == Split::kTest) set_training_classes(comm, cfg, classes, req);
  const std::string what = split_what(cfg, split);
  data::Table t = data::read_source(comm, source_spec(cfg), req, what);
  apply_on_invalid(comm, mode, t, what);
  return t;
}

Dataset load_split(comm::Communicator& comm, const io::DataConfig& cfg, Split split, const ClassNames* classes) {
  const auto start = std::chrono::steady_clock::now();
  Dataset d = make_dataset(comm, read_split_table(comm, cfg, split, classes), split_what(cfg, split));
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  d.load_seconds = comm.allreduce<double>(s, comm::ReduceOp::kMax);
  return d;
}

Dataset load_file(comm::Communicator& comm, const io::DataConfig& cfg, const std::string& features,
                  const std::string& labels, const ClassNames* classes) {
  data::SourceRequest req;
  req.split = data::SplitKind::kFile;
  req.features = features;
  req.labels = labels;
  set_training_classes(comm, cfg, classes, req);
  return make_dataset(comm, data::read_source(comm, source_spec(cfg), req, features), features);
}

}  // namespace lockstep::train
