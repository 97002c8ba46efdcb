// KMeans, PCA, transformers, naive Bayes, trees and evaluators: scikit-learn's values on the
// fixtures, identical (trees) or rounding-close (the rest) results at every rank count, bad input.
#include <cmath>

#include "lockstep/core/rng.hpp"
#include "lockstep/ml/clustering.hpp"
#include "lockstep/ml/evaluation.hpp"
#include "lockstep/ml/feature.hpp"
#include "lockstep/ml/naive_bayes.hpp"
#include "lockstep/ml/tree.hpp"
#include "ml_test_util.hpp"

using namespace lockstep;
using namespace lockstep::ml;
using namespace lockstep::testing;

namespace {

double global_accuracy(const Frame& f, const Vec& pred) {
  double ok = 0.0;
  for (std::int64_t i = 0; i < f.rows(); ++i) ok += pred[i] == f.label()[i];
  return f.comm().allreduce<double>(ok, comm::ReduceOp::kSum) / static_cast<double>(f.global_rows());
}

// Trees flattened to numbers, for exact comparison across rank counts.
std::vector<double> flatten(const TreeEnsembleModel& m) {
  std::vector<double> v;
  for (const auto& t : m.trees)
    for (const auto& n : t.nodes) {
      v.insert(v.end(),
               {static_cast<double>(n.feature), n.threshold, static_cast<double>(n.left), n.prediction, n.gain});
      v.insert(v.end(), n.class_probs.begin(), n.class_probs.end());
    }
  return v;
}

// The world's rank-0 copy of a vector (for comparing each group with the np = 1 result).
std::vector<double> from_rank0(std::vector<double> v) {
  auto& w = world();
  std::int64_t n = static_cast<std::int64_t>(v.size());
  w.broadcast(n, 0);
  v.resize(static_cast<std::size_t>(n));
  w.broadcast(v.data(), v.size() * sizeof(double), 0);
  return v;
}

}  // namespace

TEST(KMeans, FindsScikitLearnsClusteringAndCost) {
  auto& w = world();
  const Frame f = load_fixture(w, "blobs.csv");
  KMeansParams p;
  p.k = 4;
  p.max_iter = 100;
  p.tol = 1e-10;
  p.seed = 3;
  const auto m = fit_kmeans(f, p);
  const auto& ref = ml_reference()["clustering"]["kmeans4"];
  EXPECT_NEAR(m.training_cost, ref["cost"].as<double>(), 1e-6 * ref["cost"].as<double>());
  // Centres sorted lexicographically, as the reference is.
  std::vector<Eigen::RowVectorXd> rows;
  for (int c = 0; c < 4; ++c) rows.push_back(m.centers.row(c));
  std::sort(rows.begin(), rows.end(), [](const auto& a, const auto& b) {
    return std::lexicographical_compare(a.data(), a.data() + a.size(), b.data(), b.data() + b.size());
  });
  const auto want = ref_vector(ref["centers"]);
  for (int c = 0; c < 4; ++c)
    for (int j = 0; j < 4; ++j)
      EXPECT_NEAR(rows[static_cast<std::size_t>(c)][j], want[static_cast<std::size_t>(c * 4 + j)], 1e-6);
  // predict() agrees with cost().
  const auto pr = m.predict(f);
  double cost = 0.0;
  for (std::int64_t i = 0; i < f.rows(); ++i) cost += pr.raw(i, static_cast<Eigen::Index>(pr.prediction[i]));
  EXPECT_NEAR(w.allreduce<double>(cost, comm::ReduceOp::kSum), m.training_cost, 1e-6 * m.training_cost);
}

TEST(KMeans, SameCentresAtEveryRankCountAndClearErrors) {
  const auto results = at_every_rank_count<std::vector<double>>([](comm::Communicator& c) {
    KMeansParams p;
    p.k = 5;  // more than the 4 blobs: the seeding matters
    p.seed = 11;
    const auto m = fit_kmeans(load_fixture(c, "blobs.csv"), p);
    return std::vector<double>(m.centers.data(), m.centers.data() + m.centers.size());
  });
  const auto ref = from_rank0(results.back().second);
  for (const auto& [g, v] : results)
    for (std::size_t i = 0; i < v.size(); ++i) EXPECT_NEAR(v[i], ref[i], 1e-9) << "np=" << g;
  auto& w = world();
  KMeansParams p;
  p.k = 501;
  try {
    fit_kmeans(load_fixture(w, "blobs.csv"), p);
    FAIL() << "k > rows accepted";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("k = 501 is larger than the number of rows (500)"), std::string::npos)
        << e.what();
  }
}

