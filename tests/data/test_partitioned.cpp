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
