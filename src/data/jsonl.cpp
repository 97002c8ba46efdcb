// JSON-lines reader (format: jsonl): one JSON object per line, e.g. scripts/fetch_spam.sh's
// {"id": "...", "label": 1, "text": "..."}. Each rank reads the lines that start in its byte share
// (read_line_split, as CSV); line numbers in messages are global. Only the top-level members are
// looked at: the label, the named numeric feature columns (numbers or booleans) and the named text
// columns (strings, escapes decoded to UTF-8); other members, nested ones included, are skipped
// after being checked for well-formedness. Objects have no column order, so numeric features are
// only those listed in feature_columns.
#include <algorithm>
#include <cmath>

#include "data/source_util.hpp"
#include "lockstep/data/source.hpp"

namespace lockstep::data {
namespace {

using detail::collectively;

// A cursor over one line; every error names the line and what was expected.
class JsonLine {
 public:
  JsonLine(std::string_view s, const std::string& where) : s_(s), where_(where) {}

  void space() {
    while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\t' || s_[i_] == '\r')) ++i_;
  }
  bool at_end() {
    space();
    return i_ >= s_.size();
  }
  char peek() {
    space();
    return i_ < s_.size() ? s_[i_] : '\0';
  }
  void expect(char c) {
    if (peek() != c) fail(std::string("expected '") + c + "'");
    ++i_;
  }
  [[noreturn]] void fail(const std::string& what) const {
    throw DataError(where_ + ": " + what + " at column " + std::to_string(i_ + 1) + " of the JSON object");
  }

  std::string string() {
    expect('"');
    std::string out;
    while (true) {
      if (i_ >= s_.size()) fail("a string is not closed");
      const char c = s_[i_++];
      if (c == '"') return out;
      if (static_cast<unsigned char>(c) < 0x20) fail("a control character inside a string");
      if (c != '\\') {
        out += c;
        continue;
      }
      if (i_ >= s_.size()) fail("a string is not closed");
      const char e = s_[i_++];
      switch (e) {
        case '"': out += '"'; break;
        case '\\': out += '\\'; break;
        case '/': out += '/'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'n': out += '\n'; break;
        case 'r': out += '\r'; break;
        case 't': out += '\t'; break;
        case 'u': utf8(out); break;
        default: fail(std::string("an unknown escape \\") + e);
      }
    }
  }

  // A number, true/false (1/0), or null (NaN).
  double number() {
    const char c = peek();
    if (s_.compare(i_, 4, "true") == 0) return i_ += 4, 1.0;
    if (s_.compare(i_, 5, "false") == 0) return i_ += 5, 0.0;
    if (s_.compare(i_, 4, "null") == 0) return i_ += 4, std::nan("");
    const std::size_t b = i_;
    while (i_ < s_.size() && (std::isdigit(static_cast<unsigned char>(s_[i_])) || s_[i_] == '-' || s_[i_] == '+' ||
                              s_[i_] == '.' || s_[i_] == 'e' || s_[i_] == 'E'))
      ++i_;
    float v = 0.0f;
    if (b == i_ || !detail::parse_float(s_.substr(b, i_ - b), v))
      fail(c == '"' ? "expected a number, got a string" : "expected a number");
    return v;
  }

  // Any value, checked and skipped.
  void skip() {
    const char c = peek();
    if (c == '"') {
      (void)string();
    } else if (c == '{' || c == '[') {
      ++i_;
      const char close = c == '{' ? '}' : ']';
      if (peek() == close) {
        ++i_;
        return;
      }
      while (true) {
        if (c == '{') {
          (void)string();
          expect(':');
        }
        skip();
        if (peek() == ',') {
          ++i_;
          continue;
        }
        expect(close);
        return;
      }
    } else {
      (void)number();
    }
  }

 private:
  unsigned hex4() {
    if (i_ + 4 > s_.size()) fail("a \\u escape needs four hex digits");
    unsigned v = 0;
    for (int k = 0; k < 4; ++k) {
      const char h = s_[i_++];
      v <<= 4;
      if (h >= '0' && h <= '9') v |= static_cast<unsigned>(h - '0');
      else if (h >= 'a' && h <= 'f') v |= static_cast<unsigned>(h - 'a' + 10);
      else if (h >= 'A' && h <= 'F') v |= static_cast<unsigned>(h - 'A' + 10);
      else fail("a \\u escape needs four hex digits");
    }
    return v;
  }
  void utf8(std::string& out) {
    unsigned cp = hex4();
    if (cp >= 0xD800 && cp <= 0xDBFF && s_.compare(i_, 2, "\\u") == 0) {  // a surrogate pair
      i_ += 2;
      const unsigned lo = hex4();
      cp = lo >= 0xDC00 && lo <= 0xDFFF ? 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00) : 0xFFFD;
    } else if (cp >= 0xD800 && cp <= 0xDFFF) {
      cp = 0xFFFD;  // a lone surrogate: the replacement character, as Python's decoder with errors=replace
    }
    if (cp < 0x80) {
      out += static_cast<char>(cp);
    } else if (cp < 0x800) {
      out += static_cast<char>(0xC0 | (cp >> 6));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
      out += static_cast<char>(0xE0 | (cp >> 12));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
      out += static_cast<char>(0xF0 | (cp >> 18));
      out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    }
  }

