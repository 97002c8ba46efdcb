// Text feature stages with Spark MLlib's names, parameters and defaults:
//   Tokenizer         a string column -> tokens: lower case, split at each whitespace character
//   RegexTokenizer    a string column -> tokens by a regular expression (gaps or matches)
//   StopWordsRemover  tokens -> tokens without the stop words (Spark's English list by default)
//   NGram             tokens -> the n-grams of consecutive tokens, joined by one space
//   HashingTF         tokens -> term frequencies at MurmurHash3_x86_32(UTF-8 bytes, seed 42) mod
//                     numFeatures: Spark 3's function, so a term gets the same column as in Spark
//   CountVectorizer   tokens -> term counts over a vocabulary fitted with reduce_by_key
//   IDF               features -> features * log((m + 1) / (df + 1)), Spark's smoothed formula
// String columns come from CSV (data.string_columns); token columns live in the Frame beside them
// (TokenColumn). HashingTF and CountVectorizer make the frame's feature block, sparse (CSR), which
// IDF rescales and NaiveBayes, LogisticRegression and LinearSVC read as it stands.
// Differences from Spark are listed in docs/ml.md ("Text"): lower-casing and \s are ASCII only,
// RegexTokenizer's patterns are ECMAScript (std::regex) rather than Java's, and a token's length
// (minTokenLength) counts Unicode code points rather than UTF-16 units.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "lockstep/ml/frame.hpp"

namespace lockstep::ml {

// Spark's default English stop words (its stopwords/english.txt, from NLTK's list).
const std::vector<std::string>& english_stop_words();

// Tokenizer: inputCol (a string column) -> outputCol (a token column).
struct Tokenizer {
  std::string input_col, output_col;
  Frame transform(const Frame& f) const;
};
// One value the way Spark's Tokenizer does it: s.toLowerCase.split("\\s"), Java's split keeping
// empty tokens between adjacent whitespace and dropping trailing ones ("" gives one empty token).
std::vector<std::string> tokenize(std::string_view s);

struct RegexTokenizer {
  std::string input_col, output_col;
  std::string pattern = "\\s+";
  bool gaps = true;  // true: the pattern separates tokens; false: each match is a token
  std::int64_t min_token_length = 1;
  bool to_lowercase = true;
  Frame transform(const Frame& f) const;
  std::vector<std::string> tokens(std::string_view s) const;
};

struct StopWordsRemover {
  std::string input_col, output_col;
  std::vector<std::string> stop_words = english_stop_words();
  bool case_sensitive = false;
  Frame transform(const Frame& f) const;
};

struct NGram {
  std::string input_col, output_col;
  std::int64_t n = 2;
  Frame transform(const Frame& f) const;
};

// Spark 3's HashingTF index of a term: nonNegativeMod(murmur3_x86_32(utf8, 42) as a signed
// 32-bit integer, num_features).
std::int64_t hashing_tf_index(std::string_view term, std::int64_t num_features);

struct HashingTF {
  std::string input_col;
  std::int64_t num_features = std::int64_t{1} << 18;
  bool binary = false;
  Frame transform(const Frame& f) const;  // the features become the term frequencies (CSR)
};

struct CountVectorizerParams {
  std::string input_col;
  std::int64_t vocab_size = std::int64_t{1} << 18;
  double min_df = 1.0;  // >= 1: documents; < 1: a fraction of the documents
  double max_df = 9.223372036854775807e18;
  double min_tf = 1.0;  // per document: >= 1 a count, < 1 a fraction of its tokens
  bool binary = false;
};
struct CountVectorizerModel {
  std::string input_col;
  std::vector<std::string> vocabulary;  // column order: count descending, then term ascending
  double min_tf = 1.0;
  bool binary = false;
  Frame transform(const Frame& f) const;  // the features become the counts (CSR)
};
// Collective: (term, (count, documents)) pairs are combined with reduce_by_key; the vocabulary is
// the vocabSize most frequent terms among those with minDF <= documents <= maxDF.
CountVectorizerModel fit_count_vectorizer(const Frame& f, const CountVectorizerParams& p);

struct IdfParams {
  std::int64_t min_doc_freq = 0;
};
struct IdfModel {
  Vec idf;         // per feature column; 0 where the column's document frequency < minDocFreq
  Vec doc_freq;    // rows with a non-zero value, over all ranks
  std::int64_t num_docs = 0;
  Frame transform(const Frame& f) const;  // each column times its idf; CSR stays CSR
};
IdfModel fit_idf(const Frame& f, const IdfParams& p);

}  // namespace lockstep::ml
