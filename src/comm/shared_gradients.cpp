// The node-local gradient reduction through a shared window (see shared_gradients.hpp).
#include "lockstep/comm/shared_gradients.hpp"

#include <algorithm>

namespace lockstep::comm {

SharedGradients::SharedGradients(Communicator& comm, std::int64_t n, std::size_t replicated, std::int64_t first)
    : comm_(comm),
      n_(n),
      stride_((n + 15) / 16 * 16),
      first_stride_((std::max(n, first) + 15) / 16 * 16),
      replicated_(replicated) {
  LOCKSTEP_CHECK(replicated >= 1, Error, "SharedGradients: expected at least one replicated buffer");
  const std::int64_t r = comm.rank(), np = comm.size();
  shard_ = {n * r / np, n * (r + 1) / np};
  const std::size_t buffers = replicated - 1 + static_cast<std::size_t>(np);
  window_ = comm.allocate_shared((static_cast<std::size_t>(first_stride_) + buffers * static_cast<std::size_t>(stride_)) *
                                 sizeof(float));
}

float* SharedGradients::replicated(std::size_t k) {
  LOCKSTEP_CHECK(k < replicated_, Error, "SharedGradients: buffer ", k, " of ", replicated_);
  if (k == 0) return static_cast<float*>(window_->data());
  return static_cast<float*>(window_->data()) + first_stride_ + (k - 1) * static_cast<std::size_t>(stride_);
}

float* SharedGradients::grads(int rank) {
  return static_cast<float*>(window_->data()) + first_stride_ +
         (replicated_ - 1 + static_cast<std::size_t>(rank)) * static_cast<std::size_t>(stride_);
}

void SharedGradients::fence() {
  window_->fence();
}

void SharedGradients::reduce_shard() {
  const int np = comm_.size();
  const float* g0 = grads(0);
  float* mine = grads(comm_.rank());
  if (np == 2) {  // the common case, written so the compiler vectorises it
    const float* g1 = grads(1);
    for (std::int64_t i = shard_.begin; i < shard_.end; ++i) mine[i] = g0[i] + g1[i];
    return;
  }
  for (std::int64_t i = shard_.begin; i < shard_.end; ++i) {
    float acc = g0[i];
    for (int r = 1; r < np; ++r) acc += g0[r * stride_ + i];
    mine[i] = acc;
  }
}

}  // namespace lockstep::comm
