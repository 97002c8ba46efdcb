// The text stages (text.hpp) as pipeline stages: Tokenizer, RegexTokenizer, StopWordsRemover,
// NGram, HashingTF, CountVectorizer and IDF — parameters by Spark name, saved form (format
// version 1) and registry rows.
#include "lockstep/ml/text.hpp"
#include "ml/stage_rows.hpp"

namespace lockstep::ml {

namespace {
void put_strings(H5File& h, const std::string& path, const std::vector<std::string>& v) {
  h.create_strings(path, static_cast<std::int64_t>(v.size()));
  if (!v.empty()) h.write_string_rows(path, 0, v);
}
std::string required(const H5File& h, const std::string& g, const std::string& name) {
  std::string s = h.attr_string(g, name);
  expect_model(!s.empty(), h, g, "", "attribute " + name + ": expected a column name, found an empty one");
  return s;
}
}  // namespace

// ---- saved forms (outside the anonymous namespace: found by argument-dependent lookup) ----

void save_model(H5File& h, const std::string& g, const Tokenizer& m) {
  h.set_attr(g, "inputCol", m.input_col);
  h.set_attr(g, "outputCol", m.output_col);
}
Tokenizer load_tokenizer(const H5File& h, const std::string& g) {
  Tokenizer m;
  m.input_col = required(h, g, "inputCol");
  m.output_col = required(h, g, "outputCol");
  return m;
}

void save_model(H5File& h, const std::string& g, const RegexTokenizer& m) {
  h.set_attr(g, "inputCol", m.input_col);
  h.set_attr(g, "outputCol", m.output_col);
  h.set_attr(g, "pattern", m.pattern);
  h.set_attr(g, "gaps", static_cast<std::int64_t>(m.gaps));
  h.set_attr(g, "minTokenLength", m.min_token_length);
  h.set_attr(g, "toLowercase", static_cast<std::int64_t>(m.to_lowercase));
}
RegexTokenizer load_regex_tokenizer(const H5File& h, const std::string& g) {
  RegexTokenizer m;
  m.input_col = required(h, g, "inputCol");
  m.output_col = required(h, g, "outputCol");
  m.pattern = h.attr_string(g, "pattern");
  m.gaps = int_attr_in(h, g, "gaps", 0, 1) != 0;
  m.min_token_length = int_attr_in(h, g, "minTokenLength", 0, INT64_MAX);
  m.to_lowercase = int_attr_in(h, g, "toLowercase", 0, 1) != 0;
  return m;
}

void save_model(H5File& h, const std::string& g, const StopWordsRemover& m) {
  h.set_attr(g, "inputCol", m.input_col);
  h.set_attr(g, "outputCol", m.output_col);
  h.set_attr(g, "caseSensitive", static_cast<std::int64_t>(m.case_sensitive));
  put_strings(h, g + "/stopWords", m.stop_words);
}
StopWordsRemover load_stop_words_remover(const H5File& h, const std::string& g) {
  StopWordsRemover m;
  m.input_col = required(h, g, "inputCol");
  m.output_col = required(h, g, "outputCol");
  m.case_sensitive = int_attr_in(h, g, "caseSensitive", 0, 1) != 0;
  m.stop_words = h.read_strings(g + "/stopWords");
  return m;
}

void save_model(H5File& h, const std::string& g, const NGram& m) {
  h.set_attr(g, "inputCol", m.input_col);
  h.set_attr(g, "outputCol", m.output_col);
  h.set_attr(g, "n", m.n);
}
NGram load_ngram(const H5File& h, const std::string& g) {
  NGram m;
  m.input_col = required(h, g, "inputCol");
  m.output_col = required(h, g, "outputCol");
  m.n = int_attr_in(h, g, "n", 1, INT64_MAX);
  return m;
}

void save_model(H5File& h, const std::string& g, const HashingTF& m) {
  h.set_attr(g, "inputCol", m.input_col);
  h.set_attr(g, "numFeatures", m.num_features);
  h.set_attr(g, "binary", static_cast<std::int64_t>(m.binary));
}
HashingTF load_hashing_tf(const H5File& h, const std::string& g) {
  HashingTF m;
  m.input_col = required(h, g, "inputCol");
  m.num_features = int_attr_in(h, g, "numFeatures", 1, std::int64_t{1} << 31);
  m.binary = int_attr_in(h, g, "binary", 0, 1) != 0;
  return m;
}

void save_model(H5File& h, const std::string& g, const CountVectorizerModel& m) {
  h.set_attr(g, "inputCol", m.input_col);
  h.set_attr(g, "minTF", m.min_tf);
  h.set_attr(g, "binary", static_cast<std::int64_t>(m.binary));
  put_strings(h, g + "/vocabulary", m.vocabulary);
}
CountVectorizerModel load_count_vectorizer(const H5File& h, const std::string& g) {
  CountVectorizerModel m;
  m.input_col = required(h, g, "inputCol");
  m.min_tf = h.attr_double(g, "minTF");
  m.binary = int_attr_in(h, g, "binary", 0, 1) != 0;
  m.vocabulary = h.read_strings(g + "/vocabulary");
  expect_model(!m.vocabulary.empty(), h, g, "vocabulary", "expected at least one term, found none");
  expect_model(m.min_tf >= 0, h, g, "", "attribute minTF: expected a number >= 0");
  return m;
}
std::map<std::string, double> model_summary(const CountVectorizerModel& m) {
  return {{"vocabularySize", static_cast<double>(m.vocabulary.size())}};
}

void save_model(H5File& h, const std::string& g, const IdfModel& m) {
  put(h, g + "/idf", m.idf);
  put(h, g + "/docFreq", m.doc_freq);
  h.set_attr(g, "numDocs", m.num_docs);
}
IdfModel load_idf(const H5File& h, const std::string& g) {
  IdfModel m{get_vec(h, g + "/idf"), get_vec(h, g + "/docFreq"), int_attr_in(h, g, "numDocs", 0, INT64_MAX)};
  expect_model(m.idf.size() >= 1, h, g, "idf", "expected at least one feature, found none");
  expect_size(h, g, "docFreq", m.doc_freq.size(), m.idf.size(), "one per feature of idf");
  return m;
}

namespace {

constexpr auto kTransformer = StageTask::kTransformer;

void read_columns(ParamReader& p, std::string& in, std::string& out) {
  p.get("inputCol", in);
  p.get("outputCol", out);
}
// HashingTF and CountVectorizer write the frame's one feature block, which Spark calls
// "features": an outputCol, when given, must say so.
void read_features_output(ParamReader& p, const char* stage) {
  std::string out = "features";
  p.get("outputCol", out);
  LOCKSTEP_CHECK(out == "features", ConfigError, stage,
                 ".outputCol: expected \"features\" (the frame's feature block, which the estimators read), got \"",
                 out, "\"");
}

template <typename T>
T same(const Frame&, const T& t) {
  return t;
}

const StageRegistrar kTokenizer{model_row<Tokenizer, Tokenizer>(
    "Tokenizer", kTransformer, 1, [](ParamReader& p, Tokenizer& q) { read_columns(p, q.input_col, q.output_col); },
    same<Tokenizer>, load_tokenizer)};

const StageRegistrar kRegexTokenizer{model_row<RegexTokenizer, RegexTokenizer>(
    "RegexTokenizer", kTransformer, 1,
    [](ParamReader& p, RegexTokenizer& q) {
      read_columns(p, q.input_col, q.output_col);
      p.get("pattern", q.pattern);
      p.get("gaps", q.gaps);
      p.get("minTokenLength", q.min_token_length, at_least(std::int64_t{0}));
      p.get("toLowercase", q.to_lowercase);
    },
    same<RegexTokenizer>, load_regex_tokenizer)};

const StageRegistrar kStopWordsRemover{model_row<StopWordsRemover, StopWordsRemover>(
    "StopWordsRemover", kTransformer, 1,
    [](ParamReader& p, StopWordsRemover& q) {
      read_columns(p, q.input_col, q.output_col);
      p.get_list("stopWords", q.stop_words);
      p.get("caseSensitive", q.case_sensitive);
      std::string locale;
      p.get("locale", locale);  // accepted for Spark's configs; case folding is ASCII (docs/ml.md)
    },
    same<StopWordsRemover>, load_stop_words_remover)};

const StageRegistrar kNGram{model_row<NGram, NGram>(
    "NGram", kTransformer, 1,
    [](ParamReader& p, NGram& q) {
      read_columns(p, q.input_col, q.output_col);
      p.get("n", q.n, at_least(std::int64_t{1}));
    },
    same<NGram>, load_ngram)};

const StageRegistrar kHashingTF{model_row<HashingTF, HashingTF>(
    "HashingTF", kTransformer, 1,
    [](ParamReader& p, HashingTF& q) {
      p.get("inputCol", q.input_col);
      read_features_output(p, "HashingTF");
      p.get("numFeatures", q.num_features, at_least(std::int64_t{1}));
      p.get("binary", q.binary);
    },
    same<HashingTF>, load_hashing_tf)};

const StageRegistrar kCountVectorizer{model_row<CountVectorizerModel, CountVectorizerParams>(
    "CountVectorizer", kTransformer, 1,
    [](ParamReader& p, CountVectorizerParams& q) {
      p.get("inputCol", q.input_col);
      read_features_output(p, "CountVectorizer");
      p.get("vocabSize", q.vocab_size, at_least(std::int64_t{1}));
      p.get("minDF", q.min_df, at_least(0.0));
      p.get("maxDF", q.max_df, at_least(0.0));
      p.get("minTF", q.min_tf, at_least(0.0));
      p.get("binary", q.binary);
    },
    fit_count_vectorizer, load_count_vectorizer)};

const StageRegistrar kIdf{model_row<IdfModel, IdfParams>(
    "IDF", kTransformer, 1,
    [](ParamReader& p, IdfParams& q) {
      std::string in = "features", out = "features";
      p.get("inputCol", in);
      p.get("outputCol", out);
      LOCKSTEP_CHECK(in == "features" && out == "features", ConfigError,
                     "IDF.inputCol and outputCol: expected \"features\" (the frame's feature block), got \"", in,
                     "\" and \"", out, "\"");
      p.get("minDocFreq", q.min_doc_freq, at_least(std::int64_t{0}));
    },
    fit_idf, load_idf)};

}  // namespace
}  // namespace lockstep::ml
