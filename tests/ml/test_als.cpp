// ALS (ml/recommendation.hpp): recovers low-rank ratings to the noise, the same factor bits at
// every rank count (with an empty rank 0 and one user holding half the ratings), implicit and
// nonnegative modes, cold start both ways through a saved pipeline, recommendForAllUsers against
// brute force, and bad ids or ratings refused on every rank naming the column and row.
#include <cmath>
#include <cstring>
#include <filesystem>
#include <random>

#include "lockstep/core/error.hpp"
#include "lockstep/io/config.hpp"
#include "lockstep/ml/evaluation.hpp"
#include "lockstep/ml/pipeline.hpp"
#include "lockstep/ml/recommendation.hpp"
#include "ml_test_util.hpp"

using namespace lockstep;
using namespace lockstep::ml;
using namespace lockstep::testing;

namespace {

struct R {
  double user, item, rating;
};

// Rating rows of a synthetic rank-3 model plus N(0, noise): every (user, item) pair with
// probability `density`, in a fixed order; with `skew`, user 0 also rates every item again
// until it holds half of all rows.
std::vector<R> low_rank(int users, int items, double density, double noise, bool skew, bool nonneg = false) {
  std::mt19937_64 g(7);
  std::normal_distribution<double> n01(0.0, 1.0);
  std::uniform_real_distribution<double> u01(0.0, 1.0);
  auto draw = [&] { return nonneg ? std::fabs(n01(g)) : n01(g); };
  std::vector<std::array<double, 3>> uf(static_cast<std::size_t>(users)), itf(static_cast<std::size_t>(items));
  for (auto& f : uf) f = {draw(), draw(), draw()};
  for (auto& f : itf) f = {draw(), draw(), draw()};
  std::vector<R> out;
  for (int u = 0; u < users; ++u)
    for (int i = 0; i < items; ++i)
      if (u01(g) < density) {
        const auto& a = uf[static_cast<std::size_t>(u)];
        const auto& b = itf[static_cast<std::size_t>(i)];
        out.push_back({double(u), double(i), a[0] * b[0] + a[1] * b[1] + a[2] * b[2] + noise * n01(g)});
      }
  if (skew)
    for (std::size_t j = 0, n = out.size(); j < n; ++j) {
      const auto& a = uf[0];
      const auto& b = itf[j % static_cast<std::size_t>(items)];
      out.push_back({0.0, double(j % static_cast<std::size_t>(items)), a[0] * b[0] + a[1] * b[1] + a[2] * b[2] + noise * n01(g)});
    }
  return out;
}

// This rank's share of the rows: rank 0 gets none when there are several ranks, the others
// contiguous blocks in order.
Frame shard(comm::Communicator& c, const std::vector<R>& all) {
  const int p = c.size(), r = c.rank();
  const auto n = static_cast<std::int64_t>(all.size());
  std::int64_t lo = 0, hi = n;
  if (p > 1) {
    lo = r == 0 ? 0 : n * (r - 1) / (p - 1);
    hi = r == 0 ? 0 : n * r / (p - 1);
  }
  RowMatrix x(hi - lo, 2);
  Vec y(hi - lo);
  for (std::int64_t j = lo; j < hi; ++j) {
    x(j - lo, 0) = static_cast<float>(all[static_cast<std::size_t>(j)].user);
    x(j - lo, 1) = static_cast<float>(all[static_cast<std::size_t>(j)].item);
    y[j - lo] = all[static_cast<std::size_t>(j)].rating;
  }
  return Frame::dense(c, x, y, {}, {"user", "item"});
}

// Rows j with j % 5 == 4 are the test split.
std::pair<std::vector<R>, std::vector<R>> split(const std::vector<R>& all) {
  std::pair<std::vector<R>, std::vector<R>> s;
  for (std::size_t j = 0; j < all.size(); ++j) (j % 5 == 4 ? s.second : s.first).push_back(all[j]);
  return s;
}

double rmse(const AlsModel& m, const Frame& f) {
  const Frame t = m.evaluation_rows(f);
  return evaluate_regression(t, m.predict(t).prediction).rmse;
}

}  // namespace

TEST(Als, RecoversLowRankRatingsToTheNoise) {
  auto& w = world();
  const auto [train, test] = split(low_rank(80, 60, 0.5, 0.05, false));
  AlsParams p;
  p.rank = 3;
  p.max_iter = 15;
  p.reg_param = 0.01;
  const AlsModel m = fit_als(shard(w, train), p);
  EXPECT_EQ(m.user_ids.size(), 80u);
  EXPECT_EQ(m.item_ids.size(), 60u);
  EXPECT_LT(rmse(m, shard(w, train)), 0.06);
  EXPECT_LT(rmse(m, shard(w, test)), 0.1);
  // The default (rank 10, regParam 0.1) still fits, but shrinks: worse than rank 3, far better
  // than predicting the mean (the ratings' spread is about 1.7).
  const AlsModel d = fit_als(shard(w, train), AlsParams{});
  EXPECT_LT(rmse(d, shard(w, test)), 0.5);
}

