// The partition layer gives the same answers at every rank count.
#include <gtest/gtest.h>

#include <numeric>

#include "lockstep/data/partitioned.hpp"
#include "support/test_comm.hpp"

using lockstep::data::Partitioned;
using lockstep::testing::world;

namespace {
std::vector<std::int64_t> iota_vec(std::int64_t n) {
  std::vector<std::int64_t> v(static_cast<std::size_t>(n));
  std::iota(v.begin(), v.end(), 0);
  return v;
}
}  // namespace

TEST(Partitioned, FusedNarrowChainThenActions) {
  auto xs = Partitioned<std::int64_t>::parallelize(world(), iota_vec(101));
  int calls = 0;
  auto chain = xs.map([&](std::int64_t x) { ++calls; return x * 3; })
                   .filter([](std::int64_t x) { return x % 2 == 0; })
                   .flat_map([](std::int64_t x) { return std::vector<std::int64_t>{x, -x}; });
  EXPECT_EQ(calls, 0) << "transformations must be lazy";
  EXPECT_EQ(chain.count(), 102);  // 51 even multiples of 3 in [0, 300], each twice
  const auto all = chain.collect();
  ASSERT_EQ(all.size(), 102u);
  EXPECT_EQ(all[0], 0);
  EXPECT_EQ(all[2], 6);
  EXPECT_EQ(all[3], -6);
  EXPECT_EQ(chain.reduce([](std::int64_t a, std::int64_t b) { return a + b; }), 0);
  EXPECT_EQ(xs.reduce([](std::int64_t a, std::int64_t b) { return a + b; }), 5050);
}

TEST(Partitioned, AggregateTakeAndMapPartitions) {
  auto xs = Partitioned<std::int64_t>::parallelize(world(), iota_vec(50));
  using Acc = std::pair<std::int64_t, std::int64_t>;  // (sum, count)
  const Acc acc = xs.aggregate(Acc{0, 0}, [](Acc a, std::int64_t x) { return Acc{a.first + x, a.second + 1}; },
                               [](Acc a, Acc b) { return Acc{a.first + b.first, a.second + b.second}; });
  EXPECT_EQ(acc.first, 1225);
  EXPECT_EQ(acc.second, 50);
  EXPECT_EQ(xs.take(7), iota_vec(7));
  EXPECT_EQ(xs.take(500).size(), 50u);
  auto sizes = xs.map_partitions([](std::vector<std::int64_t>&& v) { return std::vector<std::int64_t>{static_cast<std::int64_t>(v.size())}; });
  EXPECT_EQ(sizes.count(), world().size());
  EXPECT_EQ(sizes.reduce([](std::int64_t a, std::int64_t b) { return a + b; }), 50);
}

TEST(Partitioned, CacheRunsThePipelineOnce) {
  auto xs = Partitioned<std::int64_t>::parallelize(world(), iota_vec(40));
  int calls = 0;
  auto cached = xs.map([&](std::int64_t x) { ++calls; return x + 1; }).cache();
  const int after_cache = calls;
  EXPECT_EQ(cached.count(), 40);
  EXPECT_EQ(cached.collect().back(), 40);
  EXPECT_EQ(calls, after_cache);
}

TEST(Partitioned, RepartitionZipWithIndexRebalance) {
  auto& c = world();
  auto xs = Partitioned<std::int64_t>::parallelize(c, iota_vec(37));
  const int p = c.size();
  auto moved = xs.repartition([p](std::int64_t x) { return static_cast<int>(x % p); });
  for (auto x : moved.local()) EXPECT_EQ(x % p, c.rank());
  EXPECT_EQ(moved.count(), 37);
  // Everything onto the last rank, then rebalance: global order is restored by index.
  auto skewed = xs.repartition([p](std::int64_t) { return p - 1; });
  auto even = skewed.rebalance();
  EXPECT_LE(std::abs(even.local_count() - 37 / p), 1);
  EXPECT_EQ(even.collect(), iota_vec(37));
  auto indexed = even.zip_with_index().collect();
  for (std::size_t i = 0; i < indexed.size(); ++i) {
    EXPECT_EQ(indexed[i].first, static_cast<std::int64_t>(i));
    EXPECT_EQ(indexed[i].second, static_cast<std::int64_t>(i));
  }
}

TEST(Partitioned, ReduceOfEmptyCollectionThrowsOnEveryRank) {
  auto none = Partitioned<std::int64_t>::parallelize(world(), {});
  EXPECT_THROW(none.reduce([](std::int64_t a, std::int64_t b) { return a + b; }), lockstep::Error);
  EXPECT_EQ(none.count(), 0);
}

TEST(Partitioned, StringsCrossRanks) {
  std::vector<std::string> words{"alpha", "", "gamma", "delta", "epsilon"};
  auto ws = Partitioned<std::string>::parallelize(world(), words);
  EXPECT_EQ(ws.collect(), words);
  EXPECT_EQ(ws.map([](std::string s) { return s.size(); }).reduce([](std::size_t a, std::size_t b) { return a + b; }), 22u);
}

