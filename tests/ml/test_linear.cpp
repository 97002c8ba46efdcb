// Linear models: closed forms, scikit-learn's values on the checked-in fixtures, optimality of
// the documented objective, the same model at every rank count, and bad input.
#include <Eigen/QR>
#include <algorithm>
#include <cmath>

#include "lockstep/ml/linear.hpp"
#include "ml_test_util.hpp"

using namespace lockstep;
using namespace lockstep::ml;
using namespace lockstep::testing;

namespace {

// Every rank holds the whole fixture (for independent reference computations in the test).
struct Gathered {
  Eigen::MatrixXd X;
  Eigen::VectorXd y, w;
};
Gathered gather_all(const Frame& f) {
  auto& c = f.comm();
  const RowMatrix x = f.to_dense();
  std::vector<std::size_t> counts;
  for (auto n : c.allgather<std::int64_t>(f.rows())) counts.push_back(static_cast<std::size_t>(n));
  std::vector<double> flatx(static_cast<std::size_t>(f.global_rows() * f.num_features())),
      y(static_cast<std::size_t>(f.global_rows())), w(y.size());
  std::vector<double> mine(x.data(), x.data() + x.size());
  std::vector<std::size_t> xcounts, bytes;
  for (auto n : counts)
    xcounts.push_back(n * static_cast<std::size_t>(f.num_features()) * sizeof(double)),
        bytes.push_back(n * sizeof(double));
  c.allgatherv(mine.data(), flatx.data(), xcounts);
  c.allgatherv(f.label().data(), y.data(), bytes);
  c.allgatherv(f.weight().data(), w.data(), bytes);
  Gathered g;
  g.X = Eigen::Map<Eigen::Matrix<double, -1, -1, Eigen::RowMajor>>(flatx.data(), f.global_rows(), f.num_features());
  g.y = Eigen::Map<Eigen::VectorXd>(y.data(), f.global_rows());
  g.w = Eigen::Map<Eigen::VectorXd>(w.data(), f.global_rows());
  return g;
}

LinearRegressionParams plain(double reg = 0.0, double alpha = 0.0) {
  LinearRegressionParams p;
  p.reg_param = reg;
  p.elastic_net_param = alpha;
  p.standardization = false;
  p.tol = 1e-12;
  p.max_iter = 100000;
  return p;
}

}  // namespace

TEST(LinearRegression, NormalEquationsEqualAQrSolve) {
  auto& w = world();
  const Frame f = load_fixture(w, "regression.csv", true);
  const auto m = fit_linear_regression(f, plain());
  EXPECT_EQ(m.solver, "normal");
  // Independent closed form: weighted least squares by column-pivoting QR of sqrt(w) [X 1].
  const Gathered g = gather_all(f);
  Eigen::MatrixXd A(g.X.rows(), g.X.cols() + 1);
  A << g.X, Eigen::VectorXd::Ones(g.X.rows());
  const Eigen::VectorXd sw = g.w.cwiseSqrt();
  const Eigen::VectorXd sol = (sw.asDiagonal() * A).colPivHouseholderQr().solve(sw.asDiagonal() * g.y);
  for (int j = 0; j < 6; ++j) EXPECT_NEAR(m.coefficients(0, j), sol[j], 1e-9 * std::max(1.0, std::fabs(sol[j]))) << j;
  EXPECT_NEAR(m.intercept[0], sol[6], 1e-9);
  // And scikit-learn's weighted fit.
  const auto& r = ml_reference()["regression"]["wls"];
  expect_near_vec(flat(m.coefficients), ref_vector(r["coef"]), 1e-7, "wls coef");
  EXPECT_NEAR(m.intercept[0], r["intercept"].as<double>(), 1e-7);
}

