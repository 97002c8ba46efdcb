// Checkpoints as a user relies on them: what is saved loads back bit for bit (parameters with
// signed zeros, infinities, NaN payloads and subnormals; optimizer state; counters; strings,
// including a config over HDF5's 64 KiB compact-attribute limit); the file is plain HDF5 with each
// parameter under /params/<name> in its own shape (read back here through the project's HDF5
// wrapper, as h5py would); a save goes through a temporary and never leaves it behind, and a
// failed save leaves the previous checkpoint intact; and unreadable files are CheckpointErrors
// that name the path.
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>

#include <bit>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <sstream>

#include <hdf5.h>

#include "detail/hdf5.hpp"
#include "lockstep/io/checkpoint.hpp"

using lockstep::CheckpointError;
using lockstep::io::CheckpointState;
using lockstep::io::load_checkpoint;
using lockstep::io::save_checkpoint;
namespace fs = std::filesystem;

namespace {

// A fresh directory per test, removed afterwards.
class CheckpointTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "lockstep-checkpoint-test-XXXXXX").string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }
  fs::path dir_;
};

float float_from_bits(std::uint32_t b) { return std::bit_cast<float>(b); }

CheckpointState sample_state(std::uint32_t salt = 0) {
  CheckpointState st;
  // Two dense layers, last layer first as Sequential lays them out: 6 + 2 + 12 + 3 = 23 values.
  st.layout = {{"dense2.weight", {3, 2}, 0}, {"dense2.bias", {2}, 6}, {"dense0.weight", {4, 3}, 8}, {"dense0.bias", {3}, 20}};
  for (int i = 0; i < 23; ++i) st.params.push_back(std::ldexp(static_cast<float>(i + 1 + salt), -i) * (i % 2 ? -1.0f : 1.0f));
  st.params[1] = -0.0f;
  st.params[2] = std::numeric_limits<float>::denorm_min();
  st.params[3] = std::numeric_limits<float>::infinity();
  st.params[4] = -std::numeric_limits<float>::max();
  st.params[5] = float_from_bits(0x7FC12345u);  // a quiet NaN with a payload
  st.params[9] = 0.1f;
  for (const std::string name : {"exp_avg", "exp_avg_sq"}) {
    auto& buf = st.optimizer_state[name];
    const float shift = name == "exp_avg" ? 0.0f : 0.5f;
    for (std::size_t i = 0; i < st.params.size(); ++i) buf.push_back(static_cast<float>(i) / 3.0f + shift);
  }
  st.optimizer_type = "adamw";
  st.optimizer_steps = 123456789012 + salt;
  st.epoch = 3;
  st.step_in_epoch = 17;
  st.global_step = 1234567;
  st.epoch_loss_sum = 0.1 + 0.2;  // 0.30000000000000004: any decimal detour would lose it
  st.epoch_loss_count = 17 * 64;
  st.config_hash = 0xFEDCBA9876543210ull;
  st.seed = 0xFFFFFFFFFFFFFFFFull;
  st.world_size = 3;
  st.deterministic = true;
  std::ostringstream yaml;
  yaml << "# caf\xc3\xa9 \xe2\x80\x94 resolved config\n";
  while (yaml.tellp() < 100 * 1024) yaml << "optimizer: {type: adamw, lr: 0.001}  # padding line\n";
  st.config_yaml = yaml.str();
  return st;
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

void expect_equal_state(const CheckpointState& got, const CheckpointState& want) {
  EXPECT_TRUE(same_bits(got.params, want.params)) << "params differ";
  ASSERT_EQ(got.optimizer_state.size(), want.optimizer_state.size());
  for (const auto& [name, buf] : want.optimizer_state) {
    ASSERT_TRUE(got.optimizer_state.count(name)) << name;
    EXPECT_TRUE(same_bits(got.optimizer_state.at(name), buf)) << name;
  }
  EXPECT_EQ(got.optimizer_type, want.optimizer_type);
  EXPECT_EQ(got.optimizer_steps, want.optimizer_steps);
  EXPECT_EQ(got.epoch, want.epoch);
  EXPECT_EQ(got.step_in_epoch, want.step_in_epoch);
  EXPECT_EQ(got.global_step, want.global_step);
  EXPECT_EQ(std::bit_cast<std::uint64_t>(got.epoch_loss_sum), std::bit_cast<std::uint64_t>(want.epoch_loss_sum));
  EXPECT_EQ(got.epoch_loss_count, want.epoch_loss_count);
  EXPECT_EQ(got.config_hash, want.config_hash);
  EXPECT_EQ(got.seed, want.seed);
  EXPECT_EQ(got.world_size, want.world_size);
  EXPECT_EQ(got.deterministic, want.deterministic);
  EXPECT_EQ(got.config_yaml, want.config_yaml);
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const CheckpointError& e) {
    return e.what();
  } catch (const std::exception& e) {
    ADD_FAILURE() << "expected a CheckpointError, got: " << e.what();
    return e.what();
  }
  ADD_FAILURE() << "no error";
  return "";
}

