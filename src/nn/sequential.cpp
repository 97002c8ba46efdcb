// Sequential model: construction from specs, flat parameter layout, initialisation, and the
// forward/backward sweep with a per-layer hook for gradient buckets.
#include "lockstep/nn/sequential.hpp"

#include <algorithm>
#include <cmath>
#include <sstream>

#include "lockstep/backend/ops.hpp"
#include "lockstep/core/checked_size.hpp"
#include "lockstep/core/rng.hpp"
#include "lockstep/nn/layer_registry.hpp"

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

namespace {

// Every size the layers imply, checked before place_parameters allocates anything: each output
// shape and parameter shape has a product that fits a 64-bit count, and the parameters' values
// and gradients (8 bytes a parameter, the least a model of them needs) fit in this machine's
// physical memory. where[i] names layer i's size key ("configs/x.yaml:12: model.layers[0].units").
void check_sizes(const Shape& input, const std::vector<std::unique_ptr<Layer>>& layers,
                 const std::vector<std::string>& where) {
  Shape shape = input;
  checked_product<ConfigError>(shape, "model: the input shape " + shape_str(shape));
  std::int64_t total = 0;
  for (std::size_t i = 0; i < layers.size(); ++i) {
    for (const auto& ps : layers[i]->param_specs(shape)) {
      const std::string what = where[i] + ": parameter " + ps.name + " of shape " + shape_str(ps.shape);
      total = checked_add<ConfigError>(total, checked_product<ConfigError>(ps.shape, what), what);
      const std::string model = where[i] + ": the model's parameters up to this layer (" + std::to_string(total) +
                                ", each with a value and a gradient)";
      check_fits_memory<ConfigError>(checked_mul<ConfigError>(total, 8, model), model);
    }
    shape = layers[i]->output_shape(shape);
    checked_product<ConfigError>(shape, where[i] + ": the output shape " + shape_str(shape));
  }
}

// A layer's size key, for check_sizes: a dense layer's units, or the layer itself.
std::string size_where(const Spec& spec) {
  const auto units = spec.params.find("units");
  return units != spec.params.end() ? units->second.where : spec.where;
}

}  // namespace

Sequential::Sequential(const Shape& input, const std::vector<Spec>& specs) : input_(input) {
  LOCKSTEP_CHECK(!specs.empty(), ConfigError, "model.layers: expected at least one layer");
  std::vector<std::string> where;
  for (std::size_t i = 0; i < specs.size(); ++i) {
    layers_.push_back(make_layer(specs[i], static_cast<std::uint32_t>(i)));
    where.push_back(size_where(specs[i]));
  }
  check_sizes(input_, layers_, where);
  place_parameters();
}

Sequential::Sequential(const Shape& input, std::vector<std::unique_ptr<Layer>> layers)
    : input_(input), layers_(std::move(layers)) {
  LOCKSTEP_CHECK(!layers_.empty(), ConfigError, "model.layers: expected at least one layer");
  std::vector<std::string> where;
  for (std::size_t i = 0; i < layers_.size(); ++i) where.push_back("model.layers[" + std::to_string(i) + "]");
  check_sizes(input_, layers_, where);
  place_parameters();
}