TEST(LinearRegression, RidgeLassoElasticNetMatchScikitLearn) {
  auto& w = world();
  const Frame f = load_fixture(w, "regression.csv");
  const auto& ref = ml_reference()["regression"];
  struct Case {
    const char* key;
    double reg, alpha, tol;
  };
  for (const Case& c : {Case{"ols", 0.0, 0.0, 1e-7}, Case{"ridge_reg0.1", 0.1, 0.0, 1e-7},
                        Case{"enet_reg0.05_a0.5", 0.05, 0.5, 1e-6}, Case{"lasso_reg0.2", 0.2, 1.0, 1e-6}}) {
    for (const char* solver : {"normal", "l-bfgs"}) {
      auto p = plain(c.reg, c.alpha);
      p.solver = solver;
      p.max_iter = std::string(solver) == "normal" ? 100000 : 2000;
      const auto m = fit_linear_regression(f, p);
      // L-BFGS stops on the objective's relative decrease, so its coefficients are looser.
      const double tol = std::string(solver) == "normal" ? c.tol : 2e-3;
      expect_near_vec(flat(m.coefficients), ref_vector(ref[c.key]["coef"]), tol, std::string(c.key) + " " + solver);
      EXPECT_NEAR(m.intercept[0], ref[c.key]["intercept"].as<double>(), tol * 10) << c.key << " " << solver;
    }
  }
}

TEST(LinearRegression, LbfgsReachesTheStationaryPointOfTheDocumentedObjective) {
  auto& w = world();
  const Frame f = load_fixture(w, "regression.csv", true);
  auto p = plain(0.3);
  p.standardization = true;
  p.solver = "l-bfgs";
  p.max_iter = 5000;
  const auto m = fit_linear_regression(f, p);
  // Gradient of (1/2W) sum w (y - xb - c)^2 + reg/2 sum (sigma_j b_j)^2, by hand, on gathered data.
  const Gathered g = gather_all(f);
  const double W = g.w.sum();
  const Eigen::VectorXd r =
      g.X * m.coefficients.row(0).transpose() + Eigen::VectorXd::Constant(g.X.rows(), m.intercept[0]) - g.y;
  Eigen::VectorXd sd(6);
  const Eigen::RowVectorXd mean = (g.w.transpose() * g.X) / W;
  for (int j = 0; j < 6; ++j) {
    const Eigen::VectorXd c = g.X.col(j).array() - mean[j];
    const double W2 = g.w.squaredNorm();
    sd[j] = std::sqrt(g.w.dot(c.cwiseAbs2()) / (W - W2 / W));
  }
  const Eigen::VectorXd grad =
      g.X.transpose() * g.w.cwiseProduct(r) / W + 0.3 * sd.cwiseAbs2().cwiseProduct(m.coefficients.row(0).transpose());
  // The iterative solvers evaluate margins and gradients in float32 (the data's precision, and
  // twice the GEMM speed of double), which bounds how close to zero the gradient gets: about
  // 1e-4 here, against an initial gradient of order 1 (y has mean 4, features unit variance).
  for (int j = 0; j < 6; ++j) EXPECT_LT(std::fabs(grad[j] * (1.0 / sd[j])), 5e-4) << "d/d(beta'_" << j << ")";
  EXPECT_LT(std::fabs(g.w.dot(r) / W), 5e-4) << "d/d(intercept)";
  // The normal equations solve the same problem.
  auto q = p;
  q.solver = "normal";
  const auto n = fit_linear_regression(f, q);
  for (int j = 0; j < 6; ++j)
    EXPECT_NEAR(m.coefficients(0, j), n.coefficients(0, j), 1e-4 * std::max(1.0, std::fabs(n.coefficients(0, j))));
}

// The documented objective, evaluated independently on the gathered data.
double logistic_objective(const Gathered& g, const Eigen::MatrixXd& W, const Eigen::VectorXd& b, double l1, double l2) {
  double loss = 0.0;
  for (Eigen::Index i = 0; i < g.X.rows(); ++i) {
    const auto yi = static_cast<Eigen::Index>(g.y[i]);
    if (W.rows() == 1) {
      const double m = g.X.row(i).dot(W.row(0)) + b[0];
      loss += std::log1p(std::exp(-std::fabs(m))) + std::max(m, 0.0) - (yi == 1 ? m : 0.0);
    } else {
      const Eigen::VectorXd m = W * g.X.row(i).transpose() + b;
      const double mx = m.maxCoeff();
      loss += std::log((m.array() - mx).exp().sum()) + mx - m[yi];
    }
  }
  return loss / static_cast<double>(g.X.rows()) + l1 * W.cwiseAbs().sum() + 0.5 * l2 * W.squaredNorm();
}

Eigen::MatrixXd as_matrix(const std::vector<double>& v, Eigen::Index rows) {
  Eigen::MatrixXd m(rows, static_cast<Eigen::Index>(v.size()) / rows);
  for (Eigen::Index i = 0; i < m.rows(); ++i)
    for (Eigen::Index j = 0; j < m.cols(); ++j) m(i, j) = v[static_cast<std::size_t>(i * m.cols() + j)];
  return m;
}

