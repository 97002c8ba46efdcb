// CrossValidator and TrainValidationSplit: every combination of a parameter grid
// ("LogisticRegression.regParam: [0.01, 0.1]") is fitted as a whole pipeline and scored by a
// metric on held-out rows; the best combination's stages come back for the final fit. The grid's
// stage names are checked against the stage registry before anything is fitted.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "lockstep/io/config.hpp"
#include "lockstep/ml/pipeline.hpp"

namespace lockstep::ml {

struct TuningResult {
  std::vector<io::StageConfig> best_stages;
  std::vector<std::pair<std::string, double>> candidates;  // "LogisticRegression.regParam=0.01" -> mean metric
  std::string metric;
  double best = 0.0;
};

// CrossValidator: folds by (seed, global row); TrainValidationSplit: one split by (seed, row).
TuningResult tune(const Frame& train, const std::vector<io::StageConfig>& stages, const io::TuningConfig& t,
                  const FitContext& ctx);

}  // namespace lockstep::ml
