// The keyed shuffle under every *_by_key operation and the joins.
//
// Elements are std::pair<K, V>. Each goes to the rank that owns the 32-bit MurmurHash3 (seed 42) of
// its key's Codec encoding: rank r of p owns hashes in [r*2^32/p, (r+1)*2^32/p). Each output
// partition is sorted by (hash, key encoding), so the global order, and collect()'s bytes, are the
// same at any number of ranks. Keys are equal when their encodings are (so for floating-point keys
// -0.0 and 0.0 differ). The sort is stable and the received bytes arrive in source-rank order, so
// the values of one key keep their global-index order. Callers combine map-side before calling.
#pragma once

#include <algorithm>
#include <numeric>
#include <string>
#include <utility>
#include <vector>

#include "lockstep/data/partitioned.hpp"
#include "lockstep/data/wide/exchange.hpp"

namespace lockstep::data::wide {

// One key's run of consecutive elements in a shuffled partition.
struct KeyRun {
  std::uint32_t hash = 0;
  std::string key;  // the key's Codec encoding
  std::size_t begin = 0, end = 0;
};
inline bool run_less(const KeyRun& a, const KeyRun& b) {
  return a.hash != b.hash ? a.hash < b.hash : a.key < b.key;
}

template <typename K, typename V>
struct Shuffled {
  std::vector<std::pair<K, V>> items;  // sorted by (hash, key encoding), stable
  std::vector<KeyRun> runs;            // one per distinct key, in order
};

// Collective: every rank passes its elements and gets those its hash range owns, sorted.
template <typename K, typename V>
Shuffled<K, V> shuffle_by_key(comm::Communicator& comm, std::vector<std::pair<K, V>>&& local, const char* op) {
  const int p = comm.size();
  std::vector<int> dest(local.size());
  std::string kb;
  for (std::size_t i = 0; i < local.size(); ++i) dest[i] = hash_owner(key_hash(local[i].first, kb), p);
  std::vector<std::pair<K, V>> got = exchange_items(comm, std::move(local), dest, op);
  // Tag, stable-sort a permutation, apply it.
  std::vector<std::uint32_t> hash(got.size());
  std::vector<std::string> key(got.size());
  for (std::size_t i = 0; i < got.size(); ++i) hash[i] = key_hash(got[i].first, key[i]);
  std::vector<std::size_t> perm(got.size());
  std::iota(perm.begin(), perm.end(), std::size_t{0});
  std::stable_sort(perm.begin(), perm.end(), [&](std::size_t a, std::size_t b) {
    return hash[a] != hash[b] ? hash[a] < hash[b] : key[a] < key[b];
  });
  Shuffled<K, V> out;
  for (std::size_t j = 0; j < perm.size(); ++j) {
    const std::size_t i = perm[j];
    if (out.runs.empty() || out.runs.back().hash != hash[i] || out.runs.back().key != key[i]) {
      if (!out.runs.empty()) out.runs.back().end = j;
      out.runs.push_back(KeyRun{hash[i], std::move(key[i]), j, j});
    }
  }
  if (!out.runs.empty()) out.runs.back().end = got.size();
  std::vector<std::uint32_t>().swap(hash);
  std::vector<std::string>().swap(key);
  // Apply the permutation in place (cycle by cycle), so no second copy of the output exists.
  constexpr std::size_t kDone = static_cast<std::size_t>(-1);
  for (std::size_t start = 0; start < perm.size(); ++start) {
    if (perm[start] == kDone || perm[start] == start) continue;
    std::pair<K, V> held = std::move(got[start]);
    std::size_t j = start;
    for (;;) {
      const std::size_t k = perm[j];
      perm[j] = kDone;
      if (k == start) {
        got[j] = std::move(held);
        break;
      }
      got[j] = std::move(got[k]);
      j = k;
    }
  }
  out.items = std::move(got);
  return out;
}

}  // namespace lockstep::data::wide

namespace lockstep::data {

// The keyed shuffle of a Partitioned<std::pair<K, V>> without combining: the same elements, each
// on the rank owning its key's hash, partitions sorted by (hash, key encoding), values of a key in
// global-index order (Spark's partitionBy with a hash partitioner, plus a defined order).
template <typename K, typename V>
Partitioned<std::pair<K, V>> partition_by_key(const Partitioned<std::pair<K, V>>& in) {
  auto s = wide::shuffle_by_key(in.comm(), in.local(), "partition_by_key");
  return Partitioned<std::pair<K, V>>::from_local(in.comm(), std::move(s.items));
}

}  // namespace lockstep::data
