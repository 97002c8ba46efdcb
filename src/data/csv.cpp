// CSV reader. Every rank reads the header line itself (it is short, and saves a broadcast), then
// only the lines that start in its byte share of the body (see read_line_split). Line numbers in
// messages are global: each rank counts its lines and an exclusive scan gives it the number of
// lines before its first one. Only the selected columns need to hold numbers, so a CSV with an id
// or name column can still be read by naming the feature columns.
#include <algorithm>

#include "data/source_util.hpp"
#include "lockstep/core/checked_size.hpp"
#include "lockstep/data/source.hpp"
#include "lockstep/data/sources.hpp"

namespace lockstep::data {
namespace {

using detail::collectively;

// Splits on `delim`; fields keep their surrounding spaces (trimmed when parsed). A field whose
// first non-space character is a double quote runs to its closing quote (RFC 4180: a doubled quote
// inside stands for one), so it may hold the delimiter; false when a quote is not closed on the line.
bool split_fields(std::string_view line, char delim, std::vector<std::string_view>& out) {
  out.clear();
  std::size_t pos = 0;
  while (true) {
    std::size_t scan = pos;
    while (scan < line.size() && (line[scan] == ' ' || line[scan] == '\t') && line[scan] != delim) ++scan;
    if (scan < line.size() && line[scan] == '"') {
      std::size_t q = scan + 1;
      while (true) {
        q = line.find('"', q);
        if (q == std::string_view::npos) return false;
        if (q + 1 < line.size() && line[q + 1] == '"') {
          q += 2;
          continue;
        }
        break;
      }
      scan = q + 1;
    }
    const std::size_t end = line.find(delim, scan);
    if (end == std::string_view::npos) {
      out.push_back(line.substr(pos));
      return true;
    }
    out.push_back(line.substr(pos, end - pos));
    pos = end + 1;
  }
}

// A header name or field without its surrounding spaces and one pair of double quotes.
std::string_view unquote(std::string_view s) {
  s = detail::trim(s);
  if (s.size() >= 2 && s.front() == '"' && s.back() == '"') s = s.substr(1, s.size() - 2);
  return s;
}

// A text field's value: unquoted, each doubled quote inside a quoted field read as one.
std::string unquote_text(std::string_view field) {
  const std::string_view t = detail::trim(field);
  const bool quoted = t.size() >= 2 && t.front() == '"' && t.back() == '"';
  const std::string_view s = unquote(field);
  if (!quoted || s.find('"') == std::string_view::npos) return std::string(s);
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) {
    out += s[i];
    if (s[i] == '"' && i + 1 < s.size() && s[i + 1] == '"') ++i;
  }
  return out;
}

std::string list_columns(const std::vector<std::string>& names) {
  constexpr std::size_t kMax = 50;
  std::string s;
  for (std::size_t i = 0; i < names.size() && i < kMax; ++i) s += (i ? ", " : "") + detail::quoted(names[i]);
  if (names.size() > kMax) s += ", ... (" + std::to_string(names.size()) + " in all)";
  return s;
}

std::size_t find_column(const std::vector<std::string>& names, const std::string& want, const std::string& path,
                        const char* role) {
  const auto it = std::find(names.begin(), names.end(), want);
  if (it == names.end()) {
    throw DataError(path + ":1: " + role + " " + detail::quoted(want) + " not found; the header has columns " +
                    list_columns(names));
  }
  if (std::find(it + 1, names.end(), want) != names.end()) {
    throw DataError(path + ":1: " + role + " " + detail::quoted(want) + " appears more than once in the header");
  }
  return static_cast<std::size_t>(it - names.begin());
}

struct Columns {
  std::vector<std::string> names;
  std::size_t label = 0;
  std::vector<std::size_t> labels;  // label_columns, when given
  std::vector<std::size_t> features;
  std::vector<std::size_t> strings;
  bool label_is_string = false;
};

Columns resolve_columns(std::string header, const std::string& path, const CsvOptions& options) {
  if (!header.empty() && header.back() == '\r') header.pop_back();
  if (header.starts_with("\xEF\xBB\xBF")) header.erase(0, 3);  // the UTF-8 byte-order mark some spreadsheets write
  if (detail::is_blank(header))
    throw DataError(path + ":1: expected a header line naming the columns, got a blank line");
  Columns c;
  std::vector<std::string_view> fields;
  if (!split_fields(header, options.delimiter, fields))
    throw DataError(path + ":1: a quoted column name is not closed by a double quote on this line");
  for (const auto f : fields) c.names.emplace_back(unquote(f));
  const auto in_header = [&](const std::string& n) { return std::find(c.names.begin(), c.names.end(), n) != c.names.end(); };
  const bool unlabelled = options.labels_optional &&
                          (options.label_columns.empty() ? !in_header(options.label_column)
                                                         : std::none_of(options.label_columns.begin(),
                                                                        options.label_columns.end(), in_header));
  if (unlabelled) {
    // No label column: every other column is a feature; the labels are 0 (read_csv_table).
  } else if (options.label_columns.empty()) {
    c.label = find_column(c.names, options.label_column, path, "label column");
    c.labels = {c.label};
  } else {
    for (const auto& name : options.label_columns) c.labels.push_back(find_column(c.names, name, path, "label column"));
    c.label = c.labels[0];
  }
  const auto is_label = [&](std::size_t i) { return std::find(c.labels.begin(), c.labels.end(), i) != c.labels.end(); };
  for (const auto& name : options.string_columns)
    c.strings.push_back(find_column(c.names, name, path, "string column"));
  const auto is_string = [&](std::size_t i) {
    return std::find(c.strings.begin(), c.strings.end(), i) != c.strings.end();
  };
  c.label_is_string = !c.labels.empty() && is_string(c.label);
  if (options.feature_columns.empty()) {
    for (std::size_t i = 0; i < c.names.size(); ++i) {
      if (!is_label(i) && !is_string(i)) c.features.push_back(i);
    }
  } else {
    for (const auto& name : options.feature_columns) {
      c.features.push_back(find_column(c.names, name, path, "feature column"));
      if (is_string(c.features.back()))
        throw ConfigError(path + ": column " + detail::quoted(name) +
                          " is listed both as a feature and as a string column");
    }
  }
  return c;
}

}  // namespace

