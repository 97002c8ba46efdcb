// Pipelines: stage parameters from YAML, fitting, HDF5 persistence, evaluation and tuning.
#include "lockstep/ml/pipeline.hpp"

#include <chrono>
#include <cmath>
#include <filesystem>
#include <functional>
#include <set>
#include <sstream>

#include "detail/hdf5.hpp"
#include "lockstep/backend/ops.hpp"
#include "lockstep/core/log.hpp"
#include "lockstep/core/rng.hpp"
#include "lockstep/io/checkpoint.hpp"
#include "lockstep/ml/clustering.hpp"
#include "lockstep/ml/evaluation.hpp"
#include "lockstep/ml/feature.hpp"
#include "lockstep/ml/naive_bayes.hpp"
#include "lockstep/ml/tree.hpp"
#include "lockstep/train/trainer.hpp"

namespace lockstep::ml {

using detail::H5File;

// ---------------------------------------------------------------- parameters

namespace {

// Reads a stage's parameters by Spark name; unknown names are an error listing the known ones.
class Params {
 public:
  explicit Params(const io::StageConfig& st) : st_(st) {}
  const io::StageParam* find(const std::string& k) {
    known_.insert(k);
    auto it = st_.params.find(k);
    return it == st_.params.end() ? nullptr : &it->second;
  }
  [[noreturn]] void bad(const io::StageParam& p, const std::string& expected) const {
    std::string got = p.is_list ? "a list" : "\"" + p.values[0] + "\"";
    throw ConfigError(p.where + ": expected " + expected + ", got " + got);
  }
  template <typename T>
  void get(const std::string& k, T& out) {
    const io::StageParam* p = find(k);
    if (!p) return;
    if (p->is_list) bad(*p, word<T>());
    out = parse<T>(*p, p->values[0]);
  }
  template <typename T>
  void get_list(const std::string& k, std::vector<T>& out) {
    const io::StageParam* p = find(k);
    if (!p) return;
    out.clear();
    for (const auto& v : p->values) out.push_back(parse<T>(*p, v));
  }
  void finish() const {
    for (const auto& [k, p] : st_.params) {
      if (known_.count(k)) continue;
      std::string list;
      for (const auto& a : known_) list += (list.empty() ? "" : ", ") + a;
      throw ConfigError(p.where + ": unknown parameter of " + st_.type + " (known: " + (list.empty() ? "none" : list) +
                        ")");
    }
  }

 private:
  template <typename T>
  static const char* word() {
    if constexpr (std::is_same_v<T, bool>)
      return "true or false";
    else if constexpr (std::is_integral_v<T>)
      return "an integer";
    else if constexpr (std::is_floating_point_v<T>)
      return "a number";
    else
      return "a string";
  }
  template <typename T>
  T parse(const io::StageParam& p, const std::string& v) const {
    if constexpr (std::is_same_v<T, std::string>) {
      return v;
    } else if constexpr (std::is_same_v<T, bool>) {
      if (v == "true" || v == "True") return true;
      if (v == "false" || v == "False") return false;
      bad(p, word<T>());
    } else {
      char* end = nullptr;
      const double d = std::strtod(v.c_str(), &end);
      if (v.empty() || *end != '\0' || !std::isfinite(d)) bad(p, word<T>());
      if constexpr (std::is_integral_v<T>) {
        if (d != std::floor(d)) bad(p, word<T>());
      }
      return static_cast<T>(d);
    }
  }
  const io::StageConfig& st_;
  std::set<std::string> known_;
};

// Spark's parameter errors (maxIter: ...) are raised by the estimators; prefix the stage's place.
template <typename F>
auto with_where(const io::StageConfig& st, F&& f) {
  try {
    return f();
  } catch (const ConfigError& e) {
    throw ConfigError(st.where + ": " + e.what());
  }
}

void tree_params(Params& p, TreeParams& t) {
  p.get("maxDepth", t.max_depth);
  p.get("maxBins", t.max_bins);
  p.get("minInstancesPerNode", t.min_instances_per_node);
  p.get("minInfoGain", t.min_info_gain);
  p.get("impurity", t.impurity);
  p.get("seed", t.seed);
  p.get("maxMemoryInMB", t.max_memory_mb);
}

// The parameters the three linear estimators share (elasticNetParam where the estimator has it).
template <typename P>
void linear_params(Params& p, P& q) {
  p.get("maxIter", q.max_iter);
  p.get("regParam", q.reg_param);
  if constexpr (requires { q.elastic_net_param; }) p.get("elasticNetParam", q.elastic_net_param);
  p.get("tol", q.tol);
  p.get("fitIntercept", q.fit_intercept);
  p.get("standardization", q.standardization);
}

// HDF5 helpers for Eigen data (row-major double datasets).
void put(H5File& h, const std::string& path, const Mat& m) {
  const Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor> r = m;
  h.write<double>(path, r.data(), {r.rows(), r.cols()});
}
void put(H5File& h, const std::string& path, const Vec& v) {
  h.write<double>(path, v.data(), {v.size()});
}
Mat get_mat(const H5File& h, const std::string& path) {
  const auto shape = h.shape(path);
  const auto data = h.read<double>(path);
  Mat m(shape.at(0), shape.size() > 1 ? shape[1] : 1);
  for (Eigen::Index i = 0; i < m.rows(); ++i)
    for (Eigen::Index j = 0; j < m.cols(); ++j) m(i, j) = data[static_cast<std::size_t>(i * m.cols() + j)];
  return m;
}
Vec get_vec(const H5File& h, const std::string& path) {
  const auto data = h.read<double>(path);
  return Eigen::Map<const Vec>(data.data(), static_cast<Eigen::Index>(data.size()));
}
std::string join(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += (s.empty() ? "" : "\n") + x;
  return s;
}
std::vector<std::string> split_lines(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  for (std::string l; std::getline(ss, l);) out.push_back(l);
  return out;
}

}  // namespace

// ---------------------------------------------------------------- stages

class Stage {
 public:
  virtual ~Stage() = default;
  virtual std::string type() const = 0;
  virtual bool is_predictor() const { return false; }
  virtual std::string task() const { return ""; }
  virtual Frame transform(const Frame& f) const { return f; }
  virtual Predictions predict(const Frame&) const { throw Error(type() + " does not predict"); }
  virtual Vec importances() const { return {}; }
  virtual void save(H5File& h, const std::string& g) const = 0;
};

namespace {

template <typename M>
class TransformerStage final : public Stage {
 public:
  TransformerStage(std::string type, M m) : type_(std::move(type)), m_(std::move(m)) {}
  std::string type() const override { return type_; }
  Frame transform(const Frame& f) const override { return m_.transform(f); }
  void save(H5File& h, const std::string& g) const override;
  static std::shared_ptr<Stage> load(const std::string& type, const H5File& h, const std::string& g);
  const M& model() const { return m_; }

