// The NeuralFeaturizer stage (Deep Learning Pipelines' DeepImageFeaturizer): a transformer whose
// output is a pretrained network's activations at a named layer. Its "fit" reads no rows: it reads
// the network (a lockstep checkpoint or an ONNX file, train::read_network) and keeps the first
// layers up to and including `layer` with their parameters and buffers. Transform runs them over
// the rank's rows in chunks of exactly batchSize rows (train::forward_rows), so a row's features
// have the same bits at any number of ranks. The saved stage holds the network itself (its layer
// specs as YAML, its input shape, its flat parameters and buffers; format version 1), so a fitted
// pipeline applies after the file it came from is gone.
#include <Eigen/Core>
#include <algorithm>
#include <sstream>

#include "detail/hdf5.hpp"
#include "lockstep/core/param_reader.hpp"
#include "lockstep/ml/registry.hpp"
#include "lockstep/pipeline/stage_network.hpp"
#include "lockstep/train/model.hpp"
#include "lockstep/train/network_file.hpp"

namespace lockstep::pipeline {
namespace {

const std::string kName = "NeuralFeaturizer";

std::vector<float> host_values(const Tensor& t) {
  if (t.numel() == 0) return {};
  const Tensor h = t.device() == Device::kCpu ? t : t.clone(Device::kCpu);
  return std::vector<float>(h.data<float>(), h.data<float>() + h.numel());
}

// The network a featurizer runs: the first layers of the source network, with their state.
struct Truncated {
  Shape input;
  std::vector<Spec> layers;
  std::vector<float> params, buffers;
  std::string layer;   // the name of the last layer kept ("dense6")
  std::string source;  // the file it was read from, for messages
};

std::unique_ptr<nn::Sequential> build(const Truncated& t) {
  auto model = std::make_unique<nn::Sequential>(t.input, t.layers);
  LOCKSTEP_CHECK(static_cast<std::int64_t>(t.params.size()) == model->num_params(), Error, kName, ": ",
                 t.params.size(), " saved parameters for a network of ", model->num_params());
  LOCKSTEP_CHECK(static_cast<std::int64_t>(t.buffers.size()) == model->num_buffers(), Error, kName, ": ",
                 t.buffers.size(), " saved buffer values for a network of ", model->num_buffers());
  if (!t.params.empty())
    model->flat_params().copy_from(
        Tensor::borrow(const_cast<float*>(t.params.data()), {static_cast<std::int64_t>(t.params.size())}));
  if (!t.buffers.empty())
    model->flat_buffers().copy_from(
        Tensor::borrow(const_cast<float*>(t.buffers.data()), {static_cast<std::int64_t>(t.buffers.size())}));
  return model;
}

class NeuralFeaturizerStage final : public ml::Stage, public NetworkStage {
 public:
  NeuralFeaturizerStage(Truncated net, std::int64_t batch, std::string input_col, std::string output_col)
      : net_(std::move(net)), batch_(batch), input_col_(std::move(input_col)), output_col_(std::move(output_col)) {}
  const std::string& type() const override { return kName; }
  ml::StageTask task() const override { return ml::StageTask::kTransformer; }

  ml::Frame transform(const ml::Frame& f) const override {
    auto model = build(net_);
    // The width is agreed (every rank's frame has the same columns): every rank throws alike.
    if (f.num_features() != model->input_features()) {
      std::ostringstream os;
      os << kName << " (" << net_.source << "): the network takes " << model->input_features()
         << " features per row, the rows reaching it have " << f.num_features();
      throw_agreed<ConfigError>(os.str());
    }
    const std::int64_t k = model->output_features();
    ml::RowMatrix out(f.rows(), k);
    train::forward_rows(*model, f.to_table(), batch_, [&](std::int64_t b, std::int64_t m, const Tensor& o, const Tensor&) {
      const Tensor h = o.device() == Device::kCpu ? o : o.clone(Device::kCpu);
      std::copy_n(h.data<float>(), m * k, out.data() + b * k);
    });
    std::vector<std::string> names;
    for (std::int64_t j = 0; j < k; ++j) names.push_back(detail::concat(net_.layer, "_", j));
    return f.with_features(std::move(out), std::move(names));
  }

