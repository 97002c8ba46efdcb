// Sequential model: construction from specs, flat parameter layout, initialisation, and the
// forward/backward sweep with a per-layer hook for gradient buckets.
#include "lockstep/nn/sequential.hpp"

#include <algorithm>
#include <cmath>
#include <sstream>

#include "lockstep/backend/ops.hpp"
#include "lockstep/core/rng.hpp"
#include "lockstep/nn/layers.hpp"

namespace lockstep::nn {

Init parse_init(const std::string& name) {
  if (name == "he_uniform") return Init::kHeUniform;
  if (name == "he_normal") return Init::kHeNormal;
  if (name == "xavier_uniform") return Init::kXavierUniform;
  if (name == "xavier_normal") return Init::kXavierNormal;
  throw ConfigError("expected one of he_uniform, he_normal, xavier_uniform, xavier_normal; got \"" + name + "\"");
}

const char* init_name(Init i) {
  switch (i) {
    case Init::kHeUniform:
      return "he_uniform";
    case Init::kHeNormal:
      return "he_normal";
    case Init::kXavierUniform:
      return "xavier_uniform";
    case Init::kXavierNormal:
      return "xavier_normal";
  }
  return "?";
}

Sequential::Sequential(std::int64_t input_features, const std::vector<LayerSpec>& specs) : input_(input_features) {
  LOCKSTEP_CHECK(input_features > 0, ConfigError, "model: input features must be > 0, got ", input_features);
  LOCKSTEP_CHECK(!specs.empty(), ConfigError, "model.layers: expected at least one layer");
  std::int64_t width = input_features;
  std::vector<std::vector<ParamSpec>> per_layer;
  for (std::size_t i = 0; i < specs.size(); ++i) {
    const auto& s = specs[i];
    const std::string where = "model.layers[" + std::to_string(i) + "]";
    std::unique_ptr<Layer> layer;
    if (s.type == "dense") {
      LOCKSTEP_CHECK(s.units > 0, ConfigError, where, ".units: expected an integer > 0, got ", s.units);
      layer = std::make_unique<Dense>(s.units, s.bias);
    } else if (s.type == "relu") {
      layer = std::make_unique<ActivationLayer>(backend::Activation::kRelu);
    } else if (s.type == "sigmoid") {
      layer = std::make_unique<ActivationLayer>(backend::Activation::kSigmoid);
    } else if (s.type == "tanh") {
      layer = std::make_unique<ActivationLayer>(backend::Activation::kTanh);
    } else if (s.type == "dropout") {
      LOCKSTEP_CHECK(s.rate >= 0.0 && s.rate < 1.0, ConfigError, where, ".rate: expected a number in [0, 1), got ",
                     s.rate);
      layer = std::make_unique<Dropout>(static_cast<float>(s.rate), static_cast<std::uint32_t>(i));
    } else {
      throw ConfigError(where + ".type: expected one of dense, relu, sigmoid, tanh, dropout; got \"" + s.type + "\"");
    }
    per_layer.push_back(layer->param_specs(width));
    width = layer->output_features(width);
    widths_.push_back(width);
    layers_.push_back(std::move(layer));
  }

  // Reverse layer order: the last layer's parameters first (see the header).
  std::int64_t total = 0;
  layer_ranges_.assign(layers_.size(), {0, 0});
  std::vector<std::vector<std::int64_t>> offsets(layers_.size());
  for (std::size_t li = layers_.size(); li-- > 0;) {
    const std::int64_t begin = total;
    for (const auto& ps : per_layer[li]) {
      offsets[li].push_back(total);
      total += shape_numel(ps.shape);
    }
    layer_ranges_[li] = {begin, total};
  }
  params_ = Tensor({total});
  grads_ = Tensor({total});
  parameters_.reserve(64);
  std::vector<std::vector<std::size_t>> index(layers_.size());
  for (std::size_t li = 0; li < layers_.size(); ++li) {
    for (std::size_t k = 0; k < per_layer[li].size(); ++k) {
      const auto& ps = per_layer[li][k];
      const std::int64_t off = offsets[li][k];
      Parameter p;
      p.name = layers_[li]->type() + std::to_string(li) + "." + ps.name;
      p.offset = off;
      p.spec = ps;
      index[li].push_back(parameters_.size());
      parameters_.push_back(std::move(p));
    }
  }
  bind_views();
  for (std::size_t li = 0; li < layers_.size(); ++li) {
    std::vector<Parameter*> ptrs;
    for (auto k : index[li]) ptrs.push_back(&parameters_[k]);
    layers_[li]->bind(ptrs);
  }
}

void Sequential::bind_views() {
  // The layers hold Parameter pointers, so rebinding the views here is all a move needs.
  const Device dev = params_.device();
  const auto view = [&](const Tensor& flat, const Parameter& p) {
    return Tensor::borrow(
        static_cast<char*>(flat.raw()) + p.offset * static_cast<std::int64_t>(dtype_size(flat.dtype())), p.spec.shape,
        flat.dtype(), dev);
  };
  for (auto& p : parameters_) {
    p.value = view(params_, p);
    p.grad = view(grads_, p);
    p.compute = compute_ == DType::kF32 ? p.value : view(compute_params_, p);
  }
}

void Sequential::set_precision(DType compute, DType grads) {
  LOCKSTEP_CHECK((compute == DType::kF32 || compute == DType::kBF16) && (grads == DType::kF32 || grads == DType::kBF16),
                 ConfigError, "precision: expected fp32 or bf16");
  LOCKSTEP_CHECK(grads == DType::kF32 || compute == DType::kBF16, ConfigError,
                 "bf16 gradients need bf16 compute (training.precision: bf16)");
  const Device dev = params_.device();
  compute_ = compute;
  if (grads_.dtype() != grads) grads_ = Tensor(grads_.shape(), grads, dev);
  compute_params_ = compute == DType::kBF16 ? Tensor(params_.shape(), DType::kBF16, dev) : Tensor();
  bind_views();
  rows_ = -1;  // activation buffers take the new dtype
}

void Sequential::relocate(float* params, float* grads, bool copy_params) {
  LOCKSTEP_CHECK(grads_.dtype() == DType::kF32 && params_.device() == Device::kCpu, Error,
                 "Sequential::relocate: needs float32 gradients on the host");
  const std::int64_t n = params_.numel();
  if (copy_params) std::copy(params_.data<float>(), params_.data<float>() + n, params);
  params_ = Tensor::borrow(params, {n});
  grads_ = Tensor::borrow(grads, {n});
  bind_views();
}

void Sequential::to(Device device) {
  if (params_.device() == device) return;
  params_ = params_.clone(device);
  grads_ = Tensor(grads_.shape(), grads_.dtype(), device);
  if (compute_params_.defined()) compute_params_ = Tensor(compute_params_.shape(), DType::kBF16, device);
  bind_views();
  rows_ = -1;  // activation buffers are reallocated on the new device
}

void Sequential::initialize(std::uint64_t seed, Init init) {
  for (std::size_t pi = 0; pi < parameters_.size(); ++pi) {
    auto& p = parameters_[pi];
    float* w = p.value.data<float>();
    const std::int64_t n = p.value.numel();
    if (p.spec.is_bias) {
      for (std::int64_t i = 0; i < n; ++i) w[i] = 0.0f;
      continue;
    }
    const double fan_in = static_cast<double>(p.spec.fan_in), fan_out = static_cast<double>(p.spec.fan_out);
    double bound = 0.0, stddev = 0.0;
    bool uniform = true;
    switch (init) {
      case Init::kHeUniform:
        bound = std::sqrt(6.0 / fan_in);
        break;
      case Init::kHeNormal:
        stddev = std::sqrt(2.0 / fan_in);
        uniform = false;
        break;
      case Init::kXavierUniform:
        bound = std::sqrt(6.0 / (fan_in + fan_out));
        break;
      case Init::kXavierNormal:
        stddev = std::sqrt(2.0 / (fan_in + fan_out));
        uniform = false;
        break;
    }
    CounterRng rng(seed, RngStream::kInit, pi);
    for (std::int64_t i = 0; i < n; ++i) {
      w[i] = uniform ? static_cast<float>((2.0 * rng.uniform_double() - 1.0) * bound)
                     : static_cast<float>(rng.normal() * stddev);
    }
  }
}

void Sequential::ensure_buffers(std::int64_t rows) {
  if (rows == rows_) return;
  rows_ = rows;
  acts_.clear();
  dacts_.clear();
  for (auto w : widths_) {
    acts_.emplace_back(Shape{rows, w}, compute_, params_.device());
    dacts_.emplace_back(Shape{rows, w}, compute_, params_.device());
  }
  if (compute_ == DType::kBF16) input_cast_ = Tensor({rows, input_}, DType::kBF16, params_.device());
}

const Tensor& Sequential::forward(const Tensor& x, const ForwardContext& ctx) {
  LOCKSTEP_CHECK(x.device() == params_.device(), Error, "Sequential::forward: input on ", device_name(x.device()),
                 ", model on ", device_name(params_.device()));
  LOCKSTEP_CHECK(x.ndim() == 2 && x.dim(1) == input_, DataError, "model expects input of ", input_,
                 " features, got shape ", shape_str(x.shape()));
  ensure_buffers(x.dim(0));
  input_view_ = x;
  if (compute_ == DType::kBF16) {  // this step's bf16 weights and input (as autocast does)
    backend::cast(params_, compute_params_);
    if (x.dtype() != DType::kBF16) {
      backend::cast(x, input_cast_);
      input_view_ = input_cast_;
    }
  }
  const Tensor* in = &input_view_;
  for (std::size_t i = 0; i < layers_.size(); ++i) {
    layers_[i]->forward(*in, acts_[i], ctx);
    in = &acts_[i];
  }
  return acts_.back();
}

void Sequential::backward(const Tensor& doutput, const std::function<void(std::size_t)>& on_layer_done) {
  LOCKSTEP_CHECK(doutput.numel() == acts_.back().numel(), Error, "Sequential::backward: gradient ",
                 shape_str(doutput.shape()), " for output ", shape_str(acts_.back().shape()));
  const Tensor* dy = &doutput;
  for (std::size_t i = layers_.size(); i-- > 0;) {
    Tensor* dx = i > 0 ? &dacts_[i - 1] : nullptr;
    layers_[i]->backward(*dy, dx);
    if (on_layer_done) on_layer_done(i);
    if (dx) dy = dx;
  }
}

std::string Sequential::summary() const {
  std::ostringstream os;
  std::int64_t w = input_;
  os << "input " << w;
  for (std::size_t i = 0; i < layers_.size(); ++i) {
    os << " -> " << layers_[i]->type();
    if (widths_[i] != w) os << "(" << widths_[i] << ")";
    w = widths_[i];
  }
  os << "  [" << params_.numel() << " parameters";
  if (compute_ == DType::kBF16)
    os << ", bf16 compute, " << (grads_.dtype() == DType::kBF16 ? "bf16" : "fp32") << " gradients";
  os << "]";
  return os.str();
}

}  // namespace lockstep::nn
