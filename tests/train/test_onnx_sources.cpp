// ONNX files as network sources: model.init_from: net.onnx (a lockstep checkpoint exported as
// `lockstep export` does) gives the same network as model.init_from: checkpoint.h5, and a network
// read from a file that ends in a softmax has it folded into a softmax classifier's loss (the head
// applies the softmax), for init_from without replace_from and for predict --model
// (train::fold_final_softmax), so the probabilities are the file's.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>

#include "lockstep/core/rng.hpp"
#include "lockstep/io/onnx.hpp"
#include "lockstep/nn/head.hpp"
#include "lockstep/train/network_file.hpp"
#include "lockstep/train/trainer.hpp"
#include "support/test_comm.hpp"

using namespace lockstep;
using lockstep::testing::world;

namespace {

const char* kSource = R"(
data:
  format: synthetic
  synthetic: {samples: 384, test_samples: 96, features: 6, classes: 3, seed: 11, noise: 1.5}
model:
  layers:
    - {type: dense, units: 12}
    - {type: batchnorm}
    - {type: relu}
    - {type: dense, units: 3}
optimizer: {type: sgd, lr: 0.05, momentum: 0.9}
training: {epochs: 1, batch_size: 48, seed: 9}
output: {progress: none}
)";

struct Sources {
  std::string checkpoint, onnx, softmax_onnx;  // the last ends in a Softmax node
};

// The source network trained once per launch; exported to ONNX as it is and with a final softmax.
const Sources& sources() {
  static Sources s;
  if (!s.checkpoint.empty()) return s;
  auto& w = world();
  const auto dir = lockstep::testing::shared_temp_dir("onnx_sources");
  const auto cfg = io::parse_config(kSource, "source-config", {"output.dir=" + dir.string()});
  train::Trainer trainer(w, cfg, train::load_split(w, cfg.data, train::Split::kTrain),
                         train::load_split(w, cfg.data, train::Split::kTest));
  trainer.run();
  s.checkpoint = (dir / "checkpoint.h5").string();
  s.onnx = (dir / "net.onnx").string();
  s.softmax_onnx = (dir / "net_softmax.onnx").string();
  const io::NetworkFile net = train::read_network(w, s.checkpoint);
  io::NetworkFile described = train::describe_network(*train::build_network(net), net.layers);
  if (w.rank() == 0) {
    io::write_onnx(s.onnx, described);
    described.layers.push_back(Spec{"softmax", "test: a final softmax", {}, {}});
    io::write_onnx(s.softmax_onnx, described);
    EXPECT_EQ(io::check_onnx(s.softmax_onnx), "");
  }
  w.barrier();
  return s;
}

std::string init_yaml(const std::string& source, const std::string& loss = "softmax_cross_entropy") {
  std::string y = R"(
data:
  format: synthetic
  synthetic: {samples: 96, test_samples: 48, features: 6, classes: 3, seed: 2}
model:
  init_from: )";
  y += source;
  y += "\n  layers: []\noptimizer: {type: sgd, lr: 0.05}\ntraining: {epochs: 1, batch_size: 48, loss: ";
  y += loss;
  y += "}\noutput: {progress: none}\n";
  return y;
}

// The model a run with this config starts from: its layers, with the source's parameters.
std::unique_ptr<nn::Sequential> started(comm::Communicator& comm, const std::string& yaml, std::size_t* layers) {
  auto cfg = io::parse_config(yaml, "init-config");
  train::resolve_init_from(comm, cfg);
  *layers = cfg.model.layers.size();
  EXPECT_EQ(cfg.model.init_layers, static_cast<std::int64_t>(cfg.model.layers.size()));
  auto model = train::build_model(cfg, Shape{6});
  train::load_init_from(comm, cfg.model, *model);
  return model;
}

Tensor batch(std::int64_t rows, std::int64_t features) {
  Tensor x({rows, features});
  CounterRng rng(5, RngStream::kUser, 1);
  for (float& v : x.span<float>()) v = 2.0f * rng.uniform() - 1.0f;
  return x;
}

std::vector<float> outputs(nn::Sequential& model, const Tensor& x) {
  const Tensor& y = model.forward(x, nn::ForwardContext{});
  return std::vector<float>(y.data<float>(), y.data<float>() + y.numel());
}

}  // namespace

TEST(OnnxSources, InitFromOnnxGivesTheCheckpointsNetwork) {
  auto& w = world();
  const Sources& s = sources();
  std::size_t from_ckpt = 0, from_onnx = 0;
  auto a = started(w, init_yaml(s.checkpoint), &from_ckpt);
  auto b = started(w, init_yaml(s.onnx), &from_onnx);
  EXPECT_EQ(from_ckpt, 4u);
  EXPECT_EQ(from_onnx, 4u);
  const Tensor x = batch(10, 6);
  EXPECT_EQ(outputs(*a, x), outputs(*b, x)) << "init_from: net.onnx differs from init_from: checkpoint.h5";
}

// Without replace_from and a head, a source ending in softmax loses it under a softmax classifier
// (it would apply softmax twice), and keeps it under another loss.
TEST(OnnxSources, InitFromFoldsAFinalSoftmaxForASoftmaxClassifier) {
  auto& w = world();
  const Sources& s = sources();
  std::size_t plain = 0, folded = 0, kept = 0;
  auto a = started(w, init_yaml(s.onnx), &plain);
  auto b = started(w, init_yaml(s.softmax_onnx), &folded);
  EXPECT_EQ(folded, plain) << "the final softmax was not dropped";
  const Tensor x = batch(10, 6);
  EXPECT_EQ(outputs(*a, x), outputs(*b, x));
  started(w, init_yaml(s.softmax_onnx, "mse"), &kept);
  EXPECT_EQ(kept, plain + 1) << "a regression loss keeps the file's softmax";
}

// predict --model: the head's probabilities for the file ending in Softmax are those for the file
// without it, bit for bit; a regression head keeps the layer.
TEST(OnnxSources, FoldFinalSoftmaxGivesTheSameProbabilities) {
  auto& w = world();
  const Sources& s = sources();
  io::NetworkFile plain = train::read_network(w, s.onnx), soft = train::read_network(w, s.softmax_onnx);
  ASSERT_EQ(soft.layers.size(), plain.layers.size() + 1);
  EXPECT_FALSE(train::fold_final_softmax(plain, "softmax_cross_entropy"));
  io::NetworkFile mse = soft;
  EXPECT_FALSE(train::fold_final_softmax(mse, "mse"));
  EXPECT_EQ(mse.layers.size(), soft.layers.size());
  EXPECT_TRUE(train::fold_final_softmax(soft, "softmax_cross_entropy"));
  ASSERT_EQ(soft.layers.size(), plain.layers.size());
  auto a = train::build_network(plain), b = train::build_network(soft);
  const Tensor x = batch(10, 6);
  const std::vector<float> za = outputs(*a, x), zb = outputs(*b, x);
  ASSERT_EQ(za, zb);
  const nn::Head head(nn::LossKind::kSoftmaxCrossEntropy, 3);
  std::vector<double> pa, pb;
  for (std::size_t i = 0; i < 10; ++i) {
    EXPECT_EQ(head.predict(za.data() + 3 * i, pa), head.predict(zb.data() + 3 * i, pb));
    EXPECT_EQ(pa, pb);
    double sum = 0;
    for (double p : pa) sum += p;
    EXPECT_NEAR(sum, 1.0, 1e-9);
  }
}