TEST(LogisticRegression, MatchesScikitLearnMultinomialBinomialAndL1) {
  // scikit-learn's solutions (tol 1e-12) and ours minimise the same objective: ours must reach a
  // value at least as low, and the coefficients must agree. (scikit-learn's lbfgs stops a little
  // short of the optimum on these fixtures, so its intercepts are off by about 1e-4.)
  auto& w = world();
  const auto& ref = ml_reference()["classification"];
  LogisticRegressionParams p;
  p.standardization = false;
  p.tol = 1e-12;
  p.max_iter = 1000;
  p.reg_param = 0.01;
  struct Case {
    const char* fixture;
    const char* key;
    double reg, alpha;
    Eigen::Index rows;
  };
  for (const Case& c : {Case{"classification.csv", "multinomial_reg0.01", 0.01, 0.0, 3},
                        Case{"binary.csv", "binomial_reg0.01", 0.01, 0.0, 1},
                        Case{"binary.csv", "binomial_l1_reg0.05", 0.05, 1.0, 1}}) {
    const Frame f = load_fixture(w, c.fixture);
    auto q = p;
    q.reg_param = c.reg;
    q.elastic_net_param = c.alpha;
    const auto m = fit_logistic_regression(f, q);
    EXPECT_EQ(m.binomial, c.rows == 1);
    EXPECT_EQ(m.solver, c.alpha > 0 ? "owl-qn" : "l-bfgs");
    const auto want = ref_vector(ref[c.key]["coef"]);
    const auto want_b = ref_vector(ref[c.key]["intercept"]);
    expect_near_vec(flat(m.coefficients), want, 2e-3, std::string(c.key) + " coef");
    expect_near_vec(m.intercept, want_b, 2e-3, std::string(c.key) + " intercept");
    const Gathered g = gather_all(f);
    const double l1 = c.reg * c.alpha, l2 = c.reg * (1 - c.alpha);
    const double ours = logistic_objective(g, m.coefficients, m.intercept, l1, l2);
    const double theirs = logistic_objective(g, as_matrix(want, c.rows),
                                             Eigen::Map<const Eigen::VectorXd>(want_b.data(), c.rows), l1, l2);
    EXPECT_LE(ours, theirs + 1e-7 * std::fabs(theirs)) << c.key << ": ours " << ours << ", scikit-learn's " << theirs;
    if (c.alpha > 0) {
      for (std::size_t j = 0; j < want.size(); ++j) {
        if (want[j] == 0.0) {
          EXPECT_EQ(m.coefficients(0, static_cast<Eigen::Index>(j)), 0.0) << "L1 keeps coefficient " << j << " at 0";
        }
      }
    }
  }
}

TEST(LogisticRegression, ProbabilitiesThresholdsAndPredictions) {
  auto& w = world();
  const Frame bin = load_fixture(w, "binary.csv");
  LogisticRegressionParams p;
  p.reg_param = 0.01;
  const auto m = fit_logistic_regression(bin, p);
  const auto pr = m.predict(bin);
  double correct = 0.0;
  for (std::int64_t i = 0; i < bin.rows(); ++i) {
    EXPECT_NEAR(pr.probability.row(i).sum(), 1.0, 1e-12);
    EXPECT_EQ(pr.prediction[i], pr.probability(i, 1) > 0.5 ? 1.0 : 0.0);
    correct += pr.prediction[i] == bin.label()[i];
  }
  correct = w.allreduce<double>(correct, comm::ReduceOp::kSum);
  EXPECT_GT(correct / static_cast<double>(bin.global_rows()), 0.9);
  // threshold 0.999: almost nothing is predicted positive.
  auto strict = m;
  strict.threshold = 0.999;
  const auto ps = strict.predict(bin);
  for (std::int64_t i = 0; i < bin.rows(); ++i) EXPECT_EQ(ps.prediction[i], ps.probability(i, 1) > 0.999 ? 1.0 : 0.0);
}

