// The three gradient-synchronisation strategies behind GradientSync (see gradient_sync.hpp).
#include "lockstep/train/gradient_sync.hpp"
#include "lockstep/core/clock.hpp"

#include "lockstep/comm/gradient_buckets.hpp"
#include "lockstep/comm/shared_gradients.hpp"

namespace lockstep::train {
namespace {

// Buckets allreduced during backward. MPI sums and the update divides by np on the way in (one
// pass fewer over the buffer); NCCL averages in the reduction itself (ncclAvg), which also keeps
// bf16 sums in range.
class BucketSync final : public GradientSync {
 public:
  BucketSync(comm::Communicator& grad_comm, int np, nn::Sequential& model, const SyncOptions& o)
      : model_(model), loss_scale_(1.0f / static_cast<float>(o.local_batch)) {
    const bool device = model.device() != Device::kCpu;  // device gradients: grad_comm is NCCL
    grad_scale_ = device ? 1.0 : 1.0 / np;
    std::vector<std::pair<std::int64_t, std::int64_t>> ranges;
    for (const auto& p : model.parameters())  // the trainable ones: the prefix the gradient buffer holds
      if (p.offset < model.num_trainable_params()) ranges.emplace_back(p.offset, p.offset + p.value.numel());
    buckets_ = std::make_unique<comm::GradientBuckets>(
        grad_comm, model.num_trainable_params(), ranges, static_cast<std::size_t>(o.bucket_mb * 1024 * 1024), o.overlap,
        device ? comm::ReduceOp::kAvg : comm::ReduceOp::kSum,
        model.grad_dtype() == DType::kBF16 ? comm::CommType::kBF16 : comm::CommType::kF32);
  }
  const char* name() const override { return "buckets"; }
  float loss_scale() const override { return loss_scale_; }
  void begin_step() override { buckets_->begin_step(model_.flat_grads().raw()); }
  void ready(std::int64_t end) override { buckets_->mark_ready(end); }
  double finish() override { return buckets_->finish(); }
  Update update() const override { return {0, model_.num_trainable_params(), grad_scale_}; }

 private:
  nn::Sequential& model_;
  float loss_scale_;
  double grad_scale_ = 1.0;
  std::unique_ptr<comm::GradientBuckets> buckets_;
};

// Every rank on one node: parameters, optimizer state and each rank's gradients live in one
// shared window; each rank reduces and updates its shard.
class SharedWindowSync final : public GradientSync {
 public:
  SharedWindowSync(comm::Communicator& comm, nn::Sequential& model, nn::Optimizer& opt, const SyncOptions& o)
      : np_(comm.size()), loss_scale_(1.0f / static_cast<float>(o.local_batch)) {
    // Gradients, optimizer state and shards cover the trainable prefix; buffer 0, the parameters, all.
    const std::int64_t n = model.num_trainable_params();
    auto state = opt.state();
    shared_ = std::make_unique<comm::SharedGradients>(comm, n, 1 + state.size(), model.num_params());
    // Rank 0's values (identical everywhere after the broadcast or resume) seed the window.
    const bool seed = comm.rank() == 0;
    std::size_t k = 1;
    for (auto& [name, tensor] : state) {
      float* dst = shared_->replicated(k++);
      if (seed) std::copy(tensor->data<float>(), tensor->data<float>() + n, dst);
      *tensor = Tensor::borrow(dst, {n});
    }
    model.relocate(shared_->replicated(0), shared_->grads(comm.rank()), seed);
    shared_->fence();
  }
  const char* name() const override { return "shared window"; }
  float loss_scale() const override { return loss_scale_; }
  double finish() override {
    const auto t0 = Clock::now();
    shared_->fence();  // every rank's gradients are in the window
    const double waited = seconds_since(t0);
    shared_->reduce_shard();
    return waited;
  }
  Update update() const override { return {shared_->shard().begin, shared_->shard().end, 1.0 / np_}; }
  double after_update() override {
    const auto t0 = Clock::now();
    shared_->fence();  // every shard is updated before anyone's next forward pass
    return seconds_since(t0);
  }

 private:
  int np_;
  float loss_scale_;
  std::unique_ptr<comm::SharedGradients> shared_;
};

// Deterministic mode: each micro-batch's gradient sum (loss scale 1) is added in fixed point; the
// exact global sum is divided by the global batch. On a GPU the sum runs on a host copy.
class ExactSync final : public GradientSync {
 public:
  ExactSync(comm::Communicator& comm, nn::Sequential& model, const SyncOptions& o)
      : comm_(comm), model_(model), exact_(model.num_trainable_params()), global_batch_(o.global_batch) {
    if (model.device() != Device::kCpu) host_grads_ = Tensor({model.num_trainable_params()});
  }
  const char* name() const override { return "exact"; }
  float loss_scale() const override { return 1.0f; }
  void begin_step() override { exact_.reset(); }
  void end_micro_batch() override {
    if (host_grads_.defined()) host_grads_.copy_from(model_.flat_grads());
    exact_.add(grads().data<float>());
  }
  double finish() override {
    const auto t0 = Clock::now();
    exact_.allreduce_into(comm_, grads().data<float>(), 1.0 / static_cast<double>(global_batch_));
    const double waited = seconds_since(t0);
    if (host_grads_.defined()) model_.flat_grads().copy_from(host_grads_);
    return waited;
  }
  Update update() const override { return {0, model_.num_trainable_params(), 1.0}; }

 private:
  Tensor& grads() { return host_grads_.defined() ? host_grads_ : model_.flat_grads(); }

  comm::Communicator& comm_;
  nn::Sequential& model_;
  comm::ExactGradientSum exact_;
  std::int64_t global_batch_;
  Tensor host_grads_;
};

}  // namespace

std::unique_ptr<GradientSync> make_gradient_sync(comm::Communicator& comm, comm::Communicator& grad_comm,
                                                 nn::Sequential& model, nn::Optimizer& optimizer,
                                                 const SyncOptions& o) {
  if (o.deterministic) return std::make_unique<ExactSync>(comm, model, o);
  const bool one_node = comm.size() > 1 && comm.local_size() == comm.size();
  if (o.shared_memory && one_node && model.device() == Device::kCpu)
    return std::make_unique<SharedWindowSync>(comm, model, optimizer, o);
  return std::make_unique<BucketSync>(grad_comm, comm.size(), model, o);
}

}  // namespace lockstep::train
