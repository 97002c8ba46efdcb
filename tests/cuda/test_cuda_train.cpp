// Training on GPUs (one per rank, gradients reduced by NCCL) against the same run on CPUs (MPI):
// the loss curve and the final parameters agree within float32 tolerances. Needs one CUDA device
// per rank; otherwise every rank skips (an agreed decision, so no rank waits alone).
#include <gtest/gtest.h>

#include <cmath>

#include "lockstep/backend/cuda_runtime.hpp"
#include "lockstep/train/trainer.hpp"
#include "support/test_comm.hpp"

using namespace lockstep;
using lockstep::testing::world;

namespace {

const char* kConfig = R"(
data:
  format: synthetic
  synthetic: {samples: 1536, test_samples: 384, features: 12, classes: 3, seed: 11, noise: 2.0}
model:
  layers: [{type: dense, units: 24}, {type: relu}, {type: dropout, rate: 0.2}, {type: dense, units: 16},
           {type: tanh}, {type: dense, units: 3}]
optimizer: {type: sgd, lr: 0.05, momentum: 0.9}
training: {epochs: 3, batch_size: 48, seed: 9, bucket_mb: 0.0005}
output: {progress: none}
)";

struct TrainResult {
  std::vector<double> losses;
  std::vector<float> params;
};

TrainResult train_on(const std::string& device, const std::string& dir, std::vector<std::string> overrides = {}) {
  auto& w = world();
  overrides.push_back("training.device=" + device);
  overrides.push_back("output.dir=" + dir);
  auto cfg = io::parse_config(kConfig, "test", overrides);
  auto tr = train::load_split(w, cfg.data, train::Split::kTrain);
  auto te = train::load_split(w, cfg.data, train::Split::kTest);
  train::Trainer trainer(w, cfg, std::move(tr), std::move(te));
  TrainResult run;
  for (const auto& e : trainer.run()) run.losses.push_back(e.train_loss);
  const Tensor p = trainer.model().flat_params().clone(Device::kCpu);
  run.params.assign(p.data<float>(), p.data<float>() + p.numel());
  return run;
}

}  // namespace

TEST(CudaTraining, NcclRunMatchesTheCpuRun) {
  auto& w = world();
  const int gpus = backend::cuda::device_count();
  if (!w.allreduce<std::int32_t>(gpus >= w.local_size() ? 1 : 0, comm::ReduceOp::kMin))
    GTEST_SKIP() << "no CUDA device for every rank (this host has " << gpus << " for " << w.local_size() << " ranks)";
  const auto dir = lockstep::testing::shared_temp_dir("cuda-train");
  const TrainResult cpu = train_on("cpu", (dir / "cpu").string());
  const TrainResult gpu = train_on("cuda", (dir / "cuda").string());
  ASSERT_EQ(cpu.losses.size(), gpu.losses.size());
  for (std::size_t e = 0; e < cpu.losses.size(); ++e)
    EXPECT_NEAR(gpu.losses[e], cpu.losses[e], 1e-3 * std::max(1.0, cpu.losses[e])) << "epoch " << e + 1;
  double max_diff = 0.0;
  for (std::size_t i = 0; i < cpu.params.size(); ++i)
    max_diff = std::max(max_diff, std::fabs(double(gpu.params[i]) - cpu.params[i]));
  EXPECT_LT(max_diff, 1e-2) << "parameters after 3 epochs";
}

TEST(CudaTraining, Bf16NcclRunTracksTheCpuRun) {
  // precision: bf16 on GPUs, gradients reduced by NCCL in bf16 and in float32, against the CPU
  // backend's bf16 emulation (float32 reduction over MPI): the loss curves agree to bf16 rounding.
  auto& w = world();
  const int gpus = backend::cuda::device_count();
  if (!w.allreduce<std::int32_t>(gpus >= w.local_size() ? 1 : 0, comm::ReduceOp::kMin))
    GTEST_SKIP() << "no CUDA device for every rank (this host has " << gpus << " for " << w.local_size() << " ranks)";
  const auto dir = lockstep::testing::shared_temp_dir("cuda-bf16");
  const TrainResult cpu = train_on("cpu", (dir / "cpu").string(), {"training.precision=bf16"});
  for (const char* reduce : {"fp32", "bf16"}) {
    const TrainResult gpu = train_on("cuda", (dir / (std::string("cuda-") + reduce)).string(),
                                     {"training.precision=bf16", std::string("training.reduce_precision=") + reduce});
    ASSERT_EQ(cpu.losses.size(), gpu.losses.size());
    for (std::size_t e = 0; e < cpu.losses.size(); ++e)
      EXPECT_NEAR(gpu.losses[e], cpu.losses[e], 0.05 * cpu.losses[e] + 0.01) << reduce << " reduction, epoch " << e + 1;
    const auto all = w.allgather<float>(gpu.params[0]);
    for (float p : all) EXPECT_EQ(p, all[0]) << "replicas differ (" << reduce << " reduction)";
  }
}
