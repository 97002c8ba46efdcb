// What a user of an output directory relies on: whole files are replaced atomically under a
// temporary of the writing process, and nothing is written through a symbolic link planted at the
// temporary or the final name; appends report a full disk or a missing directory naming the file;
// a second process cannot lock an output directory another one holds, and a killed holder's lock
// is gone with it; JSON lines stay valid JSON whatever the strings hold.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <filesystem>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>

#include "lockstep/core/error.hpp"
#include "lockstep/io/atomic_file.hpp"
#include "lockstep/io/checkpoint.hpp"
#include "lockstep/io/dir_lock.hpp"
#include "lockstep/io/json_line.hpp"

namespace fs = std::filesystem;
using lockstep::IoError;
namespace io = lockstep::io;

namespace {

class OutputDirTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "lockstep-outdir-test-XXXXXX").string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  std::string path(const std::string& name) const { return (fs::path(dir_) / name).string(); }
  std::vector<std::string> names() const {
    std::vector<std::string> v;
    for (const auto& e : fs::directory_iterator(dir_)) v.push_back(e.path().filename().string());
    std::sort(v.begin(), v.end());
    return v;
  }
  std::string dir_;
};

std::string slurp(const std::string& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

io::CheckpointState small_state() {
  io::CheckpointState st;
  st.params = {1.0f, 2.0f, 3.0f};
  st.layout = {{"w", {3}, 0}};
  st.optimizer_type = "sgd";
  st.epoch = 2;
  return st;
}

std::string message_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const IoError& e) {
    return e.what();
  }
  return "(no IoError)";
}

TEST_F(OutputDirTest, AtomicWriteReplacesTheFileAndLeavesNoTemporary) {
  io::write_file_atomically(path("config.yaml"), "first\n");
  io::write_file_atomically(path("config.yaml"), "second\n");
  EXPECT_EQ(slurp(path("config.yaml")), "second\n");
  EXPECT_EQ(names(), std::vector<std::string>{"config.yaml"});
}

TEST_F(OutputDirTest, TemporaryNamesAreThisProcesssAndDistinct) {
  const io::AtomicFile a(path("x")), b(path("x"));
  const std::string stem = path("x") + ".tmp." + io::host_name() + "." + std::to_string(::getpid()) + ".";
  EXPECT_EQ(a.temp().rfind(stem, 0), 0u) << a.temp();
  EXPECT_NE(a.temp(), b.temp());
}

TEST_F(OutputDirTest, SymlinkPlantedAtTheTemporaryIsNotFollowed) {
  std::ofstream(path("victim")) << "precious";
  io::AtomicFile f(path("checkpoint.h5"));
  fs::create_symlink(path("victim"), f.temp());  // planted after the name was chosen
  const auto msg = message_of([&] { f.write("overwrite"); });
  EXPECT_NE(msg.find(f.temp()), std::string::npos) << msg;
  EXPECT_EQ(slurp(path("victim")), "precious");
  EXPECT_TRUE(fs::is_symlink(f.temp()));  // someone else's file: left alone
  EXPECT_FALSE(fs::exists(path("checkpoint.h5")));
}

TEST_F(OutputDirTest, SymlinkAtTheFinalNameIsRefusedNotReplacedNorFollowed) {
  std::ofstream(path("victim")) << "precious";
  fs::create_symlink(path("victim"), path("config.yaml"));
  const auto msg = message_of([&] { io::write_file_atomically(path("config.yaml"), "x"); });
  EXPECT_NE(msg.find("config.yaml"), std::string::npos) << msg;
  EXPECT_NE(msg.find("symbolic link"), std::string::npos) << msg;
  EXPECT_EQ(slurp(path("victim")), "precious");
  EXPECT_TRUE(fs::is_symlink(path("config.yaml")));
  // A checkpoint (HDF5) is refused the same way, and its temporary is removed.
  fs::create_symlink(path("victim"), path("checkpoint.h5"));
  EXPECT_THROW(io::save_checkpoint(path("checkpoint.h5"), small_state()), IoError);
  EXPECT_EQ(slurp(path("victim")), "precious");
  EXPECT_EQ(names(), (std::vector<std::string>{"checkpoint.h5", "config.yaml", "victim"}));
}

TEST_F(OutputDirTest, ALeftoverTemporaryIsSkippedNotReused) {
  std::string leftover;
  {
    const io::AtomicFile probe(path("model.h5"));
    leftover = probe.temp();
  }
  std::ofstream(leftover) << "a crashed run's";
  io::save_checkpoint(path("model.h5"), small_state());
  EXPECT_EQ(slurp(leftover), "a crashed run's");
  EXPECT_EQ(io::load_checkpoint(path("model.h5")).epoch, 2);
}

