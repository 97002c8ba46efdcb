// Decision trees, random forests and gradient-boosted trees as pipeline stages (tree.hpp): six
// rows (classifier and regressor of each), their parameters by Spark name, and the one saved form
// of a TreeEnsembleModel (format version 1, the layout of lockstep-pipeline-1: every node of
// every tree as one row of an integer and a real table).
#include <limits>

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

constexpr std::int64_t kMaxIndex = std::numeric_limits<std::int32_t>::max();

// treeOffsets: [0, ..., nodes], strictly increasing (every tree has a root), one more than trees.
void check_offsets(const H5File& h, const std::string& g, const std::vector<std::int64_t>& offsets, std::int64_t nodes) {
  expect_model(offsets.size() >= 2, h, g, "treeOffsets", "expected at least 2 values (one tree), found " +
                                                             std::to_string(offsets.size()));
  expect_model(offsets.front() == 0, h, g, "treeOffsets", "expected to start at 0, found " + std::to_string(offsets[0]));
  for (std::size_t t = 0; t + 1 < offsets.size(); ++t)
    expect_model(offsets[t] < offsets[t + 1], h, g, "treeOffsets",
                 "expected strictly increasing values (every tree has a root), found " + std::to_string(offsets[t]) +
                     " then " + std::to_string(offsets[t + 1]) + " at " + std::to_string(t));
  expect_model(offsets.back() == nodes, h, g, "treeOffsets",
               "ends at " + std::to_string(offsets.back()) + ", but nodeInts has " + std::to_string(nodes) + " rows");
}

// One tree's nodes (rows [begin, end) of nodeInts, children relative to begin): a leaf has feature
// -1, a split a feature in [0, features) and two children in [0, size); walking from the root
// reaches every reachable node exactly once (no cycle, no shared child), so prediction always
// ends at a leaf.
void check_tree(const H5File& h, const std::string& g, std::size_t t, const std::int64_t* ints, std::int64_t size,
                std::int64_t features) {
  const std::string where = "tree " + std::to_string(t) + ", node ";
  for (std::int64_t i = 0; i < size; ++i) {  // every node, reachable or not: Tree::depth walks them all
    const std::int64_t* row = ints + 3 * i;
    if (row[0] == -1) continue;
    expect_model(row[0] >= 0 && row[0] < features, h, g, "nodeInts",
                 where + std::to_string(i) + ": feature " + std::to_string(row[0]) + ", expected -1 (a leaf) or in [0, " +
                     std::to_string(features) + ")");
    for (const std::int64_t c : {row[1], row[2]})
      expect_model(c >= 0 && c < size, h, g, "nodeInts",
                   where + std::to_string(i) + ": child " + std::to_string(c) + ", expected in [0, " +
                       std::to_string(size) + ")");
  }
  std::vector<char> seen(static_cast<std::size_t>(size), 0);
  std::vector<std::int64_t> stack{0};
  while (!stack.empty()) {
    const std::int64_t i = stack.back();
    stack.pop_back();
    expect_model(!seen[static_cast<std::size_t>(i)], h, g, "nodeInts",
                 where + std::to_string(i) + " is reached twice from the root (the children form a cycle)");
    seen[static_cast<std::size_t>(i)] = 1;
    const std::int64_t* row = ints + 3 * i;
    if (row[0] != -1) stack.insert(stack.end(), {row[1], row[2]});
  }
}

// The node tables, their shapes checked against each other before any is indexed.
struct NodeTables {
  std::vector<std::int64_t> offsets, ints;
  std::vector<double> reals, probs;
};

NodeTables read_node_tables(const H5File& h, const std::string& g, std::int64_t K) {
  NodeTables n;
  const auto ishape = h.shape(g + "/nodeInts");
  expect_model(ishape.size() == 2 && ishape[1] == 3 && ishape[0] >= 1, h, g, "nodeInts",
               "expected shape [nodes >= 1, 3]");
  const std::int64_t nodes = ishape[0];
  n.ints = h.read<std::int64_t>(g + "/nodeInts");
  n.offsets = h.read<std::int64_t>(g + "/treeOffsets");
  check_offsets(h, g, n.offsets, nodes);
  const auto rshape = h.shape(g + "/nodeReals");
  expect_model(rshape == std::vector<std::int64_t>{nodes, 5}, h, g, "nodeReals",
               "expected shape [" + std::to_string(nodes) + ", 5] (one row per node of nodeInts)");
  n.reals = h.read<double>(g + "/nodeReals");
  if (K > 0) {
    expect_model(h.shape(g + "/nodeClassProbs") == std::vector<std::int64_t>{nodes, K}, h, g, "nodeClassProbs",
                 "expected shape [" + std::to_string(nodes) + ", " + std::to_string(K) + "] (nodes x numClasses)");
    n.probs = h.read<double>(g + "/nodeClassProbs");
  }
  return n;
}

TreeEnsembleModel load_tree_ensemble(const H5File& h, const std::string& g) {
  TreeEnsembleModel m;
  m.classification = int_attr_in(h, g, "classification", 0, 1) != 0;
  m.boosted = int_attr_in(h, g, "boosted", 0, 1) != 0;
  // Boosted classification is binary; a forest's class frequencies have numClasses columns.
  m.num_classes = !m.classification ? h.attr_int(g, "numClasses")
                  : m.boosted       ? int_attr_in(h, g, "numClasses", 2, 2)
                                    : int_attr_in(h, g, "numClasses", 1, kMaxIndex);
  m.num_features = int_attr_in(h, g, "numFeatures", 1, kMaxIndex);
  const std::int64_t K = m.classification && !m.boosted ? m.num_classes : 0;
  const NodeTables n = read_node_tables(h, g, K);
  m.tree_weights = h.read<double>(g + "/treeWeights");
  expect_size(h, g, "treeWeights", static_cast<std::int64_t>(m.tree_weights.size()),
              static_cast<std::int64_t>(n.offsets.size()) - 1, "one per tree of treeOffsets");
  m.feature_importances = get_vec(h, g + "/featureImportances");
  expect_size(h, g, "featureImportances", m.feature_importances.size(), m.num_features, "numFeatures");
  for (std::size_t t = 0; t + 1 < n.offsets.size(); ++t) {
    check_tree(h, g, t, n.ints.data() + 3 * n.offsets[t], n.offsets[t + 1] - n.offsets[t], m.num_features);
    Tree tree;
    for (std::int64_t i = n.offsets[t]; i < n.offsets[t + 1]; ++i) {
      const auto u = static_cast<std::size_t>(i);
      TreeNode node;  // the indices were checked to fit (features, and children within the tree)
      node.feature = static_cast<std::int32_t>(n.ints[3 * u]);
      node.left = static_cast<std::int32_t>(n.ints[3 * u + 1]);
      node.right = static_cast<std::int32_t>(n.ints[3 * u + 2]);
      node.threshold = n.reals[5 * u], node.prediction = n.reals[5 * u + 1], node.impurity = n.reals[5 * u + 2];
      node.gain = n.reals[5 * u + 3], node.weight = n.reals[5 * u + 4];
      for (std::int64_t k = 0; k < K; ++k)
        node.class_probs.push_back(n.probs[u * static_cast<std::size_t>(K) + static_cast<std::size_t>(k)]);
      tree.nodes.push_back(std::move(node));
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