Table read_csv_table(comm::Communicator& comm, const std::string& path, const CsvOptions& options) {
  Columns cols;
  std::string text;
  collectively(comm, [&] {
    const char d = options.delimiter;
    LOCKSTEP_CHECK(d != '\n' && d != '\r' && d != '"' && d != '\0', ConfigError, "read_csv(", path,
                   "): expected a delimiter other than a newline, carriage return, quote or NUL, got character ",
                   static_cast<int>(d));
    detail::File f = detail::open_file(path);
    const std::int64_t size = detail::file_size(f.get(), path);
    if (size == 0) throw DataError(path + ":1: expected a header line naming the columns, the file is empty");
    std::int64_t body_begin = 0;
    cols = resolve_columns(detail::read_line_at(f.get(), path, 0, size, &body_begin), path, options);
    text = detail::read_line_split(f.get(), path, body_begin, size, comm.rank(), comm.size());
  });
  // Line 1 is the header.
  const std::int64_t first_line = 2 + comm.exscan(detail::count_lines(text));

  Table t;
  t.sample_shape = {static_cast<std::int64_t>(cols.features.size())};
  // Without label columns (labels_optional), as many zero labels as the config's targets.
  const std::size_t zero_labels =
      cols.labels.empty() ? std::max<std::size_t>(1, options.label_columns.size()) : std::size_t{0};
  t.num_labels = static_cast<std::int64_t>(cols.labels.size() + zero_labels);
  for (const std::size_t c : cols.features) t.feature_names.push_back(cols.names[c]);
  t.text_names = options.string_columns;
  t.text.resize(cols.strings.size());
  // Rows are appended straight into the blocks; reserving by the row count keeps it one allocation.
  // A row of n columns takes at least n bytes (n - 1 delimiters and its newline, or one non-blank
  // character), so the reservation is bounded by the bytes read: a header of a million columns over
  // a body of blank lines must not reserve lines x columns.
  const std::int64_t most_rows =
      std::min(detail::count_lines(text), static_cast<std::int64_t>(text.size() / cols.names.size()) + 1);
  const std::string sizing = path + ": " + std::to_string(most_rows) + " rows of " +
                             std::to_string(cols.features.size()) + " features";
  t.features.reserve(static_cast<std::size_t>(
      checked_mul<DataError>(most_rows, static_cast<std::int64_t>(cols.features.size()), sizing)));
  t.labels.reserve(static_cast<std::size_t>(
      checked_mul<DataError>(most_rows, static_cast<std::int64_t>(cols.labels.size()), sizing)));
  collectively(comm, [&] {
    // A tab-separated line of empty fields is a row with missing values, not a blank line.
    const char* blank_chars = options.delimiter == '\t' ? " " : " \t";
    std::vector<std::string_view> fields;
    detail::for_each_line(text, first_line, [&](std::int64_t line_no, std::string_view line) {
      if (line.find_first_not_of(blank_chars) == std::string_view::npos) return;
      if (!split_fields(line, options.delimiter, fields))
        throw DataError(path + ":" + std::to_string(line_no) +
                        ": a quoted field is not closed by a double quote on this line (a field may not span lines)");
      if (fields.size() != cols.names.size()) {
        throw DataError(path + ":" + std::to_string(line_no) + ": expected " + std::to_string(cols.names.size()) +
                        " columns, got " + std::to_string(fields.size()));
      }
      const auto number = [&](std::size_t col) {
        float v = 0.0f;
        const std::string_view field = unquote(fields[col]);
        if (!detail::parse_float(field, v)) {
          throw DataError(path + ":" + std::to_string(line_no) + ": column " + detail::quoted(cols.names[col]) +
                          ": expected a number, got " + detail::quoted(field));
        }
        return v;
      };
      for (const std::size_t c : cols.labels)
        t.labels.push_back(cols.label_is_string && c == cols.label ? 0.0f : number(c));
      t.labels.insert(t.labels.end(), zero_labels, 0.0f);
      for (const std::size_t c : cols.features) t.features.push_back(number(c));
      for (std::size_t k = 0; k < cols.strings.size(); ++k) t.text[k].push_back(unquote_text(fields[cols.strings[k]]));
      ++t.rows;
    });
  });
  return t;
}

