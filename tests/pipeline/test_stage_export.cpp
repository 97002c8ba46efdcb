// `lockstep export --model model.h5 [--stage N]`: the network of a fitted pipeline's NeuralNetwork
// stage (over flat rows) or NeuralFeaturizer stage (its truncated network) as ONNX. The exported
// file passes onnx::checker and, read back and built, gives the stage's outputs bit for bit on the
// same rows; choosing the stage is an agreed ConfigError listing the candidates.
#include <gtest/gtest.h>

#include <filesystem>
#include <vector>

#include "lockstep/data/sources.hpp"
#include "lockstep/io/onnx.hpp"
#include "lockstep/ml/pipeline.hpp"
#include "lockstep/pipeline/stage_network.hpp"
#include "lockstep/train/model.hpp"
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

std::vector<io::StageConfig> stages(const std::string& yaml) {
  return io::parse_config(yaml + "data: {format: synthetic}\n", "export.yaml").pipeline;
}

const char* kNetwork =
    "  - NeuralNetwork:\n"
    "      model: {layers: [{type: dense, units: 8}, {type: batchnorm}, {type: relu}, {type: dense, units: 3}]}\n"
    "      optimizer: {type: adam, lr: 0.01}\n"
    "      training: {epochs: 2, batch_size: 12, eval_batch: 7}\n";

// Fits `yaml`'s pipeline, saves it and loads it back (the export reads a saved model).
PipelineModel fitted(const std::string& tag, const std::string& yaml, const Frame& f, std::string* path) {
  auto& w = world();
  const auto dir = lockstep::testing::shared_temp_dir(tag);
  const PipelineModel m = fit_pipeline(f, stages(yaml), FitContext{dir.string(), "none", false}, &f);
  *path = (dir / "model.h5").string();
  m.save(w, *path, "");
  return PipelineModel::load(w, *path);
}

// Writes `net` as ONNX on rank 0, checks it with onnx::checker and reads it back on every rank.
io::NetworkFile through_onnx(const io::NetworkFile& net, const std::string& path) {
  auto& w = world();
  if (w.rank() == 0) {
    io::write_onnx(path, net);
    EXPECT_EQ(io::check_onnx(path), "");
  }
  w.barrier();
  return train::read_network(w, path);
}

// The network's outputs for f's rows, run in chunks of `chunk` rows as the stage runs them.
RowMatrix outputs(const io::NetworkFile& net, const Frame& f, std::int64_t chunk) {
  auto model = train::build_network(net);
  const std::int64_t k = model->output_features();
  RowMatrix out(f.rows(), k);
  train::forward_rows(*model, f.to_table(), chunk, [&](std::int64_t b, std::int64_t m, const Tensor& o, const Tensor&) {
    std::copy_n(o.data<float>(), m * k, out.data() + b * k);
  });
  return out;
}

std::string error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const ConfigError& e) {
    EXPECT_TRUE(e.agreed()) << e.what();
    return e.what();
  }
  return "(no error)";
}

}  // namespace

// The NeuralNetwork stage's input is the flat row: [N, 5] here. Its outputs (what transform()
// hands on, and predict()'s raw scores) come back bit for bit from the re-imported file.
TEST(StageExport, NeuralNetworkStageRoundTripsThroughOnnxBitForBit) {
  const Frame f = classification(world());
  std::string path;
  const PipelineModel m = fitted("stage_export_nn", std::string("pipeline:\n") + kNetwork, f, &path);
  const io::NetworkFile net = pipeline::stage_network(m, -1, path);
  EXPECT_EQ(net.input, (Shape{f.num_features()}));
  EXPECT_NE(net.description.find("stage 0 (NeuralNetwork)"), std::string::npos) << net.description;
  const io::NetworkFile back = through_onnx(net, path + ".onnx");
  ASSERT_EQ(back.layers.size(), 4u);
  const RowMatrix mine = outputs(back, f, 7);
  const Predictions p = m.predict(f);
  ASSERT_EQ(p.raw.cols(), 3);
  ASSERT_EQ(p.raw.rows(), mine.rows());
  for (std::int64_t i = 0; i < mine.rows(); ++i)
    for (std::int64_t j = 0; j < 3; ++j)
      ASSERT_EQ(p.raw(i, j), static_cast<double>(mine(i, j))) << "row " << i << " output " << j;
}

