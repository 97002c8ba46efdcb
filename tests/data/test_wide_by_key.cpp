// reduce/aggregate/combine/group/count_by_key, count_by_value, distinct and union_with: equal to a
// serial std::map reference, in the keyed shuffle's order, at every rank count and layout.
#include "wide_support.hpp"

using namespace wide_test;
using lockstep::data::Partitioned;

namespace {
const Layout kLayouts[] = {Layout::kEven, Layout::kLastRank, Layout::kEmpty};

std::vector<KV> input_for(Layout l) {
  return l == Layout::kEmpty ? std::vector<KV>{} : skewed_pairs(3001, 7);
}

template <typename X>
std::vector<std::pair<std::string, X>> from_map(const std::map<std::string, X>& m) {
  std::vector<std::pair<std::string, X>> v(m.begin(), m.end());
  keyed_order(v);
  return v;
}
}  // namespace

TEST(WideByKey, ReduceAggregateCombine) {
  for (const Layout l : kLayouts) {
    const auto all = input_for(l);
    const auto in = lay_out(all, l);
    std::map<std::string, std::int64_t> sum, mx;
    for (const auto& [k, v] : all) {
      sum[k] += v;
      mx[k] = mx.count(k) ? std::max(mx[k], v) : v;
    }
    expect_same(reduce_by_key(in, [](std::int64_t a, std::int64_t b) { return a + b; }).collect(), from_map(sum),
                label("reduce_by_key ", layout_name(l)));
    expect_same(aggregate_by_key(
                    in, std::int64_t{-1000000}, [](std::int64_t a, std::int64_t v) { return std::max(a, v); },
                    [](std::int64_t a, std::int64_t b) { return std::max(a, b); })
                    .collect(),
                from_map(mx), label("aggregate_by_key ", layout_name(l)));
    // (sum, count) combiners.
    using SC = std::pair<std::int64_t, std::int64_t>;
    std::map<std::string, SC> sc;
    for (const auto& [k, v] : all) sc[k] = SC{sc[k].first + v, sc[k].second + 1};
    auto got = combine_by_key(
        in,
        [](std::int64_t&& v) {
          return SC{v, 1};
        },
        [](SC c, std::int64_t&& v) {
          return SC{c.first + v, c.second + 1};
        },
        [](SC a, SC b) {
          return SC{a.first + b.first, a.second + b.second};
        });
    expect_same(got.collect(), from_map(sc), label("combine_by_key ", layout_name(l)));
  }
}

TEST(WideByKey, GroupKeepsGlobalIndexOrder) {
  for (const Layout l : kLayouts) {
    const auto all = input_for(l);
    std::map<std::string, std::vector<std::int64_t>> groups;
    for (const auto& [k, v] : all) groups[k].push_back(v);
    expect_same(group_by_key(lay_out(all, l)).collect(), from_map(groups), label("group_by_key ", layout_name(l)));
  }
}

TEST(WideByKey, CountsAndDistinct) {
  for (const Layout l : kLayouts) {
    const auto all = input_for(l);
    const auto in = lay_out(all, l);
    std::map<std::string, std::int64_t> by_key;
    std::map<KV, std::int64_t> by_value;
    for (const auto& kv : all) {
      ++by_key[kv.first];
      ++by_value[kv];
    }
    expect_same(count_by_key(in).collect(), from_map(by_key), label("count_by_key ", layout_name(l)));
    std::vector<std::pair<KV, std::int64_t>> want(by_value.begin(), by_value.end());
    keyed_order(want);
    expect_same(count_by_value(in).collect(), want, label("count_by_value ", layout_name(l)));
    std::vector<KV> want_distinct;
    for (const auto& [kv, n] : want) want_distinct.push_back(kv);
    expect_same(distinct(in).collect(), want_distinct, label("distinct ", layout_name(l)));
  }
}

TEST(WideByKey, UnionConcatenates) {
  for (const Layout la : kLayouts) {
    for (const Layout lb : kLayouts) {
      const auto a = input_for(la);
      const auto b = la == Layout::kEmpty && lb == Layout::kEmpty ? std::vector<KV>{} : skewed_pairs(577, 11);
      auto want = a;
      want.insert(want.end(), b.begin(), b.end());
      const auto u = union_with(lay_out(a, la), lay_out(b, lb == Layout::kEmpty ? Layout::kEven : lb));
      expect_same(u.collect(), want, label("union_with ", layout_name(la), "+", layout_name(lb)));
      // Contiguous blocks, evened out.
      const auto n = static_cast<std::int64_t>(want.size());
      const auto& c = lockstep::testing::world();
      EXPECT_EQ(u.local_count(), lockstep::data::split_range(n, c.rank(), c.size()).size());
    }
  }
}
