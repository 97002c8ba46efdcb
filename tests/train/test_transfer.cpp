// Transfer learning: `trainable: false` layers and model.init_from / replace_from / base_trainable.
//  - a frozen layer's parameters sit after the trainable ones; the gradient buffer (which the
//    optimizer and the buckets cover) is the trainable prefix; backward writes no frozen gradient
//    and no input gradient below the lowest trainable layer;
//  - training leaves frozen parameters and frozen batch norms' running statistics bit-identical
//    under every gradient sync (buckets, shared window, exact), while the rest change;
//  - init_from a checkpoint: the new model's base gives the source's outputs at the cut layer,
//    a new head trains, and deterministic runs are bit-identical at every rank count;
//  - the errors name model.init_from / model.replace_from and the file.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <map>

#include "lockstep/core/rng.hpp"
#include "lockstep/io/checkpoint.hpp"
#include "lockstep/nn/dense.hpp"
#include "lockstep/nn/layer_registry.hpp"
#include "lockstep/train/network_file.hpp"
#include "lockstep/train/trainer.hpp"
#include "support/test_comm.hpp"

using namespace lockstep;
using lockstep::testing::world;

namespace {

// An identity layer that records how backward called it.
class Probe final : public nn::Layer {
 public:
  std::string type() const override { return "probe"; }
  Shape output_shape(const Shape& input) const override { return input; }
  void forward(const Tensor& x, Tensor& y, const nn::ForwardContext&) override { y.copy_from(x); }
  void backward(const Tensor& dy, Tensor* dx) override {
    ++calls;
    with_dx = dx != nullptr;
    if (dx) dx->copy_from(dy);
  }
  int calls = 0;
  bool with_dx = false;
};

std::unique_ptr<nn::Layer> dense(std::int64_t units, bool trainable) {
  auto d = std::make_unique<nn::Dense>(units);
  d->set_trainable(trainable);
  return d;
}

Tensor batch(std::int64_t rows, std::int64_t features, std::uint64_t stream) {
  Tensor x({rows, features});
  CounterRng rng(3, RngStream::kUser, stream);
  for (float& v : x.span<float>()) v = 2.0f * rng.uniform() - 1.0f;
  return x;
}

}  // namespace

TEST(Frozen, TrainableParametersAreAPrefixAndBackwardSkipsFrozenGradients) {
  // probe0, dense1 (frozen), probe2, dense3, probe4, dense5 (frozen): the lowest trainable is dense3.
  std::vector<Probe*> probes;
  std::vector<std::unique_ptr<nn::Layer>> layers;
  for (int i = 0; i < 3; ++i) {
    auto p = std::make_unique<Probe>();
    probes.push_back(p.get());
    layers.push_back(std::move(p));
    layers.push_back(dense(4, i == 1));
  }
  nn::Sequential m({5}, std::move(layers));
  const std::int64_t d1 = 5 * 4 + 4, d3 = 4 * 4 + 4, d5 = 4 * 4 + 4;
  EXPECT_EQ(m.num_params(), d1 + d3 + d5);
  EXPECT_EQ(m.num_trainable_params(), d3);
  EXPECT_EQ(m.flat_grads().numel(), d3) << "the gradient buffer (what the buckets reduce) is the trainable prefix";
  EXPECT_EQ(m.lowest_trainable_layer(), 3u);
  EXPECT_EQ(m.layer_param_range(3), (std::pair<std::int64_t, std::int64_t>{0, d3}));
  EXPECT_EQ(m.layer_param_range(5), (std::pair<std::int64_t, std::int64_t>{d3, d3 + d5}));  // frozen, reverse order
  EXPECT_EQ(m.layer_param_range(1), (std::pair<std::int64_t, std::int64_t>{d3 + d5, d3 + d5 + d1}));
  for (const auto& p : m.parameters()) EXPECT_EQ(p.grad.defined(), p.name.rfind("dense3.", 0) == 0) << p.name;
  EXPECT_NE(m.summary().find(std::to_string(d3) + " trainable, " + std::to_string(d1 + d5) + " frozen"),
            std::string::npos)
      << m.summary();

  m.initialize(7, nn::Init::kHeUniform);
  const Tensor x = batch(6, 5, 1);
  m.forward(x, nn::ForwardContext{true});
  std::vector<std::size_t> done;
  m.backward(batch(6, 4, 2), [&](std::size_t i) { done.push_back(i); });
  EXPECT_EQ(done, (std::vector<std::size_t>{5, 4, 3})) << "backward goes no lower than the lowest trainable layer";
  EXPECT_EQ(probes[2]->calls, 1);
  EXPECT_TRUE(probes[2]->with_dx) << "dx flows through the frozen dense5 into dense3";
  EXPECT_EQ(probes[1]->calls, 0) << "no input gradient below the lowest trainable layer";
  EXPECT_EQ(probes[0]->calls, 0);

  // dense3's gradients equal those of the same network with nothing frozen.
  std::vector<std::unique_ptr<nn::Layer>> all;
  for (int i = 0; i < 3; ++i) {
    all.push_back(std::make_unique<Probe>());
    all.push_back(dense(4, true));
  }
  nn::Sequential ref({5}, std::move(all));
  for (const auto& p : m.parameters()) {
    for (const auto& q : ref.parameters()) {
      Tensor dst = q.value;
      if (p.name == q.name) dst.copy_from(p.value);
    }
  }
  ref.forward(x, nn::ForwardContext{true});
  ref.backward(batch(6, 4, 2));
  for (const auto& q : ref.parameters()) {
    if (q.name.rfind("dense3.", 0) != 0) continue;
    for (const auto& p : m.parameters()) {
      if (p.name == q.name) {
        EXPECT_EQ(0, std::memcmp(p.grad.raw(), q.grad.raw(), static_cast<std::size_t>(q.grad.bytes()))) << q.name;
      }
    }
  }
}