  // The truncated network: the source's layers up to `layer`, its input shape and state.
  io::NetworkFile network() const override { return train::describe_network(*build(net_), net_.layers); }

  void save(detail::H5File& h, const std::string& g) const override {
    io::Config cfg;
    cfg.model.layers = net_.layers;
    h.set_attr(g, "network", io::to_yaml(cfg));
    h.set_attr(g, "layer", net_.layer);
    h.set_attr(g, "source", net_.source);
    h.set_attr(g, "batchSize", batch_);
    h.set_attr(g, "inputCol", input_col_);
    h.set_attr(g, "outputCol", output_col_);
    h.write<std::int64_t>(g + "/inputShape", net_.input.data(), {static_cast<std::int64_t>(net_.input.size())});
    h.write<float>(g + "/params", net_.params.data(), {static_cast<std::int64_t>(net_.params.size())});
    if (!net_.buffers.empty())
      h.write<float>(g + "/buffers", net_.buffers.data(), {static_cast<std::int64_t>(net_.buffers.size())});
  }

  static std::shared_ptr<const ml::Stage> load(const detail::H5File& h, const std::string& g);

 private:
  Truncated net_;
  std::int64_t batch_;
  std::string input_col_, output_col_;
};

// The layer specs, input shape and state are checked against each other before anything is built
// from them: a damaged file is an IoError naming the file, the group and the dataset.
std::shared_ptr<const ml::Stage> NeuralFeaturizerStage::load(const detail::H5File& h, const std::string& g) {
  const std::string where = detail::concat(h.path(), ":", g);
  Truncated net;
  net.layers = io::parse_config(h.attr_string(g, "network"), detail::concat(where, " (attribute network)")).model.layers;
  net.layer = h.attr_string(g, "layer");
  net.source = h.attr_string(g, "source");
  net.input = h.read<std::int64_t>(g + "/inputShape");
  LOCKSTEP_CHECK(!net.layers.empty(), IoError, where, ": attribute network: expected at least one layer, found none");
  LOCKSTEP_CHECK(!net.input.empty() && net.input.size() <= 3 &&
                     std::all_of(net.input.begin(), net.input.end(), [](std::int64_t d) { return d >= 1 && d <= (1 << 20); }),
                 IoError, where, "/inputShape: expected 1 to 3 dimensions in [1, 2^20], found ", shape_str(net.input));
  const std::int64_t batch = h.attr_int(g, "batchSize");
  LOCKSTEP_CHECK(batch >= 1 && batch <= (1 << 24), IoError, where, ": attribute batchSize: expected an integer in [1, ",
                 1 << 24, "], found ", batch);
  net.params = h.read<float>(g + "/params");
  if (h.exists(g + "/buffers")) net.buffers = h.read<float>(g + "/buffers");
  const nn::Sequential model(net.input, net.layers);
  LOCKSTEP_CHECK(static_cast<std::int64_t>(net.params.size()) == model.num_params(), IoError, where, "/params: has ",
                 net.params.size(), " values, expected ", model.num_params(),
                 " (the parameters of the layers its network attribute describes)");
  LOCKSTEP_CHECK(static_cast<std::int64_t>(net.buffers.size()) == model.num_buffers(), IoError, where,
                 "/buffers: has ", net.buffers.size(), " values, expected ", model.num_buffers(),
                 " (the running statistics of the layers its network attribute describes",
                 net.buffers.empty() ? "; the dataset is missing" : "", ")");
  return std::make_shared<NeuralFeaturizerStage>(std::move(net), batch, h.attr_string(g, "inputCol"),
                                                 h.attr_string(g, "outputCol"));
}

// The place of a parameter in the YAML, or the stage's place with the key when it was not given.
std::string param_where(const io::StageConfig& c, const std::string& key) {
  const auto it = c.params.find(key);
  return it != c.params.end() ? it->second.where : detail::concat(c.where, ".", key);
}

// Reads the network and keeps its layers up to `layer`. A file that cannot be read as a network, or
// a layer it does not have, is one agreed ConfigError naming the key (read_network agrees its own
// errors; the layer list is the same on every rank).
Truncated truncate_network(comm::Communicator& comm, const io::StageConfig& c, const std::string& path,
                           const std::string& layer) {
  io::NetworkFile net;
  try {
    net = train::read_network(comm, path);
  } catch (const Error& e) {
    throw_agreed<ConfigError>(
        detail::concat(param_where(c, "modelPath"), ": cannot use ", path, " as a network: ", e.what()));
  }
  std::size_t index = net.layers.size() >= 2 ? net.layers.size() - 2 : 0;
  if (!layer.empty()) {
    try {
      index = train::layer_index(net, layer, param_where(c, "layer"));
    } catch (const ConfigError& e) {
      throw_agreed<ConfigError>(e.what());
    }
  }
  LOCKSTEP_CHECK(!net.layers.empty(), ConfigError, param_where(c, "modelPath"), ": ", path, " has no layers");
  const auto model = train::build_network(net, index + 1);
  Truncated t;
  t.input = net.input;
  t.layers.assign(net.layers.begin(), net.layers.begin() + static_cast<std::ptrdiff_t>(index + 1));
  t.params = host_values(model->flat_params());
  t.buffers = host_values(model->flat_buffers());
  t.layer = train::layer_names(net)[index];
  t.source = path;
  return t;
}

std::shared_ptr<const ml::Stage> fit_neural_featurizer(const ml::StageFitArgs& a) {
  const io::StageConfig& c = a.config;
  std::string path, layer, input_col = "features", output_col = "features";
  std::int64_t batch = 256;
  {
    ParamReader p(c.params, kName);
    p.get("modelPath", path);
    p.get("layer", layer);
    p.get("inputCol", input_col);
    p.get("outputCol", output_col);
    p.get("batchSize", batch, ParamRange<std::int64_t>{[](const std::int64_t& v) { return v >= 1 && v <= (1 << 24); },
                                                       "an integer in [1, 16777216]"});
    p.finish();
  }
  // The config is the same on every rank, so each of these is thrown by every rank alike.
  if (path.empty())
    throw_agreed<ConfigError>(
        detail::concat(c.where, ": modelPath: missing (a lockstep checkpoint or an .onnx file holding the network)"));
  // A Frame holds one feature block: the network reads all of it and its features replace it.
  if (input_col != "features")
    throw_agreed<ConfigError>(detail::concat(param_where(c, "inputCol"),
                                             ": expected \"features\" (the feature block, the only vector column of a "
                                             "pipeline's rows), got \"",
                                             input_col, "\""));
  if (output_col != "features")
    throw_agreed<ConfigError>(detail::concat(param_where(c, "outputCol"),
                                             ": expected \"features\" (the network's activations replace the feature "
                                             "block), got \"",
                                             output_col, "\""));
  Truncated net = truncate_network(a.train.comm(), c, path, layer);
  const nn::Sequential check(net.input, net.layers);
  if (check.input_features() != a.train.num_features()) {
    std::ostringstream os;
    os << param_where(c, "modelPath") << ": the network in " << path << " takes " << check.input_features()
       << " features per row (input shape " << shape_str(net.input) << "), the rows reaching this stage have "
       << a.train.num_features();
    throw_agreed<ConfigError>(os.str());
  }
  return std::make_shared<NeuralFeaturizerStage>(std::move(net), batch, input_col, output_col);
}

ml::StageKind neural_featurizer_row() {
  ml::StageKind k;
  k.name = kName;
  k.task = ml::StageTask::kTransformer;
  k.tunable = true;  // layer and batchSize are scalars a grid may set
  k.fit = fit_neural_featurizer;
  k.load = NeuralFeaturizerStage::load;
  return k;
}

const ml::StageRegistrar kNeuralFeaturizer{neural_featurizer_row()};

}  // namespace
}  // namespace lockstep::pipeline
