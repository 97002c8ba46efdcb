// text_file and save_as_text: the same lines, in the same order, at every rank count.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "lockstep/core/error.hpp"
#include "lockstep/data/text_file.hpp"
#include "support/test_comm.hpp"

namespace fs = std::filesystem;
using lockstep::data::Partitioned;
using lockstep::data::save_as_text;
using lockstep::data::text_file;
using lockstep::testing::world;

namespace {

// A folder of this test and rank count, emptied by rank 0 (every rank waits for it).
std::string fresh_dir(const std::string& tag) {
  const std::string dir = std::string(LOCKSTEP_BINARY_DIR) + "/test_text_file_" + tag + "_np" + std::to_string(world().size());
  if (world().rank() == 0) {
    fs::remove_all(dir);
    fs::create_directories(dir);
  }
  world().barrier();
  return dir;
}

void write(const std::string& path, const std::string& bytes) {
  if (world().rank() == 0) std::ofstream(path, std::ios::binary) << bytes;
  world().barrier();
}

// Lines of every shape: empty ones, CRLF, long ones crossing the 1 MiB read blocks and rank cuts.
std::vector<std::string> sample_lines() {
  std::vector<std::string> v = {"first", "", "third line", "", ""};
  for (int i = 0; i < 300; ++i) v.push_back("line " + std::to_string(i) + std::string(static_cast<std::size_t>(i % 17), 'x'));
  v.push_back(std::string((1 << 20) + 333, 'L'));  // longer than a read block
  v.push_back("after the long one");
  return v;
}

std::string join(const std::vector<std::string>& v, const std::string& eol) {
  std::string s;
  for (const auto& x : v) {
    s += x;
    s += eol;
  }
  return s;
}

}  // namespace

TEST(TextFile, LinesInOrderAtAnyRankCount) {
  const std::string dir = fresh_dir("lines");
  const auto want = sample_lines();
  write(dir + "/a.txt", join(want, "\n"));
  auto lines = text_file(world(), dir + "/a.txt");
  EXPECT_EQ(lines.count(), static_cast<std::int64_t>(want.size()));
  EXPECT_EQ(lines.collect(), want);
  // Lazy: a second action reads again and sees the same lines.
  EXPECT_EQ(lines.map([](const std::string& s) { return static_cast<std::int64_t>(s.size()); })
                .reduce([](std::int64_t a, std::int64_t b) { return a + b; }),
            static_cast<std::int64_t>(join(want, "").size()));
}

TEST(TextFile, CrlfAndAMissingLastNewline) {
  const std::string dir = fresh_dir("crlf");
  write(dir + "/w.txt", "one\r\ntwo\r\n\r\nlast without newline");
  EXPECT_EQ(text_file(world(), dir + "/w.txt").collect(),
            (std::vector<std::string>{"one", "two", "", "last without newline"}));
  write(dir + "/empty.txt", "");
  EXPECT_EQ(text_file(world(), dir + "/empty.txt").count(), 0);
}

TEST(TextFile, AFolderIsItsFilesInNameOrderSkippingHiddenOnes) {
  const std::string dir = fresh_dir("folder");
  write(dir + "/b.txt", "b1\nb2\n");
  write(dir + "/a.txt", "a1\na2\na3");  // no final newline: a3 must not run into b1
  write(dir + "/c.txt", "");
  write(dir + "/_SUCCESS", "");
  write(dir + "/.a.txt.crc", "not text\n");
  if (world().rank() == 0) fs::create_directories(dir + "/sub");
  write(dir + "/sub/ignored.txt", "ignored\n");
  EXPECT_EQ(text_file(world(), dir).collect(), (std::vector<std::string>{"a1", "a2", "a3", "b1", "b2"}));
}

TEST(TextFile, AMissingPathFailsOnEveryRank) {
  const std::string dir = fresh_dir("missing");
  try {
    text_file(world(), dir + "/nope.txt");
    FAIL() << "expected a DataError";
  } catch (const lockstep::DataError& e) {
    EXPECT_NE(std::string(e.what()).find("nope.txt"), std::string::npos) << e.what();
  }
}

TEST(SaveAsText, RoundTripsInGlobalOrderWithOnePartPerRank) {
  const std::string dir = fresh_dir("save");
  std::vector<std::string> want;
  for (int i = 0; i < 1000; ++i) want.push_back(std::to_string(i * 7));
  auto xs = Partitioned<std::string>::parallelize(world(), want);
  save_as_text(xs, dir + "/out");
  EXPECT_TRUE(fs::exists(dir + "/out/_SUCCESS"));
  for (int r = 0; r < world().size(); ++r) {
    char name[32];
    std::snprintf(name, sizeof name, "/out/part-%05d", r);
    EXPECT_TRUE(fs::exists(dir + name)) << name;
  }
  EXPECT_EQ(text_file(world(), dir + "/out").collect(), want);
  // A typed collection through a formatter.
  auto ints = Partitioned<int>::parallelize(world(), {3, 1, 2});
  save_as_text(ints, dir + "/ints", [](int x) { return "n=" + std::to_string(x); });
  EXPECT_EQ(text_file(world(), dir + "/ints").collect(), (std::vector<std::string>{"n=3", "n=1", "n=2"}));
}

TEST(SaveAsText, RefusesEarlierOutputUnlessOverwriteWhichRemovesStaleParts) {
  const std::string dir = fresh_dir("overwrite");
  auto xs = Partitioned<std::string>::parallelize(world(), {"x", "y"});
  save_as_text(xs, dir + "/out");
  EXPECT_THROW(save_as_text(xs, dir + "/out"), lockstep::IoError);
  write(dir + "/out/part-00099", "stale from a run at 100 ranks\n");
  save_as_text(Partitioned<std::string>::parallelize(world(), {"z"}), dir + "/out", true);
  EXPECT_FALSE(fs::exists(dir + "/out/part-00099"));
  EXPECT_EQ(text_file(world(), dir + "/out").collect(), (std::vector<std::string>{"z"}));
}

TEST(SaveAsText, AnElementWithANewlineFailsEveryRankAndLeavesNoPart) {
  const std::string dir = fresh_dir("newline");
  std::vector<std::string> v(static_cast<std::size_t>(world().size()) * 2, "ok");
  v.back() = "two\nlines";  // on the last rank only
  try {
    save_as_text(Partitioned<std::string>::parallelize(world(), v), dir + "/out");
    FAIL() << "expected an IoError";
  } catch (const lockstep::IoError& e) {
    EXPECT_NE(std::string(e.what()).find("holds a '\\n'"), std::string::npos) << e.what();
  }
  world().barrier();
  for (const auto& e : fs::directory_iterator(dir + "/out")) ADD_FAILURE() << "left behind: " << e.path();
}
