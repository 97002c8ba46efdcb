// KMeans with k-means|| initialisation (Bahmani et al. 2012, as Spark implements it), fitted by
// collectives: every Lloyd iteration is one pass over each rank's rows and one allreduce of the
// per-cluster sums. Every random choice is keyed by (seed, step, global row index), so the
// centres do not depend on the number of ranks.
#pragma once

#include <string>

#include "lockstep/ml/frame.hpp"
#include "lockstep/ml/linear.hpp"

namespace lockstep::ml {

struct KMeansParams {
  std::int64_t k = 2;
  int max_iter = 20;
  double tol = 1e-4;
  // absolute (Spark): converged when no centre moves farther than tol (Euclidean); relative
  // (scikit-learn): when the sum of the centres' squared moves is at most tol times the mean
  // feature variance.
  std::string tol_mode = "absolute";
  // hamerly: Lloyd's iterations that skip rows whose nearest centre provably did not change;
  // lloyd: every distance every iteration. The same centres, bit for bit.
  std::string algorithm = "hamerly";
  std::uint64_t seed = 1;
  std::string init_mode = "k-means||";  // k-means|| | random
  int init_steps = 2;
};

struct KMeansModel {
  Mat centers;                 // k x features
  double training_cost = 0.0;  // sum of weighted squared distances to the nearest centre
  int iterations = 0;
  // prediction: the nearest centre; raw: squared distances to every centre.
  Predictions predict(const Frame& f) const;
  double cost(const Frame& f) const;  // collective
};

KMeansModel fit_kmeans(const Frame& f, const KMeansParams& p);

}  // namespace lockstep::ml
