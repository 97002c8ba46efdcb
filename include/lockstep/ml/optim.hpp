// Quasi-Newton minimisation for the estimators: L-BFGS, and OWL-QN (Andrew and Gao, 2007) when an
// L1 penalty is present. The objective is evaluated collectively (each rank its shard, then an
// allreduce), so every rank sees the same values and takes the same steps; the optimiser itself
// is plain replicated code over small vectors.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "lockstep/ml/frame.hpp"

namespace lockstep::ml {

struct QuasiNewtonOptions {
  int max_iter = 100;
  // Converged when the objective's relative decrease over an iteration is at most tol (Spark's
  // criterion), or the (pseudo-)gradient's largest entry is at most tol * max(1, |f|) * 1e-3.
  double tol = 1e-6;
  int memory = 10;  // correction pairs kept
};

struct QuasiNewtonResult {
  Vec x;
  double value = 0.0;
  int iterations = 0;
  int evaluations = 0;  // objective evaluations (passes over the data), line searches included
  bool converged = false;
  std::vector<double> history;  // objective after each iteration (the first entry: at x0)
};

// Smooth part: returns f(x) and writes its gradient. l1: per-coordinate L1 weights (empty for
// none); the objective minimised is f(x) + sum_i l1_i |x_i|.
using Objective = std::function<double(const Vec& x, Vec& grad)>;
QuasiNewtonResult minimize(const Objective& f, Vec x0, const QuasiNewtonOptions& options, const Vec& l1 = Vec());

}  // namespace lockstep::ml