 private:
  std::string type_;
  M m_;
};

template <>
void TransformerStage<StandardScalerModel>::save(H5File& h, const std::string& g) const {
  put(h, g + "/mean", m_.mean);
  put(h, g + "/std", m_.std);
  h.set_attr(g, "withMean", static_cast<std::int64_t>(m_.with_mean));
  h.set_attr(g, "withStd", static_cast<std::int64_t>(m_.with_std));
}
template <>
void TransformerStage<MinMaxScalerModel>::save(H5File& h, const std::string& g) const {
  put(h, g + "/originalMin", m_.original_min);
  put(h, g + "/originalMax", m_.original_max);
  h.set_attr(g, "min", m_.min);
  h.set_attr(g, "max", m_.max);
}
template <>
void TransformerStage<MaxAbsScalerModel>::save(H5File& h, const std::string& g) const {
  put(h, g + "/maxAbs", m_.max_abs);
}
template <>
void TransformerStage<Normalizer>::save(H5File& h, const std::string& g) const {
  h.set_attr(g, "p", m_.p);
}
template <>
void TransformerStage<OneHotEncoderModel>::save(H5File& h, const std::string& g) const {
  h.set_attr(g, "inputCols", join(m_.input_cols));
  h.set_attr(g, "dropLast", static_cast<std::int64_t>(m_.drop_last));
  h.write<std::int64_t>(g + "/categories", m_.categories.data(), {static_cast<std::int64_t>(m_.categories.size())});
}
template <>
void TransformerStage<StringIndexerModel>::save(H5File& h, const std::string& g) const {
  h.set_attr(g, "inputCols", join(m_.input_cols));
  h.set_attr(g, "outputCols", join(m_.output_cols));
  h.set_attr(g, "handleInvalid", m_.handle_invalid);
  for (std::size_t c = 0; c < m_.labels.size(); ++c) {
    h.set_attr(g, "labels" + std::to_string(c), join(m_.labels[c]));
    h.set_attr(g, "numLabels" + std::to_string(c), static_cast<std::int64_t>(m_.labels[c].size()));
  }
}
template <>
void TransformerStage<PcaModel>::save(H5File& h, const std::string& g) const {
  put(h, g + "/components", m_.components);
  put(h, g + "/explainedVariance", m_.explained_variance);
  put(h, g + "/explainedVarianceRatio", m_.explained_variance_ratio);
  put(h, g + "/mean", m_.mean);
}
template <>
void TransformerStage<ImportanceSelectorModel>::save(H5File& h, const std::string& g) const {
  h.write<std::int64_t>(g + "/columns", m_.columns.data(), {static_cast<std::int64_t>(m_.columns.size())});
}

std::shared_ptr<Stage> load_transformer(const std::string& type, const H5File& h, const std::string& g) {
  if (type == "StandardScaler") {
    StandardScalerModel m{get_vec(h, g + "/mean"), get_vec(h, g + "/std"), h.attr_int(g, "withMean") != 0,
                          h.attr_int(g, "withStd") != 0};
    return std::make_shared<TransformerStage<StandardScalerModel>>(type, m);
  }
  if (type == "MinMaxScaler") {
    MinMaxScalerModel m{get_vec(h, g + "/originalMin"), get_vec(h, g + "/originalMax"), h.attr_double(g, "min"),
                        h.attr_double(g, "max")};
    return std::make_shared<TransformerStage<MinMaxScalerModel>>(type, m);
  }
  if (type == "MaxAbsScaler")
    return std::make_shared<TransformerStage<MaxAbsScalerModel>>(type, MaxAbsScalerModel{get_vec(h, g + "/maxAbs")});
  if (type == "Normalizer")
    return std::make_shared<TransformerStage<Normalizer>>(type, Normalizer{h.attr_double(g, "p")});
  if (type == "OneHotEncoder") {
    OneHotEncoderModel m{split_lines(h.attr_string(g, "inputCols")), h.read<std::int64_t>(g + "/categories"),
                         h.attr_int(g, "dropLast") != 0};
    return std::make_shared<TransformerStage<OneHotEncoderModel>>(type, m);
  }
  if (type == "StringIndexer") {
    StringIndexerModel m{split_lines(h.attr_string(g, "inputCols")),
                         split_lines(h.attr_string(g, "outputCols")),
                         {},
                         h.attr_string(g, "handleInvalid")};
    for (std::size_t c = 0; c < m.input_cols.size(); ++c) {
      auto labels = split_lines(h.attr_string(g, "labels" + std::to_string(c)));
      labels.resize(static_cast<std::size_t>(h.attr_int(g, "numLabels" + std::to_string(c))));  // an empty label
      m.labels.push_back(std::move(labels));
    }
    return std::make_shared<TransformerStage<StringIndexerModel>>(type, m);
  }
  if (type == "PCA") {
    PcaModel m{get_mat(h, g + "/components"), get_vec(h, g + "/explainedVariance"),
               get_vec(h, g + "/explainedVarianceRatio"), get_vec(h, g + "/mean")};
    return std::make_shared<TransformerStage<PcaModel>>(type, m);
  }
  if (type == "FeatureSelector")
    return std::make_shared<TransformerStage<ImportanceSelectorModel>>(
        type, ImportanceSelectorModel{h.read<std::int64_t>(g + "/columns")});
  return nullptr;
}

// Linear models, trees, KMeans, naive Bayes.
template <typename M>
class PredictorStage final : public Stage {
 public:
  PredictorStage(std::string type, std::string task, M m)
      : type_(std::move(type)), task_(std::move(task)), m_(std::move(m)) {}
  std::string type() const override { return type_; }
  bool is_predictor() const override { return true; }
  std::string task() const override { return task_; }
  Predictions predict(const Frame& f) const override { return m_.predict(f); }
  Vec importances() const override {
    if constexpr (std::is_same_v<M, TreeEnsembleModel>) return m_.feature_importances;
    return {};
  }
  void save(H5File& h, const std::string& g) const override;
  const M& model() const { return m_; }

