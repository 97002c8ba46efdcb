// Layers with explicit forward and backward. A layer declares its parameters (name and shape);
// the model owning it places every parameter and gradient in one flat buffer and binds views
// into it, so gradients can be reduced in contiguous buckets without packing.
//
// Shapes are per sample: flat ({784}) or channels x height x width ({1, 28, 28}). They flow from
// the data source through every layer (output_shape); a batch is a tensor [rows, ...shape],
// row-major and contiguous, so a layer that needs a matrix views it as [rows, numel(shape)].
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "lockstep/core/int128.hpp"
#include "lockstep/core/tensor.hpp"

namespace lockstep::nn {

struct ParamSpec {
  std::string name;  // local to the layer: "weight", "bias"
  Shape shape;
  std::int64_t fan_in = 0, fan_out = 0;
  bool is_bias = false;
  bool is_scale = false;  // initialised to one (batch norm's weight), not drawn
};

// Non-trainable state a layer keeps across steps (batch norm's running statistics). Buffers live
// in the model's flat buffer vector beside the parameters, never in the optimizer or in gradient
// buckets; rank 0's are broadcast at start, checkpoints save them, resume and evaluate restore them.
struct BufferSpec {
  std::string name;  // local to the layer: "running_mean"
  Shape shape;
  float initial = 0.0f;
};
struct Buffer {
  std::string name;  // global: "batchnorm1.running_mean"
  Tensor value;      // float32, a view into the model's flat buffers
  std::int64_t offset = 0;
  BufferSpec spec;
};

// The ranks training together, as a layer sees them (sync batch norm): nn does not depend on comm,
// so the trainer passes an implementation of this. Sums are exact (fixed point), so their bits do
// not depend on how rows are split between ranks.
class CrossRank {
 public:
  virtual ~CrossRank() = default;
  virtual int size() const = 0;
  virtual void sum(int128* v, std::size_t n) const = 0;  // in place, over every rank
  virtual void mean(float* v, std::size_t n) const = 0;            // in place, over every rank
};

struct Parameter {
  std::string name;         // global: "dense0.weight"
  Tensor value;             // float32 master copy: what the optimizer updates and checkpoints hold
  Tensor grad;              // float32, or bf16 when gradients are reduced in bf16
  Tensor compute;           // what forward and backward read: `value` itself, or its bf16 copy
  std::int64_t offset = 0;  // in the flat buffers, in elements
  ParamSpec spec;
};

// What a forward pass needs to know beyond its input.
struct ForwardContext {
  bool training = false;
  std::uint64_t seed = 0;
  std::uint64_t epoch = 0;
  const std::int64_t* sample_ids = nullptr;  // global index of each row (dropout masks key on it)
  const CrossRank* ranks = nullptr;          // training only; null: one process
  bool deterministic = false;                // training.deterministic: fixed-size micro-batches
};

class Layer {
 public:
  virtual ~Layer() = default;
  virtual std::string type() const = 0;
  // The per-sample shape out for a per-sample shape in; throws ConfigError if the layer cannot
  // take that input.
  virtual Shape output_shape(const Shape& input) const = 0;
  virtual std::vector<ParamSpec> param_specs(const Shape& input) const { return {}; }
  // Views into the model's flat buffers, in param_specs order.
  virtual void bind(std::vector<Parameter*> params) {}
  // y is preallocated [rows, ...output_shape]; the layer keeps what backward needs.
  virtual void forward(const Tensor& x, Tensor& y, const ForwardContext& ctx) = 0;
  // Writes parameter gradients (overwriting) and, if dx is non-null, the input gradient.
  virtual void backward(const Tensor& dy, Tensor* dx) = 0;

  // Buffers (non-trainable state), like parameters: specs for an input shape, then views into the
  // model's flat buffer vector in buffer_specs order.
  virtual std::vector<BufferSpec> buffer_specs(const Shape& input) const { return {}; }
  virtual void bind_buffers(std::vector<Buffer*> buffers) {}
  // After every micro-batch of a training step has gone through forward and backward: state that
  // must agree across ranks is agreed here (collective when ctx.ranks is set).
  virtual void end_step(const ForwardContext& ctx) {}

  // `trainable: false` (a key any layer spec may carry, read by make_layer): the layer's parameters
  // are frozen. Its backward then writes no parameter gradients (their `grad` views are empty: the
  // model keeps gradients for trainable parameters only) and still writes dx when asked; batch norm
  // runs in inference mode. A container (residual) passes the flag to the layers inside it.
  bool trainable() const { return trainable_; }
  virtual void set_trainable(bool t) { trainable_ = t; }

  // Whether backward can add its parameter gradients to what their buffers hold (the tiled step's
  // running sum of one rank's tiles), as exactly `sum + this tile's gradient` rounded once, so the
  // sum is the same bits as adding separately computed tile gradients. Layers without parameters
  // trivially can.
  virtual bool can_accumulate_grads() const { return true; }
  void set_accumulate_grads(bool a) { accumulate_grads_ = a; }

 protected:
  bool trainable_ = true;
  bool accumulate_grads_ = false;
};

}  // namespace lockstep::nn