  std::string_view s_;
  const std::string& where_;
  std::size_t i_ = 0;
};

struct JsonlOptions {
  std::string label_column = "label";
  std::vector<std::string> feature_columns, string_columns, label_columns;
  bool labels_optional = false;
};

// One object: the wanted members' values, in the order of `numeric` and `strings`.
void read_object(JsonLine& j, const std::vector<std::string>& numeric, const std::vector<std::string>& strings,
                 std::vector<double>& nums, std::vector<std::string>& texts, std::vector<char>& seen) {
  std::fill(seen.begin(), seen.end(), 0);
  j.expect('{');
  if (j.peek() == '}') {
    j.expect('}');
  } else {
    while (true) {
      const std::string key = j.string();
      j.expect(':');
      const auto n = std::find(numeric.begin(), numeric.end(), key);
      const auto t = std::find(strings.begin(), strings.end(), key);
      if (n != numeric.end()) {
        const auto k = static_cast<std::size_t>(n - numeric.begin());
        nums[k] = j.number();
        seen[k] = 1;
      } else if (t != strings.end()) {
        const auto k = static_cast<std::size_t>(t - strings.begin());
        if (j.peek() != '"') j.fail("member \"" + key + "\" is a text column: expected a string");
        texts[k] = j.string();
        seen[numeric.size() + k] = 1;
      } else {
        j.skip();
      }
      if (j.peek() == ',') {
        j.expect(',');
        continue;
      }
      j.expect('}');
      break;
    }
  }
  if (!j.at_end()) j.fail("expected the end of the line after the object");
}

Table read_jsonl_table(comm::Communicator& comm, const std::string& path, const JsonlOptions& o) {
  std::string text;
  collectively(comm, [&] {
    detail::File f = detail::open_file(path);
    const std::int64_t size = detail::file_size(f.get(), path);
    text = detail::read_line_split(f.get(), path, 0, size, comm.rank(), comm.size());
  });
  const std::int64_t first_line = 1 + comm.exscan(detail::count_lines(text));
  const std::vector<std::string> all_labels =
      o.label_columns.empty() ? std::vector<std::string>{o.label_column} : o.label_columns;
  // A label that is also a text column (for a StringIndexer with outputCol label) reads as text
  // and its numeric label is 0, as in CSV.
  const auto is_text = [&](const std::string& c) {
    return std::find(o.string_columns.begin(), o.string_columns.end(), c) != o.string_columns.end();
  };
  std::vector<std::string> labels;
  for (const auto& l : all_labels)
    if (!is_text(l)) labels.push_back(l);
  std::vector<std::string> numeric = labels;
  numeric.insert(numeric.end(), o.feature_columns.begin(), o.feature_columns.end());
  for (const auto& c : o.feature_columns)
    LOCKSTEP_CHECK(!is_text(c), ConfigError, path, ": column \"", c, "\" is listed both as a feature and as a string column");
  Table t;
  t.sample_shape = {static_cast<std::int64_t>(o.feature_columns.size())};
  t.num_labels = static_cast<std::int64_t>(all_labels.size());
  t.feature_names = o.feature_columns;
  t.text_names = o.string_columns;
  t.text.resize(o.string_columns.size());
  std::vector<double> nums(numeric.size());
  std::vector<std::string> texts(o.string_columns.size());
  std::vector<char> seen(numeric.size() + texts.size());
  collectively(comm, [&] {
    detail::for_each_line(text, first_line, [&](std::int64_t line_no, std::string_view line) {
      if (detail::is_blank(line)) return;
      const std::string where = path + ":" + std::to_string(line_no);
      JsonLine j(line, where);
      read_object(j, numeric, o.string_columns, nums, texts, seen);
      for (std::size_t k = 0; k < seen.size(); ++k) {
        const bool is_label = k < labels.size();
        if (seen[k] || (is_label && o.labels_optional)) continue;
        const std::string& name = k < numeric.size() ? numeric[k] : o.string_columns[k - numeric.size()];
        throw DataError(where + ": the object has no member \"" + name + "\" (" +
                        (is_label ? "the label" : k < numeric.size() ? "a feature column" : "a text column") + ")");
      }
      std::size_t next = 0;
      for (const auto& l : all_labels) {
        const bool numeric_label = !is_text(l);
        t.labels.push_back(numeric_label && seen[next] ? static_cast<float>(nums[next]) : 0.0f);
        next += numeric_label;
      }
      for (std::size_t k = labels.size(); k < numeric.size(); ++k) t.features.push_back(static_cast<float>(nums[k]));
      for (std::size_t k = 0; k < texts.size(); ++k) t.text[k].push_back(std::move(texts[k]));
      ++t.rows;
    });
  });
  return t;
}

Table read_jsonl_source(comm::Communicator& comm, const SourceRequest& req, ParamReader& p) {
  JsonlOptions o;
  p.get("label_column", o.label_column);
  p.get_list("feature_columns", o.feature_columns);
  p.get_list("string_columns", o.string_columns);
  p.finish();
  o.label_columns = req.label_columns;
  o.labels_optional = req.split == SplitKind::kFile;
  return read_jsonl_table(comm, req.features, o);
}

const SourceRegistrar kJsonl{
    Source{"jsonl", {"label_column", "feature_columns", "string_columns"}, true, true, read_jsonl_source}};

}  // namespace
}  // namespace lockstep::data
