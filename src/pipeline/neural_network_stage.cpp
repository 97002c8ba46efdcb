// The NeuralNetwork stage (neural_network_stage.hpp) and its registry row. Fitting hands the
// pipeline's rows to train::Trainer as in-memory datasets (the stage's config keeps only the
// network sections; data.format is set to synthetic so the trainer reads no files); the fitted
// stage keeps the config, the flat float32 parameters and the flat buffers (batch norm's running
// statistics), which is also its saved form (format version 1, the layout of lockstep-pipeline-1:
// the config as YAML, the input width, the parameters, and `buffers` when the network has any).
#include "lockstep/pipeline/neural_network_stage.hpp"

#include <Eigen/Core>
#include <filesystem>

#include "detail/hdf5.hpp"
#include "lockstep/ml/registry.hpp"
#include "lockstep/pipeline/stage_network.hpp"
#include "lockstep/train/network_file.hpp"
#include "lockstep/train/trainer.hpp"

namespace lockstep::pipeline {

ml::Predictions predict_with_head(nn::Sequential& model, const nn::Head& head, const ml::Frame& f,
                                  std::int64_t eval_batch) {
  const data::Table rows = f.to_table();
  const std::int64_t k = model.output_features();
  const bool binary = head.task() == nn::Task::kBinary, regression = head.task() == nn::Task::kRegression;
  const std::int64_t classes = binary ? 2 : k;
  ml::Predictions out;
  out.prediction.resize(f.rows());
  if (!regression) {
    out.probability.resize(f.rows(), classes);
    out.raw.resize(f.rows(), classes);
  }
  std::vector<double> scores;
  train::forward_rows(model, rows, eval_batch, [&](std::int64_t b, std::int64_t m, const Tensor& o, const Tensor&) {
    const Tensor h = o.device() == Device::kCpu ? o : o.clone(Device::kCpu);
    for (std::int64_t i = 0; i < m; ++i) {
      const float* z = h.data<float>() + i * k;
      out.prediction[b + i] = head.predict(z, scores);  // the same head as training and `lockstep predict`
      if (regression) continue;
      if (binary) {  // Spark's binary layout: raw (-margin, margin), probability (1 - p, p)
        out.raw.row(b + i) << -static_cast<double>(z[0]), static_cast<double>(z[0]);
        out.probability.row(b + i) << 1.0 - scores[0], scores[0];
        continue;
      }
      for (std::int64_t j = 0; j < k; ++j) {
        out.raw(b + i, j) = z[j];
        out.probability(b + i, j) = scores[static_cast<std::size_t>(j)];
      }
    }
  });
  return out;
}

namespace {

const std::string kName = "NeuralNetwork";

class NeuralNetworkStage final : public ml::Stage, public NetworkStage {
 public:
  NeuralNetworkStage(io::Config cfg, std::int64_t features, std::vector<float> params, std::vector<float> buffers)
      : cfg_(std::move(cfg)),
        features_(features),
        params_(std::move(params)),
        buffers_(std::move(buffers)),
        head_(train::model_head(train::trainer_options(cfg_), *train::build_model(cfg_, Shape{features_}))) {}
  const std::string& type() const override { return kName; }
  // A regression head (mse, mae or huber with one output) is a regressor; the others classify.
  ml::StageTask task() const override {
    return head_.task() == nn::Task::kRegression ? ml::StageTask::kRegression : ml::StageTask::kClassification;
  }
  // Before the last place of a pipeline, the network hands on its raw outputs (a classifier's
  // logits, a regression's values) as the next stage's features: nn_0, nn_1, ...
  bool inner_transform() const override { return true; }
  ml::Frame transform(const ml::Frame& f) const override {
    auto model = built();
    const std::int64_t k = model->output_features();
    ml::RowMatrix out(f.rows(), k);
    train::forward_rows(*model, f.to_table(), cfg_.training.eval_batch,
                        [&](std::int64_t b, std::int64_t m, const Tensor& o, const Tensor&) {
                          const Tensor h = o.device() == Device::kCpu ? o : o.clone(Device::kCpu);
                          std::copy_n(h.data<float>(), m * k, out.data() + b * k);
                        });
    std::vector<std::string> names;
    for (std::int64_t j = 0; j < k; ++j) names.push_back("nn_" + std::to_string(j));
    return f.with_features(std::move(out), std::move(names));
  }
  ml::Predictions predict(const ml::Frame& f) const override {
    return predict_with_head(*built(), head_, f, cfg_.training.eval_batch);
  }
  std::unique_ptr<nn::Sequential> built() const {
    auto model = train::build_model(cfg_, Shape{features_});
    LOCKSTEP_CHECK(static_cast<std::int64_t>(params_.size()) == model->num_params(), Error,
                   "NeuralNetwork: ", params_.size(), " saved parameters for a model of ", model->num_params());
    std::copy(params_.begin(), params_.end(), model->flat_params().data<float>());
    LOCKSTEP_CHECK(static_cast<std::int64_t>(buffers_.size()) == model->num_buffers(), Error, "NeuralNetwork: ",
                   buffers_.size(), " saved buffer values for a model of ", model->num_buffers());
    if (!buffers_.empty()) {
      model->flat_buffers().copy_from(Tensor::borrow(const_cast<float*>(buffers_.data()),
                                                     {static_cast<std::int64_t>(buffers_.size())}));
    }
    return model;
  }
  // Its whole network over flat rows: input [features], outputs what transform() hands on.
  io::NetworkFile network() const override { return train::describe_network(*built(), cfg_.model.layers); }
  void save(detail::H5File& h, const std::string& g) const override {
    h.set_attr(g, "config", io::to_yaml(cfg_));
    h.set_attr(g, "inputFeatures", features_);
    h.write<float>(g + "/params", params_.data(), {static_cast<std::int64_t>(params_.size())});
    if (!buffers_.empty()) h.write<float>(g + "/buffers", buffers_.data(), {static_cast<std::int64_t>(buffers_.size())});
  }
  // The parameters must be the configured network's, counted before it is built: inputFeatures is
  // at most the parameter count (the first dense layer has inputFeatures x units weights).
  static std::shared_ptr<const ml::Stage> load(const detail::H5File& h, const std::string& g) {
    io::Config cfg = io::parse_config(h.attr_string(g, "config"), h.path() + ":" + g);
    std::vector<float> params = h.read<float>(g + "/params");
    const std::int64_t features = h.attr_int(g, "inputFeatures");
    const auto n = static_cast<std::int64_t>(params.size());
    LOCKSTEP_CHECK(features >= 1 && features <= std::max<std::int64_t>(n, 1), IoError, h.path(), ":", g,
                   ": attribute inputFeatures: expected an integer in [1, ", std::max<std::int64_t>(n, 1),
                   "] (at most the parameter count), found ", features);
    const auto model = train::build_model(cfg, Shape{features});
    const std::int64_t want = model->num_params();
    LOCKSTEP_CHECK(n == want, IoError, h.path(), ":", g, "/params: has ", n, " values, expected ", want,
                   " (the parameters of the network its config describes)");
    // Buffers (batch norm's running statistics): absent in models of networks without any.
    std::vector<float> buffers;
    if (h.exists(g + "/buffers")) buffers = h.read<float>(g + "/buffers");
    const auto nb = static_cast<std::int64_t>(buffers.size());
    LOCKSTEP_CHECK(nb == model->num_buffers(), IoError, h.path(), ":", g, "/buffers: has ", nb,
                   " values, expected ", model->num_buffers(),
                   " (the running statistics of the network its config describes", nb == 0 ? "; the dataset is missing" : "",
                   ")");
    return std::make_shared<NeuralNetworkStage>(cfg, features, std::move(params), std::move(buffers));
  }