namespace {
// Overlapping Gaussian clusters: 3000 rows of 13 features (not a multiple of the distance
// kernel's 8 lanes), weights from 0.5 to 2, each row keyed by its global index.
Frame overlapping_blobs(comm::Communicator& c) {
  const std::int64_t N = 3000, d = 13;
  const std::int64_t lo = N * c.rank() / c.size(), hi = N * (c.rank() + 1) / c.size();
  RowMatrix x(hi - lo, d);
  Vec y(hi - lo), wt(hi - lo);
  for (std::int64_t i = lo; i < hi; ++i) {
    CounterRng g(99, RngStream::kUser, static_cast<std::uint64_t>(i));
    const auto blob = static_cast<std::int64_t>(g.below(6));
    for (std::int64_t j = 0; j < d; ++j) x(i - lo, j) = static_cast<float>(0.8 * ((blob * 7 + j) % 5) + g.normal());
    y[i - lo] = static_cast<double>(blob);
    wt[i - lo] = 0.5 + 1.5 * g.uniform_double();
  }
  return Frame::dense(c, std::move(x), std::move(y), std::move(wt));
}
}  // namespace

TEST(KMeans, HamerlyPruningGivesLloydsCentresBitForBit) {
  const auto results = at_every_rank_count<std::vector<double>>([](comm::Communicator& c) {
    const Frame f = overlapping_blobs(c);
    std::vector<double> out;
    for (const char* algorithm : {"hamerly", "lloyd"}) {
      KMeansParams p;
      p.k = 7;
      p.max_iter = 300;
      p.tol = 0.0;  // until no centre moves: every iteration where rows still switch
      p.seed = 5;
      p.algorithm = algorithm;
      const auto m = fit_kmeans(f, p);
      out.insert(out.end(), m.centers.data(), m.centers.data() + m.centers.size());
      out.push_back(m.iterations);
      out.push_back(m.training_cost);
    }
    return out;
  });
  const auto ref = from_rank0(results.back().second);
  const std::size_t half = ref.size() / 2;
  EXPECT_GE(ref[half - 2], 8) << "too few iterations to exercise the bounds";
  EXPECT_LT(ref[half - 2], 300) << "did not converge";
  for (const auto& [g, v] : results) {
    for (std::size_t i = 0; i < half; ++i) EXPECT_EQ(v[i], v[half + i]) << "np=" << g << " value " << i;
    for (std::size_t i = 0; i < v.size(); ++i) EXPECT_NEAR(v[i], ref[i], 1e-9 * std::max(1.0, std::fabs(ref[i]))) << "np=" << g;
  }
}

TEST(KMeans, RelativeToleranceIsScikitLearnsRuleAndBadModesAreRefused) {
  auto& w = world();
  const Frame f = overlapping_blobs(w);
  KMeansParams p;
  p.k = 7;
  p.max_iter = 300;
  p.seed = 5;
  p.tol = 0.0;
  const int exact = fit_kmeans(f, p).iterations;
  p.tol_mode = "relative";
  EXPECT_EQ(fit_kmeans(f, p).iterations, exact);  // tol 0: both run until nothing moves
  p.tol = 1e9;  // any first move is below 1e9 times the mean variance
  EXPECT_EQ(fit_kmeans(f, p).iterations, 1);
  p.tol = 1e-2;  // the criterion scales with the data: scaling every feature keeps the iterations
  const int relative = fit_kmeans(f, p).iterations;
  EXPECT_GT(relative, 1);
  EXPECT_LT(relative, exact);
  RowMatrix scaled = 1024.0f * f.to_dense();  // a power of two: the same rounding
  EXPECT_EQ(fit_kmeans(Frame::dense(w, std::move(scaled), f.label(), f.weight()), p).iterations, relative);
  for (const auto& [key, value] : {std::pair<std::string, std::string>{"tolMode", "sklearn"}, {"algorithm", "elkan"}}) {
    KMeansParams bad;
    (key == "tolMode" ? bad.tol_mode : bad.algorithm) = value;
    try {
      fit_kmeans(f, bad);
      FAIL() << key << " " << value << " accepted";
    } catch (const ConfigError& e) {
      EXPECT_NE(std::string(e.what()).find(key + ": expected"), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find(value), std::string::npos) << e.what();
    }
  }
}

