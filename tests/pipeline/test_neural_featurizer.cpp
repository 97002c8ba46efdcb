// The NeuralFeaturizer stage: its features are the source network's activations at the named
// layer, with the same bits at every rank count; a fitted pipeline with it predicts the same after
// save and load with the network file gone; NeuralFeaturizer and NeuralNetwork stand anywhere in a
// pipeline; a bad modelPath or layer is one agreed ConfigError naming the key.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>

#include "lockstep/data/sources.hpp"
#include "lockstep/ml/pipeline.hpp"
#include "lockstep/ml/registry.hpp"
#include "lockstep/train/network_file.hpp"
#include "support/test_comm.hpp"

using namespace lockstep;
using namespace lockstep::ml;
using lockstep::testing::world;

namespace {

Frame classification(comm::Communicator& comm) {
  data::CsvOptions o;
  o.label_column = "label";
  data::CsvDetails details;
  auto rows = data::read_csv(comm, std::string(LOCKSTEP_TEST_DATA) + "/ml/classification.csv", o, &details).cache();
  return Frame::from_examples(rows, details.feature_names);
}

std::string test_dir(const std::string& tag) {
  auto& w = world();
  const std::string dir = std::string(LOCKSTEP_BINARY_DIR) + "/" + tag + "_np" + std::to_string(w.size());
  if (w.rank() == 0) std::filesystem::remove_all(dir);
  w.barrier();
  return dir;
}

std::vector<io::StageConfig> stages(const std::string& yaml) {
  return io::parse_config(yaml + "data: {format: synthetic}\n", "feat.yaml").pipeline;
}

// A small trained network (dense 8 -> relu -> dense 3) and its checkpoint, fitted once per test
// binary run: <dir>/nn/checkpoint.h5.
std::string trained_checkpoint() {
  static std::string path;
  if (!path.empty()) return path;
  auto& w = world();
  const std::string dir = test_dir("test_featurizer_source");
  const Frame f = classification(w);
  fit_pipeline(f,
               stages("pipeline:\n"
                      "  - NeuralNetwork:\n"
                      "      model: {layers: [{type: dense, units: 8}, {type: relu}, {type: dense, units: 3}]}\n"
                      "      optimizer: {type: adam, lr: 0.01}\n"
                      "      training: {epochs: 2, batch_size: 12}\n"),
               FitContext{dir, "none", false}, &f);
  path = dir + "/nn/checkpoint.h5";
  return path;
}

// Every rank's rows of m, in global order, on every rank of comm.
std::vector<float> gathered(comm::Communicator& comm, const RowMatrix& m) {
  const std::string mine(reinterpret_cast<const char*>(m.data()), static_cast<std::size_t>(m.size()) * sizeof(float));
  std::vector<float> all;
  for (const auto& part : comm.allgather_strings(mine)) {
    const std::size_t n = part.size() / sizeof(float);
    all.resize(all.size() + n);
    std::memcpy(all.data() + all.size() - n, part.data(), part.size());
  }
  return all;
}

std::string featurizer_yaml(const std::string& path, const std::string& extra = "") {
  return "pipeline:\n  - NeuralFeaturizer: {modelPath: " + path + extra + "}\n";
}

}  // namespace

TEST(NeuralFeaturizer, IsARegisteredTransformer) {
  const StageKind* k = find_stage_kind("NeuralFeaturizer");
  ASSERT_NE(k, nullptr) << "NeuralFeaturizer is not in the stage registry";
  EXPECT_EQ(k->task, StageTask::kTransformer);
}

// The default layer is the one before the last (relu1): relu(x W + b) of the first dense layer,
// computed here in double from the checkpoint's parameters; and the bits are the same at every
// rank count the world divides into.
TEST(NeuralFeaturizer, GivesTheLayersActivationsWithTheSameBitsAtEveryRankCount) {
  auto& w = world();
  const std::string ckpt = trained_checkpoint();
  const io::NetworkFile net = train::read_network(w, ckpt);
  const io::NamedArray* weight = nullptr;
  const io::NamedArray* bias = nullptr;
  for (const auto& p : net.params) {
    if (p.name == "dense0.weight") weight = &p;
    if (p.name == "dense0.bias") bias = &p;
  }
  ASSERT_TRUE(weight && bias);
  const std::int64_t in = weight->shape[0], units = weight->shape[1];
  ASSERT_EQ(units, 8);
  std::vector<std::vector<float>> by_count;
  for (int g = w.size(); g >= 1; --g) {
    if (w.size() % g != 0) continue;
    auto sub = w.split(w.rank() / g, w.rank());
    const Frame f = classification(*sub);
    // batchSize 5 does not divide the row count: the last chunk is padded.
    const PipelineModel m = fit_pipeline(f, stages(featurizer_yaml(ckpt, ", batchSize: 5")), FitContext{"", "none", false});
    const Frame t = m.transform(f);
    ASSERT_EQ(t.num_features(), units);
    EXPECT_EQ(t.feature_names().front(), "relu1_0");
    EXPECT_TRUE(t.label() == f.label());
    const RowMatrix x = f.to_dense();
    for (std::int64_t i = 0; i < f.rows(); ++i)
      for (std::int64_t j = 0; j < units; ++j) {
        double z = bias->values[static_cast<std::size_t>(j)];
        for (std::int64_t k = 0; k < in; ++k) z += double(x(i, k)) * weight->values[static_cast<std::size_t>(k * units + j)];
        ASSERT_NEAR(t.dense_features()(i, j), std::max(z, 0.0), 1e-5) << "row " << i << " unit " << j;
      }
    by_count.push_back(gathered(*sub, t.dense_features()));
  }
  for (std::size_t i = 1; i < by_count.size(); ++i)
    EXPECT_TRUE(by_count[i] == by_count[0]) << "features differ between rank counts";
}