 private:
  std::string type_, task_;
  M m_;
};

void save_linear(H5File& h, const std::string& g, const LinearModel& m) {
  put(h, g + "/coefficients", m.coefficients);
  put(h, g + "/intercept", m.intercept);
  h.set_attr(g, "iterations", static_cast<std::int64_t>(m.iterations));
}
void load_linear(const H5File& h, const std::string& g, LinearModel& m) {
  m.coefficients = get_mat(h, g + "/coefficients");
  m.intercept = get_vec(h, g + "/intercept");
  m.iterations = static_cast<int>(h.attr_int(g, "iterations"));
}
template <>
void PredictorStage<LinearRegressionModel>::save(H5File& h, const std::string& g) const {
  save_linear(h, g, m_);
}
template <>
void PredictorStage<LogisticRegressionModel>::save(H5File& h, const std::string& g) const {
  save_linear(h, g, m_);
  h.set_attr(g, "numClasses", m_.num_classes);
  h.set_attr(g, "binomial", static_cast<std::int64_t>(m_.binomial));
  h.set_attr(g, "threshold", m_.threshold);
  if (!m_.thresholds.empty())
    h.write<double>(g + "/thresholds", m_.thresholds.data(), {static_cast<std::int64_t>(m_.thresholds.size())});
}
template <>
void PredictorStage<LinearSvcModel>::save(H5File& h, const std::string& g) const {
  save_linear(h, g, m_);
  h.set_attr(g, "numClasses", m_.num_classes);
  h.set_attr(g, "threshold", m_.threshold);
}
template <>
void PredictorStage<KMeansModel>::save(H5File& h, const std::string& g) const {
  put(h, g + "/centers", m_.centers);
  h.set_attr(g, "trainingCost", m_.training_cost);
}
template <>
void PredictorStage<NaiveBayesModel>::save(H5File& h, const std::string& g) const {
  h.set_attr(g, "modelType", m_.model_type);
  put(h, g + "/pi", m_.pi);
  put(h, g + "/theta", m_.theta);
  if (m_.sigma.size()) put(h, g + "/sigma", m_.sigma);
}
template <>
void PredictorStage<TreeEnsembleModel>::save(H5File& h, const std::string& g) const {
  h.set_attr(g, "classification", static_cast<std::int64_t>(m_.classification));
  h.set_attr(g, "numClasses", m_.num_classes);
  h.set_attr(g, "numFeatures", m_.num_features);
  h.set_attr(g, "boosted", static_cast<std::int64_t>(m_.boosted));
  h.write<double>(g + "/treeWeights", m_.tree_weights.data(), {static_cast<std::int64_t>(m_.tree_weights.size())});
  put(h, g + "/featureImportances", m_.feature_importances);
  // Every node of every tree, one row each: feature, left, right (int64); threshold, prediction,
  // impurity, gain, weight (double); class frequencies (double, numClasses columns).
  std::vector<std::int64_t> ints, offsets{0};
  std::vector<double> reals, probs;
  const std::int64_t K = m_.classification && !m_.boosted ? m_.num_classes : 0;
  for (const auto& t : m_.trees) {
    for (const auto& n : t.nodes) {
      ints.insert(ints.end(), {n.feature, n.left, n.right});
      reals.insert(reals.end(), {n.threshold, n.prediction, n.impurity, n.gain, n.weight});
      for (std::int64_t k = 0; k < K; ++k)
        probs.push_back(static_cast<std::size_t>(k) < n.class_probs.size() ? n.class_probs[static_cast<std::size_t>(k)]
                                                                           : 0.0);
    }
    offsets.push_back(offsets.back() + static_cast<std::int64_t>(t.nodes.size()));
  }
  const std::int64_t nodes = offsets.back();
  h.write<std::int64_t>(g + "/treeOffsets", offsets.data(), {static_cast<std::int64_t>(offsets.size())});
  h.write<std::int64_t>(g + "/nodeInts", ints.data(), {nodes, 3});
  h.write<double>(g + "/nodeReals", reals.data(), {nodes, 5});
  if (K > 0) h.write<double>(g + "/nodeClassProbs", probs.data(), {nodes, K});
}

std::shared_ptr<Stage> load_predictor(const std::string& type, const H5File& h, const std::string& g) {
  if (type == "LinearRegression") {
    LinearRegressionModel m;
    load_linear(h, g, m);
    return std::make_shared<PredictorStage<LinearRegressionModel>>(type, "regression", m);
  }
  if (type == "LogisticRegression") {
    LogisticRegressionModel m;
    load_linear(h, g, m);
    m.num_classes = h.attr_int(g, "numClasses");
    m.binomial = h.attr_int(g, "binomial") != 0;
    m.threshold = h.attr_double(g, "threshold");
    if (h.exists(g + "/thresholds")) m.thresholds = h.read<double>(g + "/thresholds");
    return std::make_shared<PredictorStage<LogisticRegressionModel>>(type, "classification", m);
  }
  if (type == "LinearSVC") {
    LinearSvcModel m;
    load_linear(h, g, m);
    m.num_classes = h.attr_int(g, "numClasses");
    m.threshold = h.attr_double(g, "threshold");
    return std::make_shared<PredictorStage<LinearSvcModel>>(type, "classification", m);
  }
  if (type == "KMeans") {
    KMeansModel m;
    m.centers = get_mat(h, g + "/centers");
    m.training_cost = h.attr_double(g, "trainingCost");
    return std::make_shared<PredictorStage<KMeansModel>>(type, "clustering", m);
  }
  if (type == "NaiveBayes") {
    NaiveBayesModel m;
    m.model_type = h.attr_string(g, "modelType");
    m.pi = get_vec(h, g + "/pi");
    m.theta = get_mat(h, g + "/theta");
    if (h.exists(g + "/sigma")) m.sigma = get_mat(h, g + "/sigma");
    return std::make_shared<PredictorStage<NaiveBayesModel>>(type, "classification", m);
  }
  if (type.find("Tree") != std::string::npos || type.find("Forest") != std::string::npos || type.rfind("GBT", 0) == 0) {
    TreeEnsembleModel m;
    m.classification = h.attr_int(g, "classification") != 0;
    m.num_classes = h.attr_int(g, "numClasses");
    m.num_features = h.attr_int(g, "numFeatures");
    m.boosted = h.attr_int(g, "boosted") != 0;
    m.tree_weights = h.read<double>(g + "/treeWeights");
    m.feature_importances = get_vec(h, g + "/featureImportances");
    const auto offsets = h.read<std::int64_t>(g + "/treeOffsets");
    const auto ints = h.read<std::int64_t>(g + "/nodeInts");
    const auto reals = h.read<double>(g + "/nodeReals");
    const std::int64_t K = m.classification && !m.boosted ? m.num_classes : 0;
    const auto probs = K > 0 ? h.read<double>(g + "/nodeClassProbs") : std::vector<double>();
    for (std::size_t t = 0; t + 1 < offsets.size(); ++t) {
      Tree tree;
      for (std::int64_t i = offsets[t]; i < offsets[t + 1]; ++i) {
        const auto u = static_cast<std::size_t>(i);
        TreeNode n;
        n.feature = static_cast<std::int32_t>(ints[3 * u]);
        n.left = static_cast<std::int32_t>(ints[3 * u + 1]);
        n.right = static_cast<std::int32_t>(ints[3 * u + 2]);
        n.threshold = reals[5 * u], n.prediction = reals[5 * u + 1], n.impurity = reals[5 * u + 2];
        n.gain = reals[5 * u + 3], n.weight = reals[5 * u + 4];
        for (std::int64_t k = 0; k < K; ++k)
          n.class_probs.push_back(probs[u * static_cast<std::size_t>(K) + static_cast<std::size_t>(k)]);
        tree.nodes.push_back(std::move(n));
      }
      m.trees.push_back(std::move(tree));
    }
    return std::make_shared<PredictorStage<TreeEnsembleModel>>(type, m.classification ? "classification" : "regression",
                                                               m);
  }
  return nullptr;
}

// A multilayer perceptron trained by the data-parallel trainer on the pipeline's features.
class NeuralNetworkStage final : public Stage {
 public:
  NeuralNetworkStage(io::Config cfg, std::int64_t features, std::vector<float> params)
      : cfg_(std::move(cfg)), features_(features), params_(std::move(params)) {}
  std::string type() const override { return "NeuralNetwork"; }
  bool is_predictor() const override { return true; }
  std::string task() const override { return "classification"; }
  Predictions predict(const Frame& f) const override {
    auto model = train::build_model(cfg_, features_);
    LOCKSTEP_CHECK(static_cast<std::int64_t>(params_.size()) == model->num_params(), Error,
                   "NeuralNetwork: ", params_.size(), " saved parameters for a model of ", model->num_params());
    std::copy(params_.begin(), params_.end(), model->flat_params().data<float>());
    const auto rows = f.to_examples();
    const std::int64_t k = model->output_features();
    Predictions out;
    out.prediction.resize(f.rows());
    out.probability.resize(f.rows(), k);
    out.raw.resize(f.rows(), k);
    train::forward_rows(*model, rows, cfg_.training.eval_batch,
                        [&](std::int64_t b, std::int64_t m, const Tensor& o, const Tensor&) {
                          const Tensor h = o.device() == Device::kCpu ? o : o.clone(Device::kCpu);
                          for (std::int64_t i = 0; i < m; ++i) {
                            const float* z = h.data<float>() + i * k;
                            Eigen::RowVectorXd r(k);
                            for (std::int64_t j = 0; j < k; ++j) r[j] = z[j];
                            Eigen::Index arg = 0;
                            const double mx = r.maxCoeff(&arg);
                            out.raw.row(b + i) = r;
                            const Eigen::RowVectorXd e = (r.array() - mx).exp();
                            out.probability.row(b + i) = e / e.sum();
                            out.prediction[b + i] = static_cast<double>(arg);
                          }
                        });
    return out;
  }
  void save(H5File& h, const std::string& g) const override {
    h.set_attr(g, "config", io::to_yaml(cfg_));
    h.set_attr(g, "inputFeatures", features_);
    h.write<float>(g + "/params", params_.data(), {static_cast<std::int64_t>(params_.size())});
  }
  static std::shared_ptr<Stage> load(const H5File& h, const std::string& g) {
    io::Config cfg = io::parse_config(h.attr_string(g, "config"), h.path() + ":" + g);
    return std::make_shared<NeuralNetworkStage>(cfg, h.attr_int(g, "inputFeatures"), h.read<float>(g + "/params"));
  }

