// A small CNN through the whole trainer, on synthetic 8x8 one-channel images written as IDX files
// (so samples arrive as {1, 8, 8}, as Fashion-MNIST's do). Each class brightens one quadrant; the
// network (conv, max pool, grouped non-square conv, avg pool, flatten, dense) must learn it, and in
// deterministic mode end with bit-identical parameters at every rank count (1, 2 and 4 in one
// launch of np 4; 1 and 2 at np 2; ...), as the dense networks of test_trainer do.
#include <gtest/gtest.h>

#include <cstdint>
#include <filesystem>
#include <fstream>

#include "lockstep/core/rng.hpp"
#include "lockstep/train/trainer.hpp"
#include "support/test_comm.hpp"

using namespace lockstep;
using lockstep::testing::world;

namespace {

constexpr int kSide = 8, kClasses = 4;

void put_be32(std::ofstream& f, std::uint32_t v) {
  const unsigned char b[4] = {static_cast<unsigned char>(v >> 24), static_cast<unsigned char>(v >> 16),
                              static_cast<unsigned char>(v >> 8), static_cast<unsigned char>(v)};
  f.write(reinterpret_cast<const char*>(b), 4);
}

// rows images (IDX ubyte, 3-D) and their labels; noise everywhere, class c's quadrant brighter.
void write_idx(const std::filesystem::path& images, const std::filesystem::path& labels, std::uint32_t rows,
               std::uint64_t seed) {
  std::ofstream fi(images, std::ios::binary), fl(labels, std::ios::binary);
  put_be32(fi, 0x0803);
  put_be32(fi, rows);
  put_be32(fi, kSide);
  put_be32(fi, kSide);
  put_be32(fl, 0x0801);
  put_be32(fl, rows);
  CounterRng rng(seed, RngStream::kUser, 0);
  for (std::uint32_t i = 0; i < rows; ++i) {
    const auto label = static_cast<int>(rng.uniform() * kClasses) % kClasses;
    fl.put(static_cast<char>(label));
    for (int y = 0; y < kSide; ++y)
      for (int x = 0; x < kSide; ++x) {
        const int quadrant = (y >= kSide / 2) * 2 + (x >= kSide / 2);
        const float v = 120.0f * rng.uniform() + (quadrant == label ? 110.0f : 0.0f);
        fi.put(static_cast<char>(static_cast<unsigned char>(v)));
      }
  }
}

const char* kCnn = R"(
data: {format: idx, scale: 0.00392156862745098}
model:
  layers:
    - {type: conv2d, filters: 6, kernel: 3, padding: same}
    - {type: relu}
    - {type: max_pool2d, kernel: 2}
    - {type: conv2d, filters: 8, kernel: [3, 2], groups: 2, padding: [1, 0]}
    - {type: relu}
    - {type: avg_pool2d, kernel: 2, padding: same}
    - {type: flatten}
    - {type: dense, units: 4}
  init: he_uniform
optimizer: {type: adam, lr: 0.01}
training: {epochs: 4, batch_size: 32, seed: 5, micro_batch: 4}
checkpoint: {at_epoch_end: false}
output: {progress: none}
)";

struct Run {
  int group_size;
  std::uint64_t digest;
  double accuracy;
};

std::uint64_t digest(const Tensor& p) {
  std::uint64_t h = 1469598103934665603ull;
  const auto* b = static_cast<const unsigned char*>(p.raw());
  for (std::size_t i = 0; i < p.bytes(); ++i) h = (h ^ b[i]) * 1099511628211ull;
  return h;
}

// Trains at every group size that divides the world; this rank's result for each.
std::vector<Run> run_at_all_sizes(const std::string& tag, const std::vector<std::string>& overrides) {
  auto& w = world();
  const auto dir = lockstep::testing::shared_temp_dir(tag);
  if (w.rank() == 0) {
    write_idx(dir / "train-images", dir / "train-labels", 640, 1);
    write_idx(dir / "test-images", dir / "test-labels", 256, 2);
  }
  w.barrier();
  std::vector<Run> out;
  for (int g = w.size(); g >= 1; --g) {
    if (w.size() % g != 0 || 32 % (g * 4) != 0) continue;
    auto sub = w.split(w.rank() / g, w.rank());
    auto o = overrides;
    o.push_back("data.train.features=" + (dir / "train-images").string());
    o.push_back("data.train.labels=" + (dir / "train-labels").string());
    o.push_back("data.test.features=" + (dir / "test-images").string());
    o.push_back("data.test.labels=" + (dir / "test-labels").string());
    o.push_back("output.dir=" + (dir / ("np" + std::to_string(g) + "_" + std::to_string(w.rank() / g))).string());
    const io::Config cfg = io::parse_config(kCnn, "cnn-config", o);
    auto tr = train::load_split(*sub, cfg.data, train::Split::kTrain);
    auto te = train::load_split(*sub, cfg.data, train::Split::kTest);
    train::Trainer trainer(*sub, cfg, std::move(tr), std::move(te));
    const auto history = trainer.run();
    out.push_back({g, digest(trainer.model().flat_params()), history.back().test.accuracy});
  }
  return out;
}

}  // namespace

TEST(CnnTraining, LearnsQuadrantsAndIsBitIdenticalAtEveryRankCountInDeterministicMode) {
  const auto runs = run_at_all_sizes("cnn_det", {"training.deterministic=true"});
  auto& w = world();
  const auto reference = w.allgather<std::uint64_t>(runs.back().digest);  // the np=1 groups
  for (const auto& r : runs) {
    EXPECT_GT(r.accuracy, 0.9) << "np=" << r.group_size << ": the CNN did not learn which quadrant is bright";
    const auto all = w.allgather<std::uint64_t>(r.digest);
    for (int rank = 0; rank < w.size(); ++rank)
      EXPECT_EQ(all[static_cast<std::size_t>(rank)], reference[0])
          << "deterministic CNN at np=" << r.group_size << " differs from np=1 on world rank " << rank;
  }
}
