// Text stages (text.hpp): tokenisers, stop words, n-grams, hashed and counted term frequencies,
// IDF. Every transform works row by row on this rank's rows, so its output for a row is the same
// bits at any number of ranks; the two fits (CountVectorizer, IDF) combine per-rank counts with a
// keyed reduction or an allreduce of integers, which is exact.
#include "lockstep/ml/text.hpp"

#include <algorithm>
#include <cmath>
#include <regex>
#include <unordered_map>
#include <unordered_set>

#include "lockstep/core/error.hpp"
#include "lockstep/core/murmur3.hpp"
#include "lockstep/data/wide.hpp"

namespace lockstep::ml {
namespace {

// Java's \s: space, \t, \n, \x0B, \f, \r.
bool is_space(char c) {
  return c == ' ' || (c >= '\t' && c <= '\r');
}

// ECMAScript's \w: ASCII letters, digits and the underscore.
bool is_word(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

std::string ascii_lower(std::string_view s) {
  std::string out(s);
  for (char& c : out)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return out;
}

// Unicode code points of UTF-8 text: bytes that do not continue a sequence.
std::int64_t code_points(std::string_view s) {
  std::int64_t n = 0;
  for (const char c : s) n += (static_cast<unsigned char>(c) & 0xC0) != 0x80;
  return n;
}

// Java's Pattern.split(input) (limit 0) given the matches [begin, end) in order: the pieces
// between matches, no empty leading piece for a zero-width match at 0, trailing empties dropped,
// and the whole input when nothing matched.
std::vector<std::string> java_split(std::string_view s, const std::vector<std::pair<std::size_t, std::size_t>>& m) {
  std::vector<std::string> out;
  if (m.empty()) return {std::string(s)};
  std::size_t index = 0;
  for (const auto& [b, e] : m) {
    if (index == 0 && b == 0 && e == 0) continue;
    out.emplace_back(s.substr(index, b - index));
    index = e;
  }
  out.emplace_back(s.substr(index));
  while (!out.empty() && out.back().empty()) out.pop_back();
  return out;
}

const std::string& input_strings_check(const std::string& stage, const std::string& in, const std::string& out) {
  LOCKSTEP_CHECK(!in.empty(), ConfigError, stage, ".inputCol: expected the name of a text column, got none");
  LOCKSTEP_CHECK(!out.empty(), ConfigError, stage, ".outputCol: expected a name for the token column, got none");
  return in;
}

// A token column from a function of each row's string (or each row's tokens).
template <typename Fn>
TokenColumn map_rows(std::int64_t rows, Fn&& fn) {
  TokenColumn out;
  for (std::int64_t i = 0; i < rows; ++i) {
    fn(i, out.values);
    out.end_row();
  }
  return out;
}

// CSR rows from per-row (column, value) lists, columns ascending and distinct within a row.
CsrMatrix csr_from_rows(std::int64_t rows, std::int64_t cols, const std::vector<std::int64_t>& row_ptr,
                        const std::vector<std::int64_t>& index, const std::vector<float>& value) {
  CsrMatrix x(rows, cols);
  x.reserve(static_cast<std::int64_t>(value.size()));
  for (std::int64_t i = 0; i < rows; ++i) {
    x.startVec(i);
    for (std::int64_t k = row_ptr[static_cast<std::size_t>(i)]; k < row_ptr[static_cast<std::size_t>(i + 1)]; ++k)
      x.insertBack(i, index[static_cast<std::size_t>(k)]) = value[static_cast<std::size_t>(k)];
  }
  x.finalize();
  return x;
}

// Sorts a row's term columns, then appends (column, count or 1) per distinct column.
void append_counts(std::vector<std::int64_t>& cols, bool binary, std::vector<std::int64_t>& index,
                   std::vector<float>& value) {
  std::sort(cols.begin(), cols.end());
  for (std::size_t k = 0; k < cols.size();) {
    std::size_t e = k;
    while (e < cols.size() && cols[e] == cols[k]) ++e;
    index.push_back(cols[k]);
    value.push_back(binary ? 1.0f : static_cast<float>(e - k));
    k = e;
  }
}

}  // namespace

const std::vector<std::string>& english_stop_words() {
  static const std::vector<std::string> words = {
      "i",        "me",       "my",      "myself",     "we",      "our",     "ours",    "ourselves", "you",
      "your",     "yours",    "yourself", "yourselves", "he",     "him",     "his",     "himself",   "she",
      "her",      "hers",     "herself", "it",         "its",     "itself",  "they",    "them",      "their",
      "theirs",   "themselves", "what",  "which",      "who",     "whom",    "this",    "that",      "these",
      "those",    "am",       "is",      "are",        "was",     "were",    "be",      "been",      "being",
      "have",     "has",      "had",     "having",     "do",      "does",    "did",     "doing",     "a",
      "an",       "the",      "and",     "but",        "if",      "or",      "because", "as",        "until",
      "while",    "of",       "at",      "by",         "for",     "with",    "about",   "against",   "between",
      "into",     "through",  "during",  "before",     "after",   "above",   "below",   "to",        "from",
      "up",       "down",     "in",      "out",        "on",      "off",     "over",    "under",     "again",
      "further",  "then",     "once",    "here",       "there",   "when",    "where",   "why",       "how",
      "all",      "any",      "both",    "each",       "few",     "more",    "most",    "other",     "some",
      "such",     "no",       "nor",     "not",        "only",    "own",     "same",    "so",        "than",
      "too",      "very",     "s",       "t",          "can",     "will",    "just",    "don",       "should",
      "now",      "d",        "ll",      "m",          "o",       "re",      "ve",      "y",         "ain",
      "aren",     "couldn",   "didn",    "doesn",      "hadn",    "hasn",    "haven",   "isn",       "ma",
      "mightn",   "mustn",    "needn",   "shan",       "shouldn", "wasn",    "weren",   "won",       "wouldn"};
  return words;
}

// ---- tokenisers ----

std::vector<std::string> tokenize(std::string_view s) {
  const std::string low = ascii_lower(s);
  std::vector<std::pair<std::size_t, std::size_t>> m;
  for (std::size_t i = 0; i < low.size(); ++i)
    if (is_space(low[i])) m.emplace_back(i, i + 1);
  return java_split(low, m);
}

Frame Tokenizer::transform(const Frame& f) const {
  const auto& text = f.strings(input_strings_check("Tokenizer", input_col, output_col));
  return f.with_tokens(output_col, map_rows(f.rows(), [&](std::int64_t i, std::vector<std::string>& out) {
    for (auto& t : tokenize(text[static_cast<std::size_t>(i)])) out.push_back(std::move(t));
  }));
}

std::vector<std::string> RegexTokenizer::tokens(std::string_view s) const {
  const std::string str = to_lowercase ? ascii_lower(s) : std::string(s);
  std::vector<std::pair<std::size_t, std::size_t>> m;
  // \s+, \S+, \w+ and \W+ (the default and the usual word patterns) without std::regex: runs of
  // one ASCII class, exactly what std::regex matches for them.
  static const std::vector<std::pair<std::string, bool (*)(char)>> kRuns = {
      {"\\s+", [](char c) { return is_space(c); }},
      {"\\S+", [](char c) { return !is_space(c); }},
      {"\\w+", [](char c) { return is_word(c); }},
      {"\\W+", [](char c) { return !is_word(c); }}};
  const auto run = std::find_if(kRuns.begin(), kRuns.end(), [&](const auto& r) { return r.first == pattern; });
  if (run != kRuns.end()) {
    const auto in_run = run->second;
    for (std::size_t i = 0; i < str.size();) {
      if (!in_run(str[i])) {
        ++i;
        continue;
      }
      std::size_t e = i;
      while (e < str.size() && in_run(str[e])) ++e;
      m.emplace_back(i, e);
      i = e;
    }
  } else {
    static thread_local std::string cached_pattern;
    static thread_local std::regex re;
    if (cached_pattern != pattern) {
      re = std::regex(pattern, std::regex::ECMAScript | std::regex::optimize);
      cached_pattern = pattern;
    }
    for (auto it = std::cregex_iterator(str.data(), str.data() + str.size(), re); it != std::cregex_iterator(); ++it)
      m.emplace_back(static_cast<std::size_t>(it->position()), static_cast<std::size_t>(it->position() + it->length()));
  }
  std::vector<std::string> pieces;
  if (gaps) {
    pieces = java_split(str, m);
  } else {
    for (const auto& [b, e] : m) pieces.push_back(str.substr(b, e - b));
  }
  std::erase_if(pieces, [&](const std::string& t) { return code_points(t) < min_token_length; });
  return pieces;
}

Frame RegexTokenizer::transform(const Frame& f) const {
  const auto& text = f.strings(input_strings_check("RegexTokenizer", input_col, output_col));
  LOCKSTEP_CHECK(min_token_length >= 0, ConfigError, "RegexTokenizer.minTokenLength: expected an integer >= 0, got ",
                 min_token_length);
  try {
    (void)std::regex(pattern, std::regex::ECMAScript);
  } catch (const std::regex_error& e) {
    throw ConfigError("RegexTokenizer.pattern: \"" + pattern + "\" is not a valid ECMAScript regular expression (" +
                      e.what() + ")");
  }
  return f.with_tokens(output_col, map_rows(f.rows(), [&](std::int64_t i, std::vector<std::string>& out) {
    for (auto& t : tokens(text[static_cast<std::size_t>(i)])) out.push_back(std::move(t));
  }));
}

Frame StopWordsRemover::transform(const Frame& f) const {
  const TokenColumn& in = f.tokens(input_strings_check("StopWordsRemover", input_col, output_col));
  std::unordered_set<std::string> stop;
  for (const auto& w : stop_words) stop.insert(case_sensitive ? w : ascii_lower(w));
  return f.with_tokens(output_col, map_rows(f.rows(), [&](std::int64_t i, std::vector<std::string>& out) {
    for (const auto& t : in.row(i)) {
      const bool fold = !case_sensitive && std::any_of(t.begin(), t.end(), [](char c) { return c >= 'A' && c <= 'Z'; });
      if (!stop.contains(fold ? ascii_lower(t) : t)) out.push_back(t);
    }
  }));
}

Frame NGram::transform(const Frame& f) const {
  const TokenColumn& in = f.tokens(input_strings_check("NGram", input_col, output_col));
  LOCKSTEP_CHECK(n >= 1, ConfigError, "NGram.n: expected an integer >= 1, got ", n);
  return f.with_tokens(output_col, map_rows(f.rows(), [&](std::int64_t i, std::vector<std::string>& out) {
    const auto row = in.row(i);
    const auto k = static_cast<std::size_t>(n);
    for (std::size_t b = 0; b + k <= row.size(); ++b) {
      std::string g = row[b];
      for (std::size_t j = 1; j < k; ++j) {
        g += ' ';
        g += row[b + j];
      }
      out.push_back(std::move(g));
    }
  }));
}

// ---- term frequencies ----

std::int64_t hashing_tf_index(std::string_view term, std::int64_t num_features) {
  const auto h = static_cast<std::int32_t>(murmur3_32(term.data(), term.size(), 42));
  const std::int64_t r = static_cast<std::int64_t>(h) % num_features;
  return r < 0 ? r + num_features : r;
}

namespace {
void check_features_output(const std::string& stage, const std::string& input_col) {
  LOCKSTEP_CHECK(!input_col.empty(), ConfigError, stage, ".inputCol: expected the name of a token column, got none");
}
}  // namespace

Frame HashingTF::transform(const Frame& f) const {
  check_features_output("HashingTF", input_col);
  LOCKSTEP_CHECK(num_features >= 1 && num_features <= (std::int64_t{1} << 31), ConfigError,
                 "HashingTF.numFeatures: expected an integer in [1, 2^31], got ", num_features);
  const TokenColumn& in = f.tokens(input_col);
  std::vector<std::int64_t> row_ptr{0}, index, cols;
  std::vector<float> value;
  for (std::int64_t i = 0; i < f.rows(); ++i) {
    cols.clear();
    for (const auto& t : in.row(i)) cols.push_back(hashing_tf_index(t, num_features));
    append_counts(cols, binary, index, value);
    row_ptr.push_back(static_cast<std::int64_t>(index.size()));
  }
  return f.with_features(csr_from_rows(f.rows(), num_features, row_ptr, index, value));
}

CountVectorizerModel fit_count_vectorizer(const Frame& f, const CountVectorizerParams& p) {
  check_features_output("CountVectorizer", p.input_col);
  LOCKSTEP_CHECK(p.vocab_size >= 1 && p.vocab_size <= (std::int64_t{1} << 31), ConfigError,
                 "CountVectorizer.vocabSize: expected an integer in [1, 2^31], got ", p.vocab_size);
  LOCKSTEP_CHECK(p.min_df >= 0 && p.max_df >= 0, ConfigError,
                 "CountVectorizer.minDF and maxDF: expected numbers >= 0, got ", p.min_df, " and ", p.max_df);
  LOCKSTEP_CHECK(p.min_tf >= 0, ConfigError, "CountVectorizer.minTF: expected a number >= 0, got ", p.min_tf);
  const TokenColumn& in = f.tokens(p.input_col);
  using Counts = std::pair<std::int64_t, std::int64_t>;  // (occurrences, documents)
  std::vector<std::pair<std::string, Counts>> local;
  std::unordered_map<std::string_view, std::int64_t> doc;
  for (std::int64_t i = 0; i < f.rows(); ++i) {
    doc.clear();
    for (const auto& t : in.row(i)) ++doc[t];
    for (const auto& [t, c] : doc) local.emplace_back(std::string(t), Counts{c, 1});
  }
  const auto combined = data::reduce_by_key(
      data::Partitioned<std::pair<std::string, Counts>>::from_local(f.comm(), std::move(local)),
      [](const Counts& a, const Counts& b) { return Counts{a.first + b.first, a.second + b.second}; });
  const auto docs = static_cast<double>(f.global_rows());
  const double min_df = p.min_df >= 1.0 ? p.min_df : p.min_df * docs;
  const double max_df = p.max_df >= 1.0 ? p.max_df : p.max_df * docs;
  const auto kept = combined.filter([=](const std::pair<std::string, Counts>& e) {
    const auto d = static_cast<double>(e.second.second);
    return d >= min_df && d <= max_df;
  });
  const auto top = data::take_ordered(kept, p.vocab_size,
                                      [](const std::pair<std::string, Counts>& a, const std::pair<std::string, Counts>& b) {
                                        if (a.second.first != b.second.first) return a.second.first > b.second.first;
                                        return a.first < b.first;
                                      });
  CountVectorizerModel m;
  m.input_col = p.input_col;
  m.min_tf = p.min_tf;
  m.binary = p.binary;
  for (const auto& e : top) m.vocabulary.push_back(e.first);
  LOCKSTEP_CHECK(!m.vocabulary.empty(), DataError, "CountVectorizer: no term of column \"", p.input_col,
                 "\" passes minDF = ", p.min_df, " and maxDF = ", p.max_df, " (", f.global_rows(), " documents)");
  return m;
}

Frame CountVectorizerModel::transform(const Frame& f) const {
  const TokenColumn& in = f.tokens(input_col);
  std::unordered_map<std::string_view, std::int64_t> column;
  for (std::size_t j = 0; j < vocabulary.size(); ++j) column.emplace(vocabulary[j], static_cast<std::int64_t>(j));
  std::vector<std::int64_t> row_ptr{0}, index, cols;
  std::vector<float> value;
  for (std::int64_t i = 0; i < f.rows(); ++i) {
    const auto row = in.row(i);
    cols.clear();
    for (const auto& t : row)
      if (const auto it = column.find(t); it != column.end()) cols.push_back(it->second);
    const std::size_t first = index.size();
    append_counts(cols, false, index, value);
    // Spark's minTF: a count, or (below 1) a fraction of the row's tokens; binary after it.
    const double least = min_tf >= 1.0 ? min_tf : min_tf * static_cast<double>(row.size());
    std::size_t w = first;
    for (std::size_t k = first; k < index.size(); ++k) {
      if (value[k] < least) continue;
      index[w] = index[k];
      value[w++] = binary ? 1.0f : value[k];
    }
    index.resize(w);
    value.resize(w);
    row_ptr.push_back(static_cast<std::int64_t>(w));
  }
  return f.with_features(
      csr_from_rows(f.rows(), static_cast<std::int64_t>(vocabulary.size()), row_ptr, index, value), vocabulary);
}

// ---- IDF ----

IdfModel fit_idf(const Frame& f, const IdfParams& p) {
  LOCKSTEP_CHECK(p.min_doc_freq >= 0, ConfigError, "IDF.minDocFreq: expected an integer >= 0, got ", p.min_doc_freq);
  const std::int64_t d = f.num_features();
  std::vector<std::int64_t> df(static_cast<std::size_t>(d), 0);
  f.visit([&](const auto& x) {
    using X = std::decay_t<decltype(x)>;
    if constexpr (std::is_same_v<X, CsrMatrix>) {
      for (std::int64_t i = 0; i < x.rows(); ++i)
        for (CsrMatrix::InnerIterator it(x, i); it; ++it) df[static_cast<std::size_t>(it.col())] += it.value() > 0;
    } else {
      for (std::int64_t i = 0; i < x.rows(); ++i)
        for (std::int64_t j = 0; j < d; ++j) df[static_cast<std::size_t>(j)] += x(i, j) > 0;
    }
  });
  f.comm().allreduce(std::span<std::int64_t>(df), comm::ReduceOp::kSum);
  IdfModel m;
  m.num_docs = f.global_rows();
  m.idf.resize(d);
  m.doc_freq.resize(d);
  for (std::int64_t j = 0; j < d; ++j) {
    const auto n = df[static_cast<std::size_t>(j)];
    m.doc_freq[j] = static_cast<double>(n);
    m.idf[j] = n >= p.min_doc_freq
                   ? std::log((static_cast<double>(m.num_docs) + 1.0) / (static_cast<double>(n) + 1.0))
                   : 0.0;
  }
  return m;
}

Frame IdfModel::transform(const Frame& f) const {
  LOCKSTEP_CHECK(f.num_features() == idf.size(), DataError, "IDF: fitted on ", idf.size(),
                 " feature columns, the data has ", f.num_features());
  const Eigen::VectorXf w = idf.cast<float>();
  if (f.is_sparse()) {
    CsrMatrix x = f.sparse_features();
    for (std::int64_t i = 0; i < x.outerSize(); ++i)
      for (CsrMatrix::InnerIterator it(x, i); it; ++it) it.valueRef() *= w[it.col()];
    return f.with_features(std::move(x), f.feature_names());
  }
  RowMatrix x = f.dense_features();
  x.array().rowwise() *= w.transpose().array();
  return f.with_features(std::move(x), f.feature_names());
}

}  // namespace lockstep::ml
