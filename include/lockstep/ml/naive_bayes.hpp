// NaiveBayes (Spark ML's modelType multinomial, bernoulli or gaussian; smoothing 1.0). One pass
// and one allreduce of per-class sums.
#pragma once

#include <string>

#include "lockstep/ml/frame.hpp"
#include "lockstep/ml/linear.hpp"

namespace lockstep::ml {

struct NaiveBayesParams {
  std::string model_type = "multinomial";  // multinomial | bernoulli | gaussian
  double smoothing = 1.0;                  // additive (Laplace) smoothing; unused by gaussian
};

struct NaiveBayesModel {
  std::string model_type;
  Vec pi;     // log class priors
  Mat theta;  // classes x features: log probabilities (multinomial, bernoulli) or means (gaussian)
  Mat sigma;  // gaussian: variances (classes x features); empty otherwise
  Predictions predict(const Frame& f) const;  // raw: log joint likelihoods
};

// Multinomial needs features >= 0, Bernoulli features in {0, 1}: anything else is a DataError
// naming the row and column.
NaiveBayesModel fit_naive_bayes(const Frame& f, const NaiveBayesParams& p = {});

}  // namespace lockstep::ml
