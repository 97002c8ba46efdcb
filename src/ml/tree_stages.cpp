// Decision trees, random forests and gradient-boosted trees as pipeline stages (tree.hpp): six
// rows (classifier and regressor of each), their parameters by Spark name, and the one saved form
// of a TreeEnsembleModel (format version 1, the layout of lockstep-pipeline-1: every node of
// every tree as one row of an integer and a real table).
#include "lockstep/ml/tree.hpp"
#include "ml/stage_rows.hpp"

namespace lockstep::ml {

// ---- saved form (in lockstep::ml, where ModelStage's argument-dependent lookup finds it) ----

void save_model(H5File& h, const std::string& g, const TreeEnsembleModel& m) {
  h.set_attr(g, "classification", static_cast<std::int64_t>(m.classification));
  h.set_attr(g, "numClasses", m.num_classes);
  h.set_attr(g, "numFeatures", m.num_features);
  h.set_attr(g, "boosted", static_cast<std::int64_t>(m.boosted));
  h.write<double>(g + "/treeWeights", m.tree_weights.data(), {static_cast<std::int64_t>(m.tree_weights.size())});
  put(h, g + "/featureImportances", m.feature_importances);
  // Every node of every tree, one row each: feature, left, right (int64); threshold, prediction,
  // impurity, gain, weight (double); class frequencies (double, numClasses columns).
  std::vector<std::int64_t> ints, offsets{0};
  std::vector<double> reals, probs;
  const std::int64_t K = m.classification && !m.boosted ? m.num_classes : 0;
  for (const auto& t : m.trees) {
    for (const auto& n : t.nodes) {
      ints.insert(ints.end(), {n.feature, n.left, n.right});
      reals.insert(reals.end(), {n.threshold, n.prediction, n.impurity, n.gain, n.weight});
      for (std::int64_t k = 0; k < K; ++k)
        probs.push_back(static_cast<std::size_t>(k) < n.class_probs.size() ? n.class_probs[static_cast<std::size_t>(k)]
                                                                           : 0.0);
    }
    offsets.push_back(offsets.back() + static_cast<std::int64_t>(t.nodes.size()));
  }
  const std::int64_t nodes = offsets.back();
  h.write<std::int64_t>(g + "/treeOffsets", offsets.data(), {static_cast<std::int64_t>(offsets.size())});
  h.write<std::int64_t>(g + "/nodeInts", ints.data(), {nodes, 3});
  h.write<double>(g + "/nodeReals", reals.data(), {nodes, 5});
  if (K > 0) h.write<double>(g + "/nodeClassProbs", probs.data(), {nodes, K});
}

namespace {

TreeEnsembleModel load_tree_ensemble(const H5File& h, const std::string& g) {
  TreeEnsembleModel m;
  m.classification = h.attr_int(g, "classification") != 0;
  m.num_classes = h.attr_int(g, "numClasses");
  m.num_features = h.attr_int(g, "numFeatures");
  m.boosted = h.attr_int(g, "boosted") != 0;
  m.tree_weights = h.read<double>(g + "/treeWeights");
  m.feature_importances = get_vec(h, g + "/featureImportances");
  const auto offsets = h.read<std::int64_t>(g + "/treeOffsets");
  const auto ints = h.read<std::int64_t>(g + "/nodeInts");
  const auto reals = h.read<double>(g + "/nodeReals");
  const std::int64_t K = m.classification && !m.boosted ? m.num_classes : 0;
  const auto probs = K > 0 ? h.read<double>(g + "/nodeClassProbs") : std::vector<double>();
  for (std::size_t t = 0; t + 1 < offsets.size(); ++t) {
    Tree tree;
    for (std::int64_t i = offsets[t]; i < offsets[t + 1]; ++i) {
      const auto u = static_cast<std::size_t>(i);
      TreeNode n;
      n.feature = static_cast<std::int32_t>(ints[3 * u]);
      n.left = static_cast<std::int32_t>(ints[3 * u + 1]);
      n.right = static_cast<std::int32_t>(ints[3 * u + 2]);
      n.threshold = reals[5 * u], n.prediction = reals[5 * u + 1], n.impurity = reals[5 * u + 2];
      n.gain = reals[5 * u + 3], n.weight = reals[5 * u + 4];
      for (std::int64_t k = 0; k < K; ++k)
        n.class_probs.push_back(probs[u * static_cast<std::size_t>(K) + static_cast<std::size_t>(k)]);
      tree.nodes.push_back(std::move(n));
    }
    m.trees.push_back(std::move(tree));
  }
  return m;
}

// ---- parameters (the estimators check the ranges) ----

void read_tree(ParamReader& p, TreeParams& t) {
  p.get("maxDepth", t.max_depth);
  p.get("maxBins", t.max_bins);
  p.get("minInstancesPerNode", t.min_instances_per_node);
  p.get("minInfoGain", t.min_info_gain);
  p.get("impurity", t.impurity);
  p.get("seed", t.seed);
  p.get("maxMemoryInMB", t.max_memory_mb);
}

void read_forest(ParamReader& p, ForestParams& q) {
  read_tree(p, q);
  p.get("numTrees", q.num_trees);
  p.get("featureSubsetStrategy", q.feature_subset_strategy);
  p.get("bootstrap", q.bootstrap);
  p.get("subsamplingRate", q.subsampling_rate);
}

void read_gbt(ParamReader& p, GbtParams& q) {
  read_tree(p, q);
  p.get("maxIter", q.max_iter);
  p.get("stepSize", q.step_size);
  p.get("lossType", q.loss_type);
  p.get("subsamplingRate", q.subsampling_rate);
}

// One row per (estimator, task): fit(frame, params, classification) is fit_decision_tree,
// fit_random_forest or fit_gbt.
template <typename P>
StageKind tree_row(std::string name, bool classification, void (*read)(ParamReader&, P&),
                   TreeEnsembleModel (*fit)(const Frame&, const P&, bool)) {
  return model_row<TreeEnsembleModel, P>(
      std::move(name), classification ? StageTask::kClassification : StageTask::kRegression, 1, read,
      [fit, classification](const Frame& f, const P& q) { return fit(f, q, classification); }, load_tree_ensemble);
}

const StageRegistrar kDecisionTreeClassifier{tree_row<TreeParams>("DecisionTreeClassifier", true, read_tree,
                                                                  fit_decision_tree)};
const StageRegistrar kDecisionTreeRegressor{tree_row<TreeParams>("DecisionTreeRegressor", false, read_tree,
                                                                 fit_decision_tree)};
const StageRegistrar kRandomForestClassifier{tree_row<ForestParams>("RandomForestClassifier", true, read_forest,
                                                                    fit_random_forest)};
const StageRegistrar kRandomForestRegressor{tree_row<ForestParams>("RandomForestRegressor", false, read_forest,
                                                                   fit_random_forest)};
const StageRegistrar kGbtClassifier{tree_row<GbtParams>("GBTClassifier", true, read_gbt, fit_gbt)};
const StageRegistrar kGbtRegressor{tree_row<GbtParams>("GBTRegressor", false, read_gbt, fit_gbt)};

}  // namespace
}  // namespace lockstep::ml