TEST_F(OutputDirTest, AppendReportsTheFileAndTheReason) {
  io::append_to_file(path("metrics.jsonl"), "a\n");
  io::append_to_file(path("metrics.jsonl"), "b\n");
  EXPECT_EQ(slurp(path("metrics.jsonl")), "a\nb\n");
  // A full disk: /dev/full answers every write with ENOSPC.
  const auto full = message_of([] { io::append_to_file("/dev/full", "line\n"); });
  EXPECT_NE(full.find("/dev/full"), std::string::npos) << full;
  EXPECT_NE(full.find(std::strerror(ENOSPC)), std::string::npos) << full;
  // A directory that cannot exist (its parent is a file): even root cannot write there.
  std::ofstream(path("file")) << "";
  const auto notdir = message_of([&] { io::append_to_file(path("file/eval.jsonl"), "x\n"); });
  EXPECT_NE(notdir.find(path("file/eval.jsonl")), std::string::npos) << notdir;
  EXPECT_NE(notdir.find(std::strerror(ENOTDIR)), std::string::npos) << notdir;
  const auto atomic = message_of([&] { io::write_file_atomically(path("file/out.csv"), "x"); });
  EXPECT_NE(atomic.find(std::strerror(ENOTDIR)), std::string::npos) << atomic;
  // Never through a symbolic link.
  std::ofstream(path("victim")) << "precious";
  fs::create_symlink(path("victim"), path("train.log"));
  const auto link = message_of([&] { io::append_to_file(path("train.log"), "x\n"); });
  EXPECT_NE(link.find("symbolic link"), std::string::npos) << link;
  EXPECT_EQ(slurp(path("victim")), "precious");
}

// A child process takes the lock the way another lockstep run would (fcntl write lock, its name
// in the file) and holds it until killed.
pid_t hold_lock_in_child(const std::string& file) {
  int ready[2];
  if (::pipe(ready) != 0) return -1;
  const pid_t pid = ::fork();
  if (pid == 0) {
    const int fd = ::open(file.c_str(), O_RDWR | O_CREAT, 0644);
    struct flock fl{};
    fl.l_type = F_WRLCK;
    fl.l_whence = SEEK_SET;
    if (fd < 0 || ::fcntl(fd, F_SETLK, &fl) != 0) ::_exit(1);
    const char who[] = "host elsewhere, pid 4242, started yesterday, lockstep train\n";
    if (::write(fd, who, sizeof who - 1) < 0) ::_exit(1);
    if (::write(ready[1], "k", 1) != 1) ::_exit(1);
    for (;;) ::pause();
  }
  ::close(ready[1]);
  char c = 0;
  const bool ok = ::read(ready[0], &c, 1) == 1;
  ::close(ready[0]);
  return ok ? pid : -1;
}

TEST_F(OutputDirTest, ASecondRunIsRefusedAndAKilledHoldersLockIsGone) {
  const std::string file = path(io::DirLock::kFileName);
  const pid_t holder = hold_lock_in_child(file);
  ASSERT_GT(holder, 0);
  const auto msg = message_of([&] { io::DirLock::acquire(dir_, "lockstep train"); });
  EXPECT_NE(msg.find("output.dir " + dir_), std::string::npos) << msg;
  EXPECT_NE(msg.find("in use by another lockstep run"), std::string::npos) << msg;
  EXPECT_NE(msg.find("host elsewhere, pid 4242"), std::string::npos) << msg;
  // SIGKILL: no cleanup ran, the lock file is still there, and yet the directory is free.
  ::kill(holder, SIGKILL);
  ::waitpid(holder, nullptr, 0);
  ASSERT_TRUE(fs::exists(file));
  {
    const auto lock = io::DirLock::acquire(dir_, "lockstep train");
    EXPECT_TRUE(lock->locked());
    EXPECT_EQ(io::DirLock::acquire(dir_, "lockstep fit"), lock);  // one lock per process
    std::ifstream in(file);
    std::string who;
    std::getline(in, who);
    EXPECT_NE(who.find("pid " + std::to_string(::getpid())), std::string::npos) << who;
    EXPECT_NE(who.find("host " + io::host_name()), std::string::npos) << who;
  }
  EXPECT_FALSE(fs::exists(file));  // released, and removed by its holder
}

TEST(JsonLine, StringsAreEscapedAndNumbersReadBack) {
  const std::string path = "runs/a \"quoted\" dir\\with\\backslashes\nand a newline\t/checkpoint.h5";
  const std::string line = io::JsonLine()
                               .add("checkpoint", path)
                               .add("test_accuracy", 0.8947)
                               .add("test_loss", std::numeric_limits<double>::quiet_NaN())
                               .add("epoch", 3)
                               .add("deterministic", true)
                               .add("lr", 1.0 / 3.0)
                               .str();
  ASSERT_EQ(line.back(), '\n');
  EXPECT_EQ(line.find('\n'), line.size() - 1) << "one line";
  const auto js = nlohmann::json::parse(line);
  EXPECT_EQ(js["checkpoint"], path);
  EXPECT_EQ(js["test_accuracy"], 0.8947);
  EXPECT_TRUE(js["test_loss"].is_null());
  EXPECT_EQ(js["epoch"], 3);
  EXPECT_EQ(js["deterministic"], true);
  EXPECT_EQ(js["lr"].get<double>(), 0.333333333);  // %.9g's nine digits, as before
  // Keys in the order they were added, compact, as the scripts that grep them expect.
  EXPECT_EQ(line.rfind("{\"checkpoint\":", 0), 0u) << line;
  EXPECT_NE(line.find(",\"test_accuracy\":0.8947,"), std::string::npos) << line;
  // Bytes that are not UTF-8 (a Latin-1 file name) still give valid JSON.
  EXPECT_NO_THROW(nlohmann::json::parse(io::JsonLine().add("path", "caf\xe9").str()));
}

}  // namespace
