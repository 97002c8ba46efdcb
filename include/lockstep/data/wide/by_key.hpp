// Keyed aggregations over Partitioned<std::pair<K, V>> (Spark's PairRDDFunctions), and the
// set-like operations built on them. Every one is collective over the communicator.
//
// combine_by_key combines map-side first (each rank folds its values per key in partition order),
// then shuffles one combiner per key and rank (wide/shuffle.hpp) and merges a key's combiners in
// rank order. Results are partitioned by key hash and sorted by (hash, key encoding), so collect()
// gives the same order at any number of ranks. The values folded into one combiner depend on how
// the input is partitioned: a combiner that is associative and commutative in exact arithmetic
// (integer sums, counts, min/max, set union, concatenation in order) gives the same result at any
// np; a floating-point combiner (a double sum) is ORDER-DEPENDENT across np and partitionings, as
// Spark's is. group_by_key's value lists are concatenated in rank order, so they hold each key's
// values in the global-index order of the input whatever np.
#pragma once

#include <cstdint>
#include <string>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <vector>

#include "lockstep/data/partitioned.hpp"
#include "lockstep/data/wide/key_index.hpp"
#include "lockstep/data/wide/shuffle.hpp"

namespace lockstep::data {

// Spark's combineByKey: create(v) starts a combiner, merge_value(c, v) folds a value into it (on
// the rank that holds the value), merge_combiners(c1, c2) merges two (c1 from the lower rank).
template <typename K, typename V, typename Create, typename MergeValue, typename MergeCombiners>
auto combine_by_key(const Partitioned<std::pair<K, V>>& in, Create create, MergeValue merge_value,
                    MergeCombiners merge_combiners, const char* op = "combine_by_key") {
  using C = std::decay_t<std::invoke_result_t<Create, V&&>>;
  std::vector<std::pair<K, C>> local;
  {
    wide::KeyIndex where;
    std::string kb;
    in.for_each_local([&](std::pair<K, V>&& kv) {
      kb.clear();
      Codec<K>::encode(kv.first, kb);
      const auto [pos, inserted] = where.insert(kb);
      if (inserted) {
        local.emplace_back(std::move(kv.first), create(std::move(kv.second)));
      } else {
        C& c = local[pos].second;
        c = merge_value(std::move(c), std::move(kv.second));
      }
    });
  }
  auto s = wide::shuffle_by_key(in.comm(), std::move(local), op);
  std::vector<std::pair<K, C>> out;
  out.reserve(s.runs.size());
  for (const auto& run : s.runs) {
    C acc = std::move(s.items[run.begin].second);
    for (std::size_t i = run.begin + 1; i < run.end; ++i)
      acc = merge_combiners(std::move(acc), std::move(s.items[i].second));
    out.emplace_back(std::move(s.items[run.begin].first), std::move(acc));
  }
  return Partitioned<std::pair<K, C>>::from_local(in.comm(), std::move(out));
}

// Spark's reduceByKey with an associative (and, for np-independence, commutative) f.
template <typename K, typename V, typename F>
Partitioned<std::pair<K, V>> reduce_by_key(const Partitioned<std::pair<K, V>>& in, F f) {
  return combine_by_key(
      in, [](V&& v) { return std::move(v); }, f, f, "reduce_by_key");
}

// Spark's aggregateByKey: every key's values fold into a copy of `zero` with seq on each rank, and
// the per-rank accumulators merge with comb in rank order.
template <typename K, typename V, typename A, typename Seq, typename Comb>
Partitioned<std::pair<K, A>> aggregate_by_key(const Partitioned<std::pair<K, V>>& in, A zero, Seq seq, Comb comb) {
  return combine_by_key(
      in, [zero, seq](V&& v) { return static_cast<A>(seq(A(zero), std::move(v))); },
      [seq](A&& a, V&& v) { return static_cast<A>(seq(std::move(a), std::move(v))); },
      [comb](A&& a, A&& b) { return static_cast<A>(comb(std::move(a), std::move(b))); }, "aggregate_by_key");
}

// Spark's groupByKey: each key once, with its values in the global-index order of the input.
template <typename K, typename V>
Partitioned<std::pair<K, std::vector<V>>> group_by_key(const Partitioned<std::pair<K, V>>& in) {
  return combine_by_key(
      in, [](V&& v) { return std::vector<V>{std::move(v)}; },
      [](std::vector<V>&& c, V&& v) {
        c.push_back(std::move(v));
        return std::move(c);
      },
      [](std::vector<V>&& a, std::vector<V>&& b) {
        for (auto& x : b) a.push_back(std::move(x));
        return std::move(a);
      },
      "group_by_key");
}

// Spark's countByKey, kept distributed: (key, number of elements with that key).
template <typename K, typename V>
Partitioned<std::pair<K, std::int64_t>> count_by_key(const Partitioned<std::pair<K, V>>& in) {
  return combine_by_key(
      in, [](V&&) { return std::int64_t{1}; }, [](std::int64_t c, V&&) { return c + 1; },
      [](std::int64_t a, std::int64_t b) { return a + b; }, "count_by_key");
}

// Spark's countByValue, kept distributed: (element, number of occurrences).
template <typename T>
Partitioned<std::pair<T, std::int64_t>> count_by_value(const Partitioned<T>& in) {
  auto pairs = in.map([](T&& x) { return std::pair<T, std::int64_t>(std::move(x), 1); });
  return combine_by_key(
      pairs, [](std::int64_t&& c) { return c; }, [](std::int64_t a, std::int64_t&& b) { return a + b; },
      [](std::int64_t a, std::int64_t b) { return a + b; }, "count_by_value");
}

// Spark's distinct: each element once (equal = equal Codec encoding), in (hash, encoding) order.
template <typename T>
Partitioned<T> distinct(const Partitioned<T>& in) {
  auto pairs = in.map([](T&& x) { return std::pair<T, std::int64_t>(std::move(x), 0); });
  auto once = combine_by_key(
      pairs, [](std::int64_t&& c) { return c; }, [](std::int64_t a, std::int64_t&&) { return a; },
      [](std::int64_t a, std::int64_t) { return a; }, "distinct");
  std::vector<T> out;
  once.for_each_local([&](std::pair<T, std::int64_t>&& kv) { out.push_back(std::move(kv.first)); });
  return Partitioned<T>::from_local(in.comm(), std::move(out));
}

// Spark's union: a's elements, then b's, in global order (so collect() is a.collect() followed by
// b.collect() at any np), split into contiguous blocks over the ranks (one alltoallv).
template <typename T>
Partitioned<T> union_with(const Partitioned<T>& a, const Partitioned<T>& b) {
  lockstep::comm::Communicator& cm = a.comm();
  const int p = cm.size();
  std::vector<T> la = a.local(), lb = b.local();
  const std::int64_t na = cm.allreduce<std::int64_t>(static_cast<std::int64_t>(la.size()), comm::ReduceOp::kSum);
  const std::int64_t nb = cm.allreduce<std::int64_t>(static_cast<std::int64_t>(lb.size()), comm::ReduceOp::kSum);
  const std::int64_t total = na + nb;
  std::int64_t ia = cm.exscan(static_cast<std::int64_t>(la.size()));
  std::int64_t ib = na + cm.exscan(static_cast<std::int64_t>(lb.size()));
  std::vector<std::pair<std::int64_t, T>> tagged;
  tagged.reserve(la.size() + lb.size());
  for (auto& x : la) tagged.emplace_back(ia++, std::move(x));
  for (auto& x : lb) tagged.emplace_back(ib++, std::move(x));
  std::vector<T>().swap(la);
  std::vector<T>().swap(lb);
  std::vector<int> dest(tagged.size());
  for (std::size_t i = 0; i < tagged.size(); ++i) {
    // The owner of global index g in split_range(total, r, p): the largest r with total*r/p <= g.
    const std::int64_t g = tagged[i].first;
    int r = static_cast<int>((g * p) / (total > 0 ? total : 1));
    while (r + 1 < p && split_range(total, r + 1, p).begin <= g) ++r;
    while (r > 0 && split_range(total, r, p).begin > g) --r;
    dest[i] = r;
  }
  auto got = wide::exchange_items(cm, std::move(tagged), dest, "union_with");
  std::sort(got.begin(), got.end(), [](const auto& x, const auto& y) { return x.first < y.first; });
  std::vector<T> out;
  out.reserve(got.size());
  for (auto& kv : got) out.push_back(std::move(kv.second));
  return Partitioned<T>::from_local(cm, std::move(out));
}

}  // namespace lockstep::data