#define EXPECT_HAS(haystack, needle) \
  EXPECT_NE(std::string(haystack).find(needle), std::string::npos) << "\"" << (needle) << "\" not in: " << (haystack)

}  // namespace

TEST_F(CheckpointTest, SaveThenLoadRoundTripsEveryFieldBitExactly) {
  const auto st = sample_state();
  const auto p = path("ckpt.h5");
  save_checkpoint(p, st);
  expect_equal_state(load_checkpoint(p), st);
  EXPECT_EQ(std::distance(fs::directory_iterator(dir_), fs::directory_iterator()), 1);  // no temporary left

  // An empty optimizer state (plain SGD without momentum still saves "velocity", but a model
  // without one must load too) and zeroed counters.
  CheckpointState small;
  small.params = {1.0f, 2.0f};
  small.layout = {{"dense0.weight", {1, 2}, 0}};
  save_checkpoint(path("small.h5"), small);
  expect_equal_state(load_checkpoint(path("small.h5")), small);
}

TEST_F(CheckpointTest, ParametersAreStoredInTheirOwnShapes) {
  const auto st = sample_state();
  const auto p = path("ckpt.h5");
  save_checkpoint(p, st);
  auto f = lockstep::detail::H5File::open_read(p);
  EXPECT_EQ(f.attr_string("/", "format"), "lockstep-checkpoint");
  EXPECT_EQ(f.attr_int("/", "format_version"), CheckpointState::kFormatVersion);
  EXPECT_EQ(f.list("/params"), (std::vector<std::string>{"dense0.bias", "dense0.weight", "dense2.bias", "dense2.weight"}));
  for (const auto& info : st.layout) {
    const std::string ds = "/params/" + info.name;
    EXPECT_EQ(f.shape(ds), info.shape) << ds;
    const auto values = f.read<float>(ds);
    const std::vector<float> want(st.params.begin() + info.offset,
                                  st.params.begin() + info.offset + lockstep::shape_numel(info.shape));
    EXPECT_TRUE(same_bits(values, want)) << ds;
  }
  EXPECT_EQ(f.shape("/flat/params"), (lockstep::Shape{23}));
  EXPECT_EQ(f.list("/flat/optimizer"), (std::vector<std::string>{"exp_avg", "exp_avg_sq"}));
}

TEST_F(CheckpointTest, SavingOverAnExistingCheckpointReplacesIt) {
  const auto p = path("ckpt.h5");
  save_checkpoint(p, sample_state(0));
  const auto second = sample_state(1);
  save_checkpoint(p, second);
  expect_equal_state(load_checkpoint(p), second);
  EXPECT_EQ(std::distance(fs::directory_iterator(dir_), fs::directory_iterator()), 1);  // no temporary left
}

TEST_F(CheckpointTest, SavingIntoAMissingDirectoryFailsCleanly) {
  const auto p = path("no/such/dir/ckpt.h5");
  try {
    save_checkpoint(p, sample_state());
    ADD_FAILURE() << "saved into a directory that does not exist";
  } catch (const lockstep::Error& e) {
    EXPECT_HAS(e.what(), "no/such/dir");
  }
  EXPECT_FALSE(fs::exists(path("no")));
}

TEST_F(CheckpointTest, AFailedSaveLeavesThePreviousCheckpointIntact) {
  const auto p = path("ckpt.h5");
  const auto good = sample_state();
  save_checkpoint(p, good);
  // A save that fails half-way: two parameters with one name cannot both become datasets.
  auto bad = sample_state(1);
  bad.layout.push_back({"dense2.weight", {3, 2}, 0});
  EXPECT_THROW(save_checkpoint(p, bad), lockstep::Error);
  expect_equal_state(load_checkpoint(p), good);
  EXPECT_EQ(std::distance(fs::directory_iterator(dir_), fs::directory_iterator()), 1)
      << "a failed save left its temporary file";
}

