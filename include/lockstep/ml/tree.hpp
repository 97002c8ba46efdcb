// Decision trees, random forests and gradient-boosted trees, trained level by level on binned
// features with the histograms of node statistics allreduced (Spark ML's PLANET-style design and
// its parameter names and defaults).
//  - Bins: candidate thresholds per feature from quantiles of a row sample keyed by
//    (seed, global row), computed once; a row goes left when value <= threshold.
//  - Statistics are summed as 64-bit fixed-point integers (each contribution rounded once, on
//    the row's own rank), so a histogram is the same bits at any number of ranks and the trees
//    are identical, not merely close.
//  - Random forests draw a Poisson(1) bootstrap weight per (seed, tree, global row) and a feature
//    subset per (seed, tree, node).
#pragma once

#include <string>
#include <vector>

#include "lockstep/ml/frame.hpp"
#include "lockstep/ml/linear.hpp"

namespace lockstep::ml {

struct TreeParams {
  int max_depth = 5;
  int max_bins = 32;
  std::int64_t min_instances_per_node = 1;
  double min_info_gain = 0.0;
  std::string impurity = "auto";  // gini | entropy (classification), variance (regression); auto picks
  std::uint64_t seed = 1;
  double max_memory_mb = 256.0;  // histogram memory per pass; more open nodes take more passes
};

struct ForestParams : TreeParams {
  int num_trees = 20;
  std::string feature_subset_strategy = "auto";  // auto | all | sqrt | log2 | onethird | n (int) | fraction
  bool bootstrap = true;
  double subsampling_rate = 1.0;
};

struct GbtParams : TreeParams {
  int max_iter = 20;
  double step_size = 0.1;
  std::string loss_type = "auto";  // logistic (classification), squared (regression)
  double subsampling_rate = 1.0;
};

struct TreeNode {
  std::int32_t feature = -1;  // -1: a leaf
  double threshold = 0.0;     // left when x[feature] <= threshold
  std::int32_t left = -1, right = -1;
  double prediction = 0.0;  // class (classification) or value (regression)
  double impurity = 0.0, gain = 0.0, weight = 0.0;
  std::vector<double> class_probs;  // classification leaves
};

struct Tree {
  std::vector<TreeNode> nodes;  // nodes[0] is the root
  const TreeNode& leaf(const float* x) const;
  int depth() const;
};

struct TreeEnsembleModel {
  bool classification = true;
  std::int64_t num_classes = 0;  // classification
  std::int64_t num_features = 0;
  std::vector<Tree> trees;
  std::vector<double> tree_weights;  // GBT: 1, stepSize, stepSize, ...; forests: all 1
  bool boosted = false;
  Vec feature_importances;  // Spark's: gain x weight per split, normalised per tree, averaged
  // Forest classification: probability = mean of the trees' leaf class frequencies.
  // GBT classification: probability of 1 = 1 / (1 + exp(-2 F)), F the weighted sum of trees.
  Predictions predict(const Frame& f) const;
};

TreeEnsembleModel fit_decision_tree(const Frame& f, const TreeParams& p, bool classification);
TreeEnsembleModel fit_random_forest(const Frame& f, const ForestParams& p, bool classification);
TreeEnsembleModel fit_gbt(const Frame& f, const GbtParams& p, bool classification);

}  // namespace lockstep::ml
