// Counter-based random numbers (Philox-4x32-10, Salmon et al., SC'11). A value is a pure function
// of (key, counter), so any rank can reproduce the randomness of any sample from
// (seed, epoch, sample index) without sharing generator state. Usable on host and device.
#pragma once

#include <cstdint>

#include "lockstep/core/hostdevice.hpp"

namespace lockstep {

struct Philox4x32 {
  struct Block {
    std::uint32_t v[4];
  };

  LOCKSTEP_HD static Block generate(std::uint64_t key, std::uint64_t ctr_hi, std::uint64_t ctr_lo) {
    std::uint32_t c0 = static_cast<std::uint32_t>(ctr_lo), c1 = static_cast<std::uint32_t>(ctr_lo >> 32);
    std::uint32_t c2 = static_cast<std::uint32_t>(ctr_hi), c3 = static_cast<std::uint32_t>(ctr_hi >> 32);
    std::uint32_t k0 = static_cast<std::uint32_t>(key), k1 = static_cast<std::uint32_t>(key >> 32);
    for (int round = 0; round < 10; ++round) {
      const std::uint64_t p0 = static_cast<std::uint64_t>(0xD2511F53u) * c0;
      const std::uint64_t p1 = static_cast<std::uint64_t>(0xCD9E8D57u) * c2;
      const std::uint32_t n0 = static_cast<std::uint32_t>(p1 >> 32) ^ c1 ^ k0;
      const std::uint32_t n1 = static_cast<std::uint32_t>(p1);
      const std::uint32_t n2 = static_cast<std::uint32_t>(p0 >> 32) ^ c3 ^ k1;
      const std::uint32_t n3 = static_cast<std::uint32_t>(p0);
      c0 = n0; c1 = n1; c2 = n2; c3 = n3;
      k0 += 0x9E3779B9u;
      k1 += 0xBB67AE85u;
    }
    return Block{{c0, c1, c2, c3}};
  }

  // Uniform in [0, 1) with 24 random bits: exactly representable as float.
  LOCKSTEP_HD static float to_unit_float(std::uint32_t x) { return static_cast<float>(x >> 8) * (1.0f / 16777216.0f); }
  // Uniform in [0, 1) with 53 random bits.
  LOCKSTEP_HD static double to_unit_double(std::uint32_t hi, std::uint32_t lo) {
    const std::uint64_t bits = (static_cast<std::uint64_t>(hi) << 21) ^ (lo >> 11);
    return static_cast<double>(bits & ((1ull << 53) - 1)) * (1.0 / 9007199254740992.0);
  }
};

// Streams of randomness: each purpose gets its own stream id so that, for example, dropout masks
// and the data permutation never share counters.
enum class RngStream : std::uint32_t {
  kPermutation = 1,
  kInit = 2,
  kDropout = 3,
  kSynthetic = 4,
  kKMeans = 5,     // k-means|| sampling, keyed by (seed, step, global row)
  kForest = 6,     // bootstrap weights and feature subsets, keyed by (seed, tree, row or node)
  kSplit = 7,      // random splits (train/validation, cross-validation folds), keyed by (seed, row)
  kAugment = 8,    // image augmentation (random crop, flip), keyed by (seed, epoch, global row)
  kUser = 100
};

// A sequential generator over one (seed, stream, a, b) tuple; cheap to create per sample.
class CounterRng {
 public:
  LOCKSTEP_HD CounterRng(std::uint64_t seed, RngStream stream, std::uint64_t a, std::uint64_t b = 0)
      : key_(seed ^ (static_cast<std::uint64_t>(stream) * 0x9E3779B97F4A7C15ull)), hi_(a), lo_(b << 32) {}

  LOCKSTEP_HD std::uint32_t next_u32() {
    if (idx_ == 4) {
      block_ = Philox4x32::generate(key_, hi_, lo_++);
      idx_ = 0;
    }
    return block_.v[idx_++];
  }
  LOCKSTEP_HD float uniform() { return Philox4x32::to_unit_float(next_u32()); }
  LOCKSTEP_HD double uniform_double() {
    const std::uint32_t a = next_u32();
    return Philox4x32::to_unit_double(a, next_u32());
  }
  // Unbiased integer in [0, n) by rejection (Lemire's method without the division fast path).
  LOCKSTEP_HD std::uint64_t below(std::uint64_t n) {
    if (n <= 1) return 0;
    const std::uint64_t limit = ~0ull - (~0ull % n);
    while (true) {
      const std::uint64_t x = (static_cast<std::uint64_t>(next_u32()) << 32) | next_u32();
      if (x < limit) return x % n;
    }
  }
  double normal();  // Box-Muller, host only

 private:
  std::uint64_t key_;
  std::uint64_t hi_;
  std::uint64_t lo_;
  Philox4x32::Block block_{};
  int idx_ = 4;
};

}  // namespace lockstep
