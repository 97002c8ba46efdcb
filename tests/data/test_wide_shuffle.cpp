// The keyed shuffle: hash ranges, the defined order, and the memory-limit error on every rank.
#include <stdlib.h>

#include "wide_support.hpp"

using namespace wide_test;
using lockstep::data::Partitioned;

TEST(WideShuffle, PartitionByKeyOwnsHashRangesInOrder) {
  auto& c = lockstep::testing::world();
  for (const Layout l : {Layout::kEven, Layout::kLastRank, Layout::kEmpty}) {
    const auto all = l == Layout::kEmpty ? std::vector<KV>{} : skewed_pairs(2000, 3);
    auto want = all;
    keyed_order(want);
    const auto got = partition_by_key(lay_out(all, l));
    std::string kb;
    for (const auto& kv : got.local())
      EXPECT_EQ(lockstep::data::wide::hash_owner(lockstep::data::wide::key_hash(kv.first, kb), c.size()), c.rank());
    expect_same(got.collect(), want, label("partition_by_key ", layout_name(l)));
  }
  // Integer keys too.
  std::vector<std::pair<std::int64_t, std::int64_t>> ints;
  for (std::int64_t i = 0; i < 500; ++i) ints.emplace_back(i % 37, i);
  auto want = ints;
  keyed_order(want);
  expect_same(partition_by_key(lay_out(ints, Layout::kEven)).collect(), want, "partition_by_key int64");
}

TEST(WideShuffle, OverTheLimitEveryRankThrows) {
  const auto all = skewed_pairs(1000, 5);
  const auto in = lay_out(all, Layout::kEven);
  ::setenv("LOCKSTEP_SHUFFLE_LIMIT_MB", "0.00001", 1);  // about 10 bytes
  bool threw = false;
  try {
    (void)group_by_key(in);
  } catch (const lockstep::Error& e) {
    threw = true;
    EXPECT_TRUE(e.agreed());
    const std::string m = e.what();
    EXPECT_NE(m.find("group_by_key: rank "), std::string::npos) << m;
    EXPECT_NE(m.find("bytes in its shuffle, over the limit of 10 bytes"), std::string::npos) << m;
  }
  EXPECT_TRUE(threw);
  // The broadcast side of a broadcast join is checked the same way before it is allgathered.
  threw = false;
  try {
    (void)broadcast_join(in, in);
  } catch (const lockstep::Error& e) {
    threw = true;
    EXPECT_NE(std::string(e.what()).find("bytes of the broadcast side, over the limit of 10 bytes"), std::string::npos)
        << e.what();
  }
  EXPECT_TRUE(threw);
  ::unsetenv("LOCKSTEP_SHUFFLE_LIMIT_MB");
  // Nothing is left half-done: the next shuffle works.
  std::map<std::string, int> keys;
  for (const auto& kv : all) keys[kv.first] = 1;
  EXPECT_EQ(count_by_key(in).count(), static_cast<std::int64_t>(keys.size()));
}

// The same job on the world and on a one-rank communicator split from it, in one launch: the
// digests of every operation's collect() agree (np 1 against this run's np).
TEST(WideShuffle, SameBytesOnOneRankAndOnAll) {
  auto& w = lockstep::testing::world();
  auto alone = w.split(w.rank(), 0);
  const auto all = skewed_pairs(1200, 17);
  auto run = [&](lockstep::comm::Communicator& c) {
    const lockstep::data::Range r =
        lockstep::data::split_range(static_cast<std::int64_t>(all.size()), c.rank(), c.size());
    const auto in = Partitioned<KV>::from_local(c, std::vector<KV>(all.begin() + r.begin, all.begin() + r.end));
    std::vector<std::uint32_t> d;
    d.push_back(digest(group_by_key(in).collect()));
    d.push_back(digest(reduce_by_key(in, [](std::int64_t a, std::int64_t b) { return a + b; }).collect()));
    d.push_back(digest(distinct(in).collect()));
    d.push_back(digest(sort_by(in, [](const KV& kv) { return kv.first; }).collect()));
    d.push_back(digest(join(in, in.filter([](const KV& kv) { return kv.second % 7 == 0; })).collect()));
    d.push_back(digest(sample(in, 0.3, 5).collect()));
    d.push_back(digest(take_ordered(in, 50)));
    return d;
  };
  const auto on_all = run(w);
  const auto on_one = run(*alone);
  EXPECT_EQ(on_all, on_one);
}