// The saved model holds the network: it predicts the same bits after the checkpoint is removed.
TEST(NeuralFeaturizer, ScalerFeaturizerLogisticRegressionSavesTheNetworkItself) {
  auto& w = world();
  const std::string dir = test_dir("test_featurizer_pipe");
  const std::string copy = dir + "/source.h5";
  if (w.rank() == 0) {
    std::filesystem::create_directories(dir);
    std::filesystem::copy_file(trained_checkpoint(), copy);
  }
  w.barrier();
  const Frame f = classification(w);
  const PipelineModel m = fit_pipeline(f,
                                       stages("pipeline:\n"
                                              "  - StandardScaler: {withMean: true}\n"
                                              "  - NeuralFeaturizer: {modelPath: " + copy + ", layer: dense2}\n"
                                              "  - LogisticRegression: {maxIter: 50}\n"),
                                       FitContext{dir, "none", false});
  ASSERT_EQ(m.task(), "classification");
  EXPECT_EQ(m.transform(f).num_features(), 3);  // dense2: the network's 3 outputs
  m.save(w, dir + "/model.h5", "");
  w.barrier();
  if (w.rank() == 0) std::filesystem::remove(copy);
  w.barrier();
  const PipelineModel loaded = PipelineModel::load(w, dir + "/model.h5");
  ASSERT_EQ(loaded.stage_type(1), "NeuralFeaturizer");
  const Predictions a = m.predict(f), b = loaded.predict(f);
  EXPECT_TRUE(a.prediction == b.prediction);
  EXPECT_TRUE(a.probability == b.probability);
  EXPECT_GT(m.evaluate(f).at("accuracy"), 0.5);
}

// A NeuralNetwork before the last place hands on its raw outputs; a LogisticRegression there is
// refused (it has no features to hand on).
TEST(NeuralFeaturizer, NeuralNetworkMayStandInTheMiddle) {
  auto& w = world();
  const std::string dir = test_dir("test_featurizer_middle");
  const Frame f = classification(w);
  const PipelineModel m =
      fit_pipeline(f,
                   stages("pipeline:\n"
                          "  - StandardScaler: {withMean: true}\n"
                          "  - NeuralNetwork:\n"
                          "      model: {layers: [{type: dense, units: 8}, {type: relu}, {type: dense, units: 3}]}\n"
                          "      optimizer: {type: adam, lr: 0.01}\n"
                          "      training: {epochs: 2, batch_size: 12}\n"
                          "  - LogisticRegression: {maxIter: 50}\n"),
                   FitContext{dir, "none", false}, &f);
  ASSERT_EQ(m.stage_type(2), "LogisticRegression");
  const Frame t = m.transform(f);
  EXPECT_EQ(t.num_features(), 3);
  EXPECT_EQ(t.feature_names().front(), "nn_0");
  m.save(w, dir + "/model.h5", "");
  const PipelineModel loaded = PipelineModel::load(w, dir + "/model.h5");
  EXPECT_TRUE(m.predict(f).probability == loaded.predict(f).probability);
  try {
    fit_pipeline(f, stages("pipeline:\n  - LogisticRegression: {}\n  - LogisticRegression: {}\n"),
                 FitContext{dir, "none", false});
    FAIL() << "a LogisticRegression before the last stage was accepted";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("pipeline[0].LogisticRegression: a predictor must be the last stage"),
              std::string::npos)
        << e.what();
  }
}

TEST(NeuralFeaturizer, BadModelPathOrLayerIsAnAgreedConfigErrorNamingTheKey) {
  auto& w = world();
  const Frame f = classification(w);
  const auto expect_error = [&](const std::string& yaml, const std::vector<std::string>& parts) {
    try {
      fit_pipeline(f, stages(yaml), FitContext{"", "none", false});
      ADD_FAILURE() << "accepted: " << yaml;
    } catch (const ConfigError& e) {
      EXPECT_TRUE(e.agreed()) << e.what();
      for (const auto& p : parts) EXPECT_NE(std::string(e.what()).find(p), std::string::npos) << e.what();
    }
  };
  const std::string ckpt = trained_checkpoint();
  expect_error(featurizer_yaml("/nonexistent/net.h5"), {"feat.yaml:2: pipeline[0].NeuralFeaturizer.modelPath",
                                                         "/nonexistent/net.h5"});
  expect_error(featurizer_yaml(ckpt, ", layer: dense9"),
               {"pipeline[0].NeuralFeaturizer.layer", "no layer \"dense9\"", "dense0, relu1, dense2"});
  expect_error("pipeline:\n  - NeuralFeaturizer: {}\n", {"modelPath: missing"});
}