Partitioned<Example> read_csv(comm::Communicator& comm, const std::string& path, const CsvOptions& options,
                              CsvDetails* details) {
  Table t = read_csv_table(comm, path, options);
  if (details) {
    *details = CsvDetails{};
    details->feature_names = t.feature_names;
    details->strings.resize(static_cast<std::size_t>(t.rows));
    for (std::int64_t i = 0; i < t.rows; ++i)
      for (const auto& col : t.text)
        details->strings[static_cast<std::size_t>(i)].push_back(col[static_cast<std::size_t>(i)]);
  }
  return to_examples(comm, t);
}

namespace {

Table read_csv_source(comm::Communicator& comm, const SourceRequest& req, ParamReader& p) {
  CsvOptions o;
  p.get("label_column", o.label_column);
  p.get_list("feature_columns", o.feature_columns);
  p.get_list("string_columns", o.string_columns);
  std::string delimiter(1, o.delimiter);
  p.get("delimiter", delimiter,
        ParamRange<std::string>{[](const std::string& v) { return v.size() == 1; }, "one character"});
  o.delimiter = delimiter[0];
  p.finish();
  o.label_columns = req.label_columns;
  o.labels_optional = req.split == SplitKind::kFile;
  return read_csv_table(comm, req.features, o);
}

const SourceRegistrar kCsv{
    Source{"csv", {"label_column", "feature_columns", "string_columns", "delimiter"}, true, true, read_csv_source}};

}  // namespace

}  // namespace lockstep::data