 private:
  io::Config cfg_;
  std::int64_t features_;
  std::vector<float> params_;
  std::vector<float> buffers_;  // the model's flat buffers (empty when it has none)
  nn::Head head_;
};

// The class count matters (and the labels must be class indices) only for a classifier head.
train::Dataset as_dataset(const ml::Frame& f, const std::string& what, bool classes) {
  train::Dataset d = train::make_dataset(f.comm(), f.to_table(), what);
  d.num_classes = classes ? ml::num_classes(f) : 1;
  return d;
}

std::shared_ptr<const ml::Stage> fit_neural_network(const ml::StageFitArgs& a) {
  LOCKSTEP_CHECK(a.config.nn != nullptr, ConfigError, a.config.where,
                 ": expected the network's model, optimizer, schedule and training sections");
  io::Config cfg = *a.config.nn;
  cfg.output.dir = (std::filesystem::path(a.context.output_dir) / "nn").string();
  cfg.output.progress = a.context.progress;
  cfg.data.format = "synthetic";  // the trainer gets its rows from the pipeline, not from files
  const ml::Frame* val = a.validation;
  const auto options = train::trainer_options(cfg);
  const bool classes = train::model_head(options, *train::build_model(options, Shape{a.train.num_features()})).task() ==
                       nn::Task::kClassification;
  train::Trainer trainer(
      a.train.comm(), options, as_dataset(a.train, "pipeline features (train)", classes),
      as_dataset(val ? *val : a.train, val ? "pipeline features (test)" : "pipeline features (train)", classes));
  trainer.run();
  const auto host = [](const Tensor& t) {
    const Tensor h = t.clone(Device::kCpu);
    return std::vector<float>(h.data<float>(), h.data<float>() + h.numel());
  };
  std::vector<float> buffers;
  if (trainer.model().num_buffers() > 0) buffers = host(trainer.model().flat_buffers());
  return std::make_shared<NeuralNetworkStage>(cfg, a.train.num_features(), host(trainer.model().flat_params()),
                                              std::move(buffers));
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
