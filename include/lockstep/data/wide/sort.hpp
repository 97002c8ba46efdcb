// Ordering operations: sort_by (a sample sort), take_ordered and top (no full sort).
//
// sort_by orders by (key_fn(x), global index): stable, so ties keep the input's global-index order,
// and the order is total, so collect() is the same at any number of ranks whatever the splitters.
// The splitters come from an allgathered sample of (key, global index) pairs, about 64 per rank,
// drawn at evenly spaced positions from each rank in proportion to its share; because ties are
// split by global index, a key that holds half the data is spread over several ranks rather than
// landing on one.
// The key type needs operator< and a Codec.
#pragma once

#include <algorithm>
#include <cstdint>
#include <functional>
#include <numeric>
#include <type_traits>
#include <utility>
#include <vector>

#include "lockstep/data/partitioned.hpp"
#include "lockstep/data/wide/exchange.hpp"

namespace lockstep::data {

template <typename T, typename KeyFn>
Partitioned<T> sort_by(const Partitioned<T>& in, KeyFn key_fn, bool ascending = true) {
  using Key = std::decay_t<std::invoke_result_t<KeyFn, const T&>>;
  using Tagged = std::pair<Key, std::int64_t>;  // (key, global index)
  lockstep::comm::Communicator& cm = in.comm();
  const int p = cm.size();
  const auto less = [ascending](const Tagged& a, const Tagged& b) {
    if (a.first < b.first) return ascending;
    if (b.first < a.first) return !ascending;
    return a.second < b.second;
  };
  std::vector<T> mine = in.local();
  const auto n_local = static_cast<std::int64_t>(mine.size());
  const std::int64_t total = cm.allreduce<std::int64_t>(n_local, comm::ReduceOp::kSum);
  const std::int64_t first = cm.exscan(n_local);
  std::vector<Tagged> keys;
  keys.reserve(mine.size());
  for (std::int64_t i = 0; i < n_local; ++i)
    keys.emplace_back(key_fn(static_cast<const T&>(mine[static_cast<std::size_t>(i)])), first + i);

  // Splitters: keys at evenly spaced local positions (not a sorted sample: sorting all the keys
  // for it cost a second full sort), allgathered and sorted. The splitters only balance the ranks'
  // shares; the order is total, so the output does not depend on them.
  std::vector<Tagged> splitters;
  if (p > 1 && total > 0) {
    const std::int64_t want = std::min<std::int64_t>(n_local, (n_local * 64 * p + total - 1) / total);
    std::string bytes;
    for (std::int64_t j = 0; j < want; ++j) {
      const auto at = static_cast<std::size_t>((2 * j + 1) * n_local / (2 * want));
      Codec<Tagged>::encode(keys[at], bytes);
    }
    std::vector<Tagged> sample;
    for (auto& s : cm.allgather_strings(bytes)) decode_all(s, sample);
    std::sort(sample.begin(), sample.end(), less);
    for (int r = 1; r < p && !sample.empty(); ++r)
      splitters.push_back(sample[static_cast<std::size_t>(static_cast<std::int64_t>(sample.size()) * r / p)]);
  }
  std::vector<int> dest(mine.size(), 0);
  for (std::size_t i = 0; i < mine.size(); ++i)
    dest[i] = static_cast<int>(std::upper_bound(splitters.begin(), splitters.end(), keys[i], less) - splitters.begin());
  std::vector<std::pair<std::int64_t, T>> tagged;
  tagged.reserve(mine.size());
  for (std::size_t i = 0; i < mine.size(); ++i) tagged.emplace_back(keys[i].second, std::move(mine[i]));
  std::vector<T>().swap(mine);
  std::vector<Tagged>().swap(keys);
  auto got = wide::exchange_items(cm, std::move(tagged), dest, "sort_by");
  std::vector<Tagged> gk;
  gk.reserve(got.size());
  for (const auto& x : got) gk.emplace_back(key_fn(static_cast<const T&>(x.second)), x.first);
  std::vector<std::size_t> perm(got.size());
  std::iota(perm.begin(), perm.end(), std::size_t{0});
  std::sort(perm.begin(), perm.end(), [&](std::size_t a, std::size_t b) { return less(gk[a], gk[b]); });
  std::vector<T> out;
  out.reserve(got.size());
  for (auto i : perm) out.push_back(std::move(got[i].second));
  return Partitioned<T>::from_local(cm, std::move(out));
}

// Spark's takeOrdered: the n smallest elements under cmp (a strict weak order), ties in global-index
// order, on every rank. Each rank keeps its local n smallest; the p*n candidates are allgathered
// and merged, so nothing is fully sorted or gathered.
template <typename T, typename Cmp = std::less<T>>
std::vector<T> take_ordered(const Partitioned<T>& in, std::int64_t n, Cmp cmp = Cmp{}) {
  lockstep::comm::Communicator& cm = in.comm();
  std::vector<T> mine = in.local();
  const std::int64_t first = cm.exscan(static_cast<std::int64_t>(mine.size()));
  using Tagged = std::pair<std::int64_t, T>;
  const auto less = [&cmp](const Tagged& a, const Tagged& b) {
    if (cmp(a.second, b.second)) return true;
    if (cmp(b.second, a.second)) return false;
    return a.first < b.first;
  };
  std::vector<Tagged> tagged;
  tagged.reserve(mine.size());
  for (std::size_t i = 0; i < mine.size(); ++i)
    tagged.emplace_back(first + static_cast<std::int64_t>(i), std::move(mine[i]));
  const auto keep = static_cast<std::size_t>(std::clamp<std::int64_t>(n, 0, static_cast<std::int64_t>(tagged.size())));
  std::partial_sort(tagged.begin(), tagged.begin() + static_cast<std::ptrdiff_t>(keep), tagged.end(), less);
  tagged.resize(keep);
  std::string bytes;
  encode_all(tagged, bytes);
  std::vector<Tagged> all;
  for (auto& s : cm.allgather_strings(bytes)) decode_all(s, all);
  const auto k = static_cast<std::size_t>(std::clamp<std::int64_t>(n, 0, static_cast<std::int64_t>(all.size())));
  std::partial_sort(all.begin(), all.begin() + static_cast<std::ptrdiff_t>(k), all.end(), less);
  std::vector<T> out;
  out.reserve(k);
  for (std::size_t i = 0; i < k; ++i) out.push_back(std::move(all[i].second));
  return out;
}

// Spark's top: the n largest, in descending order, ties in global-index order.
template <typename T>
std::vector<T> top(const Partitioned<T>& in, std::int64_t n) {
  return take_ordered(in, n, std::greater<T>{});
}

}  // namespace lockstep::data
