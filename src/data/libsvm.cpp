// LIBSVM / SVMlight reader: "label index:value index:value ... # comment", 1-based strictly
// increasing indices, split between ranks by byte range at line boundaries like the CSV reader.
// SVMlight's "qid:n" tokens (query ids for ranking) are skipped. Indices are stored 0-based.
// When num_features is not given it is the largest index on any rank, so it is the same
// everywhere.
#include <algorithm>
#include <limits>

#include "data/source_util.hpp"
#include "lockstep/data/source.hpp"
#include "lockstep/data/sources.hpp"

namespace lockstep::data {

using detail::collectively;

Table read_libsvm_table(comm::Communicator& comm, const std::string& path, const LibsvmOptions& options) {
  std::string text;
  collectively(comm, [&] {
    LOCKSTEP_CHECK(options.num_features >= 0, ConfigError, "read_libsvm(", path,
                   "): expected num_features >= 0 (0 to infer it), got ", options.num_features);
    detail::File f = detail::open_file(path);
    const std::int64_t size = detail::file_size(f.get(), path);
    text = detail::read_line_split(f.get(), path, 0, size, comm.rank(), comm.size());
  });
  const std::int64_t first_line = 1 + comm.exscan(detail::count_lines(text));

  // Indices are int32 in SparseExample, 0-based; the 1-based index in the file may be one more.
  constexpr std::int64_t kMaxIndex = std::int64_t{std::numeric_limits<std::int32_t>::max()} + 1;
  // Rows go straight into CSR arrays: entries, then one indptr step per row.
  Table t;
  t.sparse = true;
  t.indptr.push_back(0);
  std::int64_t max_index = 0;
  collectively(comm, [&] {
    detail::for_each_line(text, first_line, [&](std::int64_t line_no, std::string_view line) {
      const std::string where = path + ":" + std::to_string(line_no) + ": ";
      if (const auto hash = line.find('#'); hash != std::string_view::npos) line = line.substr(0, hash);
      const std::size_t first_entry = t.indices.size();
      float label = 0.0f;
      bool have_label = false;
      std::int64_t prev = 0;
      std::size_t pos = 0;
      while (pos < line.size()) {
        const std::size_t start = line.find_first_not_of(" \t", pos);
        if (start == std::string_view::npos) break;
        std::size_t end = line.find_first_of(" \t", start);
        if (end == std::string_view::npos) end = line.size();
        const std::string_view tok = line.substr(start, end - start);
        pos = end;
        if (!have_label) {
          if (!detail::parse_float(tok, label))
            throw DataError(where + "expected a numeric label, got " + detail::quoted(tok));
          have_label = true;
          continue;
        }
        const std::size_t colon = tok.find(':');
        if (colon == std::string_view::npos) {
          throw DataError(where + "expected \"index:value\", got " + detail::quoted(tok));
        }
        if (tok.substr(0, colon) == "qid") continue;
        std::int64_t index = 0;
        float value = 0.0f;
        if (!detail::parse_int(tok.substr(0, colon), index)) {
          throw DataError(where + "expected an integer feature index, got " + detail::quoted(tok.substr(0, colon)));
        }
        if (index < 1 || index <= prev) {
          throw DataError(where + "feature index " + std::to_string(index) + " is invalid" +
                          (index >= 1 ? " after index " + std::to_string(prev) : std::string()) +
                          " (LIBSVM indices are 1-based and strictly increasing)");
        }
        if (options.num_features > 0 && index > options.num_features) {
          throw DataError(where + "feature index " + std::to_string(index) + " exceeds num_features " +
                          std::to_string(options.num_features));
        }
        if (index > kMaxIndex) {
          throw DataError(where + "feature index " + std::to_string(index) + " exceeds the largest supported, " +
                          std::to_string(kMaxIndex));
        }
        if (!detail::parse_float(tok.substr(colon + 1), value)) {
          throw DataError(where + "feature " + std::to_string(index) + ": expected a number, got " +
                          detail::quoted(tok.substr(colon + 1)));
        }
        t.indices.push_back(static_cast<std::int32_t>(index - 1));
        t.values.push_back(value);
        prev = index;
      }
      if (!have_label) {  // a blank or comment-only line
        t.indices.resize(first_entry);
        t.values.resize(first_entry);
        return;
      }
      max_index = std::max(max_index, prev);
      t.labels.push_back(label);
      t.indptr.push_back(static_cast<std::int64_t>(t.indices.size()));
      ++t.rows;
    });
  });
  const std::int64_t num_features =
      options.num_features > 0 ? options.num_features : comm.allreduce<std::int64_t>(max_index, comm::ReduceOp::kMax);
  t.sample_shape = {num_features};
  return t;
}

LibsvmData read_libsvm(comm::Communicator& comm, const std::string& path, const LibsvmOptions& options) {
  const Table t = read_libsvm_table(comm, path, options);
  std::vector<SparseExample> rows(static_cast<std::size_t>(t.rows));
  for (std::int64_t i = 0; i < t.rows; ++i) {
    auto& e = rows[static_cast<std::size_t>(i)];
    const auto b = static_cast<std::ptrdiff_t>(t.indptr[static_cast<std::size_t>(i)]);
    const auto end = static_cast<std::ptrdiff_t>(t.indptr[static_cast<std::size_t>(i + 1)]);
    e.indices.assign(t.indices.begin() + b, t.indices.begin() + end);
    e.values.assign(t.values.begin() + b, t.values.begin() + end);
    e.label = t.labels[static_cast<std::size_t>(i)];
  }
  return LibsvmData{Partitioned<SparseExample>::from_local(comm, std::move(rows)), t.num_features()};
}

namespace {

Table read_libsvm_source(comm::Communicator& comm, const SourceRequest& req, ParamReader& p) {
  LibsvmOptions o;
  p.get("num_features", o.num_features, at_least(std::int64_t{0}));
  p.finish();
  return read_libsvm_table(comm, req.features, o);
}

const SourceRegistrar kLibsvm{Source{"libsvm", {"num_features"}, true, false, read_libsvm_source}};

}  // namespace

}  // namespace lockstep::data
