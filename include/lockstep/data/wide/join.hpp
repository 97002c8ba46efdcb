// Joins of Partitioned<std::pair<K, V>> with Partitioned<std::pair<K, W>>.
//
// join and left_outer_join shuffle both sides by key hash (wide/shuffle.hpp) and merge the sorted
// runs. The output is ordered as the keyed shuffle orders keys (by hash, then key encoding, rank r
// holding its hash range), and within a key as the cross product in (left global index, right
// global index) order, so collect() is the same at any number of ranks.
// broadcast_join allgathers the small side instead: the large side's elements without a matching
// key are dropped before anything moves, and only the matches are shuffled to their key's rank,
// so the output (order included) equals join's.
#pragma once

#include <optional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "lockstep/data/partitioned.hpp"
#include "lockstep/data/wide/shuffle.hpp"

namespace lockstep::data {

template <typename K, typename V, typename W>
Partitioned<std::pair<K, std::pair<V, W>>> join(const Partitioned<std::pair<K, V>>& left,
                                                const Partitioned<std::pair<K, W>>& right) {
  lockstep::comm::Communicator& cm = left.comm();
  auto a = wide::shuffle_by_key(cm, left.local(), "join (left side)");
  auto b = wide::shuffle_by_key(cm, right.local(), "join (right side)");
  std::vector<std::pair<K, std::pair<V, W>>> out;
  std::size_t j = 0;
  for (const auto& ra : a.runs) {
    while (j < b.runs.size() && wide::run_less(b.runs[j], ra)) ++j;
    if (j == b.runs.size()) break;
    const auto& rb = b.runs[j];
    if (wide::run_less(ra, rb)) continue;
    for (std::size_t x = ra.begin; x < ra.end; ++x)
      for (std::size_t y = rb.begin; y < rb.end; ++y)
        out.emplace_back(a.items[x].first, std::pair<V, W>(a.items[x].second, b.items[y].second));
  }
  return Partitioned<std::pair<K, std::pair<V, W>>>::from_local(cm, std::move(out));
}

// Every left element: with each matching right value, or once with std::nullopt when none matches.
template <typename K, typename V, typename W>
Partitioned<std::pair<K, std::pair<V, std::optional<W>>>> left_outer_join(const Partitioned<std::pair<K, V>>& left,
                                                                          const Partitioned<std::pair<K, W>>& right) {
  lockstep::comm::Communicator& cm = left.comm();
  auto a = wide::shuffle_by_key(cm, left.local(), "left_outer_join (left side)");
  auto b = wide::shuffle_by_key(cm, right.local(), "left_outer_join (right side)");
  std::vector<std::pair<K, std::pair<V, std::optional<W>>>> out;
  std::size_t j = 0;
  for (const auto& ra : a.runs) {
    while (j < b.runs.size() && wide::run_less(b.runs[j], ra)) ++j;
    const bool match = j < b.runs.size() && !wide::run_less(ra, b.runs[j]);
    for (std::size_t x = ra.begin; x < ra.end; ++x) {
      if (!match) {
        out.emplace_back(a.items[x].first, std::pair<V, std::optional<W>>(a.items[x].second, std::nullopt));
        continue;
      }
      for (std::size_t y = b.runs[j].begin; y < b.runs[j].end; ++y)
        out.emplace_back(a.items[x].first, std::pair<V, std::optional<W>>(a.items[x].second, b.items[y].second));
    }
  }
  return Partitioned<std::pair<K, std::pair<V, std::optional<W>>>>::from_local(cm, std::move(out));
}

// join with the right side small enough for every rank to hold it all.
template <typename K, typename V, typename W>
Partitioned<std::pair<K, std::pair<V, W>>> broadcast_join(const Partitioned<std::pair<K, V>>& left,
                                                          const Partitioned<std::pair<K, W>>& small) {
  lockstep::comm::Communicator& cm = left.comm();
  std::vector<std::pair<K, W>> all;
  {
    std::string bytes;
    encode_all(small.local(), bytes);
    wide::check_receive(cm,
                        static_cast<std::uint64_t>(
                            cm.allreduce<std::int64_t>(static_cast<std::int64_t>(bytes.size()), comm::ReduceOp::kSum)),
                        "broadcast_join", "of the broadcast side");
    for (auto& s : cm.allgather_strings(bytes)) decode_all(s, all);
  }
  std::unordered_map<std::string, std::vector<std::size_t>> index;  // key encoding -> right elements, in order
  std::string kb;
  for (std::size_t i = 0; i < all.size(); ++i) {
    kb.clear();
    Codec<K>::encode(all[i].first, kb);
    index[kb].push_back(i);
  }
  std::vector<std::pair<K, V>> matched;
  left.for_each_local([&](std::pair<K, V>&& kv) {
    kb.clear();
    Codec<K>::encode(kv.first, kb);
    if (index.count(kb) != 0) matched.push_back(std::move(kv));
  });
  auto a = wide::shuffle_by_key(cm, std::move(matched), "broadcast_join");
  std::vector<std::pair<K, std::pair<V, W>>> out;
  for (const auto& ra : a.runs) {
    const auto& rights = index.at(ra.key);
    for (std::size_t x = ra.begin; x < ra.end; ++x)
      for (const auto y : rights) out.emplace_back(a.items[x].first, std::pair<V, W>(a.items[x].second, all[y].second));
  }
  return Partitioned<std::pair<K, std::pair<V, W>>>::from_local(cm, std::move(out));
}

}  // namespace lockstep::data