TEST(Als, SameFactorBitsAtEveryRankCountWithEmptyRankAndSkewedUser) {
  const std::vector<R> all = low_rank(40, 30, 0.4, 0.1, true);
  for (const bool implicit : {false, true})
    for (const bool nonneg : {false, true}) {
      AlsParams p;
      p.rank = 4;
      p.max_iter = 4;
      p.implicit_prefs = implicit;
      p.nonnegative = nonneg;
      p.seed = 11;
      const auto results = at_every_rank_count<AlsModel>([&](comm::Communicator& c) { return fit_als(shard(c, all), p); });
      const AlsModel& one = results.back().second;
      ASSERT_EQ(results.back().first, 1);
      for (const auto& [g, m] : results) {
        ASSERT_EQ(m.user_ids, one.user_ids);
        ASSERT_EQ(m.item_ids, one.item_ids);
        EXPECT_EQ(0, std::memcmp(m.user_factors.data(), one.user_factors.data(), sizeof(double) * one.user_factors.size()))
            << "user factors differ at " << g << " ranks (implicit " << implicit << ", nonnegative " << nonneg << ")";
        EXPECT_EQ(0, std::memcmp(m.item_factors.data(), one.item_factors.data(), sizeof(double) * one.item_factors.size()))
            << "item factors differ at " << g << " ranks (implicit " << implicit << ", nonnegative " << nonneg << ")";
      }
    }
}

TEST(Als, ImplicitRanksObservedPairsAboveUnobservedOnes) {
  auto& w = world();
  // Preferences: user u likes items of its own group (u % 3 == i % 3), seen with counts 1..3.
  std::vector<R> rows;
  for (int u = 0; u < 30; ++u)
    for (int i = 0; i < 24; ++i)
      if (u % 3 == i % 3 && (u + i) % 4 != 0) rows.push_back({double(u), double(i), double(1 + (u * i) % 3)});
  AlsParams p;
  p.rank = 3;
  p.implicit_prefs = true;
  p.alpha = 2.0;
  const AlsModel m = fit_als(shard(w, rows), p);
  // Held-out in-group pairs ((u + i) % 4 == 0) score above every out-of-group pair of that user.
  int checked = 0;
  for (int u = 0; u < 30; ++u)
    for (int i = 0; i < 24; ++i) {
      if (u % 3 != i % 3 || (u + i) % 4 != 0) continue;
      const double s = m.user_factors.row(m.user_row(u)).dot(m.item_factors.row(m.item_row(i)));
      for (int j = 0; j < 24; ++j)
        if (u % 3 != j % 3) {
          EXPECT_GT(s, m.user_factors.row(m.user_row(u)).dot(m.item_factors.row(m.item_row(j))));
        }
      ++checked;
    }
  EXPECT_GT(checked, 10);
  // Implicit predictions are preferences, near 1 for liked and 0 for the rest.
  EXPECT_NEAR(m.user_factors.row(m.user_row(1)).dot(m.item_factors.row(m.item_row(4))), 1.0, 0.2);
}

TEST(Als, NonnegativeFactorsAreNonnegativeAndStillFit) {
  auto& w = world();
  const auto [train, test] = split(low_rank(60, 40, 0.6, 0.05, false, true));
  AlsParams p;
  p.rank = 3;
  p.max_iter = 20;
  p.reg_param = 0.01;
  p.nonnegative = true;
  const AlsModel m = fit_als(shard(w, train), p);
  EXPECT_GE(m.user_factors.minCoeff(), 0.0);
  EXPECT_GE(m.item_factors.minCoeff(), 0.0);
  EXPECT_EQ((m.user_factors.array() == 0.0).count() + (m.item_factors.array() == 0.0).count() > 0, true)
      << "expected some factors clipped at 0";
  EXPECT_LT(rmse(m, shard(w, test)), 0.25);
  // Without the constraint some factors go negative on the same data.
  p.nonnegative = false;
  const AlsModel free = fit_als(shard(w, train), p);
  EXPECT_LT(std::min(free.user_factors.minCoeff(), free.item_factors.minCoeff()), 0.0);
}

