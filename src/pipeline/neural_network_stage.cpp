// The NeuralNetwork stage (neural_network_stage.hpp) and its registry row. Fitting hands the
// pipeline's rows to train::Trainer as in-memory datasets (the stage's config keeps only the
// network sections; data.format is set to synthetic so the trainer reads no files); the fitted
// stage keeps the config and the flat float32 parameters, which is also its saved form (format
// version 1, the layout of lockstep-pipeline-1: the config as YAML, the input width, the parameters).
#include "lockstep/pipeline/neural_network_stage.hpp"

#include <Eigen/Core>
#include <filesystem>

#include "detail/hdf5.hpp"
#include "lockstep/ml/registry.hpp"
#include "lockstep/train/trainer.hpp"

namespace lockstep::pipeline {

ml::Predictions predict_classes(nn::Sequential& model, const ml::Frame& f, std::int64_t eval_batch) {
  const auto rows = f.to_examples();
  const std::int64_t k = model.output_features();
  ml::Predictions out;
  out.prediction.resize(f.rows());
  out.probability.resize(f.rows(), k);
  out.raw.resize(f.rows(), k);
  train::forward_rows(model, rows, eval_batch, [&](std::int64_t b, std::int64_t m, const Tensor& o, const Tensor&) {
    const Tensor h = o.device() == Device::kCpu ? o : o.clone(Device::kCpu);
    for (std::int64_t i = 0; i < m; ++i) {
      const float* z = h.data<float>() + i * k;
      Eigen::RowVectorXd r(k);
      for (std::int64_t j = 0; j < k; ++j) r[j] = z[j];
      Eigen::Index arg = 0;
      const double mx = r.maxCoeff(&arg);  // subtracted before exp, so no output overflows
      out.raw.row(b + i) = r;
      const Eigen::RowVectorXd e = (r.array() - mx).exp();
      out.probability.row(b + i) = e / e.sum();
      out.prediction[b + i] = static_cast<double>(arg);
    }
  });
  return out;
}

namespace {

const std::string kName = "NeuralNetwork";

class NeuralNetworkStage final : public ml::Stage {
 public:
  NeuralNetworkStage(io::Config cfg, std::int64_t features, std::vector<float> params)
      : cfg_(std::move(cfg)), features_(features), params_(std::move(params)) {}
  const std::string& type() const override { return kName; }
  ml::StageTask task() const override { return ml::StageTask::kClassification; }
  ml::Predictions predict(const ml::Frame& f) const override {
    auto model = train::build_model(cfg_, features_);
    LOCKSTEP_CHECK(static_cast<std::int64_t>(params_.size()) == model->num_params(), Error,
                   "NeuralNetwork: ", params_.size(), " saved parameters for a model of ", model->num_params());
    std::copy(params_.begin(), params_.end(), model->flat_params().data<float>());
    return predict_classes(*model, f, cfg_.training.eval_batch);
  }
  void save(detail::H5File& h, const std::string& g) const override {
    h.set_attr(g, "config", io::to_yaml(cfg_));
    h.set_attr(g, "inputFeatures", features_);
    h.write<float>(g + "/params", params_.data(), {static_cast<std::int64_t>(params_.size())});
  }
  static std::shared_ptr<const ml::Stage> load(const detail::H5File& h, const std::string& g) {
    io::Config cfg = io::parse_config(h.attr_string(g, "config"), h.path() + ":" + g);
    return std::make_shared<NeuralNetworkStage>(cfg, h.attr_int(g, "inputFeatures"), h.read<float>(g + "/params"));
  }

 private:
  io::Config cfg_;
  std::int64_t features_;
  std::vector<float> params_;
};

train::Dataset as_dataset(const ml::Frame& f, const std::string& what) {
  return train::Dataset{data::Partitioned<data::Example>::from_local(f.comm(), f.to_examples()).cache(),
                        f.global_rows(), f.num_features(), ml::num_classes(f), what};
}

std::shared_ptr<const ml::Stage> fit_neural_network(const ml::StageFitArgs& a) {
  LOCKSTEP_CHECK(a.config.nn != nullptr, ConfigError, a.config.where,
                 ": expected the network's model, optimizer, schedule and training sections");
  io::Config cfg = *a.config.nn;
  cfg.output.dir = (std::filesystem::path(a.context.output_dir) / "nn").string();
  cfg.output.progress = a.context.progress;
  cfg.data.format = "synthetic";  // the trainer gets its rows from the pipeline, not from files
  const ml::Frame* val = a.validation;
  train::Trainer trainer(a.train.comm(), cfg, as_dataset(a.train, "pipeline features (train)"),
                         as_dataset(val ? *val : a.train, val ? "pipeline features (test)" : "pipeline features (train)"));
  trainer.run();
  const Tensor params = trainer.model().flat_params().clone(Device::kCpu);
  return std::make_shared<NeuralNetworkStage>(
      cfg, a.train.num_features(), std::vector<float>(params.data<float>(), params.data<float>() + params.numel()));
}

ml::StageKind neural_network_row() {
  ml::StageKind k;
  k.name = kName;
  k.task = ml::StageTask::kClassification;
  k.tunable = false;  // its parameters are config sections, not Spark-style scalars a grid could set
  k.fit = fit_neural_network;
  k.load = NeuralNetworkStage::load;
  return k;
}

const ml::StageRegistrar kNeuralNetwork{neural_network_row()};

}  // namespace
}  // namespace lockstep::pipeline
