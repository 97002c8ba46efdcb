// SharedGradients: gradient reduction through memory, for the ranks of one node. One MPI-3 shared
// window holds `replicated` buffers that every rank reads (the parameters, the optimizer state)
// and one gradient buffer per rank. A step then needs no message: each rank writes its gradients
// into its own buffer, and after a fence each rank sums the slice of the buffer it owns (its
// shard, 1/np of the elements) over all ranks, in rank order, so the sum has the same bits on
// every run. The caller updates only its shard of the replicated buffers and fences again before
// anyone reads them.
#pragma once

#include <cstdint>
#include <memory>

#include "lockstep/comm/communicator.hpp"

namespace lockstep::comm {

class SharedGradients {
 public:
  struct Shard {
    std::int64_t begin, end;  // elements
  };

  // Collective over a communicator whose ranks share one node. n: elements per buffer (the
  // gradients, the shard's range). first: the elements of replicated buffer 0 when it is longer
  // than n (every parameter, when the first n are the trainable ones and the rest are frozen).
  SharedGradients(Communicator& comm, std::int64_t n, std::size_t replicated, std::int64_t first = 0);

  std::int64_t size() const { return n_; }
  float* replicated(std::size_t k);       // k < replicated: the same memory on every rank, 64-byte aligned
  float* grads(int rank);                 // rank's gradient buffer
  Shard shard() const { return shard_; }  // this rank's elements: [n*r/np, n*(r+1)/np)

  // Every rank's writes before it are visible to every rank after it (a barrier).
  void fence();
  // Sums shard() over every rank's gradient buffer into this rank's buffer, in rank order.
  // Call between two fences: after the gradients are written, before anyone writes them again.
  void reduce_shard();

 private:
  Communicator& comm_;
  std::int64_t n_, stride_, first_stride_;
  std::size_t replicated_;
  Shard shard_;
  std::unique_ptr<SharedWindow> window_;
};

}  // namespace lockstep::comm