TEST(Frozen, NothingFrozenKeepsTheLayout) {
  const auto specs = [](bool flag) {
    std::vector<Spec> s;
    for (const char* t : {"dense", "relu", "dense"}) {
      std::vector<std::pair<std::string, std::string>> p;
      if (std::string(t) == "dense") p.emplace_back("units", "3");
      if (flag) p.emplace_back("trainable", "true");
      s.push_back(nn::layer_spec(t, p));
    }
    return s;
  };
  nn::Sequential plain({4}, specs(false)), flagged({4}, specs(true));
  ASSERT_EQ(plain.parameters().size(), flagged.parameters().size());
  for (std::size_t i = 0; i < plain.parameters().size(); ++i)
    EXPECT_EQ(plain.parameters()[i].offset, flagged.parameters()[i].offset);
  EXPECT_EQ(plain.layer_param_range(2).first, 0) << "the last layer's parameters first, as before";
  EXPECT_EQ(plain.num_trainable_params(), plain.num_params());
}

TEST(Frozen, TrainableInsideAResidualBlockIsAnError) {
  auto specs = std::vector<Spec>{nn::layer_spec("residual")};
  specs[0].children["layers"] = {nn::layer_spec("dense", {{"units", "3"}, {"trainable", "false"}})};
  try {
    nn::Sequential m({3}, specs);
    FAIL() << "trainable on a layer inside a residual block was accepted";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("move it to the block"), std::string::npos) << e.what();
  }
  specs[0].children["layers"] = {nn::layer_spec("dense", {{"units", "3"}})};
  specs[0].params["trainable"] = Param{{"false"}, false, "residual.trainable"};
  nn::Sequential m({3}, specs);
  EXPECT_EQ(m.num_trainable_params(), 0) << "the block's flag covers its layers";
}

namespace {

const char* kFrozenConfig = R"(
data:
  format: synthetic
  synthetic: {samples: 384, test_samples: 96, features: 6, classes: 3, seed: 11, noise: 1.5}
model:
  layers:
    - {type: dense, units: 8, trainable: false}
    - {type: batchnorm, trainable: false}
    - {type: relu}
    - {type: dense, units: 8}
    - {type: batchnorm}
    - {type: relu}
    - {type: dense, units: 8, trainable: false}
    - {type: relu}
    - {type: dense, units: 3}
optimizer: {type: adam, lr: 0.01}
training: {epochs: 2, batch_size: 48, seed: 9, micro_batch: 4}
checkpoint: {every_steps: 0, at_epoch_end: true}
output: {progress: none}
)";

