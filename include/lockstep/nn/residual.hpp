// Residual: a block whose output is inner(x) + shortcut(x), so that ResNets can be written in YAML:
//   {type: residual, layers: [{type: conv2d, ...}, {type: batchnorm}, {type: relu}, ...],
//    shortcut: identity}             # or a layer ({type: conv2d, ...}) or a list of layers
// The inner layers and the shortcut are any registered layer types; their output shapes must
// match (a ConfigError naming the block's `shortcut` key otherwise). From the model's view the block
// is one layer: its parameters (and buffers) are those of its inner layers, named
// "residual<i>.<type><j>.<name>" and "residual<i>.shortcut.<type><j>.<name>", and all of them are
// written by the block's backward, before the model's ready hook names the block.
#pragma once

#include <memory>
#include <vector>

#include "lockstep/nn/layer.hpp"

namespace lockstep::nn {

class Residual final : public Layer {
 public:
  // shortcut empty: the identity. where: the block's place in the config, for messages.
  Residual(std::vector<std::unique_ptr<Layer>> inner, std::vector<std::unique_ptr<Layer>> shortcut,
           std::string where = "residual");
  std::string type() const override { return "residual"; }
  Shape output_shape(const Shape& input) const override;
  std::vector<ParamSpec> param_specs(const Shape& input) const override;
  void bind(std::vector<Parameter*> params) override;
  std::vector<BufferSpec> buffer_specs(const Shape& input) const override;
  void bind_buffers(std::vector<Buffer*> buffers) override;
  void forward(const Tensor& x, Tensor& y, const ForwardContext& ctx) override;
  void backward(const Tensor& dy, Tensor* dx) override;
  bool can_accumulate_grads() const override { return false; }  // writes its gradients
  void end_step(const ForwardContext& ctx) override;
  void set_trainable(bool t) override;  // the block's flag covers every layer inside it

 private:
  struct Branch {
    std::vector<std::unique_ptr<Layer>> layers;
    std::vector<Shape> in;           // per-sample input shape of each layer
    std::vector<std::size_t> nparams, nbuffers;
    std::vector<Tensor> acts, dacts;  // acts[j] = output of layer j
  };
  void plan(const Shape& input) const;
  static void ensure(Branch& b, const Tensor& x);
  static void run_forward(Branch& b, const Tensor& x, const ForwardContext& ctx);
  static void run_backward(Branch& b, const Tensor& dy, Tensor* dx);

  mutable Branch inner_, shortcut_;
  std::string where_;
  Tensor dshort_;  // the shortcut's input gradient
};

}  // namespace lockstep::nn
