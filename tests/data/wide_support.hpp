// Shared inputs and serial references for the wide-operation tests (test_wide_*.cpp): every rank
// builds the same full input from a seed, so each can compute the serial answer itself.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "lockstep/core/murmur3.hpp"
#include "lockstep/data/partitioned.hpp"
#include "lockstep/data/wide.hpp"
#include "support/test_comm.hpp"

namespace wide_test {

using lockstep::data::Codec;
using lockstep::data::Partitioned;
using KV = std::pair<std::string, std::int64_t>;

// A message built without operator+ chains (GCC 12 -Wrestrict warns falsely on them).
template <typename... A>
std::string label(const A&... a) {
  std::ostringstream o;
  (o << ... << a);
  return o.str();
}

inline std::uint64_t splitmix(std::uint64_t& s) {
  std::uint64_t z = (s += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

// n pairs; about half have the key "hot" (skew), the rest one of `keys` string keys.
inline std::vector<KV> skewed_pairs(std::int64_t n, std::uint64_t seed, int keys = 61) {
  std::vector<KV> v;
  for (std::int64_t i = 0; i < n; ++i) {
    const std::uint64_t r = splitmix(seed);
    std::string k = "hot";
    if ((r & 1) == 0) {
      k = "key-";
      k += std::to_string((r >> 8) % static_cast<std::uint64_t>(keys));
    }
    v.emplace_back(std::move(k), static_cast<std::int64_t>((r >> 20) % 1000) - 500);
  }
  return v;
}

// The three layouts every operation is checked on: split evenly, all on the last rank (the other
// partitions empty), and empty.
enum class Layout { kEven, kLastRank, kEmpty };
inline const char* layout_name(Layout l) {
  return l == Layout::kEven ? "even" : l == Layout::kLastRank ? "last-rank" : "empty";
}
template <typename T>
Partitioned<T> lay_out(const std::vector<T>& all, Layout l) {
  auto& c = lockstep::testing::world();
  if (l == Layout::kEven) return Partitioned<T>::parallelize(c, all);
  if (l == Layout::kLastRank) return Partitioned<T>::from_local(c, c.rank() == c.size() - 1 ? all : std::vector<T>{});
  return Partitioned<T>::from_local(c, {});
}

// A canonical, padding-free byte encoding of test values (Codec copies trivially copyable structs
// whole, padding included).
inline void canon(const std::int64_t& v, std::string& out) {
  Codec<std::int64_t>::encode(v, out);
}
inline void canon(const std::string& v, std::string& out) {
  Codec<std::string>::encode(v, out);
}
template <typename A, typename B>
void canon(const std::pair<A, B>& v, std::string& out);
template <typename U>
void canon(const std::vector<U>& v, std::string& out);
template <typename U>
void canon(const std::optional<U>& v, std::string& out) {
  out.push_back(v ? 1 : 0);
  if (v) canon(*v, out);
}
template <typename A, typename B>
void canon(const std::pair<A, B>& v, std::string& out) {
  canon(v.first, out);
  canon(v.second, out);
}
template <typename U>
void canon(const std::vector<U>& v, std::string& out) {
  canon(static_cast<std::int64_t>(v.size()), out);
  for (const auto& x : v) canon(x, out);
}
template <typename T>
std::uint32_t digest(const std::vector<T>& v) {
  std::string bytes;
  canon(v, bytes);
  return lockstep::murmur3_32(bytes.data(), bytes.size(), 0);
}

// The keyed shuffle's order: by MurmurHash3 (seed 42) of the key's Codec encoding, then by the
// encoding; stable.
template <typename K, typename X>
void keyed_order(std::vector<std::pair<K, X>>& v) {
  auto tag = [](const K& k) {
    std::string b;
    Codec<K>::encode(k, b);
    return std::make_pair(lockstep::murmur3_32(b.data(), b.size(), 42), b);
  };
  std::stable_sort(v.begin(), v.end(), [&](const auto& a, const auto& b) { return tag(a.first) < tag(b.first); });
}

// The distributed result equals the serial reference, and its bytes (so their digest) are the
// reference's, which do not depend on the number of ranks.
template <typename T>
void expect_same(const std::vector<T>& got, const std::vector<T>& want, const std::string& what) {
  EXPECT_EQ(got.size(), want.size()) << what;
  EXPECT_TRUE(got == want) << what;
  EXPECT_EQ(digest(got), digest(want)) << what;
}

}  // namespace wide_test
