// Helpers for the ML tests: the checked-in fixtures (tests/data/ml, written by make_reference.py
// together with scikit-learn's results in reference.yaml), fits repeated at every rank count that
// divides the world, and comparisons.
#pragma once

#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "lockstep/data/sources.hpp"
#include "lockstep/ml/frame.hpp"
#include "lockstep/ml/linear.hpp"
#include "support/test_comm.hpp"

namespace lockstep::testing {

inline std::string ml_fixture(const std::string& name) {
  return std::string(LOCKSTEP_TEST_DATA) + "/ml/" + name;
}

inline const YAML::Node& ml_reference() {
  static const YAML::Node ref = YAML::LoadFile(ml_fixture("reference.yaml"));
  return ref;
}
inline std::vector<double> ref_vector(const YAML::Node& n) {
  return n.as<std::vector<double>>();
}

// A fixture CSV as a Frame: columns x0.., optional weight column "w", label "label".
inline ml::Frame load_fixture(comm::Communicator& comm, const std::string& name, bool use_weight = false) {
  data::CsvOptions o;
  o.label_column = "label";
  data::CsvDetails details;  // every non-label column is a feature, in file order
  auto rows = data::read_csv(comm, ml_fixture(name), o, &details).cache();
  const std::vector<std::string>& names = details.feature_names;
  ml::Frame f = ml::Frame::from_examples(rows, names);
  std::vector<std::string> features;
  for (const auto& c : names)
    if (c != "w") features.push_back(c);
  return f.assemble(features, "", use_weight ? "w" : "");
}

// Runs fit(comm) once per group size g dividing the world size (the world split into groups of
// g ranks); returns {g, result} for every size, the largest first, the result of this rank's group.
template <typename R>
std::vector<std::pair<int, R>> at_every_rank_count(const std::function<R(comm::Communicator&)>& fit) {
  auto& w = world();
  std::vector<std::pair<int, R>> out;
  for (int g = w.size(); g >= 1; --g) {
    if (w.size() % g != 0) continue;
    auto sub = w.split(w.rank() / g, w.rank());
    out.emplace_back(g, fit(*sub));
  }
  return out;
}

inline void expect_near_vec(const Eigen::VectorXd& got, const std::vector<double>& want, double atol,
                            const std::string& what) {
  ASSERT_EQ(static_cast<std::size_t>(got.size()), want.size()) << what;
  for (std::size_t i = 0; i < want.size(); ++i)
    EXPECT_NEAR(got[static_cast<Eigen::Index>(i)], want[i], atol * std::max(1.0, std::fabs(want[i])))
        << what << "[" << i << "]";
}

inline Eigen::VectorXd flat(const Eigen::MatrixXd& m) {
  Eigen::MatrixXd t = m.transpose();  // row-major order, as scikit-learn prints coef_
  return Eigen::Map<const Eigen::VectorXd>(t.data(), t.size());
}

// A linear model's coefficients, then its intercepts, as one vector.
inline std::vector<double> pack_linear(const ml::LinearModel& m) {
  std::vector<double> v(m.coefficients.data(), m.coefficients.data() + m.coefficients.size());
  v.insert(v.end(), m.intercept.data(), m.intercept.data() + m.intercept.size());
  return v;
}

// at_every_rank_count's models (vectors of numbers, several per rank count) against np = 1's,
// taken from world rank 0: the worst difference relative to max(1, |value|) below rel.
inline void expect_same_at_every_rank_count(const std::vector<std::pair<int, std::vector<std::vector<double>>>>& results,
                                            double rel = 1e-6) {
  auto& w = world();
  const auto& ref_local = results.back().second;  // the smallest group: np = 1
  for (const auto& [g, models] : results) {
    ASSERT_EQ(models.size(), ref_local.size());
    for (std::size_t k = 0; k < models.size(); ++k) {
      std::vector<double> ref = ref_local[k];
      w.broadcast(ref.data(), ref.size() * sizeof(double), 0);
      ASSERT_EQ(models[k].size(), ref.size());
      double worst = 0.0;
      for (std::size_t i = 0; i < ref.size(); ++i)
        worst = std::max(worst, std::fabs(models[k][i] - ref[i]) / std::max(1.0, std::fabs(ref[i])));
      EXPECT_LT(worst, rel) << "model " << k << " at np=" << g << " vs np=1";
    }
  }
}

}  // namespace lockstep::testing
