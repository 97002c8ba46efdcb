// Tree ensembles: binning, level-wise growth on allreduced fixed-point histograms, prediction.
#include "lockstep/ml/tree.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "lockstep/core/rng.hpp"
#include "lockstep/core/trace.hpp"
#include "lockstep/data/wide.hpp"
#include "lockstep/ml/stats.hpp"

namespace lockstep::ml {
namespace {

// ---------------------------------------------------------------- bins

struct Bins {
  std::vector<std::vector<double>> thresholds;  // per feature, ascending
  std::vector<std::uint8_t> codes;              // features x rows, column-major: #thresholds < x
  std::int64_t d = 0, n = 0;
  std::uint8_t code(std::int64_t i, std::int64_t j) const { return codes[static_cast<std::size_t>(j * n + i)]; }
};

Bins make_bins(const Frame& f, const RowMatrix& x, int max_bins, std::uint64_t seed) {
  auto& comm = f.comm();
  const std::int64_t d = f.num_features(), N = f.global_rows();
  // A row sample keyed by (seed, global row): the same rows whatever the number of ranks.
  const double want = std::max(10000.0, static_cast<double>(max_bins) * max_bins);
  const double rate = std::min(1.0, want / static_cast<double>(std::max<std::int64_t>(N, 1)));
  // Spark's findSplits: the sampled rows' values keyed by feature, combined per feature with
  // reduce_by_key (each rank's column, concatenated in rank order), so each feature's sample lands
  // on one rank, which sorts it and picks the thresholds; the (feature, thresholds) pairs are then
  // collected on every rank. The same thresholds at any rank count: a feature's thresholds depend
  // only on the multiset of its sampled values.
  std::vector<std::pair<std::int64_t, std::vector<float>>> columns(static_cast<std::size_t>(d));
  for (std::int64_t j = 0; j < d; ++j) columns[static_cast<std::size_t>(j)].first = j;
  for (std::int64_t i = 0; i < x.rows(); ++i) {
    CounterRng r(seed, RngStream::kForest, 0xB1B1B1B1ull, static_cast<std::uint64_t>(f.row_offset() + i));
    if (rate >= 1.0 || r.uniform_double() < rate)
      for (std::int64_t j = 0; j < d; ++j) columns[static_cast<std::size_t>(j)].second.push_back(x(i, j));
  }
  const auto by_feature = data::reduce_by_key(
      data::Partitioned<std::pair<std::int64_t, std::vector<float>>>::from_local(comm, std::move(columns)),
      [](std::vector<float> a, std::vector<float> b) {
        a.insert(a.end(), b.begin(), b.end());
        return a;
      });
  const int splits = max_bins - 1;
  const auto found = by_feature.map([splits](std::pair<std::int64_t, std::vector<float>>&& kv) {
    std::vector<float>& col = kv.second;
    const std::size_t rows = col.size();
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
    return std::pair<std::int64_t, std::vector<double>>(kv.first, std::move(t));
  });
  Bins b;
  b.d = d;
  b.thresholds.resize(static_cast<std::size_t>(d));
  for (auto& [j, t] : found.collect()) b.thresholds[static_cast<std::size_t>(j)] = std::move(t);
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
  // Column-major (one feature's codes contiguous): a node's histogram of one feature reads one
  // column at the node's rows and stays in L1.
  b.n = x.rows();
  b.codes.resize(static_cast<std::size_t>(x.rows() * d));
  std::vector<std::uint8_t> rowc(static_cast<std::size_t>(d));
  for (std::int64_t i = 0; i < x.rows(); ++i) {
    const float* xi = x.row(i).data();
    for (std::int64_t j = 0; j < d; ++j) {
      const float v = xi[j];
      const float* tj = table.data() + static_cast<std::size_t>(j) * W;
      unsigned c = 0;
      for (std::size_t k = 0; k < W; ++k) c += v > tj[k];
      rowc[static_cast<std::size_t>(j)] = static_cast<std::uint8_t>(c);
    }
    for (std::int64_t j = 0; j < d; ++j) b.codes[static_cast<std::size_t>(j * b.n + i)] = rowc[static_cast<std::size_t>(j)];
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

// One growth of o.num_trees trees, level by level. Row statistics are fixed-point integers, so the
// allreduced histograms are exact sums, the same in any order and at any number of ranks: every
// rank makes the same splits and the trees are the same bits wherever they are grown.
class Grower {
 public:
  Grower(const Frame& f, const Bins& bins, const Targets& tg, const Stats& st, const GrowOptions& o)
      : f_(f),
        bins_(bins),
        tg_(tg),
        o_(o),
        st_(st),
        n_(f.rows()),
        d_(bins.d),
        S_(st.S),
        budget_(static_cast<std::size_t>(o.tree.max_memory_mb * 1024 * 1024 / sizeof(std::int64_t))) {
    const auto trees = static_cast<std::size_t>(o.num_trees);
    g_.trees.resize(trees);
    g_.split_bin.resize(trees);
    node_stats_.resize(trees);
    node_of_.assign(trees, std::vector<std::int32_t>(static_cast<std::size_t>(n_), 0));
  }

  // Every step holds collectives: each rank calls them in this order.
  void scale_samples() { set_fixed_scales(draw_sample_counts()); }
  void grow_roots();
  Grown grow_levels();

 private:
  struct Open {  // a node whose split is still to be found
    int tree;
    std::int32_t node;
    std::vector<std::int32_t> features;
  };
  struct Batch {  // open nodes [begin, end) whose histograms share one allreduce
    std::size_t begin = 0, end = 0;
    std::size_t size = 0;                         // histogram entries
    std::vector<std::vector<std::int64_t>> foff;  // per batch node: offset of each feature's bins
  };
  struct Split {
    double gain = 0.0;
    std::int32_t feature = -1, bin = -1;
    std::vector<std::int64_t> left;  // statistics of the rows going left
  };

  std::int64_t draw_sample_counts();
  void set_fixed_scales(std::int64_t cmax);
  void contrib(std::int64_t i, int c, std::int64_t* q) const;
  void add(std::int64_t* dst, std::int64_t i, const std::int64_t* q) const;
  std::vector<std::int32_t> features_for(int t, std::int32_t node) const;
  std::int64_t nbins(std::int32_t j) const {
    return static_cast<std::int64_t>(bins_.thresholds[static_cast<std::size_t>(j)].size()) + 1;
  }
  Batch next_batch(const std::vector<Open>& open, std::size_t b0) const;
  const std::vector<std::int64_t>& histograms(const std::vector<Open>& open, const Batch& b);
  std::vector<std::int32_t> node_rows(const std::vector<std::vector<std::int32_t>>& slot, const Batch& b,
                                      std::vector<std::int64_t>& start) const;
  void split_node(const Open& on, const std::int64_t* hist, const std::vector<std::int64_t>& foff, int depth,
                  std::vector<Open>& next);
  Split best_split(const Open& on, const std::int64_t* tot, double imp, double wtot, const std::int64_t* hist,
                   const std::vector<std::int64_t>& foff) const;
  void apply_split(const Open& on, const std::int64_t* tot, const Split& s, int depth, std::vector<Open>& next);
  void finish_leaf(int t, std::int32_t node);
  void route_rows();

  const Frame& f_;
  const Bins& bins_;
  const Targets& tg_;
  const GrowOptions& o_;
  Stats st_;
  const std::int64_t n_, d_;
  const int S_;
  const std::size_t budget_;                           // histogram entries per allreduce
  std::vector<std::vector<std::uint8_t>> count_;       // per tree, per row: times sampled
  std::vector<std::vector<std::int64_t>> node_stats_;  // per tree: S per node, flattened
  std::vector<std::vector<std::int32_t>> node_of_;     // per tree, per row: its open node, -1 once in a leaf
  std::vector<std::int64_t> hist_;                     // the current batch's histograms
  Grown g_;
};

// Per-tree sample counts, each keyed by (seed, tree, global row) so that it is the same at any
// number of ranks; returns the largest, which bounds the fixed-point sums.
std::int64_t Grower::draw_sample_counts() {
  count_.assign(static_cast<std::size_t>(o_.num_trees), std::vector<std::uint8_t>(static_cast<std::size_t>(n_)));
  std::int64_t cmax = 0;
  for (int t = 0; t < o_.num_trees; ++t)
    for (std::int64_t i = 0; i < n_; ++i) {
      const auto c = sample_count(o_.tree.seed + o_.seed_offset, static_cast<std::uint64_t>(t), f_.row_offset() + i,
                                  o_.bootstrap, o_.rate);
      count_[static_cast<std::size_t>(t)][static_cast<std::size_t>(i)] = c;
      cmax = std::max<std::int64_t>(cmax, c);
    }
  return cmax;
}

// Fixed-point scales from the global bounds of weight, |y| and count, so that no sum of
// contributions can overflow.
void Grower::set_fixed_scales(std::int64_t cmax) {
  double wmax = 0.0, ymax = 0.0;
  for (std::int64_t i = 0; i < n_; ++i) {
    wmax = std::max(wmax, (*tg_.weight)[i]);
    if (!st_.classification) ymax = std::max(ymax, std::fabs(tg_.value[static_cast<std::size_t>(i)]));
  }
  double bounds[3] = {wmax, ymax, static_cast<double>(cmax)};
  f_.comm().allreduce(std::span<double>(bounds, 3), comm::ReduceOp::kMax);
  const double N = static_cast<double>(std::max<std::int64_t>(f_.global_rows(), 1));
  const double wb = N * bounds[2] * bounds[0];
  st_.scale = {fixed_scale(wb), fixed_scale(wb * bounds[1]), fixed_scale(wb * bounds[1] * bounds[1])};
}

// Quantised contribution of row i with count c.
void Grower::contrib(std::int64_t i, int c, std::int64_t* q) const {
  const double w = c * (*tg_.weight)[i];
  if (st_.classification) {
    q[0] = std::llround(w * st_.scale[0]);
  } else {
    const double y = tg_.value[static_cast<std::size_t>(i)];
    q[0] = std::llround(w * st_.scale[0]);
    q[1] = std::llround(w * y * st_.scale[1]);
    q[2] = std::llround(w * y * y * st_.scale[2]);
  }
}

void Grower::add(std::int64_t* dst, std::int64_t i, const std::int64_t* q) const {
  if (st_.classification) {
    dst[tg_.cls[static_cast<std::size_t>(i)]] += q[0];
  } else {
    dst[0] += q[0], dst[1] += q[1], dst[2] += q[2];
  }
}

void Grower::grow_roots() {
  std::vector<std::int64_t> roots(static_cast<std::size_t>(o_.num_trees * S_), 0);
  std::int64_t q[3];
  for (int t = 0; t < o_.num_trees; ++t)
    for (std::int64_t i = 0; i < n_; ++i) {
      const int c = count_[static_cast<std::size_t>(t)][static_cast<std::size_t>(i)];
      if (!c) continue;
      contrib(i, c, q);
      add(roots.data() + t * S_, i, q);
    }
  f_.comm().allreduce(std::span<std::int64_t>(roots), comm::ReduceOp::kSum);
  for (int t = 0; t < o_.num_trees; ++t) {
    g_.trees[static_cast<std::size_t>(t)].nodes.emplace_back();
    g_.split_bin[static_cast<std::size_t>(t)].push_back(-1);
    node_stats_[static_cast<std::size_t>(t)].assign(roots.begin() + t * S_, roots.begin() + (t + 1) * S_);
  }
}

// The candidate features of a node: a draw keyed by (seed, tree, node), whatever the rank count.
std::vector<std::int32_t> Grower::features_for(int t, std::int32_t node) const {
  std::vector<std::int32_t> all(static_cast<std::size_t>(d_));
  std::iota(all.begin(), all.end(), 0);
  if (o_.subset >= d_) return all;
  CounterRng r(o_.tree.seed + o_.seed_offset, RngStream::kForest, 0xFEA70000ull + static_cast<std::uint64_t>(t),
               static_cast<std::uint64_t>(node));
  for (std::int64_t k = 0; k < o_.subset; ++k) {
    const auto j = k + static_cast<std::int64_t>(r.below(static_cast<std::uint64_t>(d_ - k)));
    std::swap(all[static_cast<std::size_t>(k)], all[static_cast<std::size_t>(j)]);
  }
  all.resize(static_cast<std::size_t>(o_.subset));
  std::sort(all.begin(), all.end());
  return all;
}

Grown Grower::grow_levels() {
  std::vector<Open> open;
  for (int t = 0; t < o_.num_trees; ++t) open.push_back({t, 0, features_for(t, 0)});
  for (int depth = 0; depth < o_.tree.max_depth && !open.empty(); ++depth) {
    LOCKSTEP_TRACE_SCOPE("tree level", "tree", trace::Arg{"depth", depth}, trace::Arg{"open_nodes", static_cast<std::int64_t>(open.size())});
    std::vector<Open> next;
    for (std::size_t b0 = 0; b0 < open.size();) {
      const Batch b = next_batch(open, b0);
      const std::vector<std::int64_t>& hist = histograms(open, b);
      for (std::size_t k = b.begin; k < b.end; ++k) split_node(open[k], hist.data(), b.foff[k - b.begin], depth, next);
      b0 = b.end;
    }
    route_rows();
    open = std::move(next);
  }
  for (const auto& on : open) finish_leaf(on.tree, on.node);  // max depth 0
  return std::move(g_);
}

// Open nodes from b0 on whose histograms fit the memory budget (at least one node).
Grower::Batch Grower::next_batch(const std::vector<Open>& open, std::size_t b0) const {
  Batch b;
  b.begin = b.end = b0;
  while (b.end < open.size()) {
    std::vector<std::int64_t> fo;
    std::size_t need = 0;
    for (auto j : open[b.end].features) {
      fo.push_back(static_cast<std::int64_t>(b.size + need));
      need += static_cast<std::size_t>(nbins(j) * S_);
    }
    if (b.end > b0 && b.size + need > budget_) break;
    b.foff.push_back(std::move(fo));
    b.size += need;
    ++b.end;
  }
  return b;
}

// The sampled rows of each batch node, ascending (a counting sort by slot); start[s] is where
// slot s's rows begin.
std::vector<std::int32_t> Grower::node_rows(const std::vector<std::vector<std::int32_t>>& slot, const Batch& b,
                                            std::vector<std::int64_t>& start) const {
  start.assign(b.end - b.begin + 1, 0);
  auto each = [&](auto&& f) {
    for (int t = 0; t < o_.num_trees; ++t) {
      const auto& no = node_of_[static_cast<std::size_t>(t)];
      const auto& cnt = count_[static_cast<std::size_t>(t)];
      const auto& sl = slot[static_cast<std::size_t>(t)];
      for (std::int64_t i = 0; i < n_; ++i) {
        const std::int32_t nd = no[static_cast<std::size_t>(i)];
        if (nd < 0 || !cnt[static_cast<std::size_t>(i)]) continue;
        const std::int32_t s = sl[static_cast<std::size_t>(nd)];
        if (s >= 0) f(s, i);
      }
    }
  };
  each([&](std::int32_t s, std::int64_t) { ++start[static_cast<std::size_t>(s) + 1]; });
  for (std::size_t s = 1; s < start.size(); ++s) start[s] += start[s - 1];
  std::vector<std::int32_t> rows(static_cast<std::size_t>(start.back()));
  std::vector<std::int64_t> pos(start.begin(), start.end() - 1);
  each([&](std::int32_t s, std::int64_t i) { rows[static_cast<std::size_t>(pos[static_cast<std::size_t>(s)]++)] = static_cast<std::int32_t>(i); });
  return rows;
}

// The batch's histograms (per node, per candidate feature, per bin: S statistics), allreduced.
const std::vector<std::int64_t>& Grower::histograms(const std::vector<Open>& open, const Batch& b) {
  // slot[t][node]: the node's place in the batch, -1 for nodes outside it.
  std::vector<std::vector<std::int32_t>> slot(static_cast<std::size_t>(o_.num_trees));
  for (std::size_t t = 0; t < slot.size(); ++t) slot[t].assign(g_.trees[t].nodes.size(), -1);
  for (std::size_t k = b.begin; k < b.end; ++k)
    slot[static_cast<std::size_t>(open[k].tree)][static_cast<std::size_t>(open[k].node)] =
        static_cast<std::int32_t>(k - b.begin);
  std::vector<std::int64_t> start;
  const std::vector<std::int32_t> rows = node_rows(slot, b, start);
  std::vector<std::int64_t>& hist = hist_;  // reused: no fresh pages to fault in every batch
  hist.assign(b.size, 0);
  std::vector<std::int64_t> q;
  std::vector<std::int32_t> cls;
  for (std::size_t s = 0; s + 1 < start.size(); ++s) {
    const Open& on = open[b.begin + s];
    const std::int32_t* r0 = rows.data() + start[s];
    const auto m = static_cast<std::size_t>(start[s + 1] - start[s]);
    // The node's rows' contributions once, then one feature at a time (its histogram in L1).
    q.resize(m * 3);
    cls.resize(m);
    for (std::size_t r = 0; r < m; ++r) {
      const std::int64_t i = r0[r];
      contrib(i, count_[static_cast<std::size_t>(on.tree)][static_cast<std::size_t>(i)], q.data() + 3 * r);
      cls[r] = st_.classification ? tg_.cls[static_cast<std::size_t>(i)] : 0;
    }
    for (std::size_t fi = 0; fi < on.features.size(); ++fi) {
      const std::uint8_t* col = bins_.codes.data() + static_cast<std::size_t>(on.features[fi]) * static_cast<std::size_t>(n_);
      std::int64_t* h = hist.data() + b.foff[s][fi];
      if (st_.classification) {
        for (std::size_t r = 0; r < m; ++r) h[col[r0[r]] * S_ + cls[r]] += q[3 * r];
      } else {
        for (std::size_t r = 0; r < m; ++r) {
          std::int64_t* hb = h + col[r0[r]] * S_;
          hb[0] += q[3 * r], hb[1] += q[3 * r + 1], hb[2] += q[3 * r + 2];
        }
      }
    }
  }
  f_.comm().allreduce(std::span<std::int64_t>(hist), comm::ReduceOp::kSum);
  return hist;
}

// Splits an open node on its best split, or makes it a leaf when no split gains enough.
void Grower::split_node(const Open& on, const std::int64_t* hist, const std::vector<std::int64_t>& foff, int depth,
                        std::vector<Open>& next) {
  auto& nd = g_.trees[static_cast<std::size_t>(on.tree)].nodes[static_cast<std::size_t>(on.node)];
  // A copy: the children's statistics are appended to the same vector.
  const auto& stats = node_stats_[static_cast<std::size_t>(on.tree)];
  const std::vector<std::int64_t> tot(stats.begin() + on.node * S_, stats.begin() + (on.node + 1) * S_);
  double wtot = 0.0;
  const double imp = st_.impurity(tot.data(), o_.impurity, &wtot);
  const Split best = best_split(on, tot.data(), imp, wtot, hist, foff);
  nd.impurity = imp;
  nd.weight = wtot;
  if (best.feature < 0 || best.gain <= 0 || best.gain < o_.tree.min_info_gain) {
    finish_leaf(on.tree, on.node);
    return;
  }
  apply_split(on, tot.data(), best, depth, next);
}

// The largest gain over the node's features and bins; ties go to the lower feature, then the
// lower bin.
Grower::Split Grower::best_split(const Open& on, const std::int64_t* tot, double imp, double wtot,
                                 const std::int64_t* hist, const std::vector<std::int64_t>& foff) const {
  Split best;
  best.left.assign(static_cast<std::size_t>(S_), 0);
  std::vector<std::int64_t> left(static_cast<std::size_t>(S_)), right(static_cast<std::size_t>(S_));
  for (std::size_t fi = 0; fi < on.features.size(); ++fi) {
    const std::int32_t j = on.features[fi];
    const std::int64_t* h = hist + foff[fi];
    std::fill(left.begin(), left.end(), 0);
    for (std::int64_t b = 0; b + 1 < nbins(j); ++b) {
      for (int s = 0; s < S_; ++s) left[static_cast<std::size_t>(s)] += h[b * S_ + s];
      for (int s = 0; s < S_; ++s) right[static_cast<std::size_t>(s)] = tot[s] - left[static_cast<std::size_t>(s)];
      double wl = 0.0, wr = 0.0;
      const double il = st_.impurity(left.data(), o_.impurity, &wl), ir = st_.impurity(right.data(), o_.impurity, &wr);
      if (wl < static_cast<double>(o_.tree.min_instances_per_node) ||
          wr < static_cast<double>(o_.tree.min_instances_per_node) || wl <= 0 || wr <= 0)
        continue;
      const double gain = imp - (wl / wtot) * il - (wr / wtot) * ir;
      if (gain > best.gain)
        best.gain = gain, best.feature = j, best.bin = static_cast<std::int32_t>(b), best.left = left;
    }
  }
  return best;
}

// Appends the node's two children with their statistics; they stay open for the next level, or
// become leaves at the depth limit.
void Grower::apply_split(const Open& on, const std::int64_t* tot, const Split& s, int depth, std::vector<Open>& next) {
  auto& tree = g_.trees[static_cast<std::size_t>(on.tree)];
  auto& split_bin = g_.split_bin[static_cast<std::size_t>(on.tree)];
  auto& stats = node_stats_[static_cast<std::size_t>(on.tree)];
  const auto li = static_cast<std::int32_t>(tree.nodes.size());
  for (int side = 0; side < 2; ++side) {
    tree.nodes.emplace_back();
    split_bin.push_back(-1);
    for (int k = 0; k < S_; ++k)
      stats.push_back(side == 0 ? s.left[static_cast<std::size_t>(k)] : tot[k] - s.left[static_cast<std::size_t>(k)]);
  }
  auto& nd = tree.nodes[static_cast<std::size_t>(on.node)];
  nd.feature = s.feature;
  nd.threshold = bins_.thresholds[static_cast<std::size_t>(s.feature)][static_cast<std::size_t>(s.bin)];
  nd.left = li;
  nd.right = li + 1;
  nd.gain = s.gain;
  st_.leaf(tot, nd);  // internal nodes keep a prediction too
  split_bin[static_cast<std::size_t>(on.node)] = s.bin;
  for (std::int32_t child : {li, li + 1}) {
    if (depth + 1 < o_.tree.max_depth) {
      next.push_back({on.tree, child, features_for(on.tree, child)});
    } else {
      finish_leaf(on.tree, child);
    }
  }
}

void Grower::finish_leaf(int t, std::int32_t node) {
  auto& nd = g_.trees[static_cast<std::size_t>(t)].nodes[static_cast<std::size_t>(node)];
  const std::int64_t* q = node_stats_[static_cast<std::size_t>(t)].data() + node * S_;
  nd.impurity = st_.impurity(q, o_.impurity, &nd.weight);
  st_.leaf(q, nd);
}

// Rows move down one level: to a child of a node split at this level, or out (-1) at a leaf.
void Grower::route_rows() {
  for (int t = 0; t < o_.num_trees; ++t) {
    const auto& tree = g_.trees[static_cast<std::size_t>(t)];
    const auto& sb = g_.split_bin[static_cast<std::size_t>(t)];
    auto& no = node_of_[static_cast<std::size_t>(t)];
    for (std::int64_t i = 0; i < n_; ++i) {
      const std::int32_t nd = no[static_cast<std::size_t>(i)];
      if (nd < 0) continue;
      const auto& node = tree.nodes[static_cast<std::size_t>(nd)];
      if (node.feature < 0) {
        no[static_cast<std::size_t>(i)] = -1;
        continue;
      }
      const bool go_left =
          bins_.code(i, node.feature) <= sb[static_cast<std::size_t>(nd)];
      no[static_cast<std::size_t>(i)] = go_left ? node.left : node.right;
    }
  }
}

// Level-wise growth: sample counts and fixed-point scales, the roots, then per level batches of
// open nodes: histograms, one allreduce, the best splits, and the rows routed to the children.
Grown grow(const Frame& f, const Bins& bins, const Targets& tg, const Stats& st, const GrowOptions& o) {
  LOCKSTEP_TRACE_SCOPE("grow trees", "tree", "trees", o.num_trees);
  Grower g(f, bins, tg, st, o);
  g.scale_samples();
  g.grow_roots();
  return g.grow_levels();
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
  LOCKSTEP_TRACE_SCOPE("bin", "tree");
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
      nd = bins.code(i, node.feature) <= split_bin[static_cast<std::size_t>(nd)]
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
