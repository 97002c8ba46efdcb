// CrossValidator and TrainValidationSplit over a parameter grid (tuning.hpp). A fold's rows are
// chosen by (seed, global row), so the folds — and the chosen parameters — do not depend on the
// number of ranks. Grid keys name a stage and a parameter; the stage must be a registered, tunable
// stage of the pipeline, which is checked for every key before the first fit.
#include "lockstep/ml/tuning.hpp"

#include <cstdio>
#include <functional>

#include "lockstep/core/log.hpp"
#include "lockstep/core/rng.hpp"

namespace lockstep::ml {
namespace {

// Sets "Stage.param" (the first stage of that type, or a FeatureSelector's estimator) to value.
void set_param(std::vector<io::StageConfig>& stages, const std::string& key, const std::string& value,
               const io::StageParam& where) {
  const auto dot = key.find('.');
  if (dot == std::string::npos)
    throw ConfigError(where.where + ": expected Stage.param (e.g. LogisticRegression.regParam)");
  const std::string type = key.substr(0, dot), param = key.substr(dot + 1);
  const StageKind& kind = stage_kind(type, where.where);
  if (!kind.tunable) throw ConfigError(where.where + ": a grid over " + type + " parameters is not supported");
  std::function<bool(std::vector<io::StageConfig>&)> apply = [&](std::vector<io::StageConfig>& v) {
    for (auto& s : v) {
      if (s.type == type) {
        auto& p = s.params[param];
        p.values = {value};
        p.is_list = false;
        p.where = where.where;
        return true;
      }
      if (apply(s.inner)) return true;
    }
    return false;
  };
  if (!apply(stages)) throw ConfigError(where.where + ": no stage of type " + type + " in the pipeline");
}

// Every combination of the grid's value indices, in order (the last key varies fastest).
std::vector<std::vector<std::size_t>> grid_combinations(const io::TuningConfig& t) {
  std::vector<std::vector<std::size_t>> combos{{}};
  for (const auto& [k, v] : t.grid) {
    LOCKSTEP_CHECK(!v.values.empty(), ConfigError, v.where, ": expected a non-empty list of values");
    std::vector<std::vector<std::size_t>> next;
    for (const auto& c : combos)
      for (std::size_t i = 0; i < v.values.size(); ++i) {
        auto d = c;
        d.push_back(i);
        next.push_back(d);
      }
    combos = std::move(next);
  }
  return combos;
}

// Each local row's fold: CrossValidator 0..numFolds-1; TrainValidationSplit 0 (validation) or -1.
std::vector<int> assign_folds(const Frame& train, const io::TuningConfig& t, int folds) {
  std::vector<int> fold(static_cast<std::size_t>(train.rows()));
  for (std::int64_t i = 0; i < train.rows(); ++i) {
    CounterRng r(t.seed, RngStream::kSplit, static_cast<std::uint64_t>(train.row_offset() + i));
    const double u = r.uniform_double();
    fold[static_cast<std::size_t>(i)] =
        t.type == "CrossValidator" ? std::min(folds - 1, static_cast<int>(u * folds)) : (u < t.train_ratio ? -1 : 0);
  }
  return fold;
}

// The mean metric of one candidate over the folds; `metric` is filled in from the task when empty.
double score_candidate(const Frame& train, const std::vector<io::StageConfig>& stages, const io::TuningConfig& t,
                       const std::vector<int>& fold, int folds, const FitContext& quiet, std::string& metric) {
  double sum = 0.0;
  for (int k = 0; k < folds; ++k) {
    std::vector<std::int64_t> tr, va;
    for (std::int64_t i = 0; i < train.rows(); ++i) (fold[static_cast<std::size_t>(i)] == k ? va : tr).push_back(i);
    const Frame ftr = train.subset(tr), fva = train.subset(va);
    const PipelineModel m = fit_pipeline(ftr, stages, quiet);
    const auto scores = m.evaluate(fva);
    if (metric.empty()) metric = m.task() == "regression" ? "rmse" : (m.task() == "clustering" ? "cost" : "accuracy");
    const auto it = scores.find(metric);
    LOCKSTEP_CHECK(it != scores.end(), ConfigError, t.where, ".metric: ", metric, " does not apply to a ", m.task(),
                   " pipeline");
    sum += it->second;
  }
  return sum / folds;
}

}  // namespace

TuningResult tune(const Frame& train, const std::vector<io::StageConfig>& stages, const io::TuningConfig& t,
                  const FitContext& ctx) {
  LOCKSTEP_CHECK(t.type == "CrossValidator" || t.type == "TrainValidationSplit", ConfigError, t.where,
                 ": type: expected CrossValidator or TrainValidationSplit");
  LOCKSTEP_CHECK(!t.grid.empty(), ConfigError, t.where, ".grid: expected at least one Stage.param: [values]");
  const auto combos = grid_combinations(t);
  // Every key is applied once up front, so a bad key fails before the first (possibly long) fit.
  for (const auto& [key, vals] : t.grid) {
    auto probe = stages;
    set_param(probe, key, vals.values[0], vals);
  }
  const int folds = t.type == "CrossValidator" ? static_cast<int>(t.num_folds) : 1;
  const std::vector<int> fold = assign_folds(train, t, folds);
  FitContext quiet = ctx;
  quiet.verbose = false;
  quiet.progress = "none";
  TuningResult res;
  bool first = true;
  for (const auto& c : combos) {
    auto st = stages;
    std::string label;
    for (std::size_t g = 0; g < t.grid.size(); ++g) {
      const auto& [key, vals] = t.grid[g];
      set_param(st, key, vals.values[c[g]], vals);
      label += (label.empty() ? "" : ", ") + key + "=" + vals.values[c[g]];
    }
    std::string metric = t.metric;
    const double mean = score_candidate(train, st, t, fold, folds, quiet, metric);
    res.metric = metric;
    res.candidates.emplace_back(label, mean);
    if (ctx.verbose) {
      char buf[64];
      std::snprintf(buf, sizeof buf, ": %s %.6g", metric.c_str(), mean);
      log::info(std::string(t.type) + " " + label + buf);
    }
    if (first || (larger_is_better(metric) ? mean > res.best : mean < res.best)) {
      res.best = mean;
      res.best_stages = st;
      first = false;
    }
  }
  return res;
}

}  // namespace lockstep::ml