namespace {
// An element that counts its copies: a stage that buffered elements by copying would show here.
struct Tracked {
  std::int64_t v = 0;
  static inline int copies = 0;
  explicit Tracked(std::int64_t x) : v(x) {}
  Tracked(const Tracked& o) : v(o.v) { ++copies; }
  Tracked(Tracked&&) noexcept = default;
  Tracked& operator=(const Tracked& o) {
    v = o.v;
    ++copies;
    return *this;
  }
  Tracked& operator=(Tracked&&) noexcept = default;
};
}  // namespace

// The single pass of a fused narrow chain, pinned: a map -> filter -> map chain over a generated
// source visits each source element exactly once per action, takes it through the whole chain
// before the source produces the next one (so no stage holds a vector of intermediate results),
// and copies nothing. A second action runs the pass again; after cache() none does.
TEST(Partitioned, NarrowChainIsOnePassWithoutIntermediates) {
  const std::int64_t n_global = 97;  // not a multiple of any rank count tested
  const auto mine = lockstep::data::split_range(n_global, world().rank(), world().size());
  using Event = std::pair<char, std::int64_t>;  // (stage, source element): ('s', 3) = source emitted 3
  std::vector<Event> log;                        // every call, in order
  std::vector<int> source_visits(static_cast<std::size_t>(n_global), 0);
  Partitioned<Tracked> source(world(), [&](const Partitioned<Tracked>::Emit& emit) {
    for (std::int64_t i = mine.begin; i < mine.end; ++i) {
      ++source_visits[static_cast<std::size_t>(i)];
      log.emplace_back('s', i);
      emit(Tracked(i));
    }
  });
  int map1 = 0, filter = 0, map2 = 0;
  auto chain = source
                   .map([&](Tracked&& x) {
                     ++map1;
                     log.emplace_back('a', x.v);
                     return Tracked(x.v * 10);
                   })
                   .filter([&](const Tracked& x) {
                     ++filter;
                     log.emplace_back('f', x.v / 10);
                     return (x.v / 10) % 3 != 0;
                   })
                   .map([&](Tracked&& x) {
                     ++map2;
                     log.emplace_back('b', x.v / 10);
                     return Tracked(x.v + 1);
                   });
  EXPECT_TRUE(log.empty()) << "building the chain must run nothing";
  Tracked::copies = 0;

  std::int64_t kept = 0;
  for (std::int64_t i = mine.begin; i < mine.end; ++i) kept += i % 3 != 0;
  const std::int64_t local_n = mine.size();
  const std::int64_t want_sum = [&] {
    std::int64_t s = 0;
    for (std::int64_t i = 0; i < n_global; ++i)
      if (i % 3 != 0) s += i * 10 + 1;
    return s;
  }();

  // Action 1: aggregate.
  const std::int64_t sum = chain.aggregate(
      std::int64_t{0}, [](std::int64_t a, const Tracked& x) { return a + x.v; },
      [](std::int64_t a, std::int64_t b) { return a + b; });
  EXPECT_EQ(sum, want_sum);
  EXPECT_EQ(map1, local_n);
  EXPECT_EQ(filter, local_n);
  EXPECT_EQ(map2, kept);
  for (std::int64_t i = mine.begin; i < mine.end; ++i) ASSERT_EQ(source_visits[static_cast<std::size_t>(i)], 1) << i;
  // Element by element: s_i a_i f_i [b_i], then s_{i+1}.
  std::vector<Event> expected;
  for (std::int64_t i = mine.begin; i < mine.end; ++i) {
    expected.insert(expected.end(), {{'s', i}, {'a', i}, {'f', i}});
    if (i % 3 != 0) expected.emplace_back('b', i);
  }
  EXPECT_EQ(log, expected);

  // Action 2: count runs the same single pass again.
  log.clear();
  EXPECT_EQ(chain.count(), [&] {
    std::int64_t k = 0;
    for (std::int64_t i = 0; i < n_global; ++i) k += i % 3 != 0;
    return k;
  }());
  EXPECT_EQ(map1, 2 * local_n);
  EXPECT_EQ(map2, 2 * kept);
  EXPECT_EQ(log, expected);
  for (std::int64_t i = mine.begin; i < mine.end; ++i) ASSERT_EQ(source_visits[static_cast<std::size_t>(i)], 2) << i;
  EXPECT_EQ(Tracked::copies, 0) << "the chain copied elements";

  // cache() runs it once more; actions on the cache run nothing upstream.
  const auto cached = chain.cache();
  EXPECT_EQ(map1, 3 * local_n);
  log.clear();
  EXPECT_EQ(cached.local_count(), kept);
  EXPECT_TRUE(log.empty());
}
