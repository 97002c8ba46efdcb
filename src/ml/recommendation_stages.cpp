// ALS as a pipeline stage (recommendation.hpp): its parameters by Spark name, its saved form
// (format version 1: attributes rank, coldStartStrategy, userCol, itemCol; datasets userIds,
// userFactors, itemIds, itemFactors, ids as doubles, factors one row per id) and its row. A
// regression predictor: its frame's feature columns hold the user and item ids, the label the
// rating, and the regression evaluator scores it (RMSE).
#include <cmath>

#include "lockstep/ml/recommendation.hpp"
#include "ml/stage_rows.hpp"

namespace lockstep::ml {

namespace {
Vec ids_to_vec(const std::vector<std::int64_t>& ids) {
  Vec v(static_cast<Eigen::Index>(ids.size()));
  for (std::size_t i = 0; i < ids.size(); ++i) v[static_cast<Eigen::Index>(i)] = static_cast<double>(ids[i]);
  return v;
}

std::vector<std::int64_t> vec_to_ids(const H5File& h, const std::string& g, const std::string& name) {
  const Vec v = get_vec(h, g + "/" + name);
  std::vector<std::int64_t> ids;
  for (Eigen::Index i = 0; i < v.size(); ++i) {
    expect_model(v[i] >= 0 && v[i] == std::floor(v[i]) && (i == 0 || v[i] > v[i - 1]), h, g, name,
                 "expected ascending integer ids >= 0, found " + std::to_string(v[i]) + " at " + std::to_string(i));
    ids.push_back(static_cast<std::int64_t>(v[i]));
  }
  return ids;
}
}  // namespace

// In lockstep::ml, where ModelStage's argument-dependent lookup finds it.
void save_model(H5File& h, const std::string& g, const AlsModel& m) {
  h.set_attr(g, "rank", static_cast<std::int64_t>(m.rank));
  h.set_attr(g, "coldStartStrategy", m.cold_start_strategy);
  h.set_attr(g, "userCol", m.user_col);
  h.set_attr(g, "itemCol", m.item_col);
  put(h, g + "/userIds", ids_to_vec(m.user_ids));
  put(h, g + "/itemIds", ids_to_vec(m.item_ids));
  put(h, g + "/userFactors", m.user_factors);
  put(h, g + "/itemFactors", m.item_factors);
}

namespace {

AlsModel load_als(const H5File& h, const std::string& g) {
  AlsModel m;
  m.rank = static_cast<int>(int_attr_in(h, g, "rank", 1, 1 << 20));
  m.cold_start_strategy = h.attr_string(g, "coldStartStrategy");
  expect_model(m.cold_start_strategy == "nan" || m.cold_start_strategy == "drop", h, g, "",
               "attribute coldStartStrategy: expected nan or drop, found \"" + m.cold_start_strategy + "\"");
  m.user_col = h.attr_string(g, "userCol");
  m.item_col = h.attr_string(g, "itemCol");
  m.user_ids = vec_to_ids(h, g, "userIds");
  m.item_ids = vec_to_ids(h, g, "itemIds");
  m.user_factors = get_mat(h, g + "/userFactors");
  m.item_factors = get_mat(h, g + "/itemFactors");
  for (const auto* name : {"userFactors", "itemFactors"}) {
    const Mat& f = std::string(name) == "userFactors" ? m.user_factors : m.item_factors;
    const auto& ids = std::string(name) == "userFactors" ? m.user_ids : m.item_ids;
    expect_size(h, g, name, f.rows(), static_cast<std::int64_t>(ids.size()), "rows: one per id");
    expect_size(h, g, name, f.cols(), m.rank, "columns: the rank");
  }
  return m;
}

const StageRegistrar kAls{model_row<AlsModel, AlsParams>(
    "ALS", StageTask::kRegression, 1,
    [](ParamReader& p, AlsParams& q) {  // fit_als checks the values
      p.get("rank", q.rank);
      p.get("maxIter", q.max_iter);
      p.get("regParam", q.reg_param);
      p.get("implicitPrefs", q.implicit_prefs);
      p.get("alpha", q.alpha);
      p.get("nonnegative", q.nonnegative);
      p.get("coldStartStrategy", q.cold_start_strategy);
      p.get("userCol", q.user_col);
      p.get("itemCol", q.item_col);
      p.get("ratingCol", q.rating_col);
      p.get("seed", q.seed);
    },
    fit_als, load_als)};

}  // namespace
}  // namespace lockstep::ml