// The featurizer's truncated network gives its features bit for bit; with a NeuralNetwork after it,
// --stage picks either, and leaving it out lists both.
TEST(StageExport, FeaturizerStageAndChoosingAmongSeveral) {
  auto& w = world();
  const Frame f = classification(w);
  std::string src;
  const PipelineModel source = fitted("stage_export_src", std::string("pipeline:\n") + kNetwork, f, &src);
  // The featurizer reads a network file: the source stage's own network, exported.
  const auto dir = lockstep::testing::shared_temp_dir("stage_export_feat");
  const std::string onnx = (dir / "source.onnx").string();
  through_onnx(pipeline::stage_network(source, 0, src), onnx);
  std::string path;
  const PipelineModel m = fitted("stage_export_feat2",
                                 "pipeline:\n  - NeuralFeaturizer: {modelPath: " + onnx +
                                     ", layer: relu2, batchSize: 5}\n" + kNetwork,
                                 f, &path);
  const io::NetworkFile feat = pipeline::stage_network(m, 0, path);
  EXPECT_EQ(feat.layers.size(), 3u) << "dense0, batchnorm1, relu2";
  const io::NetworkFile back = through_onnx(feat, (dir / "feat.onnx").string());
  // The featurizer's features are what the NeuralNetwork stage sees: transform() of a pipeline that
  // ends in a NeuralNetwork applies only the featurizer.
  const RowMatrix want = m.transform(f).dense_features();
  const RowMatrix got = outputs(back, f, 5);
  ASSERT_EQ(want.cols(), 8);
  EXPECT_TRUE(want == got) << "the re-imported featurizer network differs from the stage";
  EXPECT_EQ(pipeline::stage_network(m, 1, path).layers.size(), 4u);

  std::string e = error_of([&] { pipeline::stage_network(m, -1, path); });
  EXPECT_NE(e.find(path), std::string::npos) << e;
  EXPECT_NE(e.find("0 (NeuralFeaturizer), 1 (NeuralNetwork)"), std::string::npos) << e;
  e = error_of([&] { pipeline::stage_network(m, 2, path); });
  EXPECT_NE(e.find("--stage 2: the pipeline has 2 stages"), std::string::npos) << e;
}

TEST(StageExport, APipelineWithoutANetworkStageOrAStageWithoutOneIsRefused) {
  const Frame f = classification(world());
  std::string path;
  const PipelineModel m =
      fitted("stage_export_none", "pipeline:\n  - StandardScaler: {}\n  - LogisticRegression: {maxIter: 5}\n", f, &path);
  std::string e = error_of([&] { pipeline::stage_network(m, -1, path); });
  EXPECT_NE(e.find("no stage of this pipeline holds a network"), std::string::npos) << e;
  EXPECT_NE(e.find("0 (StandardScaler), 1 (LogisticRegression)"), std::string::npos) << e;
  std::string p2;
  const PipelineModel m2 =
      fitted("stage_export_one", std::string("pipeline:\n  - StandardScaler: {}\n") + kNetwork, f, &p2);
  e = error_of([&] { pipeline::stage_network(m2, 0, p2); });
  EXPECT_NE(e.find("--stage 0: stage 0 is a StandardScaler, which holds no network"), std::string::npos) << e;
  EXPECT_NE(e.find("1 (NeuralNetwork)"), std::string::npos) << e;
}

// A NeuralFeaturizer reads its network from a checkpoint or from the same network exported to
// ONNX (lockstep export --checkpoint): the features are the same bits.
TEST(StageExport, FeaturizerFromOnnxGivesTheCheckpointsFeatures) {
  auto& w = world();
  const Frame f = classification(w);
  std::string src;
  fitted("stage_export_ckpt", std::string("pipeline:\n") + kNetwork, f, &src);
  const std::string ckpt = (std::filesystem::path(src).parent_path() / "nn" / "checkpoint.h5").string();
  const io::NetworkFile net = train::read_network(w, ckpt);
  const std::string onnx = (std::filesystem::path(src).parent_path() / "net.onnx").string();
  through_onnx(train::describe_network(*train::build_network(net), net.layers), onnx);
  const auto features = [&](const std::string& model) {
    const PipelineModel m = fit_pipeline(
        f, stages("pipeline:\n  - NeuralFeaturizer: {modelPath: " + model + ", layer: relu2, batchSize: 4}\n"),
        FitContext{"", "none", false});
    return m.transform(f).dense_features();
  };
  const RowMatrix a = features(ckpt), b = features(onnx);
  ASSERT_EQ(a.cols(), 8);
  EXPECT_TRUE(a == b) << "features from net.onnx differ from the checkpoint's";
}
