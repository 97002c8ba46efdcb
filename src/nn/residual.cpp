// The residual block: two branches of layers over the same input, summed (see residual.hpp).
#include "lockstep/nn/residual.hpp"

#include "lockstep/backend/ops.hpp"
#include "lockstep/nn/layer_registry.hpp"

namespace lockstep::nn {

Residual::Residual(std::vector<std::unique_ptr<Layer>> inner, std::vector<std::unique_ptr<Layer>> shortcut,
                   std::string where)
    : where_(std::move(where)) {
  LOCKSTEP_CHECK(!inner.empty(), ConfigError, where_, ".layers: expected at least one layer");
  inner_.layers = std::move(inner);
  shortcut_.layers = std::move(shortcut);
}

// Each branch's per-layer input shapes and parameter and buffer counts, for this input shape.
void Residual::plan(const Shape& input) const {
  for (Branch* b : {&inner_, &shortcut_}) {
    b->in.clear();
    b->nparams.clear();
    b->nbuffers.clear();
    Shape s = input;
    for (const auto& l : b->layers) {
      b->in.push_back(s);
      b->nparams.push_back(l->param_specs(s).size());
      b->nbuffers.push_back(l->buffer_specs(s).size());
      s = l->output_shape(s);
    }
  }
}

Shape Residual::output_shape(const Shape& input) const {
  Shape a = input, b = input;
  for (const auto& l : inner_.layers) a = l->output_shape(a);
  for (const auto& l : shortcut_.layers) b = l->output_shape(b);
  LOCKSTEP_CHECK(a == b, ConfigError, where_, ".shortcut: the block's layers turn ", shape_str(input), " into ",
                 shape_str(a), " but the shortcut gives ", shape_str(b),
                 shortcut_.layers.empty() ? " (identity); give a shortcut layer that maps the input to the same shape"
                                          : "; expected the same shape");
  return a;
}

std::vector<ParamSpec> Residual::param_specs(const Shape& input) const {
  plan(input);
  std::vector<ParamSpec> out;
  for (const Branch* b : {&inner_, &shortcut_}) {
    const std::string prefix = b == &shortcut_ ? "shortcut." : "";
    for (std::size_t j = 0; j < b->layers.size(); ++j) {
      for (auto ps : b->layers[j]->param_specs(b->in[j])) {
        ps.name = prefix + b->layers[j]->type() + std::to_string(j) + "." + ps.name;
        out.push_back(std::move(ps));
      }
    }
  }
  return out;
}

std::vector<BufferSpec> Residual::buffer_specs(const Shape& input) const {
  plan(input);
  std::vector<BufferSpec> out;
  for (const Branch* b : {&inner_, &shortcut_}) {
    const std::string prefix = b == &shortcut_ ? "shortcut." : "";
    for (std::size_t j = 0; j < b->layers.size(); ++j) {
      for (auto bs : b->layers[j]->buffer_specs(b->in[j])) {
        bs.name = prefix + b->layers[j]->type() + std::to_string(j) + "." + bs.name;
        out.push_back(std::move(bs));
      }
    }
  }
  return out;
}

void Residual::bind(std::vector<Parameter*> params) {
  std::size_t k = 0;
  for (Branch* b : {&inner_, &shortcut_}) {
    for (std::size_t j = 0; j < b->layers.size(); ++j) {
      std::vector<Parameter*> mine(params.begin() + static_cast<std::ptrdiff_t>(k),
                                   params.begin() + static_cast<std::ptrdiff_t>(k + b->nparams[j]));
      k += b->nparams[j];
      b->layers[j]->bind(std::move(mine));
    }
  }
}

void Residual::bind_buffers(std::vector<Buffer*> buffers) {
  std::size_t k = 0;
  for (Branch* b : {&inner_, &shortcut_}) {
    for (std::size_t j = 0; j < b->layers.size(); ++j) {
      if (b->nbuffers[j] == 0) continue;
      std::vector<Buffer*> mine(buffers.begin() + static_cast<std::ptrdiff_t>(k),
                                buffers.begin() + static_cast<std::ptrdiff_t>(k + b->nbuffers[j]));
      k += b->nbuffers[j];
      b->layers[j]->bind_buffers(std::move(mine));
    }
  }
}

// Activation buffers for x's rows, dtype and device: allocated when they change, not every step.
void Residual::ensure(Branch& b, const Tensor& x) {
  if (!b.acts.empty() && b.acts[0].dim(0) == x.dim(0) && b.acts[0].dtype() == x.dtype() &&
      b.acts[0].device() == x.device())
    return;
  b.acts.clear();
  b.dacts.clear();
  Shape s = b.in.empty() ? Shape{} : b.in[0];
  for (const auto& l : b.layers) {
    s = l->output_shape(s);
    Shape full{x.dim(0)};
    full.insert(full.end(), s.begin(), s.end());
    b.acts.emplace_back(full, x.dtype(), x.device());
    b.dacts.emplace_back(full, x.dtype(), x.device());
  }
}

void Residual::run_forward(Branch& b, const Tensor& x, const ForwardContext& ctx) {
  ensure(b, x);
  const Tensor* in = &x;
  for (std::size_t j = 0; j < b.layers.size(); ++j) {
    b.layers[j]->forward(*in, b.acts[j], ctx);
    in = &b.acts[j];
  }
}

// Backward from dy through the branch; dx (may be null) gets the branch's input gradient.
void Residual::run_backward(Branch& b, const Tensor& dy, Tensor* dx) {
  const Tensor* g = &dy;
  for (std::size_t j = b.layers.size(); j-- > 0;) {
    Tensor* d = j > 0 ? &b.dacts[j - 1] : dx;
    b.layers[j]->backward(*g, d);
    if (d) g = d;
  }
}

void Residual::forward(const Tensor& x, Tensor& y, const ForwardContext& ctx) {
  Shape shaped{x.dim(0)};  // the batch as [rows, ...input shape] (the model may hand it flat)
  shaped.insert(shaped.end(), inner_.in.at(0).begin(), inner_.in.at(0).end());
  const Tensor flat = x.reshape(shaped);
  run_forward(inner_, flat, ctx);
  const Tensor& a = inner_.acts.back();
  if (shortcut_.layers.empty()) return backend::add(a, flat.reshape(a.shape()), y);
  run_forward(shortcut_, flat, ctx);
  backend::add(a, shortcut_.acts.back(), y);
}

void Residual::backward(const Tensor& dy, Tensor* dx) {
  const Tensor g = dy.reshape(inner_.acts.back().shape());
  run_backward(inner_, g, dx);
  if (shortcut_.layers.empty()) {
    if (dx) backend::add(*dx, g.reshape(dx->shape()), *dx);
    return;
  }
  if (dx && (!dshort_.defined() || dshort_.shape() != dx->shape() || dshort_.dtype() != dx->dtype() ||
             dshort_.device() != dx->device()))
    dshort_ = Tensor(dx->shape(), dx->dtype(), dx->device());
  run_backward(shortcut_, g, dx ? &dshort_ : nullptr);
  if (dx) backend::add(*dx, dshort_, *dx);
}

void Residual::end_step(const ForwardContext& ctx) {
  for (Branch* b : {&inner_, &shortcut_})
    for (auto& l : b->layers) l->end_step(ctx);
}

void Residual::set_trainable(bool t) {
  trainable_ = t;
  for (Branch* b : {&inner_, &shortcut_})
    for (auto& l : b->layers) l->set_trainable(t);
}

namespace {
// Inner layers key their randomness (dropout masks) on an index of their own: the block's, times
// 256, plus the layer's place (128 more for the shortcut's).
// A block's parameters are one contiguous range of the model's, trainable or frozen as a whole, so
// `trainable` belongs on the block, not on a layer inside it.
std::vector<std::unique_ptr<Layer>> make_branch(const std::vector<Spec>& specs, std::uint32_t base) {
  std::vector<std::unique_ptr<Layer>> out;
  for (const auto& s : specs) {
    const auto it = s.params.find("trainable");
    if (it != s.params.end())
      throw ConfigError(it->second.where +
                        ": trainable is set on a whole residual block (its parameters are frozen or trained together); "
                        "move it to the block");
  }
  for (std::size_t j = 0; j < specs.size(); ++j) out.push_back(make_layer(specs[j], base + static_cast<std::uint32_t>(j)));
  return out;
}

const LayerRegistrar kResidual{
    {"residual",
     "layers (a list of layers), shortcut (identity, or a layer or list of layers mapping the input to the "
     "layers' output shape; default identity)",
     [](ParamReader& p, const Spec& spec, std::uint32_t index) -> std::unique_ptr<Layer> {
       if (spec.params.count("layers"))
         ParamReader::fail(spec.params.at("layers"), "a list of layers such as [{type: dense, units: 64}]",
                           "\"" + spec.params.at("layers").values.at(0) + "\"");
       const auto it = spec.children.find("layers");
       if (it == spec.children.end() || it->second.empty())
         throw ConfigError(spec.where + ".layers: missing (a residual block needs a list of layers, e.g. "
                           "[{type: dense, units: 64}, {type: relu}])");
       std::string shortcut = "identity";
       const auto sc = spec.children.find("shortcut");
       if (sc == spec.children.end())
         p.get("shortcut", shortcut, one_of({"identity"}));
       const std::uint32_t base = (index + 1) * 256;
       return std::make_unique<Residual>(make_branch(it->second, base),
                                         sc == spec.children.end() ? std::vector<std::unique_ptr<Layer>>{}
                                                                   : make_branch(sc->second, base + 128),
                                         spec.where);
     },
     {"layers", "shortcut"}}};
}  // namespace

}  // namespace lockstep::nn
