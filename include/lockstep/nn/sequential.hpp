// Sequential: a stack of layers built from specs (the YAML `model.layers`, through the layer
// registry) for a per-sample input shape, owning one flat buffer of parameters and one of
// gradients. Parameters are laid out in reverse layer order, so
// the gradients backward produces first sit at the front: a gradient bucket is a contiguous
// slice that becomes ready as soon as backward has passed its layers.
//
// Frozen layers (`trainable: false`): the trainable layers' parameters come first (in the same
// reverse order, so a model with nothing frozen has the same layout), the frozen layers' after
// them. The gradient buffer, and so the optimizer and the gradient buckets, cover only that
// trainable prefix [0, num_trainable_params()); backward writes no gradient of a frozen parameter
// and stops at the lowest layer with trainable parameters (no input gradient into it).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "lockstep/core/param_reader.hpp"
#include "lockstep/nn/layer.hpp"

namespace lockstep::nn {

struct LayerSpec {
  std::string type;        // dense | relu | sigmoid | tanh | dropout
  std::int64_t units = 0;  // dense
  double rate = 0.0;       // dropout
  bool bias = true;        // dense
};

enum class Init { kHeUniform, kHeNormal, kXavierUniform, kXavierNormal };
Init parse_init(const std::string& name);
const char* init_name(Init i);

class Sequential {
 public:
  // input: the per-sample shape of the data ({784}, {1, 28, 28}). Errors name each spec's place.
  Sequential(const Shape& input, const std::vector<Spec>& specs);
  // Layers built by hand (tests, benches).
  Sequential(const Shape& input, std::vector<std::unique_ptr<Layer>> layers);

  const Shape& input_shape() const { return input_; }
  const Shape& output_shape() const { return shapes_.back(); }
  std::int64_t input_features() const { return shape_numel(input_); }
  std::int64_t output_features() const { return shape_numel(shapes_.back()); }
  std::size_t num_layers() const { return layers_.size(); }
  const Layer& layer(std::size_t i) const { return *layers_[i]; }
  // The output of layer i for the batch of the last forward() (compute dtype, the model's device):
  // a named layer's features, read without a second pass.
  const Tensor& layer_output(std::size_t i) const { return acts_.at(i); }
  const Shape& layer_shape(std::size_t i) const { return shapes_.at(i); }

  // Deterministic initialisation from (seed, layer, element); biases start at zero.
  void initialize(std::uint64_t seed, Init init);

  // Mixed precision. compute = kBF16 keeps the float32 parameters as master weights (the optimizer
  // updates them, checkpoints hold them) and runs forward and backward in bf16: every forward pass
  // starts by rounding the parameters into a bf16 copy, the input and every activation are bf16,
  // and products accumulate in float32. grads is the dtype of the flat gradient buffer, which is
  // the dtype gradients are reduced in: kF32 (products write float32 gradients) or kBF16. Call it
  // before relocate().
  void set_precision(DType compute, DType grads);
  DType compute_dtype() const { return compute_; }
  DType grad_dtype() const { return grads_.dtype(); }

  // Moves parameters and gradients to `device` (e.g. the rank's GPU); activations follow.
  void to(Device device);
  Device device() const { return params_.device(); }

  // Moves the flat buffers to memory the caller provides (num_params() and num_trainable_params()
  // floats, 64-byte aligned, outliving the model), e.g. a window shared by the ranks of a node. copy_params:
  // copy the current values there (only one rank should, if several share `params`).
  void relocate(float* params, float* grads, bool copy_params);

  Tensor& flat_params() { return params_; }
  Tensor& flat_grads() { return grads_; }
  const std::vector<Parameter>& parameters() const { return parameters_; }
  std::int64_t num_params() const { return params_.numel(); }
  // The trainable parameters: elements [0, num_trainable_params()) of flat_params(), and all of
  // flat_grads() (which holds no frozen parameter's gradient).
  std::int64_t num_trainable_params() const { return trainable_; }
  // The lowest layer with trainable parameters (num_layers() if none): backward goes no lower.
  std::size_t lowest_trainable_layer() const { return lowest_trainable_; }
  // Non-trainable state (batch norm's running statistics), float32, in a flat vector of its own
  // (layer order; never in the optimizer or the gradient buckets).
  Tensor& flat_buffers() { return buffers_; }
  const std::vector<Buffer>& buffers() const { return buffer_list_; }
  std::int64_t num_buffers() const { return buffers_.numel(); }
  // Parameter-element range [begin, end) of layer i in the flat buffers (empty if none).
  std::pair<std::int64_t, std::int64_t> layer_param_range(std::size_t i) const { return layer_ranges_[i]; }

  // Returns the output of the last layer; valid until the next forward.
  const Tensor& forward(const Tensor& x, const ForwardContext& ctx);
  // Backward from d(loss)/d(output). on_layer_done(i) runs after layer i's gradients are written
  // (layers are visited last to first, down to lowest_trainable_layer()), which is when its bucket
  // may start reducing (a frozen layer's range lies outside the gradient buffer).
  void backward(const Tensor& doutput, const std::function<void(std::size_t)>& on_layer_done = {});
  // Every layer with parameters can add to its gradients instead of overwriting them.
  bool can_accumulate_grads() const;
  // From now on backward adds parameter gradients to the gradient buffers (true) or overwrites
  // them (false, the default).
  void set_accumulate_grads(bool accumulate);

  // After a training step's micro-batches: every layer's end_step (collective with ctx.ranks).
  void end_step(const ForwardContext& ctx);

  std::string summary() const;

 private:
  void place_parameters();  // the flat layout and every layer's views into it
  void ensure_buffers(std::int64_t rows);
  void bind_views();  // points every Parameter's value, grad and compute into the flat buffers
  void place_buffers(const std::vector<Shape>& inputs);

  Shape input_;
  std::vector<std::unique_ptr<Layer>> layers_;
  std::vector<Shape> shapes_;  // shapes_[i] = per-sample output shape of layer i
  std::vector<Parameter> parameters_;
  std::vector<std::pair<std::int64_t, std::int64_t>> layer_ranges_;
  std::int64_t trainable_ = 0;         // parameters of trainable layers: the prefix of the flat buffers
  std::size_t lowest_trainable_ = 0;
  Tensor params_, grads_;
  std::vector<Buffer> buffer_list_;
  Tensor buffers_;
  DType compute_ = DType::kF32;
  Tensor compute_params_;  // bf16 copy of params_ (bf16 compute only)
  Tensor input_cast_;      // the input rounded to bf16 (bf16 compute only)
  std::int64_t rows_ = -1;
  std::vector<Tensor> acts_;   // acts_[i] = output of layer i
  std::vector<Tensor> dacts_;  // gradient w.r.t. the output of layer i (from the first backward)
  Tensor input_view_;
};

}  // namespace lockstep::nn
