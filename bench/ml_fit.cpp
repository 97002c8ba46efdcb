// One pipeline stage fitted on Fashion-MNIST (a synthetic regression set for regressors) with
// the given Spark-style parameters; prints one JSON line (fit seconds, quality, and the fit's
// summary: iterations, evaluations) on rank 0. The stage comes from the ML stage registry, so any
// registered estimator can be timed and its parameters are read exactly as in a pipeline YAML.
// bench/ml_vs_sklearn.sh runs it beside scikit-learn. Usage:
//   mpirun -np 2 build/bench/ml_fit STAGE [key=value ...]
// STAGE: a registered stage name (LogisticRegression, LinearSVC, RandomForestClassifier, KMeans,
// PCA, LinearRegression, ...). Keys data= (the Fashion-MNIST folder), rows= and features= (the
// synthetic regression set) are the benchmark's own; every other key is a stage parameter.
#include <chrono>
#include <cstdio>
#include <map>
#include <string>

#include "lockstep/core/rng.hpp"
#include "lockstep/data/sources.hpp"
#include "lockstep/ml/evaluation.hpp"
#include "lockstep/ml/registry.hpp"

using namespace lockstep;
using Clock = std::chrono::steady_clock;

namespace {
std::map<std::string, std::string> g_args;  // the benchmark's own keys
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

// Synthetic regression: rows x features, y = x.beta + noise, every row keyed by its index.
ml::Frame synthetic_regression(comm::Communicator& c) {
  const auto rows = static_cast<std::int64_t>(num("rows", 1000000)), d = static_cast<std::int64_t>(num("features", 100));
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
  return ml::Frame::dense(c, std::move(x), std::move(y));
}

// The stage's config as a pipeline YAML would give it: STAGE and its key=value parameters.
io::StageConfig stage_config(int argc, char** argv) {
  io::StageConfig st;
  st.type = argc > 1 ? argv[1] : "LogisticRegression";
  st.where = "ml_fit " + st.type;
  for (int i = 2; i < argc; ++i) {
    const std::string a = argv[i];
    const auto eq = a.find('=');
    if (eq == std::string::npos) continue;
    const std::string k = a.substr(0, eq), v = a.substr(eq + 1);
    if (k == "data" || k == "rows" || k == "features")
      g_args[k] = v;
    else
      st.params[k] = io::StageParam{{v}, false, st.where + " " + k};
  }
  return st;
}

}  // namespace

// Fits, measures and prints; every rank raises the same errors (they come from the arguments).
void run(comm::Communicator& c, int argc, char** argv) {
  const io::StageConfig st = stage_config(argc, argv);
  const ml::StageKind& kind = ml::stage_kind(st.type, "ml_fit");
  const bool regression = kind.task == ml::StageTask::kRegression;
  const ml::Frame train = regression ? synthetic_regression(c) : fmnist(c, true);
  c.barrier();
  const auto t0 = Clock::now();
  const auto stage = ml::fit_stage(st, train, nullptr, ml::FitContext{"", "none", false});
  const double fit_s = std::chrono::duration<double>(Clock::now() - t0).count();
  const auto summary = stage->summary();
  auto summary_of = [&](const std::string& k) { return summary.count(k) ? summary.at(k) : 0.0; };
  std::string metric;
  double quality = 0.0;
  if (regression) {
    metric = "train_rmse";
    quality = ml::evaluate(train, stage->predict(train), "regression").at("rmse");
  } else if (kind.task == ml::StageTask::kClassification) {
    const ml::Frame test = fmnist(c, false);
    metric = "accuracy";
    quality = ml::evaluate(test, stage->predict(test), "classification").at("accuracy");
  } else if (kind.task == ml::StageTask::kClustering) {
    metric = "cost";
    quality = summary_of("trainingCost");
  } else {
    metric = "explained_variance_ratio";  // PCA's; 0 for the other transformers
    quality = summary_of("explainedVarianceRatio");
  }
  // The training objective (linear models: the documented objective at the solution) when the
  // stage reports one, for comparisons at equal objective.
  char objective[64] = "";
  if (summary.count("objective")) std::snprintf(objective, sizeof objective, ",\"objective\":%.8g", summary.at("objective"));
  if (c.rank() == 0)
    std::printf(
        "{\"estimator\":\"%s\",\"ranks\":%d,\"fit_seconds\":%.4f,\"%s\":%.6f,\"iterations\":%d,\"evaluations\":%d%s}\n",
        st.type.c_str(), c.size(), fit_s, metric.c_str(), quality, static_cast<int>(summary_of("iterations")),
        static_cast<int>(summary_of("evaluations")), objective);
}

int main(int argc, char** argv) {
  auto world = comm::make_mpi_world(&argc, &argv);
  int status = 0;
  try {
    run(*world, argc, argv);
  } catch (const Error& e) {
    if (world->rank() == 0) std::fprintf(stderr, "error: %s\n", e.what());
    status = 1;
  }
  world.reset();
  comm::finalize_mpi();
  return status;
}
