// data.on_invalid on the train and test splits, for every format that can hold a non-finite
// feature (CSV, LIBSVM, HDF5), with the bad row on the first rank and on the last: `error` (the
// default) is one agreed DataError on every rank naming the file and the lowest bad row, before
// any training; `skip` drops such rows. Also: a missing data file is an error naming its key.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <limits>

#include "detail/hdf5.hpp"
#include "lockstep/train/data_loading.hpp"
#include "support/test_comm.hpp"

using namespace lockstep;
using lockstep::testing::world;

namespace {

constexpr std::int64_t kRows = 30, kCols = 3;

// Row r, column c of the fixture; NaN at (bad_row, 1) and +inf at (bad_row + 1, 2) when in range.
float value(std::int64_t r, std::int64_t c, std::int64_t bad_row) {
  if (r == bad_row && c == 1) return std::numeric_limits<float>::quiet_NaN();
  if (r == bad_row + 1 && c == 2) return std::numeric_limits<float>::infinity();
  return static_cast<float>(r) + 0.25f * static_cast<float>(c + 1);
}

// Writes the fixture in `format` on rank 0 and returns its path (every rank).
std::string write_fixture(const std::filesystem::path& dir, const std::string& format, std::int64_t bad_row) {
  const std::string path = (dir / ("bad" + std::to_string(bad_row) + "." + format)).string();
  if (world().rank() == 0) {
    if (format == "h5") {
      std::vector<float> x;
      std::vector<std::int32_t> y;
      for (std::int64_t r = 0; r < kRows; ++r) {
        for (std::int64_t c = 0; c < kCols; ++c) x.push_back(value(r, c, bad_row));
        y.push_back(static_cast<std::int32_t>(r % 2));
      }
      auto f = detail::H5File::create(path);
      f.write("/features", x.data(), {kRows, kCols});
      f.write("/labels", y.data(), {kRows});
      f.close();
    } else {
      std::ofstream out(path);
      if (format == "csv") out << "a,b,c,label\n";
      for (std::int64_t r = 0; r < kRows; ++r) {
        if (format == "svm") out << r % 2;
        for (std::int64_t c = 0; c < kCols; ++c) {
          if (format == "svm") {
            out << ' ' << c + 1 << ':';
          } else if (c > 0) {
            out << ',';
          }
          out << value(r, c, bad_row);
        }
        if (format == "csv") out << ',' << r % 2;
        out << '\n';
      }
    }
  }
  world().barrier();
  return path;
}

io::DataConfig data_config(const std::string& format, const std::string& path, const std::string& on_invalid) {
  const std::string source = format == "svm" ? "libsvm" : (format == "h5" ? "hdf5" : "csv");
  std::vector<std::string> sets{"data.format=" + source, "data.train.features=" + path, "data.test.features=" + path};
  if (!on_invalid.empty()) sets.push_back("data.on_invalid=" + on_invalid);
  const std::string yaml = "data: {format: synthetic}\nmodel: {layers: [{type: dense, units: 2}]}\n";
  return io::parse_config(yaml, "loading.yaml", sets).data;
}

}  // namespace

TEST(DataLoading, NonFiniteFeaturesAreAnAgreedErrorNamingFileAndRow) {
  auto& w = world();
  const auto dir = lockstep::testing::shared_temp_dir("on-invalid");
  for (const std::string format : {"csv", "svm", "h5"}) {
    for (const std::int64_t bad : {std::int64_t{0}, kRows - 2}) {  // first rank's first rows; the last rank's
      const std::string path = write_fixture(dir, format, bad);
      for (const auto split : {train::Split::kTrain, train::Split::kTest}) {
        try {
          train::load_split(w, data_config(format, path, ""), split);
          ADD_FAILURE() << format << ": no error for a NaN feature at row " << bad;
        } catch (const DataError& e) {
          EXPECT_TRUE(e.agreed());
          const std::string want = path + ": row " + std::to_string(bad) + ": feature column 1";
          EXPECT_NE(std::string(e.what()).find(want), std::string::npos) << e.what();
          EXPECT_NE(std::string(e.what()).find("is NaN or infinite (data.on_invalid: error"), std::string::npos)
              << e.what();
        }
      }
      // skip: the NaN row and the infinite one are left out, the others kept in order.
      const auto d = train::load_split(w, data_config(format, path, "skip"), train::Split::kTrain);
      EXPECT_EQ(d.num_rows, kRows - 2) << format;
      const auto& t = d.table;
      for (std::int64_t i = 0; i < t.rows; ++i) {
        for (std::int64_t c = 0; c < kCols; ++c) ASSERT_TRUE(std::isfinite(t.row(i)[c])) << format;
        const std::int64_t g = t.row_offset + i;  // kept row g is file row g, or g + 2 past the bad pair
        const std::int64_t r = g < bad ? g : g + 2;
        EXPECT_EQ(t.row(i)[0], value(r, 0, bad)) << format << " kept row " << g;
      }
    }
  }
}

TEST(DataLoading, OnInvalidTakesErrorOrSkipAndMissingFilesAreNamed) {
  auto& w = world();
  try {
    train::load_split(w, data_config("csv", "/nonexistent/x.csv", "drop"), train::Split::kTrain);
    ADD_FAILURE() << "on_invalid: drop accepted";
  } catch (const ConfigError& e) {
    EXPECT_TRUE(e.agreed());
    EXPECT_NE(std::string(e.what()).find("data.on_invalid: expected one of error, skip, got \"drop\""),
              std::string::npos)
        << e.what();
  }
  try {
    train::load_split(w, data_config("csv", "/nonexistent/x.csv", ""), train::Split::kTest);
    ADD_FAILURE() << "a missing file loaded";
  } catch (const DataError& e) {
    EXPECT_TRUE(e.agreed());
    EXPECT_NE(std::string(e.what()).find("data.test.features: /nonexistent/x.csv not found"), std::string::npos)
        << e.what();
  }
  io::DataConfig fm = data_config("csv", "/usr/share/datasets/fashion-mnist/nope.gz", "");
  try {
    train::load_split(w, fm, train::Split::kTrain);
    ADD_FAILURE() << "a missing file loaded";
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find("apt-get install dataset-fashion-mnist"), std::string::npos) << e.what();
  }
}