void Sequential::place_parameters() {
  LOCKSTEP_CHECK(!input_.empty() && shape_numel(input_) > 0, ConfigError, "model: the input shape ", shape_str(input_),
                 " holds no features");
  Shape shape = input_;
  std::vector<std::vector<ParamSpec>> per_layer;
  std::vector<Shape> inputs;
  for (const auto& layer : layers_) {
    inputs.push_back(shape);
    per_layer.push_back(layer->param_specs(shape));
    shape = layer->output_shape(shape);
    shapes_.push_back(shape);
  }

  // Reverse layer order: the last layer's parameters first (see the header); the trainable layers'
  // first, then the frozen ones', so that the trainable parameters are a prefix.
  std::int64_t total = 0;
  layer_ranges_.assign(layers_.size(), {0, 0});
  lowest_trainable_ = layers_.size();
  std::vector<std::vector<std::int64_t>> offsets(layers_.size());
  for (const bool trainable : {true, false}) {
    for (std::size_t li = layers_.size(); li-- > 0;) {
      if (layers_[li]->trainable() != trainable) continue;
      if (trainable && !per_layer[li].empty()) lowest_trainable_ = li;
      const std::int64_t begin = total;
      for (const auto& ps : per_layer[li]) {
        offsets[li].push_back(total);
        total += shape_numel(ps.shape);
      }
      layer_ranges_[li] = {begin, total};
    }
    if (trainable) trainable_ = total;
  }
  params_ = Tensor({total});
  grads_ = Tensor({trainable_});
  parameters_.reserve(64);
  std::vector<std::vector<std::size_t>> index(layers_.size());
  for (std::size_t li = 0; li < layers_.size(); ++li) {
    for (std::size_t k = 0; k < per_layer[li].size(); ++k) {
      const auto& ps = per_layer[li][k];
      Parameter p;
      p.name = layers_[li]->type() + std::to_string(li) + "." + ps.name;
      p.offset = offsets[li][k];
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
  place_buffers(inputs);
}

void Sequential::place_buffers(const std::vector<Shape>& inputs) {
  std::vector<std::vector<BufferSpec>> per_layer;
  std::int64_t total = 0;
  for (std::size_t li = 0; li < layers_.size(); ++li) {
    per_layer.push_back(layers_[li]->buffer_specs(inputs[li]));
    for (const auto& bs : per_layer.back()) {
      Buffer b;
      b.name = layers_[li]->type() + std::to_string(li) + "." + bs.name;
      b.offset = total;
      b.spec = bs;
      buffer_list_.push_back(std::move(b));
      total += shape_numel(bs.shape);
    }
  }
  buffers_ = Tensor({total});
  for (auto& b : buffer_list_) {
    b.value = Tensor::borrow(buffers_.data<float>() + b.offset, b.spec.shape);
    std::fill_n(b.value.data<float>(), b.value.numel(), b.spec.initial);
  }
  std::size_t k = 0;
  for (std::size_t li = 0; li < layers_.size(); ++li) {
    std::vector<Buffer*> ptrs;
    for (std::size_t j = 0; j < per_layer[li].size(); ++j) ptrs.push_back(&buffer_list_[k++]);
    if (!ptrs.empty()) layers_[li]->bind_buffers(ptrs);
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
    p.grad = p.offset < trainable_ ? view(grads_, p) : Tensor();  // frozen: no gradient
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
  grads_ = Tensor::borrow(grads, {trainable_});
  bind_views();
}

void Sequential::to(Device device) {
  if (params_.device() == device) return;
  params_ = params_.clone(device);
  grads_ = Tensor(grads_.shape(), grads_.dtype(), device);
  if (buffers_.numel() > 0) buffers_ = buffers_.clone(device);
  for (auto& b : buffer_list_)
    b.value = Tensor::borrow(static_cast<float*>(buffers_.raw()) + b.offset, b.spec.shape, DType::kF32, device);
  if (compute_params_.defined()) compute_params_ = Tensor(compute_params_.shape(), DType::kBF16, device);
  bind_views();
  rows_ = -1;  // activation buffers are reallocated on the new device
}

void Sequential::initialize(std::uint64_t seed, Init init) {
  for (std::size_t pi = 0; pi < parameters_.size(); ++pi) {
    auto& p = parameters_[pi];
    float* w = p.value.data<float>();
    const std::int64_t n = p.value.numel();
    if (p.spec.is_bias || p.spec.is_scale) {
      for (std::int64_t i = 0; i < n; ++i) w[i] = p.spec.is_scale ? 1.0f : 0.0f;
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
  const auto batch_of = [rows](const Shape& sample) {
    Shape s{rows};
    s.insert(s.end(), sample.begin(), sample.end());
    return s;
  };
  for (const auto& shape : shapes_) acts_.emplace_back(batch_of(shape), compute_, params_.device());
  // The gradient buffers wait for the first backward at this batch size: inference (evaluate,
  // predict) never allocates them, which halves its activation memory.
  if (compute_ == DType::kBF16) input_cast_ = Tensor(batch_of(input_), DType::kBF16, params_.device());
}

const Tensor& Sequential::forward(const Tensor& x, const ForwardContext& ctx) {
  LOCKSTEP_CHECK(x.device() == params_.device(), Error, "Sequential::forward: input on ", device_name(x.device()),
                 ", model on ", device_name(params_.device()));
  // A batch comes as [rows, ...input shape], or flat [rows, numel] (the same bytes).
  LOCKSTEP_CHECK(x.ndim() >= 2 && x.numel() == x.dim(0) * input_features(), DataError,
                 "model expects samples of shape ", shape_str(input_), " (", input_features(),
                 " features), got a batch of shape ", shape_str(x.shape()));
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
  if (dacts_.size() != acts_.size()) {
    dacts_.clear();
    for (const auto& a : acts_) dacts_.emplace_back(a.shape(), compute_, params_.device());
  }
  // Nothing below the lowest layer with trainable parameters needs a gradient: no dx into it.
  const Tensor* dy = &doutput;
  for (std::size_t i = layers_.size(); i-- > lowest_trainable_;) {
    Tensor* dx = i > lowest_trainable_ ? &dacts_[i - 1] : nullptr;
    layers_[i]->backward(*dy, dx);
    if (on_layer_done) on_layer_done(i);
    if (dx) dy = dx;
  }
}

bool Sequential::can_accumulate_grads() const {
  for (const auto& layer : layers_)
    if (!layer->can_accumulate_grads()) return false;
  return true;
}

void Sequential::set_accumulate_grads(bool accumulate) {
  for (auto& layer : layers_) layer->set_accumulate_grads(accumulate);
}

void Sequential::end_step(const ForwardContext& ctx) {
  for (auto& layer : layers_) layer->end_step(ctx);
}

std::string Sequential::summary() const {
  std::ostringstream os;
  const auto text = [](const Shape& s) { return s.size() == 1 ? std::to_string(s[0]) : shape_str(s); };
  Shape w = input_;
  os << "input " << text(w);
  for (std::size_t i = 0; i < layers_.size(); ++i) {
    os << " -> " << layers_[i]->type();
    if (shapes_[i] != w || layers_[i]->type() == "dense") os << "(" << text(shapes_[i]) << ")";
    w = shapes_[i];
  }
  os << "  [" << params_.numel() << " parameters (" << trainable_ << " trainable, " << params_.numel() - trainable_
     << " frozen)";
  if (buffers_.numel() > 0) os << ", " << buffers_.numel() << " buffer values";
  if (compute_ == DType::kBF16)
    os << ", bf16 compute, " << (grads_.dtype() == DType::kBF16 ? "bf16" : "fp32") << " gradients";
  os << "]";
  return os.str();
}

}  // namespace lockstep::nn