TEST(Pca, MatchesScikitLearnUpToSign) {
  auto& w = world();
  const Frame f = load_fixture(w, "regression.csv");
  const auto m = fit_pca(f, {3});
  const auto& ref = ml_reference()["regression"]["pca3"];
  expect_near_vec(m.explained_variance, ref_vector(ref["explained_variance"]), 1e-6, "explained variance");
  expect_near_vec(m.mean, ref_vector(ref["mean"]), 1e-7, "mean");
  const auto comp = ref_vector(ref["components"]);
  for (int c = 0; c < 3; ++c) {
    double dot = 0.0;
    for (int j = 0; j < 6; ++j) dot += m.components(c, j) * comp[static_cast<std::size_t>(c * 6 + j)];
    EXPECT_NEAR(std::fabs(dot), 1.0, 1e-6) << "component " << c;
  }
  // Transform: centred projections, uncorrelated, with the explained variances.
  const Frame t = m.transform(f);
  EXPECT_EQ(t.num_features(), 3);
  EXPECT_EQ(t.feature_names()[0], "pc0");
}

TEST(Transformers, ScalersNormalizerOneHot) {
  auto& w = world();
  const Frame f = load_fixture(w, "regression.csv");
  const auto ss = fit_standard_scaler(f);
  expect_near_vec(ss.std, ref_vector(ml_reference()["regression"]["std_ddof1"]), 1e-7, "std");
  const RowMatrix x = f.to_dense(), xs = ss.transform(f).to_dense();
  for (std::int64_t i = 0; i < x.rows(); ++i) EXPECT_NEAR(xs(i, 2), x(i, 2) / ss.std[2], 1e-5);
  // MinMax: a constant column maps to the middle of the range (Spark).
  RowMatrix xc = x;
  xc.col(3).setConstant(7.0f);
  const Frame fc = f.with_features(xc, f.feature_names());
  const auto mm = fit_min_max_scaler(fc, {-1.0, 1.0});
  const RowMatrix y = mm.transform(fc).to_dense();
  double lo = INFINITY, hi = -INFINITY;
  for (std::int64_t i = 0; i < y.rows(); ++i) {
    EXPECT_EQ(y(i, 3), 0.0f);
    lo = std::min(lo, static_cast<double>(y(i, 0))), hi = std::max(hi, static_cast<double>(y(i, 0)));
  }
  EXPECT_NEAR(w.allreduce<double>(lo, comm::ReduceOp::kMin), -1.0, 1e-6);
  EXPECT_NEAR(w.allreduce<double>(hi, comm::ReduceOp::kMax), 1.0, 1e-6);
  const RowMatrix ma = fit_max_abs_scaler(f).transform(f).to_dense();
  double mx = ma.rows() ? static_cast<double>(ma.cwiseAbs().maxCoeff()) : 0.0;
  EXPECT_NEAR(w.allreduce<double>(mx, comm::ReduceOp::kMax), 1.0, 1e-6);
  const RowMatrix nz = Normalizer{2.0}.transform(f).to_dense();
  for (std::int64_t i = 0; i < nz.rows(); ++i) EXPECT_NEAR(nz.row(i).norm(), 1.0, 1e-5);
  // OneHot: x0 becomes a category index in {0, 1, 2} (by sign and size).
  RowMatrix cat = x;
  for (std::int64_t i = 0; i < cat.rows(); ++i) cat(i, 0) = x(i, 0) < -0.5f ? 0.0f : (x(i, 0) < 0.5f ? 1.0f : 2.0f);
  const Frame fcat = f.with_features(cat, f.feature_names());
  const auto oh = fit_one_hot_encoder(fcat, {{"x0"}, true});
  EXPECT_EQ(oh.categories[0], 3);
  const Frame enc = oh.transform(fcat);
  EXPECT_EQ(enc.num_features(), 6 - 1 + 2);
  EXPECT_EQ(enc.feature_names()[0], "x0_0");
  const RowMatrix e = enc.to_dense();
  for (std::int64_t i = 0; i < e.rows(); ++i) {
    const int c = static_cast<int>(cat(i, 0));
    EXPECT_EQ(e(i, 0), c == 0 ? 1.0f : 0.0f);
    EXPECT_EQ(e(i, 1), c == 1 ? 1.0f : 0.0f);  // category 2 is the dropped last one
    EXPECT_EQ(e(i, 2), x(i, 1));
  }
}