std::map<std::string, std::vector<float>> named(const nn::Sequential& m) {
  std::map<std::string, std::vector<float>> out;
  for (const auto& p : m.parameters()) out[p.name].assign(p.value.data<float>(), p.value.data<float>() + p.value.numel());
  for (const auto& b : m.buffers()) out[b.name].assign(b.value.data<float>(), b.value.data<float>() + b.value.numel());
  return out;
}

bool frozen_name(const std::string& name) {
  for (const char* l : {"dense0.", "batchnorm1.", "dense6."})
    if (name.rfind(l, 0) == 0) return true;
  return false;
}

}  // namespace

TEST(Frozen, TrainingLeavesFrozenLayersBitIdenticalUnderEverySync) {
  auto& w = world();
  for (const char* mode : {"training.shared_memory=false", "training.shared_memory=true", "training.deterministic=true"}) {
    const auto dir = lockstep::testing::shared_temp_dir("frozen");
    const auto cfg = io::parse_config(kFrozenConfig, "frozen-config", {mode, "output.dir=" + dir.string()});
    train::Trainer trainer(w, cfg, train::load_split(w, cfg.data, train::Split::kTrain),
                           train::load_split(w, cfg.data, train::Split::kTest));
    const auto before = named(trainer.model());
    trainer.run();
    const auto after = named(trainer.model());
    const std::int64_t trainable = trainer.model().num_trainable_params();
    EXPECT_EQ(trainable, 8 * 8 + 8 + 2 * 8 + 8 * 3 + 3) << "dense3, batchnorm4 and dense8";
    for (const auto& [name, v] : before) {
      if (frozen_name(name)) {
        EXPECT_EQ(after.at(name), v) << mode << ": frozen " << name << " changed";
      } else if (name.find("num_batches") == std::string::npos && name.find(".bias") == std::string::npos) {
        EXPECT_NE(after.at(name), v) << mode << ": trainable " << name << " did not change";
      }
    }
    if (w.rank() == 0) {  // the checkpoint holds every parameter, the optimizer state only the trainable ones
      const auto st = io::load_checkpoint((dir / "checkpoint.h5").string());
      EXPECT_EQ(static_cast<std::int64_t>(st.params.size()), trainer.model().num_params());
      for (const auto& [name, state] : st.optimizer_state)
        EXPECT_EQ(static_cast<std::int64_t>(state.size()), trainable) << mode << ": optimizer state " << name;
    }
  }
}

TEST(Frozen, EveryLayerFrozenIsAnErrorOnEveryRank) {
  auto& w = world();
  std::string yaml = kFrozenConfig;
  for (const char* layer : {"{type: dense, units: 8}", "{type: batchnorm}", "{type: dense, units: 3}"}) {
    const std::string l = layer;
    yaml.replace(yaml.find(l), l.size(), l.substr(0, l.size() - 1) + ", trainable: false}");
  }
  const auto cfg = io::parse_config(yaml, "frozen-config");
  try {
    train::Trainer trainer(w, cfg, train::load_split(w, cfg.data, train::Split::kTrain),
                           train::load_split(w, cfg.data, train::Split::kTest));
    FAIL() << "a model with every layer frozen was accepted for training";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("nothing to train"), std::string::npos) << e.what();
  }
}

namespace {

const char* kSource = R"(
data:
  format: synthetic
  synthetic: {samples: 768, test_samples: 192, features: 6, classes: 3, seed: 11, noise: 1.5}
model:
  layers:
    - {type: dense, units: 12}
    - {type: batchnorm}
    - {type: relu}
    - {type: dense, units: 8}
    - {type: relu}
    - {type: dense, units: 3}
optimizer: {type: sgd, lr: 0.05, momentum: 0.9}
training: {epochs: 1, batch_size: 48, seed: 9, micro_batch: 4, deterministic: true}
output: {progress: none}
)";

std::string transfer_yaml(const std::string& source, const std::string& extra) {
  std::string y = R"(
data:
  format: synthetic
  synthetic: {samples: 768, test_samples: 192, features: 6, classes: 3, seed: 11, noise: 1.5}
model:
  init_from: )";
  y += source;
  y += "\n" + extra + R"(
optimizer: {type: sgd, lr: 0.05, momentum: 0.9}
training: {epochs: 3, batch_size: 48, seed: 4, micro_batch: 4, deterministic: true}
output: {progress: none}
)";
  return y;
}

