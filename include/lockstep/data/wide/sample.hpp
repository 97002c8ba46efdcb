// Spark's sample without replacement (Bernoulli): element g of the global order is kept when the
// MurmurHash3 (seed 42) of the 16 bytes (seed as uint64 little-endian, g as int64 little-endian),
// divided by 2^32, is below `fraction`. The decision depends only on (seed, g), so the same
// elements are kept at any number of ranks, in the same global order. One exscan of the counts;
// nothing moves between ranks.
#pragma once

#include <cstdint>
#include <vector>

#include "lockstep/core/murmur3.hpp"
#include "lockstep/data/partitioned.hpp"

namespace lockstep::data {

// Whether sample(fraction, seed) keeps global index g.
inline bool sample_keeps(std::uint64_t seed, std::int64_t g, double fraction) {
  unsigned char b[16];
  const auto ug = static_cast<std::uint64_t>(g);
  for (int i = 0; i < 8; ++i) {
    b[i] = static_cast<unsigned char>(seed >> (8 * i));
    b[8 + i] = static_cast<unsigned char>(ug >> (8 * i));
  }
  return static_cast<double>(murmur3_32(b, sizeof b, 42)) / 4294967296.0 < fraction;
}

template <typename T>
Partitioned<T> sample(const Partitioned<T>& in, double fraction, std::uint64_t seed) {
  std::vector<T> mine = in.local();
  std::int64_t g = in.comm().exscan(static_cast<std::int64_t>(mine.size()));
  std::vector<T> out;
  for (auto& x : mine) {
    if (sample_keeps(seed, g++, fraction)) out.push_back(std::move(x));
  }
  return Partitioned<T>::from_local(in.comm(), std::move(out));
}

}  // namespace lockstep::data