TEST(Als, ColdStartNanMakesRmseNanAndDropScoresTheRestThroughASavedPipeline) {
  auto& w = world();
  const auto [train, test0] = split(low_rank(50, 30, 0.7, 0.05, false));
  std::vector<R> test = test0;
  test.push_back({1000.0, 3.0, 2.0});  // a user never seen
  test.push_back({4.0, 500.0, 2.0});   // an item never seen
  const Frame tr = shard(w, train), te = shard(w, test), warm = shard(w, test0);
  for (const std::string strategy : {"nan", "drop"}) {
    const std::string yaml = "[{ALS: {rank: 3, maxIter: 15, regParam: 0.01, coldStartStrategy: " + strategy + "}}]";
    const auto stages = io::parse_config("pipeline: " + yaml + "\ndata: {format: synthetic}\n", "test.yaml").pipeline;
    const PipelineModel fitted = fit_pipeline(tr, stages, FitContext{"", "none", false});
    const std::string path = std::string(LOCKSTEP_BINARY_DIR) + "/test_als_" + strategy + "_np" +
                             std::to_string(w.size()) + ".h5";
    fitted.save(w, path, "pipeline: " + yaml);
    const PipelineModel loaded = PipelineModel::load(w, path);
    w.barrier();
    if (w.rank() == 0) std::filesystem::remove(path);
    // Cold rows predict NaN under both strategies; the last two rows of `test` are the cold ones.
    const Vec pred = loaded.predict(te).prediction;
    const std::int64_t cold_local = std::max<std::int64_t>(0, te.row_offset() + te.rows() - (te.global_rows() - 2));
    for (std::int64_t i = 0; i < te.rows(); ++i)
      EXPECT_EQ(std::isnan(pred[i]), i >= te.rows() - cold_local) << "row " << te.row_offset() + i;
    const double got = loaded.evaluate(te).at("rmse");
    if (strategy == "nan") {
      EXPECT_TRUE(std::isnan(got)) << got;
    } else {
      EXPECT_DOUBLE_EQ(got, loaded.evaluate(warm).at("rmse"));
      EXPECT_LT(got, 0.2);
    }
  }
}

TEST(Als, RecommendForAllUsersMatchesBruteForce) {
  auto& w = world();
  const AlsModel m = fit_als(shard(w, low_rank(25, 15, 0.5, 0.1, false)), AlsParams{});
  const int k = 4;
  const auto recs = recommend_for_all_users(w, m, k).collect();
  ASSERT_EQ(recs.size(), m.user_ids.size());
  for (std::size_t u = 0; u < recs.size(); ++u) {
    EXPECT_EQ(recs[u].first, m.user_ids[u]);
    std::vector<std::pair<double, std::int64_t>> all;  // (-score, item): sorted = best first, ties by id
    for (std::size_t t = 0; t < m.item_ids.size(); ++t)
      all.emplace_back(-m.user_factors.row(static_cast<Eigen::Index>(u)).dot(m.item_factors.row(static_cast<Eigen::Index>(t))),
                       m.item_ids[t]);
    std::sort(all.begin(), all.end());
    ASSERT_EQ(recs[u].second.size(), static_cast<std::size_t>(k));
    for (int j = 0; j < k; ++j) {
      EXPECT_EQ(recs[u].second[static_cast<std::size_t>(j)].first, all[static_cast<std::size_t>(j)].second);
      EXPECT_EQ(recs[u].second[static_cast<std::size_t>(j)].second, -all[static_cast<std::size_t>(j)].first);
    }
  }
  // More than there are items: every item, once.
  EXPECT_EQ(recommend_for_all_users(w, m, 100).collect()[0].second.size(), m.item_ids.size());
}

TEST(Als, BadIdsAndRatingsAreDataErrorsOnEveryRankNamingColumnAndRow) {
  auto& w = world();
  const std::vector<R> good = low_rank(10, 8, 0.8, 0.1, false);
  struct Case {
    std::size_t row;
    R bad;
    std::string want;
  };
  const std::size_t last = good.size() - 1;
  const std::vector<Case> cases = {
      {3, {1.5, 2.0, 3.0}, "column user: value 1.5 at row 3 is not an id"},
      {last, {2.0, -1.0, 3.0}, "column item: value -1 at row " + std::to_string(last) + " is not an id"},
      {5, {2.0, 1.0, std::nan("")}, "column rating (the label): value nan at row 5 is not a rating"},
  };
  for (const auto& c : cases) {
    std::vector<R> rows = good;
    rows[c.row] = c.bad;
    try {
      fit_als(shard(w, rows), AlsParams{});
      ADD_FAILURE() << "accepted " << c.want;
    } catch (const DataError& e) {
      EXPECT_NE(std::string(e.what()).find(c.want), std::string::npos) << e.what();
    }
  }
  // regParam 0 with users of one rating (singular normal equations): finite factors, not NaN.
  AlsParams zero;
  zero.reg_param = 0.0;
  zero.max_iter = 3;
  const AlsModel z = fit_als(shard(w, {{0, 0, 4}, {0, 1, 2}, {1, 1, 3}, {2, 0, 1}}), zero);
  EXPECT_TRUE(z.user_factors.allFinite() && z.item_factors.allFinite());
  AlsParams bad;
  bad.cold_start_strategy = "keep";
  EXPECT_THROW(fit_als(shard(w, good), bad), ConfigError);
}
