// Batch norm across ranks, inside one launch at several rank counts (the world split into groups
// of every size that divides it, as test_trainer.cpp does):
//  - SyncBatchNorm over a group's rows equals BatchNorm over the same global batch in one process
//    (forward, input gradient, parameter gradients summed over ranks, running statistics), and has
//    the same bits at every group size;
//  - deterministic training of a network with batch norm and a residual block ends with the same
//    parameters and running statistics at every group size;
//  - a run stopped at a checkpoint and resumed ends with the same parameters, buffers and test
//    evaluation as an uninterrupted one, and load_parameters (evaluate, predict) restores buffers.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>

#include "lockstep/core/rng.hpp"
#include "lockstep/io/checkpoint.hpp"
#include "lockstep/nn/batchnorm.hpp"
#include "lockstep/train/checkpointing.hpp"
#include "lockstep/train/comm_ranks.hpp"
#include "lockstep/train/trainer.hpp"
#include "support/test_comm.hpp"

using namespace lockstep;
using lockstep::testing::world;

namespace {

std::vector<float> values(std::size_t n, std::uint64_t stream, float lo, float hi) {
  CounterRng rng(5, RngStream::kUser, stream);
  std::vector<float> v(n);
  for (auto& x : v) x = lo + (hi - lo) * rng.uniform();
  return v;
}

struct BnRun {
  std::vector<float> y, dx, dw, db, running;
};

// One training forward and backward of a 2-D batch norm (C = 3, 2 x 2) on rows [begin, end) of a
// fixed global batch of 12 rows; parameter gradients summed over `ranks` (as the gradient sync does).
BnRun run_bn(bool sync, const nn::CrossRank* ranks, comm::Communicator* comm, std::int64_t begin, std::int64_t end) {
  const std::int64_t c = 3, s = 4, rows = end - begin, per = c * s;
  nn::BatchNorm bn({0.1, 1e-5, true, sync});
  std::vector<nn::Parameter> params(2);
  std::vector<nn::Buffer> bufs(3);
  const auto specs = bn.param_specs({c, 2, 2});
  for (int k = 0; k < 2; ++k) {
    params[k].spec = specs[k];
    params[k].value = Tensor({c});
    std::memcpy(params[k].value.data<float>(), values(3, 10 + k, 0.5f, 1.5f).data(), 3 * sizeof(float));
    params[k].grad = Tensor({c});
    params[k].compute = params[k].value;
  }
  bn.bind({&params[0], &params[1]});
  const auto bspecs = bn.buffer_specs({c, 2, 2});
  for (int k = 0; k < 3; ++k) {
    bufs[k].spec = bspecs[k];
    bufs[k].value = Tensor(bspecs[k].shape);
    std::fill_n(bufs[k].value.data<float>(), bufs[k].value.numel(), bspecs[k].initial);
  }
  bn.bind_buffers({&bufs[0], &bufs[1], &bufs[2]});
  const auto gx = values(static_cast<std::size_t>(12 * per), 1, -3.0f, 4.0f);
  const auto gdy = values(static_cast<std::size_t>(12 * per), 2, -1.0f, 1.0f);
  Tensor x({rows, c, 2, 2}), y(x.shape()), dy(x.shape()), dx(x.shape());
  std::memcpy(x.data<float>(), gx.data() + begin * per, static_cast<std::size_t>(rows * per) * sizeof(float));
  std::memcpy(dy.data<float>(), gdy.data() + begin * per, static_cast<std::size_t>(rows * per) * sizeof(float));
  nn::ForwardContext ctx;
  ctx.training = true;
  ctx.ranks = ranks;
  bn.forward(x, y, ctx);
  bn.backward(dy, &dx);
  BnRun r;
  r.y.assign(y.data<float>(), y.data<float>() + y.numel());
  r.dx.assign(dx.data<float>(), dx.data<float>() + dx.numel());
  r.dw.assign(params[0].grad.data<float>(), params[0].grad.data<float>() + c);
  r.db.assign(params[1].grad.data<float>(), params[1].grad.data<float>() + c);
  if (comm) {
    comm->allreduce(std::span<float>(r.dw), comm::ReduceOp::kSum);
    comm->allreduce(std::span<float>(r.db), comm::ReduceOp::kSum);
    // The rows of every rank, in rank order: the whole batch's outputs and input gradients.
    for (auto* v : {&r.y, &r.dx}) {
      std::string mine(reinterpret_cast<const char*>(v->data()), v->size() * sizeof(float));
      std::vector<float> all;
      for (const auto& part : comm->allgather_strings(mine)) {
        const auto* p = reinterpret_cast<const float*>(part.data());
        all.insert(all.end(), p, p + part.size() / sizeof(float));
      }
      *v = all;
    }
  }
  for (int k = 0; k < 2; ++k) r.running.insert(r.running.end(), bufs[k].value.data<float>(), bufs[k].value.data<float>() + c);
  return r;
}

// A CrossRank of one process: what sync batch norm sees at np = 1.
class OneRank final : public nn::CrossRank {
 public:
  int size() const override { return 1; }
  void sum(int128*, std::size_t) const override {}
  void mean(float*, std::size_t) const override {}
};

void expect_near(const std::vector<float>& a, const std::vector<float>& b, double tol, const std::string& what) {
  ASSERT_EQ(a.size(), b.size()) << what;
  for (std::size_t i = 0; i < a.size(); ++i) EXPECT_NEAR(a[i], b[i], tol) << what << "[" << i << "]";
}

}  // namespace

