// join, left_outer_join and broadcast_join against a serial nested-loop reference: keys missing on
// either side, duplicate keys on both sides, string keys.
#include "wide_support.hpp"

using namespace wide_test;
using lockstep::data::Partitioned;

namespace {
using Joined = std::pair<std::string, std::pair<std::int64_t, std::int64_t>>;
using Outer = std::pair<std::string, std::pair<std::int64_t, std::optional<std::int64_t>>>;

// Left keys key-0..key-40 (skewed by "hot"); right keys key-20..key-60 and "hot", duplicates on both.
std::vector<KV> left_side(bool empty) {
  return empty ? std::vector<KV>{} : skewed_pairs(700, 21, 41);
}
std::vector<KV> right_side(bool empty) {
  std::vector<KV> v;
  if (empty) return v;
  for (int i = 0; i < 120; ++i) {
    std::string k = "key-";
    k += std::to_string(20 + i % 41);
    v.emplace_back(k, 1000 + i);
  }
  v.emplace_back("hot", -1);
  v.emplace_back("hot", -2);
  return v;
}

std::vector<Joined> serial_join(const std::vector<KV>& a, const std::vector<KV>& b) {
  // Per key (in the shuffle's key order): left values in index order x right values in index order.
  std::vector<std::pair<std::string, int>> keys;
  for (const auto& kv : a) keys.emplace_back(kv.first, 0);
  keyed_order(keys);
  keys.erase(std::unique(keys.begin(), keys.end()), keys.end());
  std::vector<Joined> out;
  for (const auto& [k, unused] : keys)
    for (const auto& x : a)
      if (x.first == k)
        for (const auto& y : b)
          if (y.first == k) out.push_back({k, {x.second, y.second}});
  return out;
}
std::vector<Outer> serial_left_outer(const std::vector<KV>& a, const std::vector<KV>& b) {
  std::vector<std::pair<std::string, int>> keys;
  for (const auto& kv : a) keys.emplace_back(kv.first, 0);
  keyed_order(keys);
  keys.erase(std::unique(keys.begin(), keys.end()), keys.end());
  std::vector<Outer> out;
  for (const auto& [k, unused] : keys)
    for (const auto& x : a) {
      if (x.first != k) continue;
      bool any = false;
      for (const auto& y : b)
        if (y.first == k) {
          out.push_back({k, {x.second, y.second}});
          any = true;
        }
      if (!any) out.push_back({k, {x.second, std::nullopt}});
    }
  return out;
}
}  // namespace

TEST(WideJoin, InnerOuterAndBroadcast) {
  for (const Layout l : {Layout::kEven, Layout::kLastRank, Layout::kEmpty}) {
    for (const bool right_empty : {false, true}) {
      const auto a = left_side(l == Layout::kEmpty);
      const auto b = right_side(right_empty);
      const auto pa = lay_out(a, l);
      const auto pb = lay_out(b, right_empty ? Layout::kEmpty : Layout::kEven);
      const std::string what = label(layout_name(l), right_empty ? " right empty" : "");
      const auto want = serial_join(a, b);
      if (!a.empty() && !b.empty()) {
        EXPECT_GT(want.size(), 100u);
      }
      expect_same(join(pa, pb).collect(), want, label("join ", what));
      expect_same(broadcast_join(pa, pb).collect(), want, label("broadcast_join ", what));
      expect_same(left_outer_join(pa, pb).collect(), serial_left_outer(a, b), label("left_outer_join ", what));
    }
  }
}

TEST(WideJoin, StringValuesAndOptionalCodec) {
  // A non-trivially-copyable right value exercises Codec<std::optional<std::string>>.
  std::vector<std::pair<std::int64_t, std::string>> r;
  for (int i = 0; i < 30; i += 3) {
    std::string s = "r";
    s += std::to_string(i);
    r.emplace_back(i, s);
  }
  std::vector<std::pair<std::int64_t, std::int64_t>> l;
  for (int i = 0; i < 30; ++i) l.emplace_back(i % 15, i);
  const auto got = left_outer_join(lay_out(l, Layout::kEven), lay_out(r, Layout::kLastRank)).collect();
  ASSERT_EQ(got.size(), 30u);
  for (const auto& [k, vw] : got) {
    EXPECT_EQ(vw.first % 15, k);
    EXPECT_EQ(vw.second.has_value(), k % 3 == 0);
    if (vw.second) {
      std::string want = "r";
      want += std::to_string(k);
      EXPECT_EQ(*vw.second, want);
    }
  }
}