TEST_F(CheckpointTest, UnreadableFilesAreCheckpointErrorsNamingThePath) {
  const auto missing = path("missing.h5");
  EXPECT_HAS(error_of([&] { load_checkpoint(missing); }), missing);

  const auto text = path("notes.txt");
  std::ofstream(text) << "not an HDF5 file\n";
  EXPECT_HAS(error_of([&] { load_checkpoint(text); }), text);

  // HDF5, but not a checkpoint (a data file, say).
  const auto data = path("data.h5");
  {
    auto f = lockstep::detail::H5File::create(data);
    const float x[3] = {1, 2, 3};
    f.write("/features", x, {3});
    f.close();
  }
  const auto msg = error_of([&] { load_checkpoint(data); });
  EXPECT_HAS(msg, data);
  EXPECT_HAS(msg, "not a lockstep checkpoint");

  // A newer format version.
  const auto future = path("future.h5");
  {
    auto f = lockstep::detail::H5File::create(future);
    f.set_attr("/", "format", "lockstep-checkpoint");
    f.set_attr("/", "format_version", std::int64_t{99});
    f.close();
  }
  const auto vmsg = error_of([&] { load_checkpoint(future); });
  EXPECT_HAS(vmsg, future);
  EXPECT_HAS(vmsg, "99");

  // The right header, but the rest missing.
  const auto truncated = path("truncated.h5");
  {
    auto f = lockstep::detail::H5File::create(truncated);
    f.set_attr("/", "format", "lockstep-checkpoint");
    f.set_attr("/", "format_version", CheckpointState::kFormatVersion);
    f.close();
  }
  EXPECT_HAS(error_of([&] { load_checkpoint(truncated); }), truncated);

  // A damaged attribute.
  const auto damaged = path("damaged.h5");
  save_checkpoint(damaged, sample_state());
  {
    auto f = lockstep::detail::H5File::open_rw(damaged);
    f.set_attr("/", "seed", "not hex");
    f.close();
  }
  EXPECT_HAS(error_of([&] { load_checkpoint(damaged); }), damaged);

  // Optimizer state longer than the parameters. (Shorter is the trainable prefix of a model with
  // frozen layers; resume checks it against the model's trainable parameters.)
  auto mismatched = sample_state();
  mismatched.optimizer_state["exp_avg"].push_back(0.0f);
  save_checkpoint(path("mismatch.h5"), mismatched);
  const auto mmsg = error_of([&] { load_checkpoint(path("mismatch.h5")); });
  EXPECT_HAS(mmsg, "mismatch.h5");
  EXPECT_HAS(mmsg, "exp_avg");
}

