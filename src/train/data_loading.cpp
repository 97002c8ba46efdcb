// Config -> data source. The model needs the feature width and the class count; both come from
// the data (the largest label on any rank), not from trust in the config.
#include "lockstep/train/data_loading.hpp"

#include <filesystem>

#include "lockstep/core/log.hpp"
#include "lockstep/data/sources.hpp"

namespace lockstep::train {
namespace {

// data.classes: the rows of those classes, relabelled by their position in the list.
data::Partitioned<data::Example> select_classes(data::Partitioned<data::Example> rows,
                                                const std::vector<std::int64_t>& classes) {
  if (classes.empty()) return rows;
  auto index_of = [classes](float label) -> float {
    for (std::size_t i = 0; i < classes.size(); ++i)
      if (static_cast<float>(classes[i]) == label) return static_cast<float>(i);
    return -1.0f;
  };
  return rows.filter([index_of](const data::Example& e) { return index_of(e.label) >= 0.0f; })
      .map([index_of](data::Example&& e) {
        e.label = index_of(e.label);
        return std::move(e);
      })
      .cache();
}

Dataset finish(comm::Communicator& comm, data::Partitioned<data::Example> rows, std::string description,
               const io::DataConfig& cfg) {
  // The sources return cached partitions; cache() makes that a guarantee (a no-op for them).
  Dataset d{select_classes(std::move(rows), cfg.classes).cache(), 0, 0, 0, std::move(description), {}};
  std::int64_t width = -1;
  double max_label = -1.0;
  const auto& local = local_rows(d);
  for (const auto& e : local) {
    if (width < 0) width = static_cast<std::int64_t>(e.features.size());
    max_label = std::max(max_label, static_cast<double>(e.label));
  }
  const auto n = static_cast<std::int64_t>(local.size());
  d.num_rows = comm.allreduce<std::int64_t>(n, comm::ReduceOp::kSum);
  d.num_features = comm.allreduce<std::int64_t>(width, comm::ReduceOp::kMax);
  d.sample_shape = {d.num_features};
  // Real-valued labels (regression) may be anything; the class count only matters for classifiers.
  const double top = comm.allreduce<double>(max_label, comm::ReduceOp::kMax);
  d.num_classes = top < 1e9 ? static_cast<std::int64_t>(top) + 1 : std::int64_t{1000000000};
  LOCKSTEP_CHECK(d.num_rows > 0 || cfg.classes.empty(), DataError, d.description, ": no rows of data.classes",
                 " (check the labels the file holds)");
  return d;
}

data::Partitioned<data::Example> read(comm::Communicator& comm, const io::DataConfig& cfg, const std::string& features,
                                      const std::string& labels) {
  if (cfg.format == "idx") {
    return data::read_idx(comm, features, labels, data::IdxOptions{static_cast<float>(cfg.scale)});
  }
  if (cfg.format == "csv") {
    data::CsvOptions o;
    o.label_column = cfg.label_column;
    o.feature_columns = cfg.feature_columns;
    return data::read_csv(comm, features, o);
  }
  if (cfg.format == "libsvm") {
    auto d = data::read_libsvm(comm, features, data::LibsvmOptions{cfg.num_features});
    const std::int64_t nf = d.num_features;
    return d.rows.map([nf](data::SparseExample&& s) { return s.to_dense(nf); }).cache();
  }
  if (cfg.format == "hdf5") {
    return data::read_hdf5(comm, features, data::Hdf5Options{cfg.features_dataset, cfg.labels_dataset});
  }
  throw_agreed<ConfigError>("data.format: \"" + cfg.format + "\" has no files to read (evaluate and predict need " +
                            "idx, csv, libsvm or hdf5)");
}

data::Partitioned<data::Example> synthetic(comm::Communicator& comm, const io::DataConfig& cfg, Split split) {
  const auto& s = cfg.synthetic;
  data::SyntheticOptions o;
  o.samples = split == Split::kTrain ? s.samples : s.test_samples;
  o.features = s.features;
  o.classes = s.classes;
  o.seed = s.seed;
  o.noise = static_cast<float>(s.noise);
  // The test split is the rows that follow the training rows in the same stream: same class
  // centres, different samples.
  if (split == Split::kTest) o.first_row = s.samples;
  return data::make_synthetic(comm, o);
}

}  // namespace

Dataset load_split(comm::Communicator& comm, const io::DataConfig& cfg, Split split) {
  const auto& paths = split == Split::kTrain ? cfg.train : cfg.test;
  const char* name = split == Split::kTrain ? "train" : "test";
  if (cfg.format == "synthetic")
    return finish(comm, synthetic(comm, cfg, split), std::string("synthetic ") + name, cfg);
  if (cfg.format == "idx" && cfg.synthetic_fallback) {
    // Existence is checked on every rank and agreed, so all ranks take the same branch; rank 0
    // says so once.
    const bool here = std::filesystem::exists(paths.features) && std::filesystem::exists(paths.labels);
    const bool everywhere = comm.allreduce<std::int32_t>(here ? 1 : 0, comm::ReduceOp::kMin) == 1;
    if (!everywhere) {
      if (split == Split::kTrain) {
        log::info("note: " + paths.features +
                  " not found (on Debian: apt-get install dataset-fashion-mnist); "
                  "data.synthetic_fallback is on, so this run uses the built-in synthetic dataset instead");
      }
      return finish(comm, synthetic(comm, cfg, split), std::string("synthetic ") + name + " (fallback)", cfg);
    }
  }
  if (paths.features.empty())
    throw_agreed<ConfigError>(std::string("data.") + name + ".features: missing (a file path)");
  return finish(comm, read(comm, cfg, paths.features, paths.labels), paths.features, cfg);
}

const std::vector<data::Example>& local_rows(const Dataset& d) {
  const auto* rows = d.rows.cached_local();
  LOCKSTEP_CHECK(rows != nullptr, Error, d.description, ": dataset rows are not cached");
  return *rows;
}

namespace {
// predict writes a prediction for every row it is given: data.classes selects training rows only.
io::DataConfig no_selection(io::DataConfig cfg) {
  cfg.classes.clear();
  return cfg;
}
}  // namespace

Dataset load_file(comm::Communicator& comm, const io::DataConfig& cfg, const std::string& features,
                  const std::string& labels) {
  return finish(comm, read(comm, cfg, features, labels), features, no_selection(cfg));
}

}  // namespace lockstep::train
