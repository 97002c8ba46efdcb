// Table bookkeeping (global counts, shape agreement), the data.classes selection, CSR to dense,
// and the row-wise repartition the trainer's epoch shuffle uses: rows travel as byte ranges of
// the feature and label blocks, packed per destination, in one alltoallv.
#include "lockstep/data/table.hpp"
#include "lockstep/core/huge_pages.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <sstream>
#include <optional>

#include "lockstep/core/checked_size.hpp"
#include "lockstep/core/error.hpp"

namespace lockstep::data {
namespace {

std::string shape_text(const Shape& s) {
  std::string out = "{";
  for (std::size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "}";
}

}  // namespace

void finish_table(comm::Communicator& comm, Table& t, const std::string& what) {
  t.global_rows = comm.allreduce<std::int64_t>(t.rows, comm::ReduceOp::kSum);
  t.row_offset = comm.exscan(t.rows);
  // Shapes are agreed through their text: small, and a mismatch message can quote both.
  const std::string mine =
      t.rows > 0 || comm.rank() == 0 ? shape_text(t.sample_shape) + "x" + std::to_string(t.num_labels) : std::string();
  const auto all = comm.allgather_strings(mine);
  std::optional<std::string> err;
  std::string agreed;
  int from = -1;
  for (std::size_t r = 0; r < all.size(); ++r) {
    if (all[r].empty()) continue;
    if (agreed.empty()) {
      agreed = all[r];
      from = static_cast<int>(r);
    } else if (all[r] != agreed && !err) {
      err = what + ": rank " + std::to_string(r) + " read samples of shape x labels " + all[r] + ", rank " +
            std::to_string(from) + " read " + agreed + " (expected the same on every rank)";
    }
  }
  comm.agree(err, comm::Communicator::ErrorKind::kData);
  if (!mine.empty() || agreed.empty()) return;
  // A rank without rows takes the shape the others read, so sizes computed from it agree.
  const auto x = agreed.rfind('x');
  t.num_labels = std::stoll(agreed.substr(x + 1));
  t.sample_shape.clear();
  std::string dims = agreed.substr(1, x - 2);
  for (std::size_t pos = 0; pos < dims.size();) {
    const auto comma = dims.find(',', pos);
    t.sample_shape.push_back(std::stoll(dims.substr(pos, comma - pos)));
    pos = comma == std::string::npos ? dims.size() : comma + 2;
  }
}

void keep_rows(Table& t, const std::vector<char>& keep, const std::vector<float>* first_label) {
  const std::int64_t f = t.num_features(), l = t.num_labels;
  std::int64_t kept = 0;
  for (std::int64_t i = 0; i < t.rows; ++i) {
    if (!keep[static_cast<std::size_t>(i)]) continue;
    // Compacting in place: row `kept` <= i, so nothing unread is overwritten.
    if (!t.sparse && f > 0)
      std::memmove(t.features.data() + kept * f, t.row(i), static_cast<std::size_t>(f) * sizeof(float));
    std::memmove(t.labels.data() + kept * l, t.labels.data() + i * l, static_cast<std::size_t>(l) * sizeof(float));
    if (first_label) t.labels[static_cast<std::size_t>(kept * l)] = (*first_label)[static_cast<std::size_t>(i)];
    if (t.sparse) {
      // CSR rows are compacted the same way: entries of kept rows slide down.
      const std::int64_t b = t.indptr[static_cast<std::size_t>(i)], e = t.indptr[static_cast<std::size_t>(i + 1)];
      const std::int64_t to = t.indptr[static_cast<std::size_t>(kept)];
      std::memmove(t.indices.data() + to, t.indices.data() + b, static_cast<std::size_t>(e - b) * sizeof(std::int32_t));
      std::memmove(t.values.data() + to, t.values.data() + b, static_cast<std::size_t>(e - b) * sizeof(float));
      t.indptr[static_cast<std::size_t>(kept + 1)] = to + (e - b);
    }
    for (auto& col : t.text) col[static_cast<std::size_t>(kept)] = std::move(col[static_cast<std::size_t>(i)]);
    ++kept;
  }
  t.rows = kept;
  if (!t.sparse) t.features.resize(static_cast<std::size_t>(kept * f));
  t.labels.resize(static_cast<std::size_t>(kept * l));
  if (t.sparse) {
    t.indptr.resize(static_cast<std::size_t>(kept + 1));
    t.indices.resize(static_cast<std::size_t>(t.indptr.back()));
    t.values.resize(static_cast<std::size_t>(t.indptr.back()));
  }
  for (auto& col : t.text) col.resize(static_cast<std::size_t>(kept));
}

void select_classes(comm::Communicator& comm, Table& t, const std::vector<std::int64_t>& classes,
                    const std::string& what, const std::string& where) {
  if (classes.empty()) return;
  std::vector<char> keep(static_cast<std::size_t>(t.rows), 0);
  std::vector<float> relabel(static_cast<std::size_t>(t.rows), 0.0f);
  std::int64_t bad = -1;
  for (std::int64_t i = 0; i < t.rows; ++i) {
    const float y = t.label(i);
    if (bad < 0 && !(std::isfinite(y) && std::floor(y) == y)) bad = i;
    for (std::size_t c = 0; c < classes.size(); ++c)
      if (static_cast<float>(classes[c]) == y) {
        keep[static_cast<std::size_t>(i)] = 1;
        relabel[static_cast<std::size_t>(i)] = static_cast<float>(c);
      }
  }
  // The lowest global row whose label is not an integer, reported by the rank that holds it.
  const auto firsts = comm.allgather<std::int64_t>(bad < 0 ? INT64_MAX : t.row_offset + bad);
  const auto owner = std::min_element(firsts.begin(), firsts.end());
  if (*owner != INT64_MAX) {
    std::optional<std::string> err;
    if (owner - firsts.begin() == comm.rank()) {
      std::ostringstream os;
      os << where << ": selects rows by integer class label, but " << what << " row " << *owner << " has label "
         << t.label(bad) << " (not an integer)";
      err = os.str();
    }
    comm.agree(err, comm::Communicator::ErrorKind::kConfig);
  }
  keep_rows(t, keep, &relabel);
  finish_table(comm, t, what);
  LOCKSTEP_CHECK(t.global_rows > 0, ConfigError, where, ": no row of ", what,
                 " has one of these labels (check the labels the file holds)");
}

bool fraction_kept(std::uint64_t seed, std::int64_t global_row, double fraction) {
  // splitmix64 of (seed, row): 53 uniform bits compared with the fraction.
  std::uint64_t z = seed * 0x9E3779B97F4A7C15ULL + static_cast<std::uint64_t>(global_row) + 0x632BE59BD9B4E019ULL;
  for (int round = 0; round < 2; ++round) {
    z += 0x9E3779B97F4A7C15ULL;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    z ^= z >> 31;
  }
  return static_cast<double>(z >> 11) * 0x1.0p-53 < fraction;
}

void select_fraction(comm::Communicator& comm, Table& t, double fraction, std::uint64_t seed, const std::string& what,
                     const std::string& where) {
  if (fraction >= 1.0) return;
  const std::int64_t before = t.global_rows;
  std::vector<char> keep(static_cast<std::size_t>(t.rows), 0);
  for (std::int64_t i = 0; i < t.rows; ++i) keep[static_cast<std::size_t>(i)] = fraction_kept(seed, t.row_offset + i, fraction);
  keep_rows(t, keep);
  finish_table(comm, t, what);
  LOCKSTEP_CHECK(t.global_rows > 0, ConfigError, where, ": ", fraction, " of the ", before, " rows of ", what,
                 " keeps none (raise it, or change data.fraction_seed)");
}

void densify(Table& t, const std::string& what) {
  if (!t.sparse) return;
  const std::string sizing = what + ": the dense form of " + std::to_string(t.rows) + " rows of " +
                             shape_text(t.sample_shape) + " features";
  const std::int64_t f = checked_product<DataError>(t.sample_shape, sizing);
  const std::int64_t values = checked_mul<DataError>(t.rows, f, sizing);
  check_fits_memory<DataError>(checked_mul<DataError>(values, sizeof(float), sizing), sizing);
  t.features.assign(static_cast<std::size_t>(values), 0.0f);
  for (std::int64_t i = 0; i < t.rows; ++i)
    for (std::int64_t k = t.indptr[static_cast<std::size_t>(i)]; k < t.indptr[static_cast<std::size_t>(i + 1)]; ++k)
      t.features[static_cast<std::size_t>(i * f + t.indices[static_cast<std::size_t>(k)])] =
          t.values[static_cast<std::size_t>(k)];
  t.sparse = false;
  t.indptr = {};
  t.indices = {};
  t.values = {};
}

void densify(comm::Communicator& comm, Table& t, const std::string& what) {
  comm.collectively([&] { densify(t, what); }, comm::Communicator::ErrorKind::kData);
}

namespace {
// Resizes a buffer that may be reused: a first allocation asks for huge pages (huge_pages.hpp), a
// smaller size keeps the capacity.
template <typename V>
void size_buffer(V& v, std::size_t n) {
  if (v.capacity() < n) {
    V fresh;
    reserve_huge(fresh, n + n / 16);  // room for the next epoch's slightly larger share
    v.swap(fresh);
  }
  v.resize(n);
}
// Allocates n (with the margin of size_buffer) and writes the whole capacity; leaves v empty.
template <typename V>
void touch_buffer(V& v, std::size_t n) {
  v.clear();
  size_buffer(v, n);
  v.resize(v.capacity());
  v.clear();
}
}  // namespace

void prepare_repartition(const Table& t, std::int64_t rows, Table& out, RepartitionScratch& scratch) {
  if (t.sparse || rows <= 0) return;
  const auto n = static_cast<std::size_t>(rows), f = static_cast<std::size_t>(t.num_features()),
             l = static_cast<std::size_t>(t.num_labels);
  const std::size_t row_bytes = (f + l) * sizeof(float) + sizeof(std::int64_t);
  touch_buffer(scratch.send, n * row_bytes);
  touch_buffer(scratch.recv, n * row_bytes);
  touch_buffer(out.features, n * f);
}

Table repartition_rows(comm::Communicator& comm, const Table& t, std::span<const int> dest,
                       std::vector<std::int64_t>* global_ids) {
  Table out;
  RepartitionScratch scratch;
  repartition_rows_into(comm, t, dest, out, global_ids, scratch);
  return out;
}

void repartition_rows_into(comm::Communicator& comm, const Table& t, std::span<const int> dest, Table& out,
                           std::vector<std::int64_t>* global_ids, RepartitionScratch& scratch) {
  LOCKSTEP_CHECK(!t.sparse, Error, "repartition_rows: expected a dense table");
  LOCKSTEP_CHECK(static_cast<std::int64_t>(dest.size()) == t.rows, Error, "repartition_rows: expected ", t.rows,
                 " destinations, got ", dest.size());
  const int p = comm.size();
  const std::int64_t f = t.num_features(), l = t.num_labels;
  // One row on the wire: its features, its labels, its global index (as raw int64 bytes).
  const std::size_t row_bytes = static_cast<std::size_t>(f + l) * sizeof(float) + sizeof(std::int64_t);
  std::vector<std::size_t> send_rows(static_cast<std::size_t>(p), 0);
  for (const int d : dest) {
    LOCKSTEP_CHECK(d >= -1 && d < p, Error, "repartition_rows: destination ", d, " out of range");
    if (d >= 0) ++send_rows[static_cast<std::size_t>(d)];
  }
  std::vector<std::size_t> start(static_cast<std::size_t>(p) + 1, 0);
  for (int r = 0; r < p; ++r)
    start[static_cast<std::size_t>(r) + 1] =
        start[static_cast<std::size_t>(r)] + send_rows[static_cast<std::size_t>(r)];
  std::vector<char>& send = scratch.send;
  send.clear();
  size_buffer(send, start.back() * row_bytes);
  std::vector<std::size_t> cursor(start.begin(), start.end() - 1);
  for (std::int64_t i = 0; i < t.rows; ++i) {
    const int d = dest[static_cast<std::size_t>(i)];
    if (d < 0) continue;
    char* o = send.data() + cursor[static_cast<std::size_t>(d)]++ * row_bytes;
    std::memcpy(o, t.row(i), static_cast<std::size_t>(f) * sizeof(float));
    std::memcpy(o + f * sizeof(float), t.labels.data() + i * l, static_cast<std::size_t>(l) * sizeof(float));
    const std::int64_t id = t.row_offset + i;
    std::memcpy(o + (f + l) * sizeof(float), &id, sizeof id);
  }
  std::vector<std::size_t> recv_rows(static_cast<std::size_t>(p), 0);
  comm.alltoall(send_rows.data(), sizeof(std::size_t), recv_rows.data());
  std::vector<std::size_t> send_bytes(static_cast<std::size_t>(p)), recv_bytes(static_cast<std::size_t>(p));
  std::size_t total = 0;
  for (int r = 0; r < p; ++r) {
    send_bytes[static_cast<std::size_t>(r)] = send_rows[static_cast<std::size_t>(r)] * row_bytes;
    recv_bytes[static_cast<std::size_t>(r)] = recv_rows[static_cast<std::size_t>(r)] * row_bytes;
    total += recv_rows[static_cast<std::size_t>(r)];
  }
  std::vector<char>& recv = scratch.recv;
  recv.clear();
  size_buffer(recv, total * row_bytes);
  comm.alltoallv(send.data(), send_bytes, recv.data(), recv_bytes);
  out.sample_shape = t.sample_shape;
  out.num_labels = l;
  out.rows = static_cast<std::int64_t>(total);
  out.features.clear();  // no copy of old rows if the storage grows
  size_buffer(out.features, total * static_cast<std::size_t>(f));
  out.labels.resize(total * static_cast<std::size_t>(l));
  if (global_ids) global_ids->resize(total);
  for (std::size_t i = 0; i < total; ++i) {
    const char* in = recv.data() + i * row_bytes;
    std::memcpy(out.features.data() + i * static_cast<std::size_t>(f), in, static_cast<std::size_t>(f) * sizeof(float));
    std::memcpy(out.labels.data() + i * static_cast<std::size_t>(l), in + f * sizeof(float),
                static_cast<std::size_t>(l) * sizeof(float));
    if (global_ids) std::memcpy(&(*global_ids)[i], in + (f + l) * sizeof(float), sizeof(std::int64_t));
  }
}

}  // namespace lockstep::data
