// LinearSVC's dual coordinate-descent solver (linear.cpp's fit_linear_svc calls it for solver
// dual-cd): liblinear's algorithm for the L2-regularised hinge (Hsieh et al. 2008), distributed
// the CoCoA+ way (Ma et al. 2015) over a fixed number of blocks of contiguous global rows, so the
// result does not depend on the number of ranks. Internal to src/ml.
#pragma once

#include <cstdint>
#include <vector>

#include "lockstep/ml/linear.hpp"

namespace lockstep::ml::detail {

struct DualCdProblem {
  std::int64_t outputs = 1;  // 1: binary (label 1 is the positive class); else one-vs-rest over classes
  Vec inv_std;               // the working space's scale per feature (1/sigma_j, or 1)
  Vec mean;                  // the feature means (original scale): with an intercept, features are centred
  double reg = 0.0;          // regParam > 0
  double weight_sum = 0.0;   // W
  bool fit_intercept = true;
  int max_iter = 100;  // rounds (one pass over the rows each)
  double tol = 1e-6;
  int blocks = 16;
};

struct DualCdResult {
  Mat coefficients;  // outputs x features, original scale
  Vec intercept;     // outputs
  int rounds = 0;
  int evaluations = 0;  // passes over the rows
  std::vector<double> history;
};

DualCdResult fit_svc_dual_cd(const Frame& f, const CompactFeatures& codes, const DualCdProblem& p);

}  // namespace lockstep::ml::detail