TEST(LinearSvc, HingeObjectiveAtLeastAsLowAsScikitLearnsSolution) {
  auto& w = world();
  const Frame bin = load_fixture(w, "binary.csv");
  LinearSvcParams p;
  p.reg_param = 0.01;
  p.standardization = false;
  p.tol = 1e-9;
  p.max_iter = 2000;
  p.solver = "l-bfgs";  // test_svm_dual_cd.cpp compares dual-cd with it
  const auto m = fit_linear_svc(bin, p);
  const Gathered g = gather_all(bin);
  const auto objective = [&](const Eigen::VectorXd& beta, double b) {
    double h = 0.0;
    for (Eigen::Index i = 0; i < g.X.rows(); ++i) {
      const double t = g.y[i] == 1.0 ? 1.0 : -1.0;
      h += std::max(0.0, 1.0 - t * (g.X.row(i).dot(beta) + b));
    }
    return h / static_cast<double>(g.X.rows()) + 0.5 * 0.01 * beta.squaredNorm();
  };
  const auto& ref = ml_reference()["classification"]["svc_hinge_reg0.01"];
  const auto sk = ref_vector(ref["coef"]);
  const double ours = objective(m.coefficients.row(0).transpose(), m.intercept[0]);
  const double theirs = objective(Eigen::Map<const Eigen::VectorXd>(sk.data(), 5), ref["intercept"][0].as<double>());
  EXPECT_LE(ours, theirs * (1.0 + 1e-3)) << "ours " << ours << ", scikit-learn's " << theirs;
  const auto pr = m.predict(bin);
  double correct = 0.0;
  for (std::int64_t i = 0; i < bin.rows(); ++i) correct += pr.prediction[i] == bin.label()[i];
  correct = w.allreduce<double>(correct, comm::ReduceOp::kSum) / static_cast<double>(bin.global_rows());
  EXPECT_GE(correct, ref["accuracy"].as<double>() - 0.01);
}

TEST(LinearModels, SameModelAtEveryRankCount) {
  using Coefs = std::vector<double>;
  const auto results = at_every_rank_count<std::vector<Coefs>>([&](comm::Communicator& c) {
    std::vector<Coefs> out;
    LinearRegressionParams lr;
    lr.reg_param = 0.1;
    lr.elastic_net_param = 0.3;
    out.push_back(pack_linear(fit_linear_regression(load_fixture(c, "regression.csv", true), lr)));
    lr.solver = "l-bfgs";
    out.push_back(pack_linear(fit_linear_regression(load_fixture(c, "regression.csv", true), lr)));
    LogisticRegressionParams lg;
    lg.reg_param = 0.01;
    out.push_back(pack_linear(fit_logistic_regression(load_fixture(c, "classification.csv"), lg)));
    lg.elastic_net_param = 0.5;
    out.push_back(pack_linear(fit_logistic_regression(load_fixture(c, "binary.csv"), lg)));
    LinearSvcParams sv;
    sv.reg_param = 0.01;
    out.push_back(pack_linear(fit_linear_svc(load_fixture(c, "classification.csv"), sv)));
    return out;
  });
  // Summation order only: the iterates agree to rounding, amplified a little by line searches.
  expect_same_at_every_rank_count(results);
}

TEST(LinearModels, EmptyShardsGiveTheSameModel) {
  // Every row on the last rank, none elsewhere: the fit is the same as with balanced shards.
  auto& w = world();
  const Frame balanced = load_fixture(w, "classification.csv");
  const RowMatrix x = balanced.to_dense();
  std::vector<std::size_t> bytes;
  for (auto n : w.allgather<std::int64_t>(balanced.rows()))
    bytes.push_back(static_cast<std::size_t>(n) * sizeof(float));
  RowMatrix all(balanced.global_rows(), balanced.num_features());
  // gather rows (float) onto every rank, then keep them only on the last one
  std::vector<std::size_t> xb;
  for (auto b : bytes) xb.push_back(b * static_cast<std::size_t>(balanced.num_features()));
  w.allgatherv(x.data(), all.data(), xb);
  Eigen::VectorXd y(balanced.global_rows());
  std::vector<std::size_t> yb;
  for (auto b : bytes) yb.push_back(b * 2);
  w.allgatherv(balanced.label().data(), y.data(), yb);
  const bool last = w.rank() == w.size() - 1;
  const Frame skewed = Frame::dense(w, last ? all : RowMatrix(0, all.cols()), last ? y : Eigen::VectorXd(0), {},
                                    balanced.feature_names());
  EXPECT_EQ(skewed.global_rows(), balanced.global_rows());
  LogisticRegressionParams p;
  p.reg_param = 0.01;
  const auto a = fit_logistic_regression(balanced, p), b = fit_logistic_regression(skewed, p);
  EXPECT_LT((a.coefficients - b.coefficients).cwiseAbs().maxCoeff(), 1e-6);
}