TEST(NaiveBayes, MatchesScikitLearn) {
  auto& w = world();
  const Frame f = load_fixture(w, "classification.csv");
  const auto& ref = ml_reference()["naive_bayes"];
  const auto g = fit_naive_bayes(f, {"gaussian", 1.0});
  expect_near_vec(flat(g.theta), ref_vector(ref["gaussian"]["theta"]), 1e-9, "gaussian means");
  expect_near_vec(flat(g.sigma), ref_vector(ref["gaussian"]["var"]), 1e-5, "gaussian variances");
  EXPECT_NEAR(global_accuracy(f, g.predict(f).prediction), ref["gaussian"]["accuracy"].as<double>(), 1e-12);
  RowMatrix a = f.to_dense().cwiseAbs();
  const Frame fa = f.with_features(a, f.feature_names());
  const auto mn = fit_naive_bayes(fa, {"multinomial", 1.0});
  expect_near_vec(flat(mn.theta), ref_vector(ref["multinomial_abs"]["feature_log_prob"]), 1e-6, "multinomial");
  EXPECT_NEAR(global_accuracy(fa, mn.predict(fa).prediction), ref["multinomial_abs"]["accuracy"].as<double>(), 1e-12);
  RowMatrix b = (f.to_dense().array() > 0.0f).cast<float>();
  const Frame fb = f.with_features(b, f.feature_names());
  const auto bn = fit_naive_bayes(fb, {"bernoulli", 1.0});
  expect_near_vec(flat(bn.theta), ref_vector(ref["bernoulli_positive"]["feature_log_prob"]), 1e-9, "bernoulli");
  EXPECT_NEAR(global_accuracy(fb, bn.predict(fb).prediction), ref["bernoulli_positive"]["accuracy"].as<double>(),
              1e-12);
  // Negative counts are refused, naming the first bad row and column.
  try {
    fit_naive_bayes(f, {"multinomial", 1.0});
    FAIL() << "negative features accepted by multinomial naive Bayes";
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find("is negative"), std::string::npos) << e.what();
  }
}

TEST(Trees, IdenticalAtEveryRankCount) {
  const auto results = at_every_rank_count<std::vector<std::vector<double>>>([](comm::Communicator& c) {
    std::vector<std::vector<double>> out;
    const Frame cls = load_fixture(c, "classification.csv");
    const Frame reg = load_fixture(c, "regression.csv", true);
    ForestParams rf;
    rf.num_trees = 7;
    rf.max_depth = 6;
    rf.seed = 5;
    out.push_back(flatten(fit_random_forest(cls, rf, true)));
    out.push_back(flatten(fit_random_forest(reg, rf, false)));
    GbtParams gb;
    gb.max_iter = 5;
    gb.max_depth = 3;
    out.push_back(flatten(fit_gbt(reg, gb, false)));
    out.push_back(flatten(fit_gbt(load_fixture(c, "binary.csv"), gb, true)));
    TreeParams dt;
    dt.max_depth = 8;
    dt.impurity = "entropy";
    out.push_back(flatten(fit_decision_tree(cls, dt, true)));
    return out;
  });
  const auto& mine = results.back().second;
  for (std::size_t k = 0; k < mine.size(); ++k) {
    const auto ref = from_rank0(mine[k]);
    for (const auto& [g, models] : results) {
      EXPECT_EQ(models[k], ref) << "model " << k << " at np=" << g << " differs from np=1";
    }
  }
}

TEST(Trees, QualityNearScikitLearnAndImportances) {
  auto& w = world();
  const Frame cls = load_fixture(w, "classification.csv");
  TreeParams dt;
  dt.max_depth = 5;
  const auto m = fit_decision_tree(cls, dt, true);
  EXPECT_LE(m.trees[0].depth(), 5);
  // Binned thresholds (32 bins) against scikit-learn's exact ones: a little lower at most.
  const double acc = global_accuracy(cls, m.predict(cls).prediction);
  EXPECT_GT(acc, ml_reference()["trees"]["classifier_depth5_train_accuracy"].as<double>() - 0.03) << acc;
  const Frame reg = load_fixture(w, "regression.csv");
  const auto r = fit_decision_tree(reg, dt, false);
  const auto met = evaluate_regression(reg, r.predict(reg).prediction);
  EXPECT_GT(met.r2, ml_reference()["trees"]["regressor_depth5_train_r2"].as<double>() - 0.05) << met.r2;
  // y = 1.5 x0 - 2 x1 + 0.03 x2 (x2 ~ 50 sd) + 0.7 x4: x3 and x5 carry nothing.
  const Vec& imp = r.feature_importances;
  EXPECT_NEAR(imp.sum(), 1.0, 1e-12);
  for (int useless : {3, 5})
    for (int useful : {0, 1, 2}) EXPECT_LT(imp[useless], imp[useful]) << useless << " vs " << useful;
  // A forest is at least as good as one tree here, and a GBT fits the training data closely.
  ForestParams rf;
  rf.max_depth = 5;
  EXPECT_GT(global_accuracy(cls, fit_random_forest(cls, rf, true).predict(cls).prediction), acc - 0.03);
  GbtParams gb;
  gb.max_iter = 30;
  gb.max_depth = 3;
  const auto g = fit_gbt(reg, gb, false);
  EXPECT_GT(evaluate_regression(reg, g.predict(reg).prediction).r2, 0.9);
  // Multiclass GBT is refused (Spark's GBTClassifier is binary).
  EXPECT_THROW(fit_gbt(cls, gb, true), DataError);
}

