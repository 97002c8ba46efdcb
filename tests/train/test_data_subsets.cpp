// Data subsets: data.classes keeps the listed labels, relabelled 0..k-1 in list order (both splits);
// data.train_fraction keeps the training rows whose hash of (fraction_seed, global row index after
// the class filter) falls below it — the same rows at every rank count. Labels that are not
// integers and an empty result are agreed ConfigErrors naming the key.
#include <gtest/gtest.h>

#include <cstring>
#include <fstream>

#include "lockstep/data/table.hpp"
#include "lockstep/train/data_loading.hpp"
#include "support/test_comm.hpp"

using namespace lockstep;
using lockstep::testing::world;

namespace {

constexpr std::int64_t kRows = 400;

// a = the row's index in the file, label = row % 10 (or 2.5 at row bad_label).
std::string write_csv(const std::string& name, std::int64_t bad_label = -1) {
  const auto dir = lockstep::testing::shared_temp_dir("subsets");
  const std::string path = (dir / name).string();
  if (world().rank() == 0) {
    std::ofstream out(path);
    out << "a,label\n";
    for (std::int64_t r = 0; r < kRows; ++r) {
      out << r << ',';
      if (r == bad_label)
        out << "2.5\n";
      else
        out << r % 10 << '\n';
    }
  }
  world().barrier();
  return path;
}

io::Config config(const std::string& path, const std::string& extra) {
  return io::parse_config("data:\n  format: csv\n  train: {features: " + path + "}\n  test: {features: " + path +
                              "}\n" + extra + "pipeline:\n  - MaxAbsScaler: {}\n",
                          "x.yaml");
}

// (feature a, label) of every row of the split, in global order, on every rank.
std::vector<std::pair<float, float>> all_rows(const data::Table& t) {
  std::string mine;
  for (std::int64_t i = 0; i < t.rows; ++i) {
    const float v[2] = {t.row(i)[0], t.label(i)};
    mine.append(reinterpret_cast<const char*>(v), sizeof v);
  }
  std::vector<std::pair<float, float>> out;
  for (const auto& part : world().allgather_strings(mine))
    for (std::size_t k = 0; k + 8 <= part.size(); k += 8) {
      float v[2];
      std::memcpy(v, part.data() + k, sizeof v);
      out.emplace_back(v[0], v[1]);
    }
  return out;
}

}  // namespace

TEST(DataSubsets, ClassesAndTrainFractionKeepTheSameRowsAtAnyRankCount) {
  const std::string path = write_csv("rows.csv");
  const io::Config cfg = config(path, "  classes: [7, 5, 9]\n  train_fraction: 0.3\n  fraction_seed: 3\n");
  const auto train = all_rows(train::read_split_table(world(), cfg.data, train::Split::kTrain));
  const auto test = all_rows(train::read_split_table(world(), cfg.data, train::Split::kTest));
  // What the rules say, computed without any communicator: the class filter, then the hash of the
  // row's index among the filtered rows.
  std::vector<std::pair<float, float>> want_train, want_test;
  std::int64_t filtered = 0;
  for (std::int64_t r = 0; r < kRows; ++r) {
    const std::int64_t y = r % 10;
    const float relabel = y == 7 ? 0.0f : y == 5 ? 1.0f : 2.0f;
    if (y != 5 && y != 7 && y != 9) continue;
    want_test.emplace_back(static_cast<float>(r), relabel);
    if (data::fraction_kept(3, filtered++, 0.3)) want_train.emplace_back(static_cast<float>(r), relabel);
  }
  EXPECT_EQ(test, want_test);  // the fraction is the training split's only
  EXPECT_EQ(train, want_train);
  // About 30% of the 120 rows of these classes, not all or none.
  EXPECT_GT(train.size(), 20u);
  EXPECT_LT(train.size(), 60u);
  // Another seed keeps other rows.
  const io::Config other = config(path, "  classes: [7, 5, 9]\n  train_fraction: 0.3\n  fraction_seed: 4\n");
  EXPECT_NE(all_rows(train::read_split_table(world(), other.data, train::Split::kTrain)), train);
}

TEST(DataSubsets, NonIntegerLabelsAndEmptyResultsAreAgreedConfigErrorsNamingTheKey) {
  const auto expect_error = [](const io::Config& cfg, const std::vector<std::string>& parts) {
    try {
      train::read_split_table(world(), cfg.data, train::Split::kTrain);
      ADD_FAILURE() << "accepted";
    } catch (const ConfigError& e) {
      EXPECT_TRUE(e.agreed()) << e.what();
      for (const auto& p : parts) EXPECT_NE(std::string(e.what()).find(p), std::string::npos) << e.what();
    }
  };
  // The bad label on the last row: held by the last rank only.
  const std::string bad = write_csv("bad.csv", kRows - 1);
  expect_error(config(bad, "  classes: [1, 2]\n"), {"x.yaml:5: data.classes", "row 399", "2.5"});
  const std::string path = write_csv("rows.csv");
  expect_error(config(path, "  classes: [11]\n"), {"x.yaml:5: data.classes", "no row"});
  expect_error(config(path, "  train_fraction: 0.000001\n"), {"x.yaml:5: data.train_fraction", "keeps none"});
  try {
    config(path, "  train_fraction: 1.5\n");
    ADD_FAILURE() << "train_fraction 1.5 accepted";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("data.train_fraction: expected a number in (0, 1]"), std::string::npos)
        << e.what();
  }
}
