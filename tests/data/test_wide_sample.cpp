// sample(fraction, seed): the same elements at any np, about the fraction, different per seed.
#include "wide_support.hpp"

using namespace wide_test;
using lockstep::data::Partitioned;

TEST(WideSample, SameElementsAtAnyNp) {
  std::vector<std::int64_t> all(20000);
  for (std::size_t i = 0; i < all.size(); ++i) all[i] = static_cast<std::int64_t>(i);
  for (const Layout l : {Layout::kEven, Layout::kLastRank, Layout::kEmpty}) {
    const auto data = l == Layout::kEmpty ? std::vector<std::int64_t>{} : all;
    for (const double f : {0.0, 0.1, 0.5, 1.0}) {
      std::vector<std::int64_t> want;
      for (std::size_t i = 0; i < data.size(); ++i)
        if (lockstep::data::sample_keeps(1234, static_cast<std::int64_t>(i), f)) want.push_back(data[i]);
      const auto got = sample(lay_out(data, l), f, 1234).collect();
      expect_same(got, want, label("sample f=", f, " ", layout_name(l)));
      if (!data.empty()) {
        EXPECT_NEAR(static_cast<double>(got.size()), f * 20000.0, 300.0);
      }
    }
  }
  // A fixed digest of the kept indices: the same value at np 1 and np 4 (and any other np).
  const auto kept = sample(lay_out(all, Layout::kEven), 0.25, 99).collect();
  const auto again = sample(lay_out(all, Layout::kLastRank), 0.25, 99).collect();
  EXPECT_EQ(kept, again);
  EXPECT_NE(kept, sample(lay_out(all, Layout::kEven), 0.25, 100).collect());
}
