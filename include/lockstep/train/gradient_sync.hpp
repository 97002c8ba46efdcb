// GradientSync: how the replicas of one step agree on a gradient. The trainer's step is the same
// for every strategy:
//
//   sync.begin_step();
//   for each micro-batch: forward; loss (scaled by sync.loss_scale()); backward, calling
//                         sync.ready(end) as each layer's gradients land; sync.end_micro_batch();
//   sync.finish();                       // the flat gradients now hold the reduced gradient
//   u = sync.update(); optimizer over [u.begin, u.end) with u.grad_scale
//   sync.after_update();                 // the updated parameters are visible to every replica
//
// One implementation per strategy:
// - buckets: contiguous slices of the gradient buffer allreduced as soon as backward has passed
//   them (MPI on a progress thread, or NCCL on its own stream);
// - shared window: the ranks of one node write gradients into shared memory and each sums and
//   updates its own shard (comm::SharedGradients);
// - exact: micro-batches of a fixed shape summed in 128-bit fixed point, bit-identical at any
//   number of ranks (comm::ExactGradientSum).
#pragma once

#include <cstdint>
#include <memory>

#include "lockstep/comm/communicator.hpp"
#include "lockstep/nn/optimizer.hpp"
#include "lockstep/nn/sequential.hpp"

namespace lockstep::train {

class GradientSync {
 public:
  struct Update {
    std::int64_t begin, end;  // the elements this rank updates
    double grad_scale;        // the optimizer uses grads * grad_scale
  };

  virtual ~GradientSync() = default;
  virtual const char* name() const = 0;
  // What each micro-batch's loss sum is multiplied by before backward.
  virtual float loss_scale() const = 0;
  virtual void begin_step() {}
  // Backward has written the final gradients of elements [0, end) of the flat buffer.
  virtual void ready(std::int64_t end) { (void)end; }
  virtual void end_micro_batch() {}
  // Completes the reduction; returns the seconds spent waiting for other ranks.
  virtual double finish() = 0;
  virtual Update update() const = 0;
  // Returns the seconds spent waiting for other ranks.
  virtual double after_update() { return 0.0; }
};

struct SyncOptions {
  std::int64_t local_batch = 0;   // rows per rank per step
  std::int64_t global_batch = 0;  // rows per step over all ranks
  bool deterministic = false;
  bool shared_memory = false;  // one node, CPU: reduce through a shared window
  double bucket_mb = 1.0;
  bool overlap = true;
};

// Picks the strategy: exact when deterministic, the shared window when asked for and every rank
// is on one node (CPU), buckets otherwise. grad_comm reduces the buckets (MPI, or NCCL for device
// gradients); comm is the host communicator. The shared window takes over the model's flat
// buffers and the optimizer state (rank 0's values seed it), so build the sync after loading
// or resuming them. Collective.
std::unique_ptr<GradientSync> make_gradient_sync(comm::Communicator& comm, comm::Communicator& grad_comm,
                                                 nn::Sequential& model, nn::Optimizer& optimizer,
                                                 const SyncOptions& options);

}  // namespace lockstep::train
