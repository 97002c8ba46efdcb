// ALS: Spark ML's alternating least squares for collaborative filtering (org.apache.spark.ml.
// recommendation.ALS), with its parameters and defaults.
//
// Fit, distributed: the ratings are shuffled once by user and once by item (data/wide's
// shuffle_by_key, Spark's in-blocks), so the factor of a user (item) is solved on the rank its id
// hashes to, from that id's own ratings; no rank gathers the ratings. Per half-iteration only
// factors move: the factor table of the side being read is allgathered (a broadcast join: every
// rank's users rate most items at this scale, so routing each rank only the factors it needs
// would save little; see docs/ml.md). Each factor solves its normal equations in Eigen:
//   explicit: (sum_i v_i v_i^T + regParam * n_u * I) x = sum_i r_ui v_i   (ALS-WR, as Spark)
//   implicit: (V^T V + sum_i alpha|r_ui| v_i v_i^T + regParam * n+_u * I) x = sum_{r_ui>0} (1 + alpha|r_ui|) v_i
//             (Hu, Koren, Volinsky with confidence 1 + alpha|r|; n+_u counts the positive ratings)
//   nonnegative: the same quadratic minimised over x >= 0 (cyclic projected coordinate descent to
//             convergence, in place of Spark's projected-gradient NNLS; the same minimiser)
// Items are updated first in each iteration, then users (Spark's order).
//
// Deterministic and np-independent: a factor starts from a normal vector keyed by (seed, side, id)
// (scaled to unit length, absolute values when nonnegative), each normal-equation sum runs over an
// id's ratings sorted by the other side's id (ties in input order), and V^T V sums the gathered
// table in id order; so the factors are the same bits at any number of ranks.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "lockstep/data/partitioned.hpp"
#include "lockstep/ml/frame.hpp"
#include "lockstep/ml/linear.hpp"  // Predictions

namespace lockstep::ml {

struct AlsParams {
  int rank = 10;
  int max_iter = 10;
  double reg_param = 0.1;
  bool implicit_prefs = false;
  double alpha = 1.0;
  bool nonnegative = false;
  std::string cold_start_strategy = "nan";  // nan | drop
  std::string user_col = "user", item_col = "item";
  // A feature column of that name, else the frame's label (CSV's label_column).
  std::string rating_col = "rating";
  std::uint64_t seed = 0;
};

struct AlsModel {
  int rank = 0;
  std::string cold_start_strategy = "nan";
  std::string user_col = "user", item_col = "item";
  std::vector<std::int64_t> user_ids, item_ids;  // ascending
  Mat user_factors, item_factors;                // one row per id, in that order (replicated)

  // The user's (item's) row in user_factors (item_factors), or -1.
  std::int64_t user_row(std::int64_t id) const;
  std::int64_t item_row(std::int64_t id) const;
  // One prediction per row: the dot product of the row's user and item factors; NaN when either
  // was not in the training ratings (under both strategies: "drop" acts in evaluation_rows).
  Predictions predict(const Frame& f) const;
  // The rows evaluation scores: all of them ("nan": a cold row makes RMSE NaN, as in Spark), or
  // those whose user and item were both in training ("drop"). Collective.
  Frame evaluation_rows(const Frame& f) const;
};

// Collective. Ids (userCol, itemCol) must be integers in [0, 2^24] (exact in the frame's float32
// features), ratings finite: otherwise a DataError on every rank naming the column and global row.
AlsModel fit_als(const Frame& f, const AlsParams& p = {});

// recommendForAllUsers(k): per user, the k items of highest predicted score (ties: smaller item
// id first), best first. Rank r of p takes the r-th contiguous block of the users in id order and
// scores them against every item factor, so collect() lists the users in id order at any np.
using UserRecommendations = std::pair<std::int64_t, std::vector<std::pair<std::int64_t, double>>>;
data::Partitioned<UserRecommendations> recommend_for_all_users(comm::Communicator& comm, const AlsModel& m, int k);

}  // namespace lockstep::ml
