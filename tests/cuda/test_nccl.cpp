// NcclCommunicator's collectives on device buffers, checked against values computed on the host.
// Needs one CUDA device per rank; otherwise every rank skips (the decision is agreed, so no rank
// waits alone in a collective).
#include <gtest/gtest.h>

#include <numeric>

#include "lockstep/backend/cuda_runtime.hpp"
#include "lockstep/comm/nccl_communicator.hpp"
#include "lockstep/core/tensor.hpp"
#include "support/test_comm.hpp"

using namespace lockstep;
using lockstep::testing::world;

namespace {

class Nccl : public ::testing::Test {
 protected:
  void SetUp() override {
    auto& w = world();
    const int gpus = backend::cuda::device_count();
    const int ok = w.allreduce<std::int32_t>(gpus >= w.local_size() ? 1 : 0, comm::ReduceOp::kMin);
    if (!ok) GTEST_SKIP() << "no CUDA device for every rank (this host has " << gpus << " for " << w.local_size() << " ranks)";
    backend::cuda::init_device(w.local_rank());
    nccl_ = comm::make_nccl(w, w.local_rank());
  }
  std::unique_ptr<comm::Communicator> nccl_;
};

Tensor device_filled(std::int64_t n, float value) {
  Tensor h({n});
  for (auto& x : h.span<float>()) x = value;
  return h.clone(Device::kCuda);
}

}  // namespace

TEST_F(Nccl, AllreduceSumAverageMax) {
  const int p = world().size(), r = world().rank();
  Tensor t = device_filled(1000, static_cast<float>(r + 1));
  nccl_->allreduce(t.raw(), 1000, comm::CommType::kF32, comm::ReduceOp::kSum);
  EXPECT_FLOAT_EQ(t.clone(Device::kCpu).data<float>()[999], p * (p + 1) / 2.0f);
  Tensor a = device_filled(10, static_cast<float>(r));
  nccl_->iallreduce(a.raw(), 10, comm::CommType::kF32, comm::ReduceOp::kAvg)->wait();
  EXPECT_FLOAT_EQ(a.clone(Device::kCpu).data<float>()[0], (p - 1) / 2.0f);
  Tensor m = device_filled(10, static_cast<float>(r));
  nccl_->allreduce(m.raw(), 10, comm::CommType::kF32, comm::ReduceOp::kMax);
  EXPECT_FLOAT_EQ(m.clone(Device::kCpu).data<float>()[3], static_cast<float>(p - 1));
}

TEST_F(Nccl, Bf16AverageForGradients) {
  // bf16 gradient buckets: ncclAvg over bfloat16. Values r + 1 are exact in bf16, and so is their
  // mean (p + 1) / 2 for p <= 4.
  const int p = world().size(), r = world().rank();
  Tensor h({64}, DType::kBF16);
  for (auto& x : h.span<bf16>()) x = bf16::from_float(static_cast<float>(r + 1));
  Tensor t = h.clone(Device::kCuda);
  nccl_->iallreduce(t.raw(), 64, comm::CommType::kBF16, comm::ReduceOp::kAvg)->wait();
  EXPECT_EQ(t.clone(Device::kCpu).data<bf16>()[63].to_float(), (p + 1) / 2.0f);
}

TEST_F(Nccl, BroadcastGatherAlltoall) {
  const int p = world().size(), r = world().rank();
  Tensor b = device_filled(16, static_cast<float>(r == 0 ? 7 : -1));
  nccl_->broadcast(b.raw(), b.bytes(), 0);
  EXPECT_FLOAT_EQ(b.clone(Device::kCpu).data<float>()[15], 7.0f);
  // allgatherv: rank q contributes q + 1 floats of value q.
  std::vector<std::size_t> counts(static_cast<std::size_t>(p));
  for (int q = 0; q < p; ++q) counts[static_cast<std::size_t>(q)] = static_cast<std::size_t>(q + 1) * sizeof(float);
  Tensor mine = device_filled(r + 1, static_cast<float>(r));
  Tensor all({static_cast<std::int64_t>(p * (p + 1) / 2)}, DType::kF32, Device::kCuda);
  nccl_->allgatherv(mine.raw(), all.raw(), counts);
  const Tensor h = all.clone(Device::kCpu);
  std::int64_t i = 0;
  for (int q = 0; q < p; ++q)
    for (int k = 0; k <= q; ++k) EXPECT_FLOAT_EQ(h.data<float>()[i++], static_cast<float>(q));
  // alltoall: rank r sends value r*100 + q to rank q.
  Tensor send({p}), recv({p}, DType::kF32, Device::kCuda);
  for (int q = 0; q < p; ++q) send.data<float>()[q] = static_cast<float>(r * 100 + q);
  nccl_->alltoall(send.clone(Device::kCuda).raw(), sizeof(float), recv.raw());
  const Tensor got = recv.clone(Device::kCpu);
  for (int q = 0; q < p; ++q) EXPECT_FLOAT_EQ(got.data<float>()[q], static_cast<float>(q * 100 + r));
}
