// The ranks of a communicator as nn's layers see them (nn::CrossRank): sync batch norm's exact
// sums (int128 fixed point, summed by MPI as 128-bit integers) and the averaging of state the
// replicas must agree on at the end of a step.
#pragma once

#include <span>
#include <vector>

#include "lockstep/comm/communicator.hpp"
#include "lockstep/nn/layer.hpp"

namespace lockstep::train {

class CommRanks final : public nn::CrossRank {
 public:
  explicit CommRanks(comm::Communicator& comm) : comm_(comm) {}
  int size() const override { return comm_.size(); }
  void sum(int128* v, std::size_t n) const override {
    comm_.allreduce(v, n, comm::CommType::kI128, comm::ReduceOp::kSum);
  }
  void mean(float* v, std::size_t n) const override {
    std::vector<double> d(v, v + n);
    comm_.allreduce(std::span<double>(d), comm::ReduceOp::kSum);
    for (std::size_t i = 0; i < n; ++i) v[i] = static_cast<float>(d[i] / comm_.size());
  }

 private:
  comm::Communicator& comm_;
};

}  // namespace lockstep::train
