// Features files (io/features_file.hpp) and the HDF5 wrapper's untimed objects: a file written twice
// with the same content has the same bytes, because no object header carries a time.
#include <gtest/gtest.h>
#include <hdf5.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "detail/hdf5.hpp"
#include "lockstep/io/features_file.hpp"

namespace fs = std::filesystem;
using namespace lockstep;

namespace {

std::string temp_dir() {
  const fs::path d = fs::temp_directory_path() / ("lockstep_features_" + std::to_string(::getpid()));
  fs::create_directories(d);
  return d.string();
}

std::string bytes_of(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// The four times HDF5 keeps in an object's header (all 0 when the object does not track them).
std::vector<long long> object_times(const std::string& file, const std::string& obj) {
  const hid_t f = H5Fopen(file.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  EXPECT_GE(f, 0) << file;
  H5O_info_t info{};
  EXPECT_GE(H5Oget_info_by_name2(f, obj.c_str(), &info, H5O_INFO_TIME, H5P_DEFAULT), 0) << file << ":" << obj;
  H5Fclose(f);
  return {static_cast<long long>(info.atime), static_cast<long long>(info.mtime), static_cast<long long>(info.ctime),
          static_cast<long long>(info.btime)};
}

void write_features(const std::string& path, const std::vector<std::string>& origins, const std::vector<float>& v,
                    std::int64_t dims) {
  io::FeaturesFileWriter w(path, static_cast<std::int64_t>(origins.size()), dims, "conv2d3");
  w.write(0, origins, v.data());
  w.commit();
}

}  // namespace

TEST(FeaturesFile, ReadsBackWhatWasWrittenWithNoTimesInAnyObject) {
  const std::string dir = temp_dir(), path = dir + "/f.h5";
  const std::vector<std::string> origins{"a/0.png", "b/1.png", "c,d/\"2\".png"};
  const std::vector<float> values{0.5f, -1.0f, 2.25f, 3.0f, 1e-7f, -0.0f};
  write_features(path, origins, values, 2);
  const io::FeaturesFile f = io::read_features_file(path);
  EXPECT_EQ(f.origin, origins);
  EXPECT_EQ(f.features, values);
  EXPECT_EQ(f.dims, 2);
  EXPECT_EQ(f.layer, "conv2d3");
  const std::vector<long long> none{0, 0, 0, 0};
  for (const char* obj : {"/", "/origin", "/features"}) EXPECT_EQ(object_times(path, obj), none) << obj;
  fs::remove_all(dir);
}

TEST(FeaturesFile, TheSameRowsWrittenTwiceGiveTheSameBytes) {
  const std::string dir = temp_dir();
  std::vector<std::string> origins;
  std::vector<float> values;
  for (int i = 0; i < 100; ++i) {
    origins.push_back("class" + std::to_string(i % 7) + "/" + std::to_string(i) + ".png");
    for (int j = 0; j < 5; ++j) values.push_back(static_cast<float>(i * 5 + j) * 0.125f);
  }
  write_features(dir + "/a.h5", origins, values, 5);
  write_features(dir + "/b.h5", origins, values, 5);
  const std::string a = bytes_of(dir + "/a.h5"), b = bytes_of(dir + "/b.h5");
  EXPECT_FALSE(a.empty());
  EXPECT_TRUE(a == b) << "two features files with the same rows differ in their bytes";
  fs::remove_all(dir);
}

// Checkpoints use the same wrapper: groups (given, and those above a dataset's path) and datasets
// are written without times too, and read back the same.
TEST(H5FileTimes, GroupsAndDatasetsAtAnyDepthCarryNoTimes) {
  const std::string dir = temp_dir(), path = dir + "/c.h5";
  {
    auto h5 = detail::H5File::create(path, true);
    h5.create_group("/model/layers");
    const std::vector<float> w{1.0f, 2.0f, 3.0f};
    h5.write<float>("/flat/deep/params", w.data(), {3});
    h5.write<float>("/model/layers/w", w.data(), {3});
    h5.set_attr("/", "format", std::string("test"));
    h5.close();
  }
  const std::vector<long long> none{0, 0, 0, 0};
  for (const char* obj : {"/", "/model", "/model/layers", "/flat", "/flat/deep", "/flat/deep/params", "/model/layers/w"})
    EXPECT_EQ(object_times(path, obj), none) << obj;
  const auto h5 = detail::H5File::open_read(path);
  EXPECT_EQ(h5.read<float>("/flat/deep/params"), (std::vector<float>{1.0f, 2.0f, 3.0f}));
  EXPECT_EQ(h5.attr_string("/", "format"), "test");
  fs::remove_all(dir);
}
