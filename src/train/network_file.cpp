// Networks as files (see network_file.hpp).
#include "lockstep/train/network_file.hpp"

#include <algorithm>
#include <filesystem>
#include <sstream>
#include <map>

#include "lockstep/core/error.hpp"
#include "lockstep/core/log.hpp"
#include "lockstep/io/checkpoint.hpp"
#include "lockstep/io/config.hpp"
#include "lockstep/nn/conv2d.hpp"
#include "lockstep/nn/layer_registry.hpp"

namespace lockstep::train {

namespace {

std::vector<float> host_values(const Tensor& t) {
  const Tensor h = t.device() == Device::kCpu ? t : t.clone(Device::kCpu);
  return std::vector<float>(h.data<float>(), h.data<float>() + h.numel());
}

// The checkpoint's network: the model its run config describes for its input shape, holding the
// checkpoint's parameters; every name and shape of /params must be that model's.
io::NetworkFile read_checkpoint_network(const std::string& path) {
  const io::CheckpointState st = io::load_checkpoint(path);
  LOCKSTEP_CHECK(!st.input_shape.empty(), CheckpointError, path,
                 ": no input_shape attribute (written by a lockstep older than model.init_from and export); "
                 "train it again, or resume it once with this version, to record the model's input shape");
  io::NetworkFile net;
  net.path = path;
  net.description = path + " (lockstep checkpoint, epoch " + std::to_string(st.epoch) + ")";
  net.input = st.input_shape;
  net.layers = io::parse_config(st.config_yaml, path + " (its config)").model.layers;
  net.class_names = st.class_names;
  nn::Sequential model(net.input, net.layers);
  LOCKSTEP_CHECK(static_cast<std::int64_t>(st.params.size()) == model.num_params(), CheckpointError, path, ": holds ",
                 st.params.size(), " parameters, the model its config describes has ", model.num_params());
  LOCKSTEP_CHECK(static_cast<std::int64_t>(st.buffers.size()) == model.num_buffers(), CheckpointError, path,
                 ": holds ", st.buffers.size(), " buffer values, the model its config describes has ",
                 model.num_buffers());
  std::map<std::string, Shape> stored;
  for (const auto& p : st.layout) stored[p.name] = p.shape;
  for (const auto& b : st.buffer_layout) stored[b.name] = b.shape;
  for (const auto& p : model.parameters()) {
    const auto it = stored.find(p.name);
    LOCKSTEP_CHECK(it != stored.end() && it->second == p.value.shape(), CheckpointError, path, ": /params/", p.name,
                   it == stored.end() ? std::string(" is missing") : " has shape " + shape_str(it->second),
                   ", the model its config describes has ", p.name, " of shape ", shape_str(p.value.shape()));
    const float* v = st.params.data() + p.offset;
    net.params.push_back({p.name, p.value.shape(), std::vector<float>(v, v + p.value.numel())});
  }
  for (const auto& b : model.buffers()) {
    const float* v = st.buffers.data() + b.offset;
    net.buffers.push_back({b.name, b.value.shape(), std::vector<float>(v, v + b.value.numel())});
  }
  return net;
}

// The layers of `model` among its first `layers`: the names of their parameters and buffers.
bool in_first_layers(const std::string& name, const std::vector<std::string>& prefixes) {
  for (const auto& p : prefixes)
    if (name.size() > p.size() && name.compare(0, p.size(), p) == 0 && name[p.size()] == '.') return true;
  return false;
}

std::vector<std::string> model_layer_names(const nn::Sequential& model) {
  std::vector<std::string> names;
  for (std::size_t i = 0; i < model.num_layers(); ++i) names.push_back(model.layer(i).type() + std::to_string(i));
  return names;
}

void copy_array(const io::NamedArray* src, Tensor& dst, const std::string& name, const std::string& what) {
  LOCKSTEP_CHECK(src != nullptr, ConfigError, what, ": has no ", name, ", which the model has (shape ",
                 shape_str(dst.shape()), ")");
  LOCKSTEP_CHECK(src->shape == dst.shape(), ConfigError, what, ": ", name, " has shape ", shape_str(src->shape),
                 ", the model's ", name, " has shape ", shape_str(dst.shape()));
  LOCKSTEP_CHECK(static_cast<std::int64_t>(src->values.size()) == dst.numel(), ConfigError, what, ": ", name,
                 " holds ", src->values.size(), " values for shape ", shape_str(src->shape));
  dst.copy_from(Tensor::borrow(const_cast<float*>(src->values.data()), src->shape));
}

const io::NamedArray* find_array(const std::vector<io::NamedArray>& v, const std::string& name) {
  for (const auto& a : v)
    if (a.name == name) return &a;
  return nullptr;
}

Param list_param(const std::vector<std::int64_t>& v, const std::string& where) {
  Param p;
  for (const auto x : v) p.values.push_back(std::to_string(x));
  p.is_list = true;
  p.where = where;
  return p;
}

// `spec` in export form for a per-sample input `shape` (which becomes its output shape): a window's
// kernel, stride, dilation and padding explicit, the padding as [top, left, bottom, right] (the
// bottom and right that lockstep's windows imply from the output size), recursively in blocks.
Spec export_spec(const Spec& spec, std::uint32_t index, Shape& shape) {
  Spec s = spec;
  if (s.type == "residual") {
    for (auto& [key, children] : s.children) {
      Shape branch = shape;
      for (std::size_t j = 0; j < children.size(); ++j)
        children[j] = export_spec(children[j], static_cast<std::uint32_t>(j), branch);
    }
  } else if (s.type == "conv2d" || s.type == "max_pool2d" || s.type == "avg_pool2d") {
    const bool conv = s.type == "conv2d";
    ParamReader reader(spec.params, spec.type);
    const nn::WindowSpec ws = nn::read_window_spec(reader, spec, conv ? 1 : 0, conv);
    const backend::Window2d g = ws.plan(shape, s.type);
    const std::int64_t bottom =
        std::max<std::int64_t>((g.out_h - 1) * g.stride_h + g.dilation_h * (g.kernel_h - 1) + 1 - g.height - g.pad_h, 0);
    const std::int64_t right =
        std::max<std::int64_t>((g.out_w - 1) * g.stride_w + g.dilation_w * (g.kernel_w - 1) + 1 - g.width - g.pad_w, 0);
    s.params["kernel"] = list_param({g.kernel_h, g.kernel_w}, spec.where + ".kernel");
    s.params["stride"] = list_param({g.stride_h, g.stride_w}, spec.where + ".stride");
    if (conv) s.params["dilation"] = list_param({g.dilation_h, g.dilation_w}, spec.where + ".dilation");
    s.params["padding"] = list_param({g.pad_h, g.pad_w, bottom, right}, spec.where + ".padding");
  }
  shape = nn::make_layer(spec, index)->output_shape(shape);
  return s;
}

}  // namespace

io::NetworkFile read_network(comm::Communicator& comm, const std::string& path) {
  io::NetworkFile net;
  comm.collectively([&] { net = io::is_onnx_path(path) ? io::read_onnx(path) : read_checkpoint_network(path); },
                    comm::Communicator::ErrorKind::kData);
  return net;
}

std::vector<std::string> layer_names(const io::NetworkFile& net) {
  std::vector<std::string> names;
  for (std::size_t i = 0; i < net.layers.size(); ++i)
    names.push_back(nn::make_layer(net.layers[i], static_cast<std::uint32_t>(i))->type() + std::to_string(i));
  return names;
}

std::size_t layer_index(const io::NetworkFile& net, const std::string& name, const std::string& where) {
  const auto names = layer_names(net);
  const auto it = std::find(names.begin(), names.end(), name);
  if (it != names.end()) return static_cast<std::size_t>(it - names.begin());
  std::string list;
  for (const auto& n : names) {
    if (!list.empty()) list += ", ";
    list += n;
  }
  throw ConfigError(where + ": no layer \"" + name + "\" in " + net.path + " (its layers: " + list + ")");
}

std::unique_ptr<nn::Sequential> build_network(const io::NetworkFile& net, std::size_t layers) {
  const std::size_t n = std::min(layers, net.layers.size());
  auto model = std::make_unique<nn::Sequential>(
      net.input, std::vector<Spec>(net.layers.begin(), net.layers.begin() + static_cast<std::ptrdiff_t>(n)));
  copy_network_state(net, *model, n, net.path);
  return model;
}

void copy_network_state(const io::NetworkFile& from, nn::Sequential& model, std::size_t layers,
                        const std::string& what) {
  auto names = model_layer_names(model);
  names.resize(std::min(layers, names.size()));
  for (const auto& p : model.parameters()) {
    if (!in_first_layers(p.name, names)) continue;
    Tensor dst = p.value;
    copy_array(find_array(from.params, p.name), dst, p.name, what);
  }
  for (const auto& b : model.buffers()) {
    if (!in_first_layers(b.name, names)) continue;
    Tensor dst = b.value;
    copy_array(find_array(from.buffers, b.name), dst, b.name, what);
  }
}

bool ends_in_folded_softmax(const std::vector<Spec>& layers, const std::string& loss) {
  return !layers.empty() && layers.back().type == "softmax" && loss == "softmax_cross_entropy";
}

namespace {

void log_folded(const std::string& what, std::size_t index) {
  std::ostringstream os;
  os << what << ": its final layer softmax" << index
     << " is folded into the loss (training.loss softmax_cross_entropy applies the softmax to the logits)";
  log::info(os.str());
}

}  // namespace

bool fold_final_softmax(io::NetworkFile& net, const std::string& loss) {
  if (!ends_in_folded_softmax(net.layers, loss)) return false;
  net.layers.pop_back();
  log_folded(net.path, net.layers.size());
  return true;
}

namespace {

// model.init_from's file, readable: a ConfigError naming the key otherwise (read_network's own
// messages say what is wrong inside a file that is there).
void check_source_exists(comm::Communicator& comm, const io::ModelConfig& m) {
  comm.collectively([&] {
    std::error_code ec;
    LOCKSTEP_CHECK(std::filesystem::is_regular_file(m.init_from, ec), ConfigError, m.init_from_where, ": ",
                   m.init_from, ": no such file (expected a lockstep checkpoint, e.g. runs/x/checkpoint.h5, or an "
                   ".onnx file)");
  });
}

// The source's first `cut` layers (flagged as base_trainable says) followed by the head.
std::vector<Spec> transfer_layers(const io::NetworkFile& net, std::size_t cut, const io::ModelConfig& m) {
  std::vector<Spec> full(net.layers.begin(), net.layers.begin() + static_cast<std::ptrdiff_t>(cut));
  for (auto& spec : full) {
    spec.params.erase("trainable");
    if (!m.base_trainable) spec.params["trainable"] = Param{{"false"}, false, m.init_from_where + ": base_trainable"};
  }
  full.insert(full.end(), m.layers.begin(), m.layers.end());
  return full;
}

}  // namespace

void resolve_init_from(comm::Communicator& comm, io::Config& cfg) {
  auto& m = cfg.model;
  if (m.init_from.empty() || m.init_layers >= 0) return;
  check_source_exists(comm, m);
  const io::NetworkFile net = read_network(comm, m.init_from);
  comm.collectively([&] {
    std::size_t cut = net.layers.size();
    if (m.replace_from.empty() && m.layers.empty() && ends_in_folded_softmax(net.layers, cfg.training.loss)) {
      cut -= 1;  // the head applies the softmax: the run's layers leave it out
      log_folded(detail::concat(m.init_from_where, ": ", m.init_from), cut);
    }
    if (!m.replace_from.empty()) {
      cut = layer_index(net, m.replace_from, m.replace_from_where);
      LOCKSTEP_CHECK(!m.layers.empty(), ConfigError, m.replace_from_where, ": replaces the layers of ", m.init_from,
                     " from ", m.replace_from, " on by model.layers (the new head), which is empty; give its layers");
    }
    std::vector<Spec> full = transfer_layers(net, cut, m);
    LOCKSTEP_CHECK(!full.empty(), ConfigError, m.replace_from_where, ": ", m.replace_from, " is the first layer of ",
                   m.init_from, " and model.layers is empty: no layers left");
    try {
      nn::Sequential check(net.input, full);  // the head takes the base's output shape
    } catch (const ConfigError& e) {
      std::ostringstream msg;
      msg << m.init_from_where << ": " << m.init_from << ": model.layers (the new head) after layer "
          << (cut == 0 ? std::string("(the input)") : layer_names(net)[cut - 1]) << " (output shape "
          << shape_str(cut == 0 ? net.input : build_network(net, cut)->output_shape()) << "): " << e.what();
      throw ConfigError(msg.str());
    }
    m.layers = std::move(full);
    m.init_layers = static_cast<std::int64_t>(cut);
  });
}

void load_init_from(comm::Communicator& comm, const io::ModelConfig& m, nn::Sequential& model) {
  if (m.init_from.empty() || m.init_layers <= 0) return;
  check_source_exists(comm, m);
  const io::NetworkFile net = read_network(comm, m.init_from);
  comm.collectively([&] {
    LOCKSTEP_CHECK(net.input == model.input_shape(), ConfigError, m.init_from_where, ": ", m.init_from,
                   " takes samples of shape ", shape_str(net.input), ", the data's are ",
                   shape_str(model.input_shape()));
    copy_network_state(net, model, static_cast<std::size_t>(m.init_layers), m.init_from_where + ": " + m.init_from);
  });
}

io::NetworkFile describe_network(const nn::Sequential& model, const std::vector<Spec>& specs) {
  io::NetworkFile net;
  net.input = model.input_shape();
  Shape shape = net.input;
  for (std::size_t i = 0; i < specs.size(); ++i)
    net.layers.push_back(export_spec(specs[i], static_cast<std::uint32_t>(i), shape));
  for (const auto& p : model.parameters()) net.params.push_back({p.name, p.value.shape(), host_values(p.value)});
  for (const auto& b : model.buffers()) net.buffers.push_back({b.name, b.value.shape(), host_values(b.value)});
  return net;
}

}  // namespace lockstep::train