TEST(SyncBatchNorm, EqualsBatchNormOnTheGlobalBatchAtEveryRankCount) {
  auto& w = world();
  const BnRun plain = run_bn(false, nullptr, nullptr, 0, 12);     // BatchNorm, one process, 12 rows
  const OneRank solo;
  const BnRun one = run_bn(true, &solo, nullptr, 0, 12);  // SyncBatchNorm at np = 1
  expect_near(one.y, plain.y, 1e-5, "y");
  expect_near(one.dx, plain.dx, 1e-5, "dx");
  expect_near(one.dw, plain.dw, 1e-4, "dweight");
  expect_near(one.db, plain.db, 1e-5, "dbias");
  expect_near(one.running, plain.running, 1e-6, "running statistics");
  for (int g = w.size(); g >= 1; --g) {
    if (w.size() % g != 0 || 12 % g != 0) continue;
    auto sub = w.split(w.rank() / g, w.rank());
    train::CommRanks ranks(*sub);
    const std::int64_t per = 12 / g;
    const BnRun r = run_bn(true, &ranks, sub.get(), sub->rank() * per, (sub->rank() + 1) * per);
    // The exact sums make the statistics, so the outputs and the input gradient, the same bits.
    EXPECT_EQ(r.y, one.y) << "np=" << g;
    EXPECT_EQ(r.dx, one.dx) << "np=" << g;
    EXPECT_EQ(r.running, one.running) << "np=" << g;
    expect_near(r.dw, plain.dw, 1e-4, "dweight np=" + std::to_string(g));
    expect_near(r.db, plain.db, 1e-5, "dbias np=" + std::to_string(g));
  }
}

namespace {

const char* kConfig = R"(
data:
  format: synthetic
  synthetic: {samples: 768, test_samples: 192, features: 6, classes: 3, seed: 11, noise: 1.5}
model:
  layers:
    - {type: dense, units: 8}
    - {type: batchnorm}
    - {type: relu}
    - type: residual
      layers: [{type: dense, units: 8}, {type: batchnorm, sync: true}, {type: relu}, {type: dense, units: 8}]
      shortcut: identity
    - type: residual
      layers: [{type: dense, units: 5}, {type: batchnorm, momentum: 0.2}]
      shortcut: {type: dense, units: 5}
    - {type: relu}
    - {type: dense, units: 3}
optimizer: {type: sgd, lr: 0.05, momentum: 0.9}
training: {epochs: 2, batch_size: 48, seed: 9, micro_batch: 4, deterministic: true}
checkpoint: {every_steps: 0, at_epoch_end: true}
output: {progress: none}
)";

struct Result {
  std::vector<float> params, buffers;
  double test_loss = 0.0;
};

Result train_once(comm::Communicator& comm, const std::string& dir, std::vector<std::string> ov,
                  std::int64_t max_steps = 0, const std::string& resume = "") {
  ov.push_back("output.dir=" + dir);
  const auto cfg = io::parse_config(kConfig, "bn-config", ov);
  auto tr = train::load_split(comm, cfg.data, train::Split::kTrain);
  auto te = train::load_split(comm, cfg.data, train::Split::kTest);
  train::Trainer trainer(comm, cfg, std::move(tr), std::move(te));
  if (!resume.empty()) trainer.resume_from(resume);
  trainer.set_max_steps(max_steps);
  const auto history = trainer.run();
  Result r;
  const auto& p = trainer.model().flat_params();
  const auto& b = trainer.model().flat_buffers();
  r.params.assign(p.data<float>(), p.data<float>() + p.numel());
  r.buffers.assign(b.data<float>(), b.data<float>() + b.numel());
  if (!history.empty()) r.test_loss = history.back().test.loss;
  return r;
}

}  // namespace