TEST(LinearModels, BadInputIsReportedOnEveryRank) {
  auto& w = world();
  const Frame f = load_fixture(w, "classification.csv");
  // A label that is not a class index (row 7 gets 2.5).
  Eigen::VectorXd y = f.label();
  if (f.row_offset() <= 7 && 7 < f.row_offset() + f.rows()) y[7 - f.row_offset()] = 2.5;
  try {
    fit_logistic_regression(f.with_label(y), {});
    FAIL() << "label 2.5 accepted";
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find("label 2.5 at row 7"), std::string::npos) << e.what();
  }
  // NaN in a feature (row 11, column x3).
  RowMatrix x = f.to_dense();
  if (f.row_offset() <= 11 && 11 < f.row_offset() + f.rows()) x(11 - f.row_offset(), 3) = NAN;
  try {
    fit_linear_svc(f.with_features(x, f.feature_names()), {});
    FAIL() << "NaN accepted";
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find("row 11, column 3 (\"x3\")"), std::string::npos) << e.what();
  }
  // Binomial family with three classes.
  LogisticRegressionParams p;
  p.family = "binomial";
  EXPECT_THROW(fit_logistic_regression(f, p), DataError);
  // Parameters out of range name the Spark parameter.
  p.family = "auto";
  p.elastic_net_param = 1.5;
  try {
    fit_logistic_regression(f, p);
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("elasticNetParam"), std::string::npos);
  }
}

TEST(LinearModels, ConstantColumnWithStandardizationGetsCoefficientZero) {
  auto& w = world();
  const Frame f = load_fixture(w, "binary.csv");
  RowMatrix x = f.to_dense();
  x.col(2).setConstant(3.0f);
  LogisticRegressionParams p;
  p.reg_param = 0.01;
  const auto m = fit_logistic_regression(f.with_features(x, f.feature_names()), p);
  EXPECT_EQ(m.coefficients(0, 2), 0.0);
  EXPECT_TRUE(m.coefficients.allFinite());
}

TEST(LinearModels, SparseFramesGiveTheDenseResults) {
  // The same fixture as CSR: every estimator that reads features through Frame::visit must agree.
  auto& w = world();
  const Frame d = load_fixture(w, "classification.csv");
  const RowMatrix x = d.to_dense();
  CsrMatrix csr = x.sparseView();
  const Frame s = Frame::sparse(w, csr, d.label(), {}, d.feature_names());
  EXPECT_TRUE(s.is_sparse());
  LogisticRegressionParams p;
  p.reg_param = 0.01;
  const auto a = fit_logistic_regression(d, p), b = fit_logistic_regression(s, p);
  EXPECT_LT((a.coefficients - b.coefficients).cwiseAbs().maxCoeff(), 1e-5);
  const auto pa = a.predict(d), pb = b.predict(s);
  for (std::int64_t i = 0; i < d.rows(); ++i) EXPECT_EQ(pa.prediction[i], pb.prediction[i]);
  LinearRegressionParams lr;
  lr.reg_param = 0.1;
  const auto ra = fit_linear_regression(d, lr), rb = fit_linear_regression(s, lr);
  EXPECT_LT((ra.coefficients - rb.coefficients).cwiseAbs().maxCoeff(), 1e-9);
}

namespace {

// 8-bit images in miniature: rows x 20 codes (a hash of the global row and column) times `scale`,
// on this rank's share of the rows; three classes from fixed linear rules of the codes. 20
// columns: the AVX2 kernels' vector steps (8 and 16 columns) and their scalar tails both run.
Frame eight_bit_frame(comm::Communicator& c, std::int64_t rows, float scale) {
  const std::int64_t d = 20;
  const auto r = data::split_range(rows, c.rank(), c.size());
  RowMatrix x(r.end - r.begin, d);
  Eigen::VectorXd y(r.end - r.begin);
  for (std::int64_t i = r.begin; i < r.end; ++i) {
    double s[3] = {0, 0, 0};
    for (std::int64_t j = 0; j < d; ++j) {
      const auto code = static_cast<std::uint32_t>((i * 2654435761u + j * 40503u + (i * j) % 97) % 256);
      x(i - r.begin, j) = static_cast<float>(code) * scale;
      for (int k = 0; k < 3; ++k) s[k] += (((j + k) % 3) - 1.0) * code;
    }
    y[i - r.begin] = static_cast<double>(std::max_element(s, s + 3) - s);
  }
  return Frame::dense(c, std::move(x), std::move(y));
}

}  // namespace