const char* kHead = R"(  replace_from: dense3
  base_trainable: false
  layers: [{type: dense, units: 6}, {type: relu}, {type: dense, units: 3}])";

// The source network, trained once per launch by every rank together.
std::string source_checkpoint() {
  static std::string path;
  if (!path.empty()) return path;
  auto& w = world();
  const auto dir = lockstep::testing::shared_temp_dir("transfer_src");
  const auto cfg = io::parse_config(kSource, "source-config", {"output.dir=" + dir.string()});
  train::Trainer trainer(w, cfg, train::load_split(w, cfg.data, train::Split::kTrain),
                         train::load_split(w, cfg.data, train::Split::kTest));
  trainer.run();
  path = (dir / "checkpoint.h5").string();
  return path;
}

io::Config resolved(comm::Communicator& comm, const std::string& yaml, std::vector<std::string> ov = {}) {
  auto cfg = io::parse_config(yaml, "transfer-config", ov);
  train::resolve_init_from(comm, cfg);
  return cfg;
}

std::string error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "(no error)";
}

}  // namespace

TEST(InitFrom, ResolvesTheLayerListIntoTheRunsConfig) {
  auto& w = world();
  const std::string src = source_checkpoint();
  const auto cfg = resolved(w, transfer_yaml(src, kHead));
  ASSERT_EQ(cfg.model.layers.size(), 6u) << "dense0, batchnorm1, relu2, then the head's three layers";
  EXPECT_EQ(cfg.model.init_layers, 3);
  for (std::size_t i = 0; i < 3; ++i) EXPECT_EQ(cfg.model.layers[i].params.at("trainable").values[0], "false");
  EXPECT_EQ(cfg.model.layers[3].params.count("trainable"), 0u);
  // The resolved YAML (config.yaml, the checkpoint's config) needs no second look at the source.
  const std::string yaml = io::to_yaml(cfg);
  EXPECT_NE(yaml.find("init_layers: 3"), std::string::npos) << yaml;
  EXPECT_EQ(yaml.find("replace_from"), std::string::npos) << yaml;
  auto again = io::parse_config(yaml, "config.yaml");
  again.model.init_from = "/nonexistent/source.h5";  // not read again: it is resolved
  train::resolve_init_from(w, again);
  EXPECT_EQ(again.model.layers.size(), 6u);
  EXPECT_EQ(io::config_hash(io::parse_config(yaml, "config.yaml")), io::config_hash(cfg));
  // Without replace_from: every source layer, then model.layers (may be empty).
  const auto whole = resolved(w, transfer_yaml(src, "  layers: []"));
  EXPECT_EQ(whole.model.layers.size(), 6u);
  EXPECT_EQ(whole.model.init_layers, 6);
}

TEST(InitFrom, BaseGivesTheSourcesOutputsAndTheNewHeadTrains) {
  auto& w = world();
  const std::string src = source_checkpoint();
  const auto dir = lockstep::testing::shared_temp_dir("transfer_run");
  const auto cfg = resolved(w, transfer_yaml(src, kHead), {"output.dir=" + dir.string()});
  train::Trainer trainer(w, cfg, train::load_split(w, cfg.data, train::Split::kTrain),
                         train::load_split(w, cfg.data, train::Split::kTest));
  const auto history = trainer.run();
  ASSERT_EQ(history.size(), 3u);
  EXPECT_GT(history.back().test.accuracy, 0.6) << "the new head on the frozen base learns (chance is 1/3)";
  EXPECT_LT(history.back().train_loss, history.front().train_loss);

  // The trained model's first three layers, read back from its checkpoint, compute what the
  // source's first three compute: the base was copied and stayed frozen.
  const auto source = train::read_network(w, src);
  const auto mine = train::read_network(w, (dir / "checkpoint.h5").string());
  auto a = train::build_network(source, 3), b = train::build_network(mine, 3);
  const Tensor x = batch(10, 6, 9);
  const Tensor& ya = a->forward(x, nn::ForwardContext{});
  const Tensor& yb = b->forward(x, nn::ForwardContext{});
  ASSERT_EQ(ya.numel(), 10 * 12);
  EXPECT_EQ(0, std::memcmp(ya.raw(), yb.raw(), static_cast<std::size_t>(ya.bytes())));
  EXPECT_EQ(trainer.model().num_trainable_params(), 12 * 6 + 6 + 6 * 3 + 3);
}