TEST(BatchNormTraining, DeterministicModeIsBitIdenticalAtEveryRankCount) {
  auto& w = world();
  const auto dir = lockstep::testing::shared_temp_dir("bn_det");
  std::vector<std::pair<int, Result>> runs;
  for (int g = w.size(); g >= 1; --g) {
    if (w.size() % g != 0 || 48 % g != 0) continue;
    auto sub = w.split(w.rank() / g, w.rank());
    const auto d = dir / ("np" + std::to_string(g) + "_" + std::to_string(w.rank() / g));
    runs.emplace_back(g, train_once(*sub, d.string(), {}));
  }
  const Result& ref = runs.back().second;  // np = 1
  EXPECT_GT(ref.buffers.size(), 0u);
  EXPECT_NE(ref.buffers[0], 0.0f) << "the running mean never moved";
  for (const auto& [g, r] : runs) {
    EXPECT_EQ(r.params, ref.params) << "np=" << g;
    EXPECT_EQ(r.buffers, ref.buffers) << "np=" << g;
    // The test loss is a double sum over each rank's rows, added across ranks: equal up to rounding.
    EXPECT_NEAR(r.test_loss, ref.test_loss, 1e-12 * ref.test_loss) << "np=" << g;
  }
}

TEST(BatchNormTraining, ResumeRestoresBuffersAndEvaluatesIdentically) {
  auto& w = world();
  for (const char* mode : {"training.deterministic=true", "training.deterministic=false"}) {
    const auto dir = lockstep::testing::shared_temp_dir(std::string("bn_resume_") + (mode[23] == 't' ? "d" : "n"));
    const auto full = train_once(w, (dir / "full").string(), {mode});
    train_once(w, (dir / "split").string(), {mode}, 20);  // 16 steps an epoch: stops inside the second
    const std::string ckpt = (dir / "split" / "checkpoint.h5").string();
    if (w.rank() == 0) {
      const auto st = io::load_checkpoint(ckpt);
      EXPECT_EQ(st.buffers.size(), full.buffers.size());
      EXPECT_EQ(st.buffer_layout.size(), 3u * 3u);
    }
    const auto resumed = train_once(w, (dir / "split").string(), {mode}, 0, ckpt);
    EXPECT_EQ(resumed.params, full.params) << mode;
    EXPECT_EQ(resumed.buffers, full.buffers) << mode;
    EXPECT_EQ(resumed.test_loss, full.test_loss) << mode;
    // evaluate / predict: a fresh model gets the buffers from the checkpoint.
    const auto cfg = io::parse_config(kConfig, "bn-config", {mode});
    auto model = train::build_model(cfg, {6});
    train::load_parameters(w, (dir / "full" / "checkpoint.h5").string(), *model);
    const auto& b = model->flat_buffers();
    EXPECT_EQ(std::vector<float>(b.data<float>(), b.data<float>() + b.numel()), full.buffers) << mode;
  }
}

TEST(BatchNormTraining, ACheckpointWithoutBuffersIsRejectedNamingThem) {
  auto& w = world();
  const auto dir = lockstep::testing::shared_temp_dir("bn_nobuf");
  const std::string path = (dir / "old.h5").string();
  const auto cfg = io::parse_config(kConfig, "bn-config", {});
  auto model = train::build_model(cfg, {6});
  if (w.rank() == 0) {
    io::CheckpointState st;
    const auto& p = model->flat_params();
    st.params.assign(p.data<float>(), p.data<float>() + p.numel());
    st.layout = train::param_layout(*model);
    io::save_checkpoint(path, st);
  }
  w.barrier();
  try {
    train::load_parameters(w, path, *model);
    FAIL() << "a checkpoint without /buffers was accepted for a batch-norm model";
  } catch (const CheckpointError& e) {
    EXPECT_NE(std::string(e.what()).find("no /buffers group"), std::string::npos) << e.what();
  }
}
