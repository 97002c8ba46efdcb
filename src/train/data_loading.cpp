// Config -> Dataset through data/'s source registry. The model needs the feature width and the
// class count; both come from the data (the largest label on any rank), not from trust in the
// config.
#include "lockstep/train/data_loading.hpp"

#include <algorithm>

namespace lockstep::train {

Dataset make_dataset(comm::Communicator& comm, data::Table table, std::string description) {
  Dataset d;
  double max_label = -1.0;
  for (std::int64_t i = 0; i < table.rows; ++i) max_label = std::max(max_label, static_cast<double>(table.label(i)));
  // Real-valued labels (regression) may be anything; the class count only matters for classifiers.
  const double top = comm.allreduce<double>(max_label, comm::ReduceOp::kMax);
  d.num_classes = top < 1e9 ? static_cast<std::int64_t>(top) + 1 : std::int64_t{1000000000};
  d.num_rows = table.global_rows;
  d.num_features = table.num_features();
  d.sample_shape = table.sample_shape;
  d.num_labels = table.num_labels;
  d.description = table.origin.empty() ? std::move(description) : table.origin;
  // The trainer reads dense rows; LIBSVM's CSR is spread out once here.
  data::densify(comm, table, d.description);
  d.table = std::move(table);
  return d;
}

data::SourceSpec source_spec(const io::DataConfig& cfg) {
  return data::SourceSpec{cfg.format, cfg.format_where, cfg.params, cfg.label_columns, cfg.classes};
}

Dataset load_split(comm::Communicator& comm, const io::DataConfig& cfg, Split split) {
  const auto& paths = split == Split::kTrain ? cfg.train : cfg.test;
  const std::string name = split == Split::kTrain ? "train" : "test";
  data::SourceRequest req;
  req.split = split == Split::kTrain ? data::SplitKind::kTrain : data::SplitKind::kTest;
  req.features = paths.features;
  req.labels = paths.labels;
  const std::string what = cfg.format == "synthetic" || paths.features.empty() ? "synthetic " + name : paths.features;
  return make_dataset(comm, data::read_source(comm, source_spec(cfg), req, what), what);
}

Dataset load_file(comm::Communicator& comm, const io::DataConfig& cfg, const std::string& features,
                  const std::string& labels) {
  data::SourceRequest req;
  req.split = data::SplitKind::kFile;
  req.features = features;
  req.labels = labels;
  return make_dataset(comm, data::read_source(comm, source_spec(cfg), req, features), features);
}

}  // namespace lockstep::train
