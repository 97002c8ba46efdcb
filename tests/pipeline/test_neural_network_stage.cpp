// The NeuralNetwork stage of the pipeline/ layer: registered with ml's registry (so `lockstep
// fit` finds it although ml/ never includes train/), not tunable by a grid, and its saved model
// predicts exactly what the fitted one does.
#include <gtest/gtest.h>

#include <filesystem>

#include "detail/hdf5.hpp"
#include "lockstep/data/sources.hpp"
#include "lockstep/ml/pipeline.hpp"
#include "lockstep/ml/registry.hpp"
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

}  // namespace

TEST(NeuralNetworkStage, IsRegisteredAsAnUntunableClassifier) {
  const StageKind* k = find_stage_kind("NeuralNetwork");
  ASSERT_NE(k, nullptr) << "NeuralNetwork is not in the stage registry (was src/pipeline linked whole?)";
  EXPECT_EQ(k->task, StageTask::kClassification);
  EXPECT_FALSE(k->tunable);
}

TEST(NeuralNetworkStage, SavedModelPredictsTheSame) {
  auto& w = world();
  const Frame f = classification(w);
  const std::string dir = std::string(LOCKSTEP_BINARY_DIR) + "/test_pipeline_np" + std::to_string(w.size());
  if (w.rank() == 0) std::filesystem::remove_all(dir);  // a fresh run, not a resume
  w.barrier();
  const auto stages = io::parse_config(
                          "pipeline:\n"
                          "  - StandardScaler: {withMean: true}\n"
                          "  - NeuralNetwork:\n"
                          "      model: {layers: [{type: dense, units: 8}, {type: relu}, {type: dense, units: 3}]}\n"
                          "      optimizer: {type: adam, lr: 0.01}\n"
                          "      training: {epochs: 2, batch_size: 12}\n"  // divisible by 1, 2, 3
                          "data: {format: synthetic}\n",
                          "nn.yaml")
                          .pipeline;
  const PipelineModel m = fit_pipeline(f, stages, FitContext{dir, "none", false}, &f);
  ASSERT_EQ(m.task(), "classification");
  m.save(w, dir + "/model.h5", "");
  const PipelineModel loaded = PipelineModel::load(w, dir + "/model.h5");
  ASSERT_EQ(loaded.stage_type(1), "NeuralNetwork");
  const Predictions a = m.predict(f), b = loaded.predict(f);
  EXPECT_TRUE(a.prediction == b.prediction);
  EXPECT_TRUE(a.probability == b.probability);
  EXPECT_TRUE(a.raw == b.raw);
  ASSERT_EQ(a.probability.cols(), 3);
  for (std::int64_t i = 0; i < f.rows(); ++i) EXPECT_NEAR(a.probability.row(i).sum(), 1.0, 1e-12);
}

// Batch norm's running statistics are part of the fitted stage: the saved model predicts what the
// fitted one does (with the statistics left at their initial 0 and 1 it would not), and a file
// without them is refused rather than predicting with untrained statistics.
TEST(NeuralNetworkStage, SavedModelKeepsBatchNormRunningStatistics) {
  auto& w = world();
  const Frame f = classification(w);
  const std::string dir = std::string(LOCKSTEP_BINARY_DIR) + "/test_pipeline_bn_np" + std::to_string(w.size());
  if (w.rank() == 0) std::filesystem::remove_all(dir);
  w.barrier();
  // No scaler: the raw features' means and variances are far from 0 and 1, so the running
  // statistics matter to every prediction.
  const auto stages = io::parse_config(
                          "pipeline:\n"
                          "  - NeuralNetwork:\n"
                          "      model: {layers: [{type: dense, units: 8}, {type: batchnorm}, {type: relu},\n"
                          "                       {type: dense, units: 3}]}\n"
                          "      optimizer: {type: adam, lr: 0.01}\n"
                          "      training: {epochs: 2, batch_size: 12}\n"
                          "data: {format: synthetic}\n",
                          "nn_bn.yaml")
                          .pipeline;
  const PipelineModel m = fit_pipeline(f, stages, FitContext{dir, "none", false}, &f);
  m.save(w, dir + "/model.h5", "");
  const PipelineModel loaded = PipelineModel::load(w, dir + "/model.h5");
  const Predictions a = m.predict(f), b = loaded.predict(f);
  EXPECT_TRUE(a.prediction == b.prediction);
  EXPECT_TRUE(a.probability == b.probability);
  EXPECT_TRUE(a.raw == b.raw);

  // The same file without its buffers dataset: refused, naming the file, the group and the dataset.
  if (w.rank() == 0) {
    std::filesystem::copy_file(dir + "/model.h5", dir + "/nobuf.h5");
    auto h = detail::H5File::open_rw(dir + "/nobuf.h5");
    ASSERT_TRUE(h.exists("/pipeline/stage0/buffers"));
    h.remove("/pipeline/stage0/buffers");
    h.close();
  }
  w.barrier();
  std::string msg = "(no error)";
  try {
    PipelineModel::load(w, dir + "/nobuf.h5");
  } catch (const Error& e) {
    msg = e.what();
  }
  EXPECT_NE(msg.find("/pipeline/stage0/buffers: has 0 values"), std::string::npos) << msg;
}
