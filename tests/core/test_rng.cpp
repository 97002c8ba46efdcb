// The counter-based RNG: Philox-4x32-10 against the published known-answer vectors, and CounterRng
// as a pure function of (seed, stream, a, b) — the property that lets any rank reproduce the
// randomness of any sample without sharing generator state.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <set>
#include <vector>

#include "lockstep/core/rng.hpp"

using lockstep::CounterRng;
using lockstep::Philox4x32;
using lockstep::RngStream;

namespace {

std::vector<std::uint32_t> draws(CounterRng r, int n) {
  std::vector<std::uint32_t> v;
  for (int i = 0; i < n; ++i) v.push_back(r.next_u32());
  return v;
}

// key = (k1 << 32) | k0, counter words c0..c3 as in Random123's philox4x32 (c0 lowest).
Philox4x32::Block philox(std::uint32_t c0, std::uint32_t c1, std::uint32_t c2, std::uint32_t c3, std::uint32_t k0,
                         std::uint32_t k1) {
  return Philox4x32::generate((std::uint64_t{k1} << 32) | k0, (std::uint64_t{c3} << 32) | c2,
                              (std::uint64_t{c1} << 32) | c0);
}

}  // namespace

// Known-answer vectors of Random123 (kat_vectors, philox4x32_10).
TEST(Philox, MatchesPublishedKnownAnswers) {
  const auto a = philox(0, 0, 0, 0, 0, 0);
  EXPECT_EQ(a.v[0], 0x6627e8d5u);
  EXPECT_EQ(a.v[1], 0xe169c58du);
  EXPECT_EQ(a.v[2], 0xbc57ac4cu);
  EXPECT_EQ(a.v[3], 0x9b00dbd8u);
  const auto b = philox(0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu);
  EXPECT_EQ(b.v[0], 0x408f276du);
  EXPECT_EQ(b.v[1], 0x41c83b0eu);
  EXPECT_EQ(b.v[2], 0xa20bc7c6u);
  EXPECT_EQ(b.v[3], 0x6d5451fdu);
  const auto c = philox(0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u, 0xa4093822u, 0x299f31d0u);
  EXPECT_EQ(c.v[0], 0xd16cfe09u);
  EXPECT_EQ(c.v[1], 0x94fdccebu);
  EXPECT_EQ(c.v[2], 0x5001e420u);
  EXPECT_EQ(c.v[3], 0x24126ea1u);
}

// CounterRng's first values, pinned: a change here changes every permutation, initialisation and
// dropout mask, so every checkpoint digest in the docs. The stream (a, b) = (7, 3) starts at the
// Philox block with counter (hi = a, lo = b << 32) under key seed ^ stream * golden ratio.
TEST(CounterRng, FirstValuesArePinned) {
  const std::uint64_t seed = 42;
  const auto v = draws(CounterRng(seed, RngStream::kPermutation, 7, 3), 8);
  const std::uint64_t key = seed ^ (static_cast<std::uint64_t>(RngStream::kPermutation) * 0x9E3779B97F4A7C15ull);
  const auto b0 = Philox4x32::generate(key, 7, std::uint64_t{3} << 32);
  const auto b1 = Philox4x32::generate(key, 7, (std::uint64_t{3} << 32) + 1);
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(v[static_cast<std::size_t>(i)], b0.v[i]) << i;
    EXPECT_EQ(v[static_cast<std::size_t>(i + 4)], b1.v[i]) << i + 4;
  }
  const std::vector<std::uint32_t> pinned{0xed32b4cfu, 0x0ef62279u, 0x7ded37c0u, 0xe7ca0180u,
                                          0x46d2d699u, 0xbe10969eu, 0x56501053u, 0xa91f395eu};
  EXPECT_EQ(v, pinned);
}

TEST(CounterRng, SameTupleSameValuesWhereverItIsMade) {
  for (const std::uint64_t a : {0ull, 1ull, 123456789ull}) {
    CounterRng x(7, RngStream::kDropout, a, 5), y(7, RngStream::kDropout, a, 5);
    // Drawn in different chunkings, the sequence is the same.
    std::vector<std::uint32_t> vx, vy;
    for (int i = 0; i < 37; ++i) vx.push_back(x.next_u32());
    for (int i = 0; i < 37; ++i) vy.push_back(y.next_u32());
    EXPECT_EQ(vx, vy);
    CounterRng u(7, RngStream::kDropout, a, 5), w(7, RngStream::kDropout, a, 5);
    EXPECT_EQ(u.uniform(), w.uniform());
    EXPECT_EQ(u.uniform_double(), w.uniform_double());
    EXPECT_EQ(u.below(1000), w.below(1000));
    EXPECT_EQ(u.normal(), w.normal());
  }
}

TEST(CounterRng, StreamsSeedsAndCountersAreIndependent) {
  const auto base = draws(CounterRng(1, RngStream::kInit, 0, 0), 16);
  std::set<std::vector<std::uint32_t>> seen{base};
  // Changing any one of seed, stream, a or b gives a different sequence, with no shared values.
  const std::vector<std::vector<std::uint32_t>> others{
      draws(CounterRng(2, RngStream::kInit, 0, 0), 16),     draws(CounterRng(1, RngStream::kDropout, 0, 0), 16),
      draws(CounterRng(1, RngStream::kInit, 1, 0), 16),     draws(CounterRng(1, RngStream::kInit, 0, 1), 16),
      draws(CounterRng(1, RngStream::kPermutation, 0, 0), 16)};
  for (const auto& o : others) {
    EXPECT_TRUE(seen.insert(o).second) << "two tuples gave the same sequence";
    std::size_t equal = 0;
    for (std::size_t i = 0; i < o.size(); ++i) equal += o[i] == base[i];
    EXPECT_EQ(equal, 0u);
  }
  // Sub-stream b holds 2^32 blocks before it reaches b + 1: the first block of b + 1 is not the
  // second block of b.
  auto b0 = draws(CounterRng(1, RngStream::kInit, 0, 0), 8);
  auto b1 = draws(CounterRng(1, RngStream::kInit, 0, 1), 4);
  EXPECT_NE(std::vector<std::uint32_t>(b0.begin() + 4, b0.end()), b1);
}

TEST(CounterRng, DistributionsAreInRangeAndRoughlyUniform) {
  CounterRng r(99, RngStream::kUser, 0);
  double sum = 0.0, sum_sq = 0.0;
  std::vector<int> buckets(10, 0);
  const int n = 100000;
  for (int i = 0; i < n; ++i) {
    const float u = r.uniform();
    ASSERT_GE(u, 0.0f);
    ASSERT_LT(u, 1.0f);
    const double d = r.uniform_double();
    ASSERT_GE(d, 0.0);
    ASSERT_LT(d, 1.0);
    const auto k = r.below(10);
    ASSERT_LT(k, 10u);
    ++buckets[k];
    const double z = r.normal();
    ASSERT_TRUE(std::isfinite(z));
    sum += z;
    sum_sq += z * z;
  }
  for (int c : buckets) EXPECT_NEAR(c, n / 10, 600);  // about 6 standard deviations
  EXPECT_NEAR(sum / n, 0.0, 0.02);
  EXPECT_NEAR(sum_sq / n, 1.0, 0.03);
  EXPECT_EQ(r.below(1), 0u);
  EXPECT_EQ(r.below(0), 0u);
}