TEST(Evaluators, MatchScikitLearn) {
  auto& w = world();
  const auto& ref = ml_reference()["evaluation"];
  const Frame bin = load_fixture(w, "binary.csv");
  const RowMatrix xb = bin.to_dense();
  Vec score(bin.rows());
  for (std::int64_t i = 0; i < bin.rows(); ++i) score[i] = std::round(static_cast<double>(xb(i, 0)) * 10.0) / 10.0;
  const auto b = evaluate_binary(bin, score);
  EXPECT_NEAR(b.area_under_roc, ref["binary_x0_rounded"]["auc"].as<double>(), 1e-12);
  EXPECT_NEAR(b.area_under_pr, ref["binary_x0_rounded"]["pr_area"].as<double>(), 1e-12);

  const Frame cls = load_fixture(w, "classification.csv");
  const RowMatrix xc = cls.to_dense();
  Predictions p;
  p.prediction.resize(cls.rows());
  p.probability.resize(cls.rows(), 3);
  for (std::int64_t i = 0; i < cls.rows(); ++i) {
    Eigen::Index k = 0;
    const Eigen::RowVectorXd z = xc.row(i).head(3).cast<double>();
    const double mx = z.maxCoeff(&k);
    p.prediction[i] = static_cast<double>(k);
    const Eigen::RowVectorXd e = (z.array() - mx).exp();
    p.probability.row(i) = e / e.sum();
  }
  const auto mc = evaluate_multiclass(cls, p);
  const auto& r = ref["multiclass_argmax_x012"];
  EXPECT_NEAR(mc.accuracy, r["accuracy"].as<double>(), 1e-12);
  EXPECT_NEAR(mc.weighted_f1, r["weighted_f1"].as<double>(), 1e-12);
  EXPECT_NEAR(mc.weighted_precision, r["weighted_precision"].as<double>(), 1e-12);
  EXPECT_NEAR(mc.weighted_recall, r["weighted_recall"].as<double>(), 1e-12);
  EXPECT_NEAR(mc.log_loss, r["log_loss"].as<double>(), 1e-9);
  EXPECT_NEAR(mc.confusion.sum(), 400.0, 1e-9);

  const Frame reg = load_fixture(w, "regression.csv");
  const RowMatrix xr = reg.to_dense();
  Vec pred(reg.rows());
  for (std::int64_t i = 0; i < reg.rows(); ++i) pred[i] = static_cast<double>(xr(i, 0)) + xr(i, 1);
  const auto rm = evaluate_regression(reg, pred);
  const auto& rr = ref["regression_x0_plus_x1"];
  EXPECT_NEAR(rm.rmse, rr["rmse"].as<double>(), 1e-9);
  EXPECT_NEAR(rm.mae, rr["mae"].as<double>(), 1e-9);
  EXPECT_NEAR(rm.r2, rr["r2"].as<double>(), 1e-9);
}

TEST(StringIndexer, ValuesMayHoldAnyByteIncludingNul) {
  // The dictionary travels through count_by_value: a value with a NUL byte inside is one value,
  // not two (the NUL-separated packing it replaced split it).
  auto& w = world();
  const std::vector<std::string> all = {std::string("a\0b", 3), "a", std::string("a\0b", 3), "b\n", std::string("a\0b", 3)};
  const auto n = static_cast<std::int64_t>(all.size());
  const std::int64_t lo = n * w.rank() / w.size(), hi = n * (w.rank() + 1) / w.size();
  RowMatrix x(hi - lo, 1);
  Vec y = Vec::Zero(hi - lo);
  std::vector<std::string> mine(all.begin() + lo, all.begin() + hi);
  for (std::int64_t i = lo; i < hi; ++i) x(i - lo, 0) = static_cast<float>(i);
  const Frame f = Frame::dense(w, x, y, {}, {"i"}).with_strings({"s"}, {mine});
  const auto m = fit_string_indexer(f, {{"s"}, {"s_index"}, "frequencyDesc", "error"});
  EXPECT_EQ(m.labels[0], (std::vector<std::string>{std::string("a\0b", 3), "a", "b\n"}));
}

