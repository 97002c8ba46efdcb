// train::read_network at every rank count: a bad network file is the same DataError on every rank
// (agreed, so no rank waits in a collective for one that failed), and a good one reads the same
// network everywhere.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "lockstep/core/error.hpp"
#include "lockstep/train/network_file.hpp"
#include "support/test_comm.hpp"

using lockstep::testing::world;
namespace fs = std::filesystem;

namespace {

const fs::path kFixtures = fs::path(LOCKSTEP_SOURCE_DIR) / "tests/data/onnx";

std::string error_on_every_rank(const std::string& path) {
  std::string err;
  try {
    lockstep::train::read_network(world(), path);
  } catch (const lockstep::DataError& e) {
    err = e.what();
  } catch (const lockstep::Error& e) {
    err = std::string("(not a DataError) ") + e.what();
  }
  return err;
}

TEST(ReadNetworkRanks, BadModelsFailOnEveryRank) {
  for (const char* bad : {"bad_unknown_op.onnx", "bad_init_shape.onnx", "bad_opset.onnx", "bad_int64_weights.onnx",
                          "no_such_model.onnx"}) {
    const std::string err = error_on_every_rank((kFixtures / bad).string());
    EXPECT_NE(err.find(bad), std::string::npos) << "rank " << world().rank() << ": " << err;
  }
}

TEST(ReadNetworkRanks, AFileOnlyRankZeroCanReadFailsEverywhere) {
  // Rank 0 reads the good model; the others find no file at their path: all of them must throw.
  const fs::path mine = world().rank() == 0 ? kFixtures / "torch_cnn.onnx" : kFixtures / "missing_on_this_rank.onnx";
  if (world().size() == 1) GTEST_SKIP() << "needs two ranks";
  const std::string err = error_on_every_rank(mine.string());
  EXPECT_NE(err.find("missing_on_this_rank.onnx"), std::string::npos) << "rank " << world().rank() << ": " << err;
}

TEST(ReadNetworkRanks, AGoodModelReadsTheSameOnEveryRank) {
  const auto net = lockstep::train::read_network(world(), (kFixtures / "torch_cnn.onnx").string());
  EXPECT_EQ(lockstep::train::layer_names(net).at(4), "residual4");
  EXPECT_EQ(net.params.size(), 11u);  // conv, bn, block conv1 (w, b), conv2 (w), fc1, fc2
}

}  // namespace
