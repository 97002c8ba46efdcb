// ALS (recommendation.hpp): the ratings blocked by user and by item through shuffle_by_key, the
// factor tables exchanged by allgather each half-iteration, each factor solved from its own
// normal equations in a fixed order.
#include "lockstep/ml/recommendation.hpp"

#include <Eigen/Cholesky>
#include <Eigen/QR>
#include <algorithm>
#include <cmath>
#include <numeric>
#include <sstream>

#include "lockstep/core/error.hpp"
#include "lockstep/data/wide/shuffle.hpp"

namespace lockstep::ml {
namespace {

using Factors = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
constexpr double kMaxId = 16777216.0;  // 2^24: every integer up to it is exact in float32

struct Rating {
  std::int64_t user = 0, item = 0;
  double rating = 0.0;
};

// The values of feature column c on this rank (dense or CSR).
std::vector<double> column_values(const Frame& f, std::int64_t c) {
  std::vector<double> out(static_cast<std::size_t>(f.rows()));
  f.visit([&](const auto& x) {
    for (std::int64_t i = 0; i < f.rows(); ++i) out[static_cast<std::size_t>(i)] = x.coeff(i, c);
  });
  return out;
}

// The ids of column `name`, checked on every rank: the first bad row (in global order) is a
// DataError naming the column, the row and the value.
std::vector<std::int64_t> read_ids(const Frame& f, const std::string& name) {
  const std::vector<double> v = column_values(f, f.column(name));
  std::vector<std::int64_t> ids(v.size());
  std::int64_t bad = -1;
  for (std::size_t i = 0; i < v.size() && bad < 0; ++i) {
    if (std::isfinite(v[i]) && v[i] >= 0 && v[i] <= kMaxId && v[i] == std::floor(v[i]))
      ids[i] = static_cast<std::int64_t>(v[i]);
    else
      bad = static_cast<std::int64_t>(i);
  }
  std::ostringstream os;
  if (bad >= 0)
    os << "ALS: column " << name << ": value " << v[static_cast<std::size_t>(bad)] << " at row "
       << f.row_offset() + bad << " is not an id (expected an integer in [0, 16777216])";
  comm::agree_on_first_bad_row(f.comm(), bad < 0 ? INT64_MAX : f.row_offset() + bad, os.str());
  return ids;
}

std::vector<Rating> read_ratings(const Frame& f, const AlsParams& p) {
  const std::vector<std::int64_t> users = read_ids(f, p.user_col), items = read_ids(f, p.item_col);
  const auto& names = f.feature_names();
  const bool in_features = std::find(names.begin(), names.end(), p.rating_col) != names.end();
  std::vector<double> r;
  if (in_features)
    r = column_values(f, f.column(p.rating_col));
  else
    r.assign(f.label().data(), f.label().data() + f.rows());
  std::int64_t bad = -1;
  std::vector<Rating> out(r.size());
  for (std::size_t i = 0; i < r.size(); ++i) {
    if (!std::isfinite(r[i]) && bad < 0) bad = static_cast<std::int64_t>(i);
    out[i] = Rating{users[i], items[i], r[i]};
  }
  std::ostringstream os;
  if (bad >= 0)
    os << "ALS: column " << (in_features ? p.rating_col : std::string("rating (the label)")) << ": value "
       << r[static_cast<std::size_t>(bad)] << " at row " << f.row_offset() + bad
       << " is not a rating (expected a finite number)";
  comm::agree_on_first_bad_row(f.comm(), bad < 0 ? INT64_MAX : f.row_offset() + bad, os.str());
  return out;
}

// One side's block on this rank (Spark's in-block): the ids this rank owns (their hash's rank),
// and for each its ratings sorted by the other side's id (ties keep the input's global order).
struct Block {
  std::vector<std::int64_t> ids;
  std::vector<std::size_t> ptr{0};
  std::vector<std::int64_t> other;  // the other side's id, per rating
  std::vector<std::int64_t> src;    // its row in the other side's gathered table, per rating
  std::vector<double> rating;
};

Block make_block(comm::Communicator& comm, const std::vector<Rating>& ratings, bool by_user) {
  using Item = std::pair<std::int64_t, std::pair<std::int64_t, double>>;
  std::vector<Item> local;
  local.reserve(ratings.size());
  for (const Rating& r : ratings)
    local.push_back(by_user ? Item{r.user, {r.item, r.rating}} : Item{r.item, {r.user, r.rating}});
  auto s = data::wide::shuffle_by_key(comm, std::move(local), by_user ? "ALS (ratings by user)" : "ALS (ratings by item)");
  Block b;
  for (const auto& run : s.runs) {
    const auto first = s.items.begin() + static_cast<std::ptrdiff_t>(run.begin);
    const auto last = s.items.begin() + static_cast<std::ptrdiff_t>(run.end);
    std::stable_sort(first, last, [](const Item& x, const Item& y) { return x.second.first < y.second.first; });
    b.ids.push_back(first->first);
    for (auto it = first; it != last; ++it) {
      b.other.push_back(it->second.first);
      b.rating.push_back(it->second.second);
    }
    b.ptr.push_back(b.other.size());
  }
  return b;
}

// A side's factor table on every rank, in id order: which rows of the allgathered concatenation
// (rank order, each rank's block order) go where. Built once; only factors move afterwards.
struct Table {
  std::vector<std::int64_t> ids;       // ascending
  std::vector<std::int64_t> place;     // concatenation row -> row in ids
  std::vector<std::size_t> bytes;      // per rank, of one factor exchange
};

Table make_table(comm::Communicator& comm, const std::vector<std::int64_t>& mine, int rank) {
  Table t;
  const std::vector<std::int64_t> all = comm.allgather_vector(mine);
  for (const auto n : comm.allgather<std::int64_t>(static_cast<std::int64_t>(mine.size())))
    t.bytes.push_back(static_cast<std::size_t>(n) * static_cast<std::size_t>(rank) * sizeof(double));
  t.ids = all;
  std::sort(t.ids.begin(), t.ids.end());
  t.place.resize(all.size());
  for (std::size_t j = 0; j < all.size(); ++j)
    t.place[j] = std::lower_bound(t.ids.begin(), t.ids.end(), all[j]) - t.ids.begin();
  return t;
}

Factors gather(comm::Communicator& comm, const Table& t, const Factors& mine) {
  Factors all(static_cast<Eigen::Index>(t.place.size()), mine.cols());
  comm.allgatherv(mine.data(), all.data(), t.bytes);
  Factors sorted(all.rows(), all.cols());
  for (std::size_t j = 0; j < t.place.size(); ++j) sorted.row(t.place[j]) = all.row(static_cast<Eigen::Index>(j));
  return sorted;
}

void link(Block& b, const Table& other) {
  b.src.resize(b.other.size());
  for (std::size_t j = 0; j < b.other.size(); ++j)
    b.src[j] = std::lower_bound(other.ids.begin(), other.ids.end(), b.other[j]) - other.ids.begin();
}

std::uint64_t splitmix64(std::uint64_t& state) {
  std::uint64_t z = (state += 0x9E3779B97F4A7C15ULL);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

// The starting factor of `id` on side `side` (0 users, 1 items): standard normals by Box-Muller
// from a splitmix64 stream keyed by (seed, side, id), scaled to unit length (bench/als_numpy.py
// draws the same numbers).
Eigen::RowVectorXd initial_factor(std::uint64_t seed, int side, std::int64_t id, int rank, bool nonnegative) {
  std::uint64_t state = seed * 0x9E3779B97F4A7C15ULL + static_cast<std::uint64_t>(side) * 0xD1B54A32D192ED03ULL +
                        static_cast<std::uint64_t>(id) * 0xC2B2AE3D27D4EB4FULL;
  Eigen::RowVectorXd x(rank);
  double norm2 = 0.0;
  for (int k = 0; k < rank; ++k) {
    const double a = static_cast<double>((splitmix64(state) >> 11) + 1) * 0x1.0p-53;
    const double b = static_cast<double>(splitmix64(state) >> 11) * 0x1.0p-53;
    double z = std::sqrt(-2.0 * std::log(a)) * std::cos(2.0 * M_PI * b);
    if (nonnegative) z = std::fabs(z);
    x[k] = z;
    norm2 += z * z;
  }
  return x / std::sqrt(norm2);
}

// min 1/2 x'Ax - b'x over x >= 0 (A positive definite): cyclic coordinate descent, each step the
// exact minimiser along one coordinate clipped at 0, until no coordinate moves by more than 1e-12
// of the largest.
Eigen::VectorXd nnls(const Eigen::MatrixXd& a, const Eigen::VectorXd& b) {
  Eigen::VectorXd x = Eigen::VectorXd::Zero(b.size());
  for (int sweep = 0; sweep < 100000; ++sweep) {
    double moved = 0.0;
    for (Eigen::Index j = 0; j < b.size(); ++j) {
      if (!(a(j, j) > 0.0)) continue;  // a zero direction (regParam 0): leave x_j
      const double g = a.row(j).dot(x) - b[j];
      const double v = std::max(0.0, x[j] - g / a(j, j));
      moved = std::max(moved, std::fabs(v - x[j]));
      x[j] = v;
    }
    if (moved <= 1e-12 * std::max(1.0, x.cwiseAbs().maxCoeff())) break;
  }
  return x;
}

// Cholesky; a singular system (regParam 0 and fewer ratings than the rank) gets the least-norm
// solution instead of Spark's failure.
Eigen::VectorXd solve_spd(const Eigen::MatrixXd& a, const Eigen::VectorXd& b) {
  const Eigen::LLT<Eigen::MatrixXd> llt(a);
  if (llt.info() == Eigen::Success) return llt.solve(b);
  return a.completeOrthogonalDecomposition().solve(b);
}

// a (k x k, column-major) += w v v^T and rhs += s v: the normal equations' per-rating step, in
// plain loops over whole columns (fixed trip counts vectorise; the caller then copies the lower
// triangle to the upper, so a is exactly symmetric).
inline void add_rating(double* __restrict a, double* __restrict rhs, const double* __restrict v, int k, double w,
                       double s) {
  for (int c = 0; c < k; ++c) {
    const double wc = w * v[c];
    double* col = a + static_cast<std::ptrdiff_t>(c) * k;
    for (int r = 0; r < k; ++r) col[r] += wc * v[r];
    rhs[c] += s * v[c];
  }
}

// This rank's new factors for block b, from the other side's table (src, in id order).
Factors solve_block(const Block& b, const Factors& src, const AlsParams& p) {
  const int k = p.rank;
  Eigen::MatrixXd yty = Eigen::MatrixXd::Zero(k, k);
  if (p.implicit_prefs)
    for (Eigen::Index j = 0; j < src.rows(); ++j) yty.noalias() += src.row(j).transpose() * src.row(j);
  Factors out(static_cast<Eigen::Index>(b.ids.size()), k);
  Eigen::MatrixXd a(k, k);
  Eigen::VectorXd rhs(k);
  for (std::size_t u = 0; u < b.ids.size(); ++u) {
    a = yty;
    rhs.setZero();
    double n = 0.0;
    for (std::size_t j = b.ptr[u]; j < b.ptr[u + 1]; ++j) {
      const double* v = src.row(b.src[j]).data();
      const double r = b.rating[j];
      if (p.implicit_prefs) {
        const double c1 = p.alpha * std::fabs(r);
        add_rating(a.data(), rhs.data(), v, k, c1, r > 0.0 ? 1.0 + c1 : 0.0);
        if (r > 0.0) n += 1.0;
      } else {
        add_rating(a.data(), rhs.data(), v, k, 1.0, r);
        n += 1.0;
      }
    }
    a.triangularView<Eigen::StrictlyUpper>() = a.transpose();
    a.diagonal().array() += p.reg_param * n;
    out.row(static_cast<Eigen::Index>(u)) = (p.nonnegative ? nnls(a, rhs) : solve_spd(a, rhs)).transpose();
  }
  return out;
}

void check_params(const AlsParams& p) {
  LOCKSTEP_CHECK(p.rank >= 1, ConfigError, "rank: expected an integer >= 1, found ", p.rank);
  LOCKSTEP_CHECK(p.max_iter >= 0, ConfigError, "maxIter: expected an integer >= 0, found ", p.max_iter);
  LOCKSTEP_CHECK(p.reg_param >= 0, ConfigError, "regParam: expected a number >= 0, found ", p.reg_param);
  LOCKSTEP_CHECK(p.alpha >= 0, ConfigError, "alpha: expected a number >= 0, found ", p.alpha);
  LOCKSTEP_CHECK(p.cold_start_strategy == "nan" || p.cold_start_strategy == "drop", ConfigError,
                 "coldStartStrategy: expected nan or drop, found \"", p.cold_start_strategy, "\"");
}

Mat to_mat(const Factors& f) { return Mat(f); }

std::int64_t find_row(const std::vector<std::int64_t>& ids, std::int64_t id) {
  const auto it = std::lower_bound(ids.begin(), ids.end(), id);
  return it != ids.end() && *it == id ? it - ids.begin() : -1;
}

}  // namespace

AlsModel fit_als(const Frame& f, const AlsParams& p) {
  check_params(p);
  auto& comm = f.comm();
  const std::vector<Rating> ratings = read_ratings(f, p);
  Block users = make_block(comm, ratings, true), items = make_block(comm, ratings, false);
  const Table user_table = make_table(comm, users.ids, p.rank), item_table = make_table(comm, items.ids, p.rank);
  link(users, item_table);
  link(items, user_table);
  Factors uf(static_cast<Eigen::Index>(users.ids.size()), p.rank), itf(static_cast<Eigen::Index>(items.ids.size()), p.rank);
  for (std::size_t j = 0; j < users.ids.size(); ++j)
    uf.row(static_cast<Eigen::Index>(j)) = initial_factor(p.seed, 0, users.ids[j], p.rank, p.nonnegative);
  for (std::size_t j = 0; j < items.ids.size(); ++j)
    itf.row(static_cast<Eigen::Index>(j)) = initial_factor(p.seed, 1, items.ids[j], p.rank, p.nonnegative);
  for (int it = 0; it < p.max_iter; ++it) {
    itf = solve_block(items, gather(comm, user_table, uf), p);
    uf = solve_block(users, gather(comm, item_table, itf), p);
  }
  AlsModel m;
  m.rank = p.rank;
  m.cold_start_strategy = p.cold_start_strategy;
  m.user_col = p.user_col;
  m.item_col = p.item_col;
  m.user_ids = user_table.ids;
  m.item_ids = item_table.ids;
  m.user_factors = to_mat(gather(comm, user_table, uf));
  m.item_factors = to_mat(gather(comm, item_table, itf));
  return m;
}

std::int64_t AlsModel::user_row(std::int64_t id) const { return find_row(user_ids, id); }
std::int64_t AlsModel::item_row(std::int64_t id) const { return find_row(item_ids, id); }

Predictions AlsModel::predict(const Frame& f) const {
  const std::vector<std::int64_t> users = read_ids(f, user_col), items = read_ids(f, item_col);
  Predictions out;
  out.prediction.resize(f.rows());
  for (std::int64_t i = 0; i < f.rows(); ++i) {
    const std::int64_t u = user_row(users[static_cast<std::size_t>(i)]), t = item_row(items[static_cast<std::size_t>(i)]);
    out.prediction[i] = u >= 0 && t >= 0 ? user_factors.row(u).dot(item_factors.row(t)) : std::nan("");
  }
  return out;
}

Frame AlsModel::evaluation_rows(const Frame& f) const {
  if (cold_start_strategy != "drop") return f;
  const Vec pred = predict(f).prediction;
  std::vector<std::int64_t> keep;
  for (std::int64_t i = 0; i < f.rows(); ++i)
    if (!std::isnan(pred[i])) keep.push_back(i);
  return f.subset(keep);
}

data::Partitioned<UserRecommendations> recommend_for_all_users(comm::Communicator& comm, const AlsModel& m, int k) {
  LOCKSTEP_CHECK(k >= 1, ConfigError, "recommendForAllUsers: expected k >= 1, found ", k);
  const auto n = static_cast<std::int64_t>(m.user_ids.size());
  const std::int64_t lo = n * comm.rank() / comm.size(), hi = n * (comm.rank() + 1) / comm.size();
  const auto items = static_cast<std::int64_t>(m.item_ids.size());
  const std::int64_t top = std::min<std::int64_t>(k, items);
  std::vector<UserRecommendations> out;
  std::vector<double> score(static_cast<std::size_t>(items));
  std::vector<std::int64_t> order(static_cast<std::size_t>(items));
  for (std::int64_t u = lo; u < hi; ++u) {
    for (std::int64_t t = 0; t < items; ++t)
      score[static_cast<std::size_t>(t)] = m.user_factors.row(u).dot(m.item_factors.row(t));
    std::iota(order.begin(), order.end(), std::int64_t{0});
    std::partial_sort(order.begin(), order.begin() + top, order.end(), [&](std::int64_t a, std::int64_t b) {
      const double sa = score[static_cast<std::size_t>(a)], sb = score[static_cast<std::size_t>(b)];
      return sa != sb ? sa > sb : a < b;
    });
    UserRecommendations r{m.user_ids[static_cast<std::size_t>(u)], {}};
    for (std::int64_t j = 0; j < top; ++j) {
      const auto t = static_cast<std::size_t>(order[static_cast<std::size_t>(j)]);
      r.second.emplace_back(m.item_ids[t], score[t]);
    }
    out.push_back(std::move(r));
  }
  return data::Partitioned<UserRecommendations>::from_local(comm, std::move(out));
}

}  // namespace lockstep::ml