TEST(CompactFeatures, EightBitImagesAreStoredAsCodesThatDecodeToTheSameFloats) {
  auto& w = world();
  for (const float scale : {static_cast<float>(1.0 / 255.0), 1.0f}) {
    const Frame f = eight_bit_frame(w, 500, scale);
    const CompactFeatures c = compact_features(f);
    ASSERT_TRUE(c.active) << "scale " << scale;
    EXPECT_EQ(c.scale, scale);
    ASSERT_EQ(static_cast<std::int64_t>(c.codes.size()), f.rows() * f.num_features());
    const RowMatrix& x = f.dense_features();
    for (std::int64_t i = 0; i < x.size(); ++i)
      ASSERT_EQ(static_cast<float>(c.codes[static_cast<std::size_t>(i)]) * c.scale, x.data()[i]) << "value " << i;
  }
}

TEST(CompactFeatures, AnyValueThatIsNotACodeKeepsEveryRankOnFloats) {
  auto& w = world();
  const Frame f = eight_bit_frame(w, 500, static_cast<float>(1.0 / 255.0));
  const bool last = w.rank() == w.size() - 1;
  // One value on the last rank only, in its last row or (where the encoder works 32 values a
  // step) its first.
  for (const bool first_row : {false, true}) {
    const auto spoilt = [&](float v) {
      RowMatrix x = f.dense_features();
      if (last) x(first_row ? 0 : x.rows() - 1, 3) = v;
      return f.with_features(std::move(x));
    };
    EXPECT_FALSE(compact_features(spoilt(0.5f / 255.0f)).active) << "between two codes";
    EXPECT_FALSE(compact_features(spoilt(-1.0f / 255.0f)).active) << "negative";
    EXPECT_FALSE(compact_features(spoilt(300.0f / 255.0f)).active) << "a code above 255";
    EXPECT_TRUE(compact_features(spoilt(7.0f * static_cast<float>(1.0 / 255.0))).active) << "another code";
  }
  CsrMatrix sparse = f.dense_features().sparseView();
  const Frame fs = Frame::sparse(w, std::move(sparse), f.label());
  EXPECT_FALSE(compact_features(fs).active) << "sparse";
}

TEST(CompactFeatures, FitsOnCodesGiveTheFloatModel) {
  auto& w = world();
  const Frame f = eight_bit_frame(w, 900, static_cast<float>(1.0 / 255.0));
  ASSERT_TRUE(compact_features(f).active);
  // The two paths differ only in block sizes (summation order), as fits at two rank counts do:
  // the iterates agree to rounding, amplified a little by line searches (SameModelAtEveryRankCount).
  LogisticRegressionParams lg;
  lg.reg_param = 0.01;
  lg.standardization = false;
  const auto a = fit_logistic_regression(f, lg);
  lg.compact = false;
  const auto b = fit_logistic_regression(f, lg);
  const double scale = std::max(1.0, b.coefficients.cwiseAbs().maxCoeff());
  EXPECT_LT((a.coefficients - b.coefficients).cwiseAbs().maxCoeff() / scale, 1e-5);
  EXPECT_LT((a.intercept - b.intercept).cwiseAbs().maxCoeff() / scale, 1e-5);
  EXPECT_EQ(a.iterations, b.iterations);
  LinearSvcParams sv;
  sv.reg_param = 1e-3;
  sv.standardization = false;
  const auto c = fit_linear_svc(f, sv);
  sv.compact = false;
  const auto d = fit_linear_svc(f, sv);
  // The hinge is not smooth, so the iterates may part; the objective they reach may not.
  EXPECT_NEAR(c.objective_history.back(), d.objective_history.back(), 1e-3 * d.objective_history.back());
  const Predictions pc = c.predict(f), pd = d.predict(f);
  EXPECT_GE((pc.prediction.array() == pd.prediction.array()).cast<double>().mean(), 0.98);
}