 private:
  io::Config cfg_;
  std::int64_t features_;
  std::vector<float> params_;
};

train::Dataset as_dataset(const Frame& f, const std::string& what) {
  return train::Dataset{data::Partitioned<data::Example>::from_local(f.comm(), f.to_examples()).cache(),
                        f.global_rows(), f.num_features(), num_classes(f), what};
}

std::shared_ptr<Stage> fit_stage(const io::StageConfig& st, const Frame& f, const Frame* val, const FitContext& ctx) {
  const std::string& t = st.type;
  Params p(st);
  auto done = [&](auto stage) {
    p.finish();
    return std::shared_ptr<Stage>(std::move(stage));
  };
  if (t == "StandardScaler") {
    StandardScalerParams q;
    p.get("withMean", q.with_mean);
    p.get("withStd", q.with_std);
    p.finish();
    return std::make_shared<TransformerStage<StandardScalerModel>>(t, fit_standard_scaler(f, q));
  }
  if (t == "MinMaxScaler") {
    MinMaxScalerParams q;
    p.get("min", q.min);
    p.get("max", q.max);
    p.finish();
    return std::make_shared<TransformerStage<MinMaxScalerModel>>(
        t, with_where(st, [&] { return fit_min_max_scaler(f, q); }));
  }
  if (t == "MaxAbsScaler") {
    p.finish();
    return std::make_shared<TransformerStage<MaxAbsScalerModel>>(t, fit_max_abs_scaler(f));
  }
  if (t == "Normalizer") {
    Normalizer n;
    p.get("p", n.p);
    p.finish();
    LOCKSTEP_CHECK(n.p >= 1, ConfigError, st.where, ".p: expected a number >= 1, got ", n.p);
    return std::make_shared<TransformerStage<Normalizer>>(t, n);
  }
  if (t == "OneHotEncoder") {
    OneHotEncoderParams q;
    p.get_list("inputCols", q.input_cols);
    p.get("dropLast", q.drop_last);
    p.finish();
    return std::make_shared<TransformerStage<OneHotEncoderModel>>(
        t, with_where(st, [&] { return fit_one_hot_encoder(f, q); }));
  }
  if (t == "StringIndexer") {
    StringIndexerParams q;
    std::string in, out;
    p.get("inputCol", in);
    p.get("outputCol", out);
    p.get_list("inputCols", q.input_cols);
    p.get_list("outputCols", q.output_cols);
    p.get("stringOrderType", q.string_order_type);
    p.get("handleInvalid", q.handle_invalid);
    p.finish();
    if (!in.empty()) q.input_cols.push_back(in);
    if (!out.empty()) q.output_cols.push_back(out);
    return std::make_shared<TransformerStage<StringIndexerModel>>(
        t, with_where(st, [&] { return fit_string_indexer(f, q); }));
  }
  if (t == "PCA") {
    PcaParams q;
    p.get("k", q.k);
    p.finish();
    return std::make_shared<TransformerStage<PcaModel>>(t, with_where(st, [&] { return fit_pca(f, q); }));
  }
  if (t == "FeatureSelector") {
    std::int64_t k = 0;
    p.get("numFeatures", k);
    p.finish();
    if (st.inner.size() != 1)
      throw ConfigError(st.where + ": expected one estimator (estimator: {RandomForestClassifier: {...}})");
    LOCKSTEP_CHECK(k >= 1, ConfigError, st.where, ".numFeatures: expected an integer >= 1");
    const auto est = fit_stage(st.inner[0], f, nullptr, ctx);
    const Vec imp = est->importances();
    if (imp.size() == 0)
      throw ConfigError(st.inner[0].where + ": FeatureSelector needs a tree estimator (feature importances)");
    return std::make_shared<TransformerStage<ImportanceSelectorModel>>(
        t, with_where(st, [&] { return select_by_importance(imp, k); }));
  }
  if (t == "LinearRegression") {
    LinearRegressionParams q;
    linear_params(p, q);
    p.get("solver", q.solver);
    p.finish();
    return done(std::make_shared<PredictorStage<LinearRegressionModel>>(
        t, "regression", with_where(st, [&] { return fit_linear_regression(f, q); })));
  }
  if (t == "LogisticRegression") {
    LogisticRegressionParams q;
    linear_params(p, q);
    p.get("family", q.family);
    p.get("threshold", q.threshold);
    p.get_list("thresholds", q.thresholds);
    p.finish();
    return done(std::make_shared<PredictorStage<LogisticRegressionModel>>(
        t, "classification", with_where(st, [&] { return fit_logistic_regression(f, q); })));
  }
  if (t == "LinearSVC") {
    LinearSvcParams q;
    linear_params(p, q);
    p.get("threshold", q.threshold);
    p.finish();
    return done(std::make_shared<PredictorStage<LinearSvcModel>>(t, "classification",
                                                                 with_where(st, [&] { return fit_linear_svc(f, q); })));
  }
  if (t == "DecisionTreeClassifier" || t == "DecisionTreeRegressor") {
    TreeParams q;
    tree_params(p, q);
    p.finish();
    const bool cls = t == "DecisionTreeClassifier";
    return done(std::make_shared<PredictorStage<TreeEnsembleModel>>(
        t, cls ? "classification" : "regression", with_where(st, [&] { return fit_decision_tree(f, q, cls); })));
  }
  if (t == "RandomForestClassifier" || t == "RandomForestRegressor") {
    ForestParams q;
    tree_params(p, q);
    p.get("numTrees", q.num_trees);
    p.get("featureSubsetStrategy", q.feature_subset_strategy);
    p.get("bootstrap", q.bootstrap);
    p.get("subsamplingRate", q.subsampling_rate);
    p.finish();
    const bool cls = t == "RandomForestClassifier";
    return done(std::make_shared<PredictorStage<TreeEnsembleModel>>(
        t, cls ? "classification" : "regression", with_where(st, [&] { return fit_random_forest(f, q, cls); })));
  }
  if (t == "GBTClassifier" || t == "GBTRegressor") {
    GbtParams q;
    tree_params(p, q);
    p.get("maxIter", q.max_iter);
    p.get("stepSize", q.step_size);
    p.get("lossType", q.loss_type);
    p.get("subsamplingRate", q.subsampling_rate);
    p.finish();
    const bool cls = t == "GBTClassifier";
    return done(std::make_shared<PredictorStage<TreeEnsembleModel>>(
        t, cls ? "classification" : "regression", with_where(st, [&] { return fit_gbt(f, q, cls); })));
  }
  if (t == "KMeans") {
    KMeansParams q;
    p.get("k", q.k);
    p.get("maxIter", q.max_iter);
    p.get("tol", q.tol);
    p.get("seed", q.seed);
    p.get("initMode", q.init_mode);
    p.get("initSteps", q.init_steps);
    p.finish();
    return done(std::make_shared<PredictorStage<KMeansModel>>(t, "clustering",
                                                              with_where(st, [&] { return fit_kmeans(f, q); })));
  }
  if (t == "NaiveBayes") {
    NaiveBayesParams q;
    p.get("modelType", q.model_type);
    p.get("smoothing", q.smoothing);
    p.finish();
    return done(std::make_shared<PredictorStage<NaiveBayesModel>>(
        t, "classification", with_where(st, [&] { return fit_naive_bayes(f, q); })));
  }
  if (t == "NeuralNetwork") {
    io::Config cfg = *st.nn;
    cfg.output.dir = (std::filesystem::path(ctx.output_dir) / "nn").string();
    cfg.output.progress = ctx.progress;
    cfg.data.format = "synthetic";  // the trainer gets its rows from the pipeline, not from files
    train::Trainer trainer(f.comm(), cfg, as_dataset(f, "pipeline features (train)"),
                           as_dataset(val ? *val : f, val ? "pipeline features (test)" : "pipeline features (train)"));
    trainer.run();
    const Tensor params = trainer.model().flat_params().clone(Device::kCpu);
    return std::make_shared<NeuralNetworkStage>(
        cfg, f.num_features(), std::vector<float>(params.data<float>(), params.data<float>() + params.numel()));
  }
  throw ConfigError(
      st.where +
      ": unknown stage type (known: StandardScaler, MinMaxScaler, MaxAbsScaler, Normalizer, "
      "StringIndexer, OneHotEncoder, PCA, FeatureSelector, LinearRegression, LogisticRegression, LinearSVC, "
      "DecisionTreeClassifier, DecisionTreeRegressor, RandomForestClassifier, RandomForestRegressor, "
      "GBTClassifier, GBTRegressor, KMeans, NaiveBayes, NeuralNetwork)");
}

}  // namespace

// ---------------------------------------------------------------- PipelineModel

PipelineModel::PipelineModel() = default;
PipelineModel::~PipelineModel() = default;
PipelineModel::PipelineModel(PipelineModel&&) noexcept = default;
PipelineModel& PipelineModel::operator=(PipelineModel&&) noexcept = default;

std::size_t PipelineModel::size() const {
  return stages_.size();
}
std::string PipelineModel::stage_type(std::size_t i) const {
  return stages_.at(i)->type();
}
bool PipelineModel::has_predictor() const {
  return !stages_.empty() && stages_.back()->is_predictor();
}
std::string PipelineModel::task() const {
  return has_predictor() ? stages_.back()->task() : "";
}

Frame PipelineModel::transform(const Frame& f) const {
  Frame cur = f;
  for (const auto& s : stages_)
    if (!s->is_predictor()) cur = s->transform(cur);
  return cur;
}

Predictions PipelineModel::predict(const Frame& f) const {
  LOCKSTEP_CHECK(has_predictor(), ConfigError, "this pipeline has no predictor stage (its last stage is ",
                 stages_.empty() ? "missing" : stages_.back()->type(), ")");
  return stages_.back()->predict(transform(f));
}

Vec PipelineModel::feature_importances() const {
  return has_predictor() ? stages_.back()->importances() : Vec();
}

void PipelineModel::save(comm::Communicator& comm, const std::string& path, const std::string& config_yaml) const {
  comm.collectively(
      [&] {
        if (comm.rank() != 0) return;
        const std::string tmp = path + ".tmp";
        {
          H5File h = H5File::create(tmp);
          h.create_group("/pipeline");
          h.set_attr("/pipeline", "format", "lockstep-pipeline-1");
          h.set_attr("/pipeline", "stages", static_cast<std::int64_t>(stages_.size()));
          h.set_attr("/pipeline", "config", config_yaml);
          for (std::size_t i = 0; i < stages_.size(); ++i) {
            const std::string g = "/pipeline/stage" + std::to_string(i);
            h.create_group(g);
            h.set_attr(g, "type", stages_[i]->type());
            stages_[i]->save(h, g);
          }
          h.close();
        }
        io::commit_file(tmp, path);
      },
      comm::Communicator::ErrorKind::kIo);
}

PipelineModel PipelineModel::load(comm::Communicator& comm, const std::string& path) {
  PipelineModel m;
  comm.collectively(
      [&] {
        if (!std::filesystem::exists(path)) throw IoError(path + ": no such model file (write one with lockstep fit)");
        const H5File h = H5File::open_read(path);
        if (!h.exists("/pipeline"))
          throw IoError(
              path +
              ": not a lockstep pipeline model (no /pipeline group; a training checkpoint goes to --checkpoint)");
        const auto n = h.attr_int("/pipeline", "stages");
        for (std::int64_t i = 0; i < n; ++i) {
          const std::string g = "/pipeline/stage" + std::to_string(i);
          const std::string type = h.attr_string(g, "type");
          std::shared_ptr<Stage> s =
              type == "NeuralNetwork" ? NeuralNetworkStage::load(h, g) : load_transformer(type, h, g);
          if (!s) s = load_predictor(type, h, g);
          if (!s) throw IoError(path + ":" + g + ": unknown stage type \"" + type + "\"");
          m.stages_.push_back(std::move(s));
        }
      },
      comm::Communicator::ErrorKind::kIo);
  return m;
}

PipelineModel fit_pipeline(const Frame& train, const std::vector<io::StageConfig>& stages, const FitContext& ctx,
                           const Frame* validation) {
  LOCKSTEP_CHECK(!stages.empty(), ConfigError, "pipeline: no stages");
  PipelineModel model;
  Frame cur = train;
  std::optional<Frame> val;
  if (validation) val = *validation;
  for (std::size_t i = 0; i < stages.size(); ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    auto s = fit_stage(stages[i], cur, val ? &*val : nullptr, ctx);
    if (s->is_predictor() && i + 1 != stages.size())
      throw ConfigError(stages[i].where + ": a predictor must be the last stage of a pipeline");
    if (!s->is_predictor()) {
      cur = s->transform(cur);
      if (val) val = s->transform(*val);
    }
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (ctx.verbose) {
      char buf[160];
      std::snprintf(buf, sizeof buf, "stage %zu/%zu %s fitted in %.2f s (%lld features out)", i + 1, stages.size(),
                    stages[i].type.c_str(), secs, static_cast<long long>(cur.num_features()));
      log::info(buf);
    }
    model.stages_.push_back(std::move(s));
  }
  return model;
}

// ---------------------------------------------------------------- evaluation and tuning

bool larger_is_better(const std::string& m) {
  return !(m == "rmse" || m == "mse" || m == "mae" || m == "logLoss" || m == "cost");
}

std::map<std::string, double> evaluate(const Frame& truth, const Predictions& p, const std::string& task) {
  std::map<std::string, double> out;
  if (task == "classification") {
    const auto m = evaluate_multiclass(truth, p);
    out["accuracy"] = m.accuracy;
    out["f1"] = m.weighted_f1;
    out["weightedPrecision"] = m.weighted_precision;
    out["weightedRecall"] = m.weighted_recall;
    if (std::isfinite(m.log_loss)) out["logLoss"] = m.log_loss;
    if (m.confusion.rows() <= 2) {
      Vec score = p.probability.cols() == 2 ? Vec(p.probability.col(1))
                                            : (p.raw.cols() >= 1 ? Vec(p.raw.col(p.raw.cols() - 1)) : p.prediction);
      if (score.size() != truth.rows()) score = p.prediction;
      const auto b = evaluate_binary(truth, score);
      out["areaUnderROC"] = b.area_under_roc;
      out["areaUnderPR"] = b.area_under_pr;
    }
  } else if (task == "regression") {
    const auto m = evaluate_regression(truth, p.prediction);
    out["rmse"] = m.rmse, out["mse"] = m.mse, out["mae"] = m.mae, out["r2"] = m.r2;
  } else if (task == "clustering") {
    double c = 0.0;
    for (std::int64_t i = 0; i < truth.rows(); ++i)
      c += truth.weight()[i] * p.raw(i, static_cast<Eigen::Index>(p.prediction[i]));
    out["cost"] = truth.comm().allreduce<double>(c, comm::ReduceOp::kSum);
  }
  return out;
}

namespace {

// Sets "Stage.param" (the first stage of that type, or the FeatureSelector's estimator) to v.
void set_param(std::vector<io::StageConfig>& stages, const std::string& key, const std::string& value,
               const io::StageParam& where) {
  const auto dot = key.find('.');
  if (dot == std::string::npos)
    throw ConfigError(where.where + ": expected Stage.param (e.g. LogisticRegression.regParam)");
  const std::string type = key.substr(0, dot), param = key.substr(dot + 1);
  std::function<bool(std::vector<io::StageConfig>&)> apply = [&](std::vector<io::StageConfig>& v) {
    for (auto& s : v) {
      if (s.type == type) {
        if (type == "NeuralNetwork")
          throw ConfigError(where.where + ": a grid over NeuralNetwork parameters is not supported");
        auto& p = s.params[param];
        p.values = {value};
        p.is_list = false;
        p.where = where.where;
        return true;
      }
      if (apply(s.inner)) return true;
    }
    return false;
  };
  if (!apply(stages)) throw ConfigError(where.where + ": no stage of type " + type + " in the pipeline");
}

}  // namespace

TuningResult tune(const Frame& train, const std::vector<io::StageConfig>& stages, const io::TuningConfig& t,
                  const FitContext& ctx) {
  LOCKSTEP_CHECK(t.type == "CrossValidator" || t.type == "TrainValidationSplit", ConfigError, t.where,
                 ": type: expected CrossValidator or TrainValidationSplit");
  LOCKSTEP_CHECK(!t.grid.empty(), ConfigError, t.where, ".grid: expected at least one Stage.param: [values]");
  // Every combination of the grid, in order (the last key varies fastest).
  std::vector<std::vector<std::size_t>> combos{{}};
  for (const auto& [k, v] : t.grid) {
    LOCKSTEP_CHECK(!v.values.empty(), ConfigError, v.where, ": expected a non-empty list of values");
    std::vector<std::vector<std::size_t>> next;
    for (const auto& c : combos)
      for (std::size_t i = 0; i < v.values.size(); ++i) {
        auto d = c;
        d.push_back(i);
        next.push_back(d);
      }
    combos = std::move(next);
  }
  // The task decides the default metric; a fold's row set comes from (seed, global row).
  const int folds = t.type == "CrossValidator" ? static_cast<int>(t.num_folds) : 1;
  std::vector<int> fold(static_cast<std::size_t>(train.rows()));
  for (std::int64_t i = 0; i < train.rows(); ++i) {
    CounterRng r(t.seed, RngStream::kSplit, static_cast<std::uint64_t>(train.row_offset() + i));
    const double u = r.uniform_double();
    fold[static_cast<std::size_t>(i)] =
        t.type == "CrossValidator" ? std::min(folds - 1, static_cast<int>(u * folds)) : (u < t.train_ratio ? -1 : 0);
  }
  FitContext quiet = ctx;
  quiet.verbose = false;
  quiet.progress = "none";
  TuningResult res;
  bool first = true;
  for (const auto& c : combos) {
    auto st = stages;
    std::string label;
    for (std::size_t g = 0; g < t.grid.size(); ++g) {
      const auto& [key, vals] = t.grid[g];
      set_param(st, key, vals.values[c[g]], vals);
      label += (label.empty() ? "" : ", ") + key + "=" + vals.values[c[g]];
    }
    double sum = 0.0;
    std::string metric = t.metric;
    for (int k = 0; k < folds; ++k) {
      std::vector<std::int64_t> tr, va;
      for (std::int64_t i = 0; i < train.rows(); ++i) (fold[static_cast<std::size_t>(i)] == k ? va : tr).push_back(i);
      const Frame ftr = train.subset(tr), fva = train.subset(va);
      const PipelineModel m = fit_pipeline(ftr, st, quiet);
      const auto scores = evaluate(fva, m.predict(fva), m.task());
      if (metric.empty()) metric = m.task() == "regression" ? "rmse" : (m.task() == "clustering" ? "cost" : "accuracy");
      const auto it = scores.find(metric);
      LOCKSTEP_CHECK(it != scores.end(), ConfigError, t.where, ".metric: ", metric, " does not apply to a ", m.task(),
                     " pipeline");
      sum += it->second;
    }
    const double mean = sum / folds;
    res.metric = metric;
    res.candidates.emplace_back(label, mean);
    if (ctx.verbose) {
      char buf[64];
      std::snprintf(buf, sizeof buf, ": %s %.6g", metric.c_str(), mean);
      log::info(std::string(t.type) + " " + label + buf);
    }
    if (first || (larger_is_better(metric) ? mean > res.best : mean < res.best)) {
      res.best = mean;
      res.best_stages = st;
      first = false;
    }
  }
  return res;
}

}  // namespace lockstep::ml