TEST(StringIndexer, FrequencyOrderAcrossRanksAndInvalidValues) {
  // 30 rows: "red" 15 times, "blue" 10, "green" 5 (ties never arise), plus one "amber" and one
  // "cyan" (1 each: a tie, broken alphabetically). Rows are split over the ranks.
  auto& w = world();
  const std::int64_t N = 32;
  const auto value = [](std::int64_t i) -> std::string {
    if (i == 30) return "cyan";
    if (i == 31) return "amber";
    return i % 6 < 3 ? "red" : (i % 6 < 5 ? "blue" : "green");
  };
  const std::int64_t lo = N * w.rank() / w.size(), hi = N * (w.rank() + 1) / w.size();
  RowMatrix x(hi - lo, 1);
  Vec y(hi - lo);
  std::vector<std::string> colors;
  for (std::int64_t i = lo; i < hi; ++i) {
    x(i - lo, 0) = static_cast<float>(i);
    y[i - lo] = 0.0;
    colors.push_back(value(i));
  }
  const Frame f = Frame::dense(w, x, y, {}, {"i"}).with_strings({"color"}, {colors});
  const auto m = fit_string_indexer(f, {{"color"}, {"color_index"}, "frequencyDesc", "error"});
  EXPECT_EQ(m.labels[0], (std::vector<std::string>{"red", "blue", "green", "amber", "cyan"}));
  const Frame t = m.transform(f);
  ASSERT_EQ(t.feature_names().back(), "color_index");
  const RowMatrix tx = t.to_dense();
  for (std::int64_t i = 0; i < t.rows(); ++i) {
    const auto& labels = m.labels[0];
    EXPECT_EQ(labels[static_cast<std::size_t>(tx(i, 1))], colors[static_cast<std::size_t>(i)]);
  }
  const auto alpha = fit_string_indexer(f, {{"color"}, {"label"}, "alphabetAsc", "error"});
  EXPECT_EQ(alpha.labels[0], (std::vector<std::string>{"amber", "blue", "cyan", "green", "red"}));
  const Frame tl = alpha.transform(f);
  for (std::int64_t i = 0; i < tl.rows(); ++i)
    EXPECT_EQ(alpha.labels[0][static_cast<std::size_t>(tl.label()[i])], colors[static_cast<std::size_t>(i)]);
  // A value the fit never saw (row 5 becomes "violet").
  auto unseen = colors;
  if (lo <= 5 && 5 < hi) unseen[static_cast<std::size_t>(5 - lo)] = "violet";
  const Frame g = f.with_strings({"color"}, {unseen});
  try {
    m.transform(g);
    FAIL() << "an unseen value passed with handleInvalid: error";
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find("row 5 has the value \"violet\""), std::string::npos) << e.what();
  }
  auto keep = m;
  keep.handle_invalid = "keep";
  const Frame kept = keep.transform(g);
  EXPECT_EQ(kept.global_rows(), N);
  auto skip = m;
  skip.handle_invalid = "skip";
  EXPECT_EQ(skip.transform(g).global_rows(), N - 1);
}

TEST(KMeans, SparseFramesGiveTheDenseResult) {
  auto& w = world();
  const Frame d = load_fixture(w, "blobs.csv");
  const CsrMatrix csr = d.to_dense().sparseView();
  const Frame s = Frame::sparse(w, csr, d.label(), {}, d.feature_names());
  KMeansParams p;
  p.k = 4;
  p.seed = 3;
  const auto a = fit_kmeans(d, p), b = fit_kmeans(s, p);
  EXPECT_LT((a.centers - b.centers).cwiseAbs().maxCoeff(), 1e-6);
  EXPECT_NEAR(a.training_cost, b.training_cost, 1e-6 * a.training_cost);
  const auto pca_d = fit_pca(d, {2}), pca_s = fit_pca(s, {2});
  EXPECT_LT((pca_d.components - pca_s.components).cwiseAbs().maxCoeff(), 1e-6);
}
