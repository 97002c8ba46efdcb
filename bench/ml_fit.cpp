// One estimator fitted on Fashion-MNIST (or a synthetic regression set) with the given Spark-style
// parameters; prints one JSON line (fit seconds, quality) on rank 0. bench/ml_vs_sklearn.sh runs
// it beside scikit-learn. Usage:
//   mpirun -np 2 build/bench/ml_fit ESTIMATOR [key=value ...]
// ESTIMATOR: logistic | svc | linear | kmeans | pca | forest
#include <chrono>
#include <cstdio>
#include <map>
#include <string>

#include "lockstep/core/rng.hpp"
#include "lockstep/data/sources.hpp"
#include "lockstep/ml/clustering.hpp"
#include "lockstep/ml/feature.hpp"
#include "lockstep/ml/linear.hpp"
#include "lockstep/ml/tree.hpp"

using namespace lockstep;
using Clock = std::chrono::steady_clock;

namespace {
std::map<std::string, std::string> g_args;
double num(const std::string& k, double dflt) {
  return g_args.count(k) ? std::stod(g_args[k]) : dflt;
}
std::string str(const std::string& k, const std::string& dflt) {
  return g_args.count(k) ? g_args[k] : dflt;
}

ml::Frame fmnist(comm::Communicator& c, bool train) {
  const std::string dir = str("data", "/usr/share/datasets/fashion-mnist");
  const std::string p = train ? "train" : "t10k";
  auto rows =
      data::read_idx(c, dir + "/" + p + "-images-idx3-ubyte.gz", dir + "/" + p + "-labels-idx1-ubyte.gz").cache();
  return ml::Frame::from_examples(rows);
}

double accuracy(const ml::Frame& f, const Eigen::VectorXd& pred) {
  double ok = 0.0;
  for (std::int64_t i = 0; i < f.rows(); ++i) ok += pred[i] == f.label()[i];
  return f.comm().allreduce<double>(ok, comm::ReduceOp::kSum) / static_cast<double>(f.global_rows());
}
}  // namespace

int main(int argc, char** argv) {
  auto world = comm::make_mpi_world(&argc, &argv);
  auto& c = *world;
  const std::string est = argc > 1 ? argv[1] : "logistic";
  for (int i = 2; i < argc; ++i) {
    const std::string a = argv[i];
    const auto eq = a.find('=');
    if (eq != std::string::npos) g_args[a.substr(0, eq)] = a.substr(eq + 1);
  }
  double fit_s = 0.0, quality = 0.0;
  std::string metric = "accuracy";
  int iters = 0, evals = 0;
  if (est == "logistic" || est == "svc") {
    const auto train = fmnist(c, true), test = fmnist(c, false);
    c.barrier();
    const auto t0 = Clock::now();
    if (est == "logistic") {
      ml::LogisticRegressionParams p;
      p.max_iter = static_cast<int>(num("maxIter", 100));
      p.reg_param = num("regParam", 0.0);
      p.elastic_net_param = num("elasticNetParam", 0.0);
      p.tol = num("tol", 1e-6);
      p.standardization = num("standardization", 1) != 0;
      const auto m = ml::fit_logistic_regression(train, p);
      fit_s = std::chrono::duration<double>(Clock::now() - t0).count();
      quality = accuracy(test, m.predict(test).prediction);
      iters = m.iterations;
      evals = m.evaluations;
    } else {
      ml::LinearSvcParams p;
      p.max_iter = static_cast<int>(num("maxIter", 100));
      p.reg_param = num("regParam", 0.0);
      p.tol = num("tol", 1e-6);
      p.standardization = num("standardization", 1) != 0;
      const auto m = ml::fit_linear_svc(train, p);
      fit_s = std::chrono::duration<double>(Clock::now() - t0).count();
      quality = accuracy(test, m.predict(test).prediction);
      iters = m.iterations;
      evals = m.evaluations;
    }
  }
  if (est == "forest" || est == "gbt" || est == "kmeans" || est == "pca") {
    const auto train = fmnist(c, true), test = fmnist(c, false);
    c.barrier();
    const auto t0 = Clock::now();
    if (est == "forest") {
      ml::ForestParams p;
      p.num_trees = static_cast<int>(num("numTrees", 20));
      p.max_depth = static_cast<int>(num("maxDepth", 10));
      p.max_bins = static_cast<int>(num("maxBins", 32));
      p.seed = static_cast<std::uint64_t>(num("seed", 1));
      const auto m = ml::fit_random_forest(train, p, true);
      fit_s = std::chrono::duration<double>(Clock::now() - t0).count();
      quality = accuracy(test, m.predict(test).prediction);
    } else if (est == "kmeans") {
      ml::KMeansParams p;
      p.k = static_cast<std::int64_t>(num("k", 10));
      p.max_iter = static_cast<int>(num("maxIter", 20));
      p.tol = num("tol", 1e-4);
      p.seed = static_cast<std::uint64_t>(num("seed", 1));
      const auto m = ml::fit_kmeans(train, p);
      fit_s = std::chrono::duration<double>(Clock::now() - t0).count();
      metric = "cost";
      quality = m.training_cost;
      iters = m.iterations;
    } else if (est == "pca") {
      const auto m = ml::fit_pca(train, {static_cast<std::int64_t>(num("k", 50))});
      fit_s = std::chrono::duration<double>(Clock::now() - t0).count();
      metric = "explained_variance_ratio";
      quality = m.explained_variance_ratio.sum();
    }
  }
  if (est == "linear") {
    // Synthetic regression: rows x features, y = x.beta + noise, every row keyed by its index.
    const auto rows = static_cast<std::int64_t>(num("rows", 1000000)),
               d = static_cast<std::int64_t>(num("features", 100));
    const auto r = data::split_range(rows, c.rank(), c.size());
    ml::RowMatrix x(r.end - r.begin, d);
    Eigen::VectorXd y(r.end - r.begin);
    for (std::int64_t i = r.begin; i < r.end; ++i) {
      CounterRng g(7, RngStream::kUser, static_cast<std::uint64_t>(i));
      double yi = 3.0;
      for (std::int64_t j = 0; j < d; ++j) {
        const float v = static_cast<float>(g.normal());
        x(i - r.begin, j) = v;
        yi += v * (j % 3 == 0 ? 1.0 : 0.1 * static_cast<double>(j % 7));
      }
      y[i - r.begin] = yi + g.normal();
    }
    const auto f = ml::Frame::dense(c, std::move(x), std::move(y));
    c.barrier();
    const auto t0 = Clock::now();
    ml::LinearRegressionParams p;
    p.reg_param = num("regParam", 0.0);
    p.elastic_net_param = num("elasticNetParam", 0.0);
    p.solver = str("solver", "auto");
    const auto m = ml::fit_linear_regression(f, p);
    fit_s = std::chrono::duration<double>(Clock::now() - t0).count();
    metric = "train_rmse";
    const Eigen::VectorXd pred = m.predict(f).prediction;
    double se = (pred - f.label()).squaredNorm();
    se = c.allreduce<double>(se, comm::ReduceOp::kSum);
    quality = std::sqrt(se / static_cast<double>(rows));
  }
  if (c.rank() == 0)
    std::printf(
        "{\"estimator\":\"%s\",\"ranks\":%d,\"fit_seconds\":%.4f,\"%s\":%.6f,\"iterations\":%d,\"evaluations\":%d}\n",
        est.c_str(), c.size(), fit_s, metric.c_str(), quality, iters, evals);
  world.reset();
  comm::finalize_mpi();
  return 0;
}