TEST_F(CheckpointTest, WriteFileAtomicallyReplacesContentsWithoutLeftovers) {
  const auto p = path("model.txt");
  lockstep::io::write_file_atomically(p, "first");
  const std::string binary("a\0b\nc", 5);
  lockstep::io::write_file_atomically(p, binary);
  std::ifstream in(p, std::ios::binary);
  const std::string got((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(got, binary);
  EXPECT_EQ(std::distance(fs::directory_iterator(dir_), fs::directory_iterator()), 1);  // no temporary left
  EXPECT_THROW(lockstep::io::write_file_atomically(path("missing/dir/x"), "x"), lockstep::IoError);
}

// ---- checksums, counters, bounded reads, kept generations ----

namespace {

// Flips one bit of the file at byte `at`.
void flip_bit(const std::string& file, std::int64_t at) {
  std::fstream io(file, std::ios::in | std::ios::out | std::ios::binary);
  io.seekg(at);
  char c = 0;
  io.read(&c, 1);
  c = static_cast<char>(c ^ 0x10);
  io.seekp(at);
  io.write(&c, 1);
}

std::vector<std::string> float_datasets(const std::string& file) {
  auto f = lockstep::detail::H5File::open_read(file);
  std::vector<std::string> out{"/flat/params"};
  for (const auto& n : f.list("/params")) out.push_back("/params/" + n);
  for (const auto& n : f.list("/flat/optimizer")) out.push_back("/flat/optimizer/" + n);
  return out;
}

}  // namespace

TEST_F(CheckpointTest, AFlippedBitInAnyDatasetIsACheckpointErrorNamingTheDataset) {
  const auto good = path("good.h5");
  save_checkpoint(good, sample_state());
  const auto datasets = float_datasets(good);
  ASSERT_EQ(datasets.size(), 7u);  // flat params, 4 parameters, 2 optimizer states
  int flips = 0;
  for (const auto& ds : datasets) {
    std::int64_t at = -1, bytes = 0;
    {
      auto f = lockstep::detail::H5File::open_read(good);
      at = f.data_offset(ds);
      bytes = static_cast<std::int64_t>(f.read<float>(ds).size() * sizeof(float));
    }
    ASSERT_GE(at, 0) << ds;
    for (const std::int64_t where : {std::int64_t{0}, bytes / 2, bytes - 1}) {
      const auto bad = path("flipped.h5");
      fs::copy_file(good, bad, fs::copy_options::overwrite_existing);
      flip_bit(bad, at + where);
      const auto msg = error_of([&] { load_checkpoint(bad); });
      EXPECT_HAS(msg, bad + ":" + ds + ": checksum mismatch");
      ++flips;
    }
  }
  EXPECT_EQ(flips, 21);
}

TEST_F(CheckpointTest, AChangedCounterWithoutItsChecksumIsRefused) {
  const auto p = path("counter.h5");
  save_checkpoint(p, sample_state());
  {
    auto f = lockstep::detail::H5File::open_rw(p);
    f.set_attr("/", "global_step", std::int64_t{1234568});  // in range, but not what was written
    f.close();
  }
  const auto msg = error_of([&] { load_checkpoint(p); });
  EXPECT_HAS(msg, p + ": root attributes: checksum mismatch");
}

TEST_F(CheckpointTest, CountersOutOfRangeNameTheFieldTheRangeAndTheValue) {
  struct Case {
    const char* name;
    std::int64_t value;
    const char* range;
  };
  const Case cases[] = {
      {"step_in_epoch", -1, "[0, 9007199254740992]"},
      {"step_in_epoch", std::numeric_limits<std::int64_t>::max(), "[0, 9007199254740992]"},
      {"epoch", -5, "[0, 2147483647]"},
      {"epoch", std::int64_t{1} << 40, "[0, 2147483647]"},
      {"global_step", -1, "[0, 9007199254740992]"},
      {"optimizer_steps", std::numeric_limits<std::int64_t>::min(), "[0, 9007199254740992]"},
      {"world_size", 0, "[1, 2147483647]"},
      {"deterministic", 2, "[0, 1]"},
      {"epoch_loss_count", -64, "[0, 9007199254740992]"},
  };
  for (const auto& c : cases) {
    const auto p = path("range.h5");
    save_checkpoint(p, sample_state());
    {
      auto f = lockstep::detail::H5File::open_rw(p);
      f.set_attr("/", c.name, c.value);
      f.close();
    }
    const auto msg = error_of([&] { load_checkpoint(p); });
    EXPECT_HAS(msg, p + ": attribute " + c.name + ": expected an integer in " + c.range + ", found " +
                        std::to_string(c.value));
  }
  // The RNG seed is 16 lowercase hex digits, as written; "-1" would otherwise parse as a huge number.
  const auto p = path("seed.h5");
  save_checkpoint(p, sample_state());
  {
    auto f = lockstep::detail::H5File::open_rw(p);
    f.set_attr("/", "seed", "-1");
    f.close();
  }
  EXPECT_HAS(error_of([&] { load_checkpoint(p); }), p + ": attribute seed: expected 16 lowercase hex digits");
}

TEST_F(CheckpointTest, ShapesThatDisagreeWithTheFlatBufferAreRefused) {
  const auto p = path("shapes.h5");
  save_checkpoint(p, sample_state());
  {
    auto f = lockstep::detail::H5File::open_rw(p);
    f.remove("/params/dense0.bias");
    const float two[2] = {1.0f, 2.0f};
    f.write("/params/dense0.bias", two, {2});
    f.set_attr("/params/dense0.bias", lockstep::io::kChecksumAttribute, std::int64_t{0});
    f.close();
  }
  const auto msg = error_of([&] { load_checkpoint(p); });
  EXPECT_HAS(msg, p);
  EXPECT_HAS(msg, "/params/dense0.bias");
}

TEST_F(CheckpointTest, AHugeDeclaredDatasetIsRefusedBeforeAllocating) {
  const auto p = path("huge.h5");
  save_checkpoint(p, sample_state());
  {
    // A dataspace of 2^50 floats with no storage behind it: valid HDF5, and a bad_alloc (or worse)
    // if the reader allocated first.
    const hid_t f = H5Fopen(p.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
    ASSERT_GE(f, 0);
    ASSERT_GE(H5Ldelete(f, "/flat/optimizer/exp_avg", H5P_DEFAULT), 0);
    const hsize_t dims[1] = {hsize_t{1} << 50};
    const hid_t space = H5Screate_simple(1, dims, nullptr);
    const hid_t d = H5Dcreate2(f, "/flat/optimizer/exp_avg", H5T_IEEE_F32LE, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    ASSERT_GE(d, 0);
    H5Dclose(d);
    H5Sclose(space);
    H5Fclose(f);
  }
  const auto msg = error_of([&] { load_checkpoint(p); });
  EXPECT_HAS(msg, p + ":/flat/optimizer/exp_avg: declares shape (1125899906842624)");
  EXPECT_HAS(msg, "refusing to allocate");
}

TEST_F(CheckpointTest, FormatVersion1FilesStillLoadUnverified) {
  const auto p = path("v1.h5");
  const auto st = sample_state();
  save_checkpoint(p, st);
  {
    auto f = lockstep::detail::H5File::open_rw(p);
    f.set_attr("/", "format_version", std::int64_t{1});
    f.set_attr("/", "attributes_crc32", std::int64_t{0});  // version 1 had none: not looked at
    f.set_attr("/flat/params", lockstep::io::kChecksumAttribute, std::int64_t{0});
    f.close();
  }
  const auto got = load_checkpoint(p);
  expect_equal_state(got, st);
  EXPECT_FALSE(got.checksummed);
}

TEST_F(CheckpointTest, RotationKeepsTheLastKGenerationsNewestUnderTheFixedName) {
  const auto p = path("checkpoint.h5");
  EXPECT_EQ(lockstep::io::rotated_checkpoint_path(p, 2), path("checkpoint.2.h5"));
  for (int e = 0; e < 4; ++e) {
    auto st = sample_state();
    st.epoch = e;
    lockstep::io::rotate_checkpoints(p, 3);
    save_checkpoint(p, st);
  }
  const auto gens = lockstep::io::checkpoint_generations(p);
  ASSERT_EQ(gens, (std::vector<std::string>{p, path("checkpoint.1.h5"), path("checkpoint.2.h5")}));
  for (std::size_t i = 0; i < gens.size(); ++i) EXPECT_EQ(load_checkpoint(gens[i]).epoch, 3 - static_cast<int>(i));
  // Lowering keep removes the generations it no longer allows.
  lockstep::io::rotate_checkpoints(p, 1);
  save_checkpoint(p, sample_state());
  EXPECT_EQ(lockstep::io::checkpoint_generations(p), std::vector<std::string>{p});
}

// A checkpoint write that runs out of space (here: the file size limit, EFBIG, which needs no root
// and no small file system; ENOSPC takes the same path through HDF5's write-out) is an error naming
// the file and the reason; the previous checkpoint stays intact; and the process then exits
// normally, where HDF5's exit handler used to crash (SIGSEGV) on the half-closed file.
TEST_F(CheckpointTest, AWriteThatRunsOutOfSpaceFailsCleanlyAndTheProcessExitsNormally) {
  const auto p = path("full.h5");
  const auto good = sample_state();
  save_checkpoint(p, good);
  std::fflush(nullptr);
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    std::signal(SIGXFSZ, SIG_IGN);
    const rlimit limit{8192, 8192};  // the 100 KiB config alone does not fit
    ::setrlimit(RLIMIT_FSIZE, &limit);
    int code = 2;  // saved despite the limit
    try {
      save_checkpoint(p, sample_state(1));
    } catch (const lockstep::Error& e) {
      const std::string msg = e.what();
      code = msg.find("full.h5.tmp") != std::string::npos && msg.find("File too large") != std::string::npos ? 0 : 3;
      if (code) std::fprintf(stderr, "unexpected message: %s\n", e.what());
    }
    std::exit(code);  // runs the exit handlers
  }
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status)) << "the process died of signal " << WTERMSIG(status);
  EXPECT_EQ(WEXITSTATUS(status), 0) << "2: saved despite the limit, 3: another message";
  expect_equal_state(load_checkpoint(p), good);
  EXPECT_FALSE(fs::exists(p + ".tmp"));
}
