// Tree ensembles: binning, level-wise growth on allreduced fixed-point histograms, prediction.
#include "lockstep/ml/tree.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "lockstep/core/rng.hpp"
#include "lockstep/ml/stats.hpp"

namespace lockstep::ml {
namespace {

// ---------------------------------------------------------------- bins

struct Bins {
  std::vector<std::vector<double>> thresholds;  // per feature, ascending
  std::vector<std::uint8_t> codes;              // rows x features, row-major: #thresholds < x
  std::int64_t d = 0;
};

Bins make_bins(const Frame& f, const RowMatrix& x, int max_bins, std::uint64_t seed) {
  auto& comm = f.comm();
  const std::int64_t d = f.num_features(), N = f.global_rows();
  // A row sample keyed by (seed, global row): the same rows whatever the number of ranks.
  const double want = std::max(10000.0, static_cast<double>(max_bins) * max_bins);
  const double rate = std::min(1.0, want / static_cast<double>(std::max<std::int64_t>(N, 1)));
  std::vector<float> mine;
  for (std::int64_t i = 0; i < x.rows(); ++i) {
    CounterRng r(seed, RngStream::kForest, 0xB1B1B1B1ull, static_cast<std::uint64_t>(f.row_offset() + i));
    if (rate >= 1.0 || r.uniform_double() < rate) mine.insert(mine.end(), x.row(i).data(), x.row(i).data() + d);
  }
  const std::vector<float> sample = comm.allgather_vector(mine);
  const std::size_t rows = d > 0 ? sample.size() / static_cast<std::size_t>(d) : 0;
  Bins b;
  b.d = d;
  b.thresholds.resize(static_cast<std::size_t>(d));
  const int splits = max_bins - 1;
  // Each rank finds the thresholds of every np-th feature (a sort of the sample column), then
  // they are shared: the same thresholds whatever rank computed them.
  std::vector<double> mine_t;  // per owned feature: count, then thresholds
  std::vector<float> col(rows);
  for (std::int64_t j = comm.rank(); j < d; j += comm.size()) {
    for (std::size_t i = 0; i < rows; ++i)
      col[i] = sample[i * static_cast<std::size_t>(d) + static_cast<std::size_t>(j)];
    std::sort(col.begin(), col.end());
    std::vector<float> distinct(col.begin(), std::unique(col.begin(), col.end()));
    std::vector<double> t;
    if (static_cast<int>(distinct.size()) - 1 <= splits) {
      // Few values: every distinct value but the largest is a threshold (Spark).
      for (std::size_t k = 0; k + 1 < distinct.size(); ++k) t.push_back(distinct[k]);
    } else {
      for (int q = 1; q <= splits; ++q) {
        const float v =
            col[std::min(rows - 1, rows * static_cast<std::size_t>(q) / static_cast<std::size_t>(splits + 1))];
        if (v < distinct.back() && (t.empty() || v > t.back())) t.push_back(v);
      }
    }
    mine_t.push_back(static_cast<double>(t.size()));
    mine_t.insert(mine_t.end(), t.begin(), t.end());
  }
  const std::vector<double> all_t = comm.allgather_vector(mine_t);
  std::size_t pos = 0;
  for (int r = 0; r < comm.size(); ++r)
    for (std::int64_t j = r; j < d; j += comm.size()) {
      const auto n = static_cast<std::size_t>(all_t[pos++]);
      b.thresholds[static_cast<std::size_t>(j)].assign(all_t.begin() + static_cast<std::ptrdiff_t>(pos),
                                                       all_t.begin() + static_cast<std::ptrdiff_t>(pos + n));
      pos += n;
    }
  // Codes: the number of thresholds below x, counted branch-free against a padded table (one or
  // two vector compares per value instead of a binary search).
  const std::size_t W = static_cast<std::size_t>(max_bins);  // >= thresholds + 1
  std::vector<float> table(static_cast<std::size_t>(d) * W, std::numeric_limits<float>::infinity());
  for (std::int64_t j = 0; j < d; ++j) {
    const auto& t = b.thresholds[static_cast<std::size_t>(j)];
    for (std::size_t k = 0; k < t.size(); ++k) {
      // Thresholds are sample values (floats); x > t in double equals x > float(t).
      table[static_cast<std::size_t>(j) * W + k] = static_cast<float>(t[k]);
    }
  }
  b.codes.resize(static_cast<std::size_t>(x.rows() * d));
  for (std::int64_t i = 0; i < x.rows(); ++i) {
    const float* xi = x.row(i).data();
    std::uint8_t* out = b.codes.data() + i * d;
    for (std::int64_t j = 0; j < d; ++j) {
      const float v = xi[j];
      const float* tj = table.data() + static_cast<std::size_t>(j) * W;
      unsigned c = 0;
      for (std::size_t k = 0; k < W; ++k) c += v > tj[k];
      out[j] = static_cast<std::uint8_t>(c);
    }
  }
  return b;
}

// ---------------------------------------------------------------- statistics

enum class Impurity { kGini, kEntropy, kVariance };

// Fixed-point scale 2^s with s chosen so that a sum of every row's contribution fits in 62 bits.
double fixed_scale(double bound_of_sum) {
  if (!(bound_of_sum > 0)) return std::ldexp(1.0, 40);
  const int s = static_cast<int>(std::floor(62.0 - std::log2(bound_of_sum)));
  return std::ldexp(1.0, std::min(s, 40));
}

struct Stats {
  bool classification;
  std::int64_t K;  // classes (classification)
  int S;           // statistics per bin: K class weights, or (w, w y, w y^2)
  std::vector<double> scale;
  double impurity(const std::int64_t* q, Impurity imp, double* weight) const {
    if (classification) {
      double w = 0.0;
      for (std::int64_t k = 0; k < K; ++k) w += static_cast<double>(q[k]);
      *weight = w / scale[0];
      if (w <= 0) return 0.0;
      double r = imp == Impurity::kGini ? 1.0 : 0.0;
      for (std::int64_t k = 0; k < K; ++k) {
        const double pk = static_cast<double>(q[k]) / w;
        if (imp == Impurity::kGini) {
          r -= pk * pk;
        } else if (pk > 0) {
          r -= pk * std::log2(pk);
        }
      }
      return r;
    }
    const double w = static_cast<double>(q[0]) / scale[0];
    *weight = w;
    if (w <= 0) return 0.0;
    const double m = static_cast<double>(q[1]) / scale[1] / w;
    return std::max(0.0, static_cast<double>(q[2]) / scale[2] / w - m * m);
  }
  void leaf(const std::int64_t* q, TreeNode& n) const {
    if (classification) {
      double w = 0.0;
      for (std::int64_t k = 0; k < K; ++k) w += static_cast<double>(q[k]);
      n.class_probs.assign(static_cast<std::size_t>(K), 0.0);
      std::int64_t best = 0;
      for (std::int64_t k = 0; k < K; ++k) {
        n.class_probs[static_cast<std::size_t>(k)] = w > 0 ? static_cast<double>(q[k]) / w : 0.0;
        if (q[k] > q[best]) best = k;
      }
      n.prediction = static_cast<double>(best);
    } else {
      n.prediction = q[0] > 0 ? (static_cast<double>(q[1]) / scale[1]) / (static_cast<double>(q[0]) / scale[0]) : 0.0;
    }
  }
};

// What a growth needs per row: the class or the regression target, the instance weight.
struct Targets {
  std::vector<std::int32_t> cls;
  std::vector<double> value;
  const Vec* weight = nullptr;
};

std::int64_t subset_size(const std::string& strategy, std::int64_t d) {
  if (strategy == "all") return d;
  if (strategy == "sqrt") return static_cast<std::int64_t>(std::ceil(std::sqrt(static_cast<double>(d))));
  if (strategy == "log2")
    return std::max<std::int64_t>(1, static_cast<std::int64_t>(std::ceil(std::log2(static_cast<double>(d)))));
  if (strategy == "onethird") return static_cast<std::int64_t>(std::ceil(static_cast<double>(d) / 3.0));
  char* end = nullptr;
  const double v = std::strtod(strategy.c_str(), &end);
  const bool number = end && *end == '\0' && !strategy.empty();
  LOCKSTEP_CHECK(number && v > 0, ConfigError,
                 "featureSubsetStrategy: expected auto, all, sqrt, log2, onethird, an "
                 "integer n or a fraction in (0, 1]; got \"",
                 strategy, "\"");
  if (strategy.find('.') != std::string::npos) {
    LOCKSTEP_CHECK(v <= 1.0, ConfigError, "featureSubsetStrategy: a fraction must be in (0, 1], got ", v);
    return std::max<std::int64_t>(1, static_cast<std::int64_t>(std::ceil(v * static_cast<double>(d))));
  }
  return std::min<std::int64_t>(d, static_cast<std::int64_t>(v));
}

struct GrowOptions {
  int num_trees = 1;
  std::int64_t subset = 0;  // features per node
  bool bootstrap = false;
  double rate = 1.0;
  Impurity impurity = Impurity::kGini;
  TreeParams tree;
  std::uint64_t seed_offset = 0;  // GBT: a different stream per iteration
};

struct Grown {
  std::vector<Tree> trees;
  std::vector<std::vector<std::int32_t>> split_bin;  // per tree, per node (training-time bins)
};

std::uint8_t sample_count(std::uint64_t seed, std::uint64_t tree, std::int64_t row, bool bootstrap, double rate) {
  CounterRng r(seed, RngStream::kForest, tree + 1, static_cast<std::uint64_t>(row));
  if (!bootstrap) return rate >= 1.0 || r.uniform_double() < rate ? 1 : 0;
  const double L = std::exp(-rate);
  double p = r.uniform_double();
  int k = 0;
  while (p > L && k < 255) {
    p *= r.uniform_double();
    ++k;
  }
  return static_cast<std::uint8_t>(k);
}

Grown grow(const Frame& f, const Bins& bins, const Targets& tg, const Stats& st0, const GrowOptions& o) {
  auto& comm = f.comm();
  const std::int64_t n = f.rows(), d = bins.d;
  const int S = st0.S;
  Stats st = st0;
  // Per-tree sample counts.
  std::vector<std::vector<std::uint8_t>> count(static_cast<std::size_t>(o.num_trees),
                                               std::vector<std::uint8_t>(static_cast<std::size_t>(n)));
  std::int64_t cmax = 0;
  for (int t = 0; t < o.num_trees; ++t)
    for (std::int64_t i = 0; i < n; ++i) {
      const auto c = sample_count(o.tree.seed + o.seed_offset, static_cast<std::uint64_t>(t), f.row_offset() + i,
                                  o.bootstrap, o.rate);
      count[static_cast<std::size_t>(t)][static_cast<std::size_t>(i)] = c;
      cmax = std::max<std::int64_t>(cmax, c);
    }
  // Fixed-point scales from global bounds.
  double wmax = 0.0, ymax = 0.0;
  for (std::int64_t i = 0; i < n; ++i) {
    wmax = std::max(wmax, (*tg.weight)[i]);
    if (!st.classification) ymax = std::max(ymax, std::fabs(tg.value[static_cast<std::size_t>(i)]));
  }
  double bounds[3] = {wmax, ymax, static_cast<double>(cmax)};
  comm.allreduce(std::span<double>(bounds, 3), comm::ReduceOp::kMax);
  const double N = static_cast<double>(std::max<std::int64_t>(f.global_rows(), 1));
  const double wb = N * bounds[2] * bounds[0];
  st.scale = {fixed_scale(wb), fixed_scale(wb * bounds[1]), fixed_scale(wb * bounds[1] * bounds[1])};

  // Quantised contribution of row i with count c.
  auto contrib = [&](std::int64_t i, int c, std::int64_t* q) {
    const double w = c * (*tg.weight)[i];
    if (st.classification) {
      q[0] = std::llround(w * st.scale[0]);
    } else {
      const double y = tg.value[static_cast<std::size_t>(i)];
      q[0] = std::llround(w * st.scale[0]);
      q[1] = std::llround(w * y * st.scale[1]);
      q[2] = std::llround(w * y * y * st.scale[2]);
    }
  };
  auto add = [&](std::int64_t* dst, std::int64_t i, const std::int64_t* q) {
    if (st.classification) {
      dst[tg.cls[static_cast<std::size_t>(i)]] += q[0];
    } else {
      dst[0] += q[0], dst[1] += q[1], dst[2] += q[2];
    }
  };

  Grown g;
  g.trees.resize(static_cast<std::size_t>(o.num_trees));
  g.split_bin.resize(static_cast<std::size_t>(o.num_trees));
  std::vector<std::vector<std::int64_t>> node_stats(static_cast<std::size_t>(o.num_trees));  // S per node, flattened
  std::vector<std::vector<std::int32_t>> node_of(static_cast<std::size_t>(o.num_trees),
                                                 std::vector<std::int32_t>(static_cast<std::size_t>(n), 0));
  // Root statistics.
  {
    std::vector<std::int64_t> roots(static_cast<std::size_t>(o.num_trees * S), 0);
    std::int64_t q[3];
    for (int t = 0; t < o.num_trees; ++t)
      for (std::int64_t i = 0; i < n; ++i) {
        const int c = count[static_cast<std::size_t>(t)][static_cast<std::size_t>(i)];
        if (!c) continue;
        contrib(i, c, q);
        add(roots.data() + t * S, i, q);
      }
    comm.allreduce(std::span<std::int64_t>(roots), comm::ReduceOp::kSum);
    for (int t = 0; t < o.num_trees; ++t) {
      g.trees[static_cast<std::size_t>(t)].nodes.emplace_back();
      g.split_bin[static_cast<std::size_t>(t)].push_back(-1);
      node_stats[static_cast<std::size_t>(t)].assign(roots.begin() + t * S, roots.begin() + (t + 1) * S);
    }
  }
  struct Open {
    int tree;
    std::int32_t node;
    std::vector<std::int32_t> features;
  };
  auto features_for = [&](int t, std::int32_t node) {
    std::vector<std::int32_t> all(static_cast<std::size_t>(d));
    std::iota(all.begin(), all.end(), 0);
    if (o.subset >= d) return all;
    CounterRng r(o.tree.seed + o.seed_offset, RngStream::kForest, 0xFEA70000ull + static_cast<std::uint64_t>(t),
                 static_cast<std::uint64_t>(node));
    for (std::int64_t k = 0; k < o.subset; ++k) {
      const auto j = k + static_cast<std::int64_t>(r.below(static_cast<std::uint64_t>(d - k)));
      std::swap(all[static_cast<std::size_t>(k)], all[static_cast<std::size_t>(j)]);
    }
    all.resize(static_cast<std::size_t>(o.subset));
    std::sort(all.begin(), all.end());
    return all;
  };
  std::vector<Open> open;
  for (int t = 0; t < o.num_trees; ++t) open.push_back({t, 0, features_for(t, 0)});
  auto finish_leaf = [&](int t, std::int32_t node) {
    auto& nd = g.trees[static_cast<std::size_t>(t)].nodes[static_cast<std::size_t>(node)];
    const std::int64_t* q = node_stats[static_cast<std::size_t>(t)].data() + node * S;
    nd.impurity = st.impurity(q, o.impurity, &nd.weight);
    st.leaf(q, nd);
  };
  const auto nbins = [&](std::int32_t j) {
    return static_cast<std::int64_t>(bins.thresholds[static_cast<std::size_t>(j)].size()) + 1;
  };
  const std::size_t budget = static_cast<std::size_t>(o.tree.max_memory_mb * 1024 * 1024 / sizeof(std::int64_t));

  for (int depth = 0; depth < o.tree.max_depth && !open.empty(); ++depth) {
    std::vector<Open> next;
    std::vector<std::vector<std::int32_t>> slot(static_cast<std::size_t>(o.num_trees));
    for (std::size_t b0 = 0; b0 < open.size();) {
      // A batch of open nodes whose histograms fit the memory budget (at least one node).
      std::size_t b1 = b0, size = 0;
      std::vector<std::size_t> offset;
      std::vector<std::vector<std::int64_t>> foff;  // per batch node: offset of each feature's bins
      while (b1 < open.size()) {
        std::vector<std::int64_t> fo;
        std::size_t need = 0;
        for (auto j : open[b1].features) {
          fo.push_back(static_cast<std::int64_t>(size + need));
          need += static_cast<std::size_t>(nbins(j) * S);
        }
        if (b1 > b0 && size + need > budget) break;
        offset.push_back(size);
        foff.push_back(std::move(fo));
        size += need;
        ++b1;
      }
      for (auto& s : slot) s.assign(g.trees[static_cast<std::size_t>(&s - slot.data())].nodes.size(), -1);
      for (std::size_t k = b0; k < b1; ++k)
        slot[static_cast<std::size_t>(open[k].tree)][static_cast<std::size_t>(open[k].node)] =
            static_cast<std::int32_t>(k - b0);
      std::vector<std::int64_t> hist(size, 0);
      std::int64_t q[3];
      for (std::int64_t i = 0; i < n; ++i) {
        const std::uint8_t* row = bins.codes.data() + i * d;
        for (int t = 0; t < o.num_trees; ++t) {
          const std::int32_t nd = node_of[static_cast<std::size_t>(t)][static_cast<std::size_t>(i)];
          if (nd < 0) continue;
          const std::int32_t s = slot[static_cast<std::size_t>(t)][static_cast<std::size_t>(nd)];
          if (s < 0) continue;
          const int c = count[static_cast<std::size_t>(t)][static_cast<std::size_t>(i)];
          if (!c) continue;
          contrib(i, c, q);
          const auto& feats = open[b0 + static_cast<std::size_t>(s)].features;
          const auto& fo = foff[static_cast<std::size_t>(s)];
          for (std::size_t fi = 0; fi < feats.size(); ++fi) add(hist.data() + fo[fi] + row[feats[fi]] * S, i, q);
        }
      }
      comm.allreduce(std::span<std::int64_t>(hist), comm::ReduceOp::kSum);
      // Best split per node: the largest gain; ties go to the lower feature, then the lower bin.
      std::vector<std::int64_t> left(static_cast<std::size_t>(S)), right(static_cast<std::size_t>(S));
      for (std::size_t k = b0; k < b1; ++k) {
        const Open& on = open[k];
        auto& tree = g.trees[static_cast<std::size_t>(on.tree)];
        // A copy: the children's statistics are appended to the same vector below.
        const std::vector<std::int64_t> tot_copy(
            node_stats[static_cast<std::size_t>(on.tree)].begin() + on.node * S,
            node_stats[static_cast<std::size_t>(on.tree)].begin() + (on.node + 1) * S);
        const std::int64_t* tot = tot_copy.data();
        double wtot = 0.0;
        const double imp = st.impurity(tot, o.impurity, &wtot);
        double best_gain = 0.0;
        std::int32_t best_f = -1, best_b = -1;
        std::vector<std::int64_t> best_left(static_cast<std::size_t>(S));
        for (std::size_t fi = 0; fi < on.features.size(); ++fi) {
          const std::int32_t j = on.features[fi];
          const std::int64_t* h = hist.data() + foff[k - b0][fi];
          std::fill(left.begin(), left.end(), 0);
          for (std::int64_t b = 0; b + 1 < nbins(j); ++b) {
            for (int s = 0; s < S; ++s) left[static_cast<std::size_t>(s)] += h[b * S + s];
            for (int s = 0; s < S; ++s) right[static_cast<std::size_t>(s)] = tot[s] - left[static_cast<std::size_t>(s)];
            double wl = 0.0, wr = 0.0;
            const double il = st.impurity(left.data(), o.impurity, &wl),
                         ir = st.impurity(right.data(), o.impurity, &wr);
            if (wl < static_cast<double>(o.tree.min_instances_per_node) ||
                wr < static_cast<double>(o.tree.min_instances_per_node) || wl <= 0 || wr <= 0)
              continue;
            const double gain = imp - (wl / wtot) * il - (wr / wtot) * ir;
            if (gain > best_gain) best_gain = gain, best_f = j, best_b = static_cast<std::int32_t>(b), best_left = left;
          }
        }
        tree.nodes[static_cast<std::size_t>(on.node)].impurity = imp;
        tree.nodes[static_cast<std::size_t>(on.node)].weight = wtot;
        if (best_f < 0 || best_gain <= 0 || best_gain < o.tree.min_info_gain) {
          finish_leaf(on.tree, on.node);
          continue;
        }
        auto& stats = node_stats[static_cast<std::size_t>(on.tree)];
        const auto li = static_cast<std::int32_t>(tree.nodes.size());
        for (int side = 0; side < 2; ++side) {
          tree.nodes.emplace_back();
          g.split_bin[static_cast<std::size_t>(on.tree)].push_back(-1);
          for (int s = 0; s < S; ++s)
            stats.push_back(side == 0 ? best_left[static_cast<std::size_t>(s)]
                                      : tot[s] - best_left[static_cast<std::size_t>(s)]);
        }
        auto& nd = tree.nodes[static_cast<std::size_t>(on.node)];
        nd.feature = best_f;
        nd.threshold = bins.thresholds[static_cast<std::size_t>(best_f)][static_cast<std::size_t>(best_b)];
        nd.left = li;
        nd.right = li + 1;
        nd.gain = best_gain;
        st.leaf(tot, nd);  // internal nodes keep a prediction too
        g.split_bin[static_cast<std::size_t>(on.tree)][static_cast<std::size_t>(on.node)] = best_b;
        for (std::int32_t child : {li, li + 1}) {
          if (depth + 1 < o.tree.max_depth) {
            next.push_back({on.tree, child, features_for(on.tree, child)});
          } else {
            finish_leaf(on.tree, child);
          }
        }
      }
      b0 = b1;
    }
    // Rows move down one level.
    for (int t = 0; t < o.num_trees; ++t) {
      const auto& tree = g.trees[static_cast<std::size_t>(t)];
      const auto& sb = g.split_bin[static_cast<std::size_t>(t)];
      auto& no = node_of[static_cast<std::size_t>(t)];
      for (std::int64_t i = 0; i < n; ++i) {
        const std::int32_t nd = no[static_cast<std::size_t>(i)];
        if (nd < 0) continue;
        const auto& node = tree.nodes[static_cast<std::size_t>(nd)];
        if (node.feature < 0) {
          no[static_cast<std::size_t>(i)] = -1;
          continue;
        }
        const bool go_left =
            bins.codes[static_cast<std::size_t>(i * d + node.feature)] <= sb[static_cast<std::size_t>(nd)];
        no[static_cast<std::size_t>(i)] = go_left ? node.left : node.right;
      }
    }
    open = std::move(next);
  }
  for (const auto& on : open) finish_leaf(on.tree, on.node);  // max depth 0
  return g;
}

Vec importances(const std::vector<Tree>& trees, std::int64_t d) {
  Vec total = Vec::Zero(d);
  for (const auto& t : trees) {
    Vec imp = Vec::Zero(d);
    for (const auto& n : t.nodes)
      if (n.feature >= 0) imp[n.feature] += n.gain * n.weight;
    const double s = imp.sum();
    if (s > 0) total += imp / s;
  }
  const double s = total.sum();
  return s > 0 ? Vec(total / s) : total;
}

void check_tree_params(const TreeParams& p) {
  LOCKSTEP_CHECK(p.max_depth >= 0 && p.max_depth <= 30, ConfigError, "maxDepth: expected an integer in [0, 30], got ",
                 p.max_depth);
  LOCKSTEP_CHECK(p.max_bins >= 2 && p.max_bins <= 256, ConfigError,
                 "maxBins: expected an integer in [2, 256] (bins are stored as bytes), got ", p.max_bins);
  LOCKSTEP_CHECK(p.min_instances_per_node >= 1, ConfigError, "minInstancesPerNode: expected an integer >= 1, got ",
                 p.min_instances_per_node);
  LOCKSTEP_CHECK(p.min_info_gain >= 0, ConfigError, "minInfoGain: expected a number >= 0, got ", p.min_info_gain);
  LOCKSTEP_CHECK(p.max_memory_mb > 0, ConfigError, "maxMemoryInMB: expected a number > 0");
}

Impurity pick_impurity(const std::string& name, bool classification) {
  if (name == "auto") return classification ? Impurity::kGini : Impurity::kVariance;
  if (classification && name == "gini") return Impurity::kGini;
  if (classification && name == "entropy") return Impurity::kEntropy;
  if (!classification && name == "variance") return Impurity::kVariance;
  throw ConfigError("impurity: expected " + std::string(classification ? "gini or entropy" : "variance") + " for " +
                    (classification ? "classification" : "regression") + ", got \"" + name + "\"");
}

struct Prepared {
  RowMatrix x;
  Bins bins;
  Targets tg;
  Stats st;
};

Prepared prepare(const Frame& f, const TreeParams& p, bool classification) {
  check_tree_params(p);
  check_finite(f);
  if (f.global_rows() == 0)
    f.comm().agree(std::string("the training frame has no rows"), comm::Communicator::ErrorKind::kData);
  Prepared pr;
  pr.x = f.to_dense();
  pr.bins = make_bins(f, pr.x, p.max_bins, p.seed);
  pr.tg.weight = &f.weight();
  if (classification) {
    const std::int64_t K = std::max<std::int64_t>(num_classes(f), 2);
    pr.st = {true, K, static_cast<int>(K), {}};
    for (std::int64_t i = 0; i < f.rows(); ++i) pr.tg.cls.push_back(static_cast<std::int32_t>(f.label()[i]));
  } else {
    pr.st = {false, 0, 3, {}};
    std::int64_t bad = INT64_MAX;
    for (std::int64_t i = 0; i < f.rows(); ++i) {
      if (!std::isfinite(f.label()[i]) && bad == INT64_MAX) bad = f.row_offset() + i;
      pr.tg.value.push_back(f.label()[i]);
    }
    // Agreed, so a bad label on one rank cannot leave the others waiting in a collective.
    agree_on_first_bad_row(f.comm(), bad, "label at row " + std::to_string(bad) + " is NaN or infinite");
  }
  return pr;
}

// Leaf value of each local row for one tree, walking with the training bins.
Vec tree_values(const Tree& t, const std::vector<std::int32_t>& split_bin, const Bins& bins, std::int64_t n) {
  Vec v(n);
  for (std::int64_t i = 0; i < n; ++i) {
    std::int32_t nd = 0;
    while (t.nodes[static_cast<std::size_t>(nd)].feature >= 0) {
      const auto& node = t.nodes[static_cast<std::size_t>(nd)];
      nd = bins.codes[static_cast<std::size_t>(i * bins.d + node.feature)] <= split_bin[static_cast<std::size_t>(nd)]
               ? node.left
               : node.right;
    }
    v[i] = t.nodes[static_cast<std::size_t>(nd)].prediction;
  }
  return v;
}

}  // namespace

const TreeNode& Tree::leaf(const float* x) const {
  std::size_t nd = 0;
  while (nodes[nd].feature >= 0) {
    const auto& n = nodes[nd];
    nd = static_cast<std::size_t>(static_cast<double>(x[n.feature]) <= n.threshold ? n.left : n.right);
  }
  return nodes[nd];
}

int Tree::depth() const {
  std::vector<int> dep(nodes.size(), 0);
  int best = 0;
  for (std::size_t i = 0; i < nodes.size(); ++i)
    if (nodes[i].feature >= 0) {
      dep[static_cast<std::size_t>(nodes[i].left)] = dep[static_cast<std::size_t>(nodes[i].right)] = dep[i] + 1;
      best = std::max(best, dep[i] + 1);
    }
  return best;
}

TreeEnsembleModel fit_random_forest(const Frame& f, const ForestParams& p, bool classification) {
  LOCKSTEP_CHECK(p.num_trees >= 1, ConfigError, "numTrees: expected an integer >= 1, got ", p.num_trees);
  LOCKSTEP_CHECK(p.subsampling_rate > 0 && p.subsampling_rate <= 1, ConfigError,
                 "subsamplingRate: expected a number in (0, 1], got ", p.subsampling_rate);
  const Prepared pr = prepare(f, p, classification);
  GrowOptions o;
  o.num_trees = p.num_trees;
  const std::string strategy = p.feature_subset_strategy == "auto"
                                   ? (p.num_trees == 1 ? "all" : (classification ? "sqrt" : "onethird"))
                                   : p.feature_subset_strategy;
  o.subset = subset_size(strategy, f.num_features());
  o.bootstrap = p.bootstrap && p.num_trees > 1;
  o.rate = p.subsampling_rate;
  o.impurity = pick_impurity(p.impurity, classification);
  o.tree = p;
  Grown g = grow(f, pr.bins, pr.tg, pr.st, o);
  TreeEnsembleModel m;
  m.classification = classification;
  m.num_classes = classification ? pr.st.K : 0;
  m.num_features = f.num_features();
  m.trees = std::move(g.trees);
  m.tree_weights.assign(m.trees.size(), 1.0);
  m.feature_importances = importances(m.trees, f.num_features());
  return m;
}

TreeEnsembleModel fit_decision_tree(const Frame& f, const TreeParams& p, bool classification) {
  ForestParams fp;
  static_cast<TreeParams&>(fp) = p;
  fp.num_trees = 1;
  fp.feature_subset_strategy = "all";
  fp.bootstrap = false;
  return fit_random_forest(f, fp, classification);
}

TreeEnsembleModel fit_gbt(const Frame& f, const GbtParams& p, bool classification) {
  LOCKSTEP_CHECK(p.max_iter >= 1, ConfigError, "maxIter: expected an integer >= 1, got ", p.max_iter);
  LOCKSTEP_CHECK(p.step_size > 0 && p.step_size <= 1, ConfigError, "stepSize: expected a number in (0, 1], got ",
                 p.step_size);
  const std::string loss = p.loss_type == "auto" ? (classification ? "logistic" : "squared") : p.loss_type;
  LOCKSTEP_CHECK(classification ? loss == "logistic" : (loss == "squared" || loss == "absolute"), ConfigError,
                 "lossType: expected ", classification ? "logistic" : "squared or absolute", ", got \"", loss, "\"");
  // Every boosting round fits a regression tree to pseudo-residuals.
  Prepared pr = prepare(f, p, false);
  const std::int64_t n = f.rows();
  std::vector<double> y(static_cast<std::size_t>(n));
  if (classification) {
    const std::int64_t K = num_classes(f);
    if (K > 2)
      f.comm().agree("GBTClassifier: binary labels only (0 and 1), as in Spark; the labels go up to " +
                         std::to_string(K - 1) + " (use LogisticRegression, RandomForest or one GBT per class)",
                     comm::Communicator::ErrorKind::kData);
    for (std::int64_t i = 0; i < n; ++i) y[static_cast<std::size_t>(i)] = 2.0 * f.label()[i] - 1.0;  // {-1, +1}
  } else {
    y = pr.tg.value;
  }
  GrowOptions o;
  o.num_trees = 1;
  o.subset = f.num_features();
  o.bootstrap = false;
  o.rate = p.subsampling_rate;
  o.impurity = Impurity::kVariance;
  o.tree = p;
  TreeEnsembleModel m;
  m.classification = classification;
  m.num_classes = classification ? 2 : 0;
  m.num_features = f.num_features();
  m.boosted = true;
  Vec F = Vec::Zero(n);
  for (int it = 0; it < p.max_iter; ++it) {
    // Round 0 fits the labels themselves (weight 1); later rounds the negative gradient (Spark).
    for (std::int64_t i = 0; i < n; ++i) {
      const double yi = y[static_cast<std::size_t>(i)], Fi = F[i];
      double r = yi;
      if (it > 0) {
        if (classification) {
          r = 4.0 * yi / (1.0 + std::exp(2.0 * yi * Fi));
        } else if (loss == "squared") {
          r = 2.0 * (yi - Fi);
        } else {
          r = yi - Fi > 0 ? 1.0 : (yi - Fi < 0 ? -1.0 : 0.0);
        }
      }
      pr.tg.value[static_cast<std::size_t>(i)] = r;
    }
    o.seed_offset = static_cast<std::uint64_t>(it) * 0x9E3779B9ull;
    Grown g = grow(f, pr.bins, pr.tg, pr.st, o);
    const double w = it == 0 ? 1.0 : p.step_size;
    F += w * tree_values(g.trees[0], g.split_bin[0], pr.bins, n);
    m.trees.push_back(std::move(g.trees[0]));
    m.tree_weights.push_back(w);
  }
  m.feature_importances = importances(m.trees, f.num_features());
  return m;
}

Predictions TreeEnsembleModel::predict(const Frame& f) const {
  LOCKSTEP_CHECK(f.num_features() == num_features, DataError, "tree model: fitted on ", num_features,
                 " features, the data has ", f.num_features());
  const RowMatrix x = f.to_dense();
  const std::int64_t n = x.rows();
  Predictions out;
  out.prediction.resize(n);
  if (boosted) {
    Vec F = Vec::Zero(n);
    for (std::size_t t = 0; t < trees.size(); ++t)
      for (std::int64_t i = 0; i < n; ++i) F[i] += tree_weights[t] * trees[t].leaf(x.row(i).data()).prediction;
    if (classification) {
      out.raw.resize(n, 2);
      out.probability.resize(n, 2);
      for (std::int64_t i = 0; i < n; ++i) {
        out.raw(i, 0) = -F[i], out.raw(i, 1) = F[i];
        const double p1 = 1.0 / (1.0 + std::exp(-2.0 * F[i]));
        out.probability(i, 0) = 1.0 - p1, out.probability(i, 1) = p1;
        out.prediction[i] = F[i] > 0 ? 1.0 : 0.0;
      }
    } else {
      out.prediction = F;
    }
    return out;
  }
  if (classification) {
    out.raw = Mat::Zero(n, num_classes);
    for (const auto& t : trees)
      for (std::int64_t i = 0; i < n; ++i) {
        const auto& leaf = t.leaf(x.row(i).data());
        for (std::int64_t k = 0; k < num_classes; ++k) out.raw(i, k) += leaf.class_probs[static_cast<std::size_t>(k)];
      }
    out.probability = out.raw / static_cast<double>(trees.size());
    for (std::int64_t i = 0; i < n; ++i) {
      Eigen::Index k = 0;
      out.probability.row(i).maxCoeff(&k);
      out.prediction[i] = static_cast<double>(k);
    }
  } else {
    out.prediction.setZero();
    for (const auto& t : trees)
      for (std::int64_t i = 0; i < n; ++i) out.prediction[i] += t.leaf(x.row(i).data()).prediction;
    out.prediction /= static_cast<double>(trees.size());
  }
  return out;
}

}  // namespace lockstep::ml
