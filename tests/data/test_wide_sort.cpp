// sort_by (sample sort, stable) and take_ordered/top against std::stable_sort.
#include "wide_support.hpp"

using namespace wide_test;
using lockstep::data::Partitioned;

TEST(WideSort, SortByIsStableAndTheSameAtAnyNp) {
  auto& c = lockstep::testing::world();
  for (const Layout l : {Layout::kEven, Layout::kLastRank, Layout::kEmpty}) {
    // Heavy ties: half the keys are "hot"; values carry the global index so stability shows.
    auto all = l == Layout::kEmpty ? std::vector<KV>{} : skewed_pairs(2500, 9);
    for (std::size_t i = 0; i < all.size(); ++i) all[i].second = static_cast<std::int64_t>(i);
    const auto in = lay_out(all, l);
    for (const bool asc : {true, false}) {
      auto want = all;
      std::stable_sort(want.begin(), want.end(),
                       [asc](const KV& a, const KV& b) { return asc ? a.first < b.first : b.first < a.first; });
      const auto sorted = sort_by(
          in, [](const KV& kv) { return kv.first; }, asc);
      expect_same(sorted.collect(), want, label("sort_by ", layout_name(l), asc ? " asc" : " desc"));
      // The hot key is spread: no rank holds more than about half plus its share.
      if (l != Layout::kEmpty && c.size() > 1) {
        EXPECT_LT(sorted.local_count(), 2500 * 3 / 4);
      }
    }
    // Integer keys with a custom key function.
    std::vector<std::int64_t> ints;
    for (std::int64_t i = 0; i < (l == Layout::kEmpty ? 0 : 999); ++i) ints.push_back((i * 7919) % 101);
    auto want = ints;
    std::stable_sort(want.begin(), want.end(), [](std::int64_t a, std::int64_t b) { return a % 10 < b % 10; });
    expect_same(sort_by(lay_out(ints, l), [](std::int64_t x) { return x % 10; }).collect(), want,
                label("sort_by int ", layout_name(l)));
  }
}

TEST(WideSort, TakeOrderedAndTop) {
  for (const Layout l : {Layout::kEven, Layout::kLastRank, Layout::kEmpty}) {
    auto all = l == Layout::kEmpty ? std::vector<KV>{} : skewed_pairs(1500, 13);
    const auto in = lay_out(all, l);
    for (const std::int64_t n : {0, 1, 7, 100, 5000}) {
      auto want = all;
      std::stable_sort(want.begin(), want.end());
      want.resize(std::min<std::size_t>(want.size(), static_cast<std::size_t>(n)));
      expect_same(take_ordered(in, n), want, label("take_ordered n=", n, " ", layout_name(l)));
      auto want_top = all;
      std::stable_sort(want_top.begin(), want_top.end(), std::greater<KV>{});
      want_top.resize(std::min<std::size_t>(want_top.size(), static_cast<std::size_t>(n)));
      expect_same(top(in, n), want_top, label("top n=", n, " ", layout_name(l)));
    }
    // Ties under a comparator on the key only keep global-index order.
    auto by_key = [](const KV& a, const KV& b) { return a.first < b.first; };
    auto want = all;
    std::stable_sort(want.begin(), want.end(), by_key);
    want.resize(std::min<std::size_t>(want.size(), 300));
    expect_same(take_ordered(in, 300, by_key), want, label("take_ordered ties ", layout_name(l)));
  }
}