TEST(InitFrom, DeterministicTransferIsBitIdenticalAtEveryRankCount) {
  auto& w = world();
  const std::string src = source_checkpoint();
  const auto dir = lockstep::testing::shared_temp_dir("transfer_np");
  std::vector<std::pair<int, std::vector<float>>> runs;
  for (int g = w.size(); g >= 1; --g) {
    if (w.size() % g != 0 || 48 % g != 0) continue;
    auto sub = w.split(w.rank() / g, w.rank());
    const auto d = dir / ("np" + std::to_string(g) + "_" + std::to_string(w.rank() / g));
    // Only the base (no replace_from), trainable, with a new last layer: every parameter moves.
    const auto cfg = resolved(*sub, transfer_yaml(src, "  layers: [{type: relu}, {type: dense, units: 3}]"),
                              {"output.dir=" + d.string()});
    train::Trainer trainer(*sub, cfg, train::load_split(*sub, cfg.data, train::Split::kTrain),
                           train::load_split(*sub, cfg.data, train::Split::kTest));
    trainer.run();
    const auto& p = trainer.model().flat_params();
    runs.emplace_back(g, std::vector<float>(p.data<float>(), p.data<float>() + p.numel()));
    if (g != w.size()) continue;
    // Resuming does not copy the source again: the trained base stays trained.
    train::Trainer again(*sub, cfg, train::load_split(*sub, cfg.data, train::Split::kTrain),
                         train::load_split(*sub, cfg.data, train::Split::kTest));
    again.resume_from((d / "checkpoint.h5").string());
    again.run();
    const auto& q = again.model().flat_params();
    EXPECT_EQ(std::vector<float>(q.data<float>(), q.data<float>() + q.numel()), runs.back().second);
    const auto source = train::read_network(*sub, src);
    for (const auto& p0 : again.model().parameters()) {
      if (p0.name != "dense0.weight") continue;
      const std::vector<float> now(p0.value.data<float>(), p0.value.data<float>() + p0.value.numel());
      EXPECT_NE(source.params.at(0).values, now) << "the base trained away from the source";
    }
  }
  for (const auto& [g, p] : runs) EXPECT_EQ(p, runs.back().second) << "np=" << g << " against np=1";
}

TEST(InitFrom, ErrorsNameTheKeyAndTheFile) {
  auto& w = world();
  const std::string src = source_checkpoint();
  std::string e = error_of([&] { resolved(w, transfer_yaml("/nonexistent/pretrained.h5", kHead)); });
  EXPECT_NE(e.find("model.init_from"), std::string::npos) << e;
  EXPECT_NE(e.find("/nonexistent/pretrained.h5"), std::string::npos) << e;

  e = error_of([&] { resolved(w, transfer_yaml(src, "  replace_from: dense9\n  layers: [{type: dense, units: 3}]")); });
  EXPECT_NE(e.find("model.replace_from"), std::string::npos) << e;
  EXPECT_NE(e.find(src), std::string::npos) << e;
  EXPECT_NE(e.find("dense0, batchnorm1, relu2, dense3, relu4, dense5"), std::string::npos) << e;

  e = error_of([&] { resolved(w, transfer_yaml(src, "  replace_from: dense5\n  layers: []")); });
  EXPECT_NE(e.find("model.replace_from"), std::string::npos) << e;
  EXPECT_NE(e.find("empty"), std::string::npos) << e;

  // A head that does not take the base's output: a conv2d after flat features.
  e = error_of([&] {
    resolved(w, transfer_yaml(src, "  replace_from: dense3\n  layers: [{type: conv2d, filters: 2, kernel: 3}]"));
  });
  EXPECT_NE(e.find("model.init_from"), std::string::npos) << e;
  EXPECT_NE(e.find("after layer relu2"), std::string::npos) << e;

  std::string no_source = kSource;
  no_source.replace(no_source.find("  layers:"), 0, "  replace_from: dense0\n");
  e = error_of([&] { io::parse_config(no_source, "x.yaml"); });
  EXPECT_NE(e.find("model.replace_from: needs model.init_from"), std::string::npos) << e;
}
