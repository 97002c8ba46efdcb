// Text stages: Spark's tokenisation rules (Java's split), stop words, n-grams, HashingTF's column
// indices against an independent MurmurHash3 (scikit-learn's murmurhash3_32 with seed 42, the
// function Spark 3 uses), CountVectorizer's vocabulary and IDF's weights by Spark's formulas, and a
// text pipeline whose outputs are the same bits at every number of ranks.
#include <cmath>
#include <map>

#include "lockstep/ml/naive_bayes.hpp"
#include "lockstep/ml/pipeline.hpp"
#include "lockstep/ml/text.hpp"
#include "ml_test_util.hpp"

using namespace lockstep;
using namespace lockstep::ml;
using namespace lockstep::testing;

namespace {

using Strings = std::vector<std::string>;

// The global documents: a skewed corpus (the word "spam" is about half of all tokens), labels by
// whether the document mentions "offer". Each rank of `comm` takes a contiguous share, rank 0 the
// remainder; with more ranks than documents some ranks hold none.
Strings documents(std::int64_t n) {
  const Strings words = {"The", "offer", "is", "FREE", "meeting", "at", "noon", "lunch", "now", "win", "a", "prize"};
  Strings docs;
  for (std::int64_t i = 0; i < n; ++i) {
    std::string d;
    for (std::int64_t k = 0; k < 3 + i % 5; ++k) {
      d += (k ? (k % 3 == 0 ? "  " : " ") : "");
      d += (k % 2 == 0) ? "spam" : words[static_cast<std::size_t>((i * 7 + k * 3) % 12)];
    }
    docs.push_back(d);
  }
  return docs;
}

Frame text_frame(comm::Communicator& comm, const Strings& docs) {
  const auto n = static_cast<std::int64_t>(docs.size());
  const std::int64_t share = n / comm.size(), begin = comm.rank() * share + (comm.rank() ? n % comm.size() : 0);
  const std::int64_t end = begin + share + (comm.rank() ? 0 : n % comm.size());
  Strings mine(docs.begin() + begin, docs.begin() + end);
  Vec y(end - begin);
  for (std::int64_t i = begin; i < end; ++i) y[i - begin] = docs[static_cast<std::size_t>(i)].find("offer") != std::string::npos;
  return Frame::dense(comm, RowMatrix(end - begin, 0), y).with_strings({"text"}, {std::move(mine)});
}

Strings row_tokens(const Frame& f, const std::string& col, std::int64_t i) {
  const auto r = f.tokens(col).row(i);
  return Strings(r.begin(), r.end());
}

}  // namespace

TEST(Text, TokenizerSplitsLikeJava) {
  EXPECT_EQ(tokenize("Hi I heard about Spark"), (Strings{"hi", "i", "heard", "about", "spark"}));
  // Java's String.split("\\s"): an empty token between adjacent separators and before a leading
  // one, none after trailing ones; an empty string is one empty token, blanks none.
  EXPECT_EQ(tokenize("a  b\tC\n"), (Strings{"a", "", "b", "c"}));
  EXPECT_EQ(tokenize(" a"), (Strings{"", "a"}));
  EXPECT_EQ(tokenize(""), (Strings{""}));
  EXPECT_EQ(tokenize(" \t "), (Strings{}));
}

TEST(Text, RegexTokenizerGapsMatchesAndLengths) {
  RegexTokenizer t;
  EXPECT_EQ(t.tokens("  Hi  there,\tYou "), (Strings{"hi", "there,", "you"}));
  t.pattern = "\\W+";
  EXPECT_EQ(t.tokens("Hi, there! You"), (Strings{"hi", "there", "you"}));
  t.pattern = "[a-z]+";
  t.gaps = false;
  t.min_token_length = 3;
  EXPECT_EQ(t.tokens("An apple a day: OK"), (Strings{"apple", "day"}));
  t.to_lowercase = false;
  EXPECT_EQ(t.tokens("An apple a day: OK"), (Strings{"apple", "day"}));
  // Length counts code points: "naïve" is 5, not 6 bytes.
  t.pattern = "\\S+";
  t.min_token_length = 6;
  EXPECT_EQ(t.tokens("naïve résumés"), (Strings{"résumés"}));
}

TEST(Text, RegexTokenizerFastPathsEqualStdRegex) {
  // \s+ \S+ \w+ \W+ skip std::regex; "(?:\s)+" etc. take it, and must give the same tokens.
  std::uint64_t seed = 7;
  const std::string alphabet = "ab Z_9\t\n,.-\xC3\xA9";
  for (int k = 0; k < 300; ++k) {
    std::string s;
    for (int i = 0; i < k % 23; ++i) {
      seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
      s += alphabet[(seed >> 33) % alphabet.size()];
    }
    for (const char* cls : {"s", "S", "w", "W"}) {
      for (const bool gaps : {true, false}) {
        RegexTokenizer fast, slow;
        fast.pattern = std::string("\\") + cls + "+";
        slow.pattern = std::string("(?:\\") + cls + ")+";
        fast.gaps = slow.gaps = gaps;
        fast.min_token_length = slow.min_token_length = 0;
        EXPECT_EQ(fast.tokens(s), slow.tokens(s)) << fast.pattern << " gaps " << gaps << " on \"" << s << "\"";
      }
    }
  }
}

TEST(Text, HashingTFColumnsAreSparksMurmur3) {
  // (term, index at 2^18, at 20, at 1000): scikit-learn's murmurhash3_32(utf8, seed=42) as a signed
  // int, then Spark's nonNegativeMod.
  const std::vector<std::tuple<std::string, std::int64_t, std::int64_t, std::int64_t>> ref = {
      {"hi", 33808, 8, 568},      {"spark", 173558, 6, 286},  {"heard", 66273, 13, 673},
      {"", 249180, 12, 372},      {"a", 107107, 7, 467},      {"naïve", 149954, 6, 586},
      {"日本語", 188088, 0, 400}, {"abcde", 142320, 4, 384}};
  for (const auto& [term, a, b, c] : ref) {
    EXPECT_EQ(hashing_tf_index(term, std::int64_t{1} << 18), a) << term;
    EXPECT_EQ(hashing_tf_index(term, 20), b) << term;
    EXPECT_EQ(hashing_tf_index(term, 1000), c) << term;
  }
}

TEST(Text, StagesOnAFrame) {
  auto& w = world();
  const Frame f = text_frame(w, {"The spam IS here", "", "a b c"});
  const Frame tok = Tokenizer{"text", "words"}.transform(f);
  StopWordsRemover sw;
  sw.input_col = "words";
  sw.output_col = "kept";
  const Frame kept = sw.transform(tok);
  NGram ng;
  ng.input_col = "kept";
  ng.output_col = "pairs";
  const Frame pairs = ng.transform(kept);
  HashingTF tf;
  tf.input_col = "words";
  tf.num_features = 20;
  const Frame hashed = tf.transform(pairs);
  ASSERT_TRUE(hashed.is_sparse());
  EXPECT_EQ(hashed.num_features(), 20);
  EXPECT_EQ(hashed.global_rows(), 3);
  // Row 0 of the corpus lives on rank 0 whatever the rank count.
  if (w.rank() == 0) {
    EXPECT_EQ(row_tokens(kept, "words", 0), (Strings{"the", "spam", "is", "here"}));
    EXPECT_EQ(row_tokens(kept, "kept", 0), (Strings{"spam"}));  // "the", "is", "here" are stop words
    EXPECT_EQ(row_tokens(pairs, "pairs", 0), Strings{});        // one token: no bigram
    const RowMatrix x = hashed.to_dense();
    EXPECT_EQ(x.row(0).sum(), 4.0f);
    EXPECT_GE(x(0, hashing_tf_index("spam", 20)), 1.0f);
    if (f.rows() >= 2) {  // row 1 is on rank 0 too (not at 3 ranks)
      EXPECT_EQ(row_tokens(kept, "words", 1), Strings{""});
      EXPECT_EQ(x.row(1).sum(), 1.0f);  // the one empty token is a term too, as in Spark
    }
  }
  NGram tri = ng;
  tri.input_col = "words";
  tri.n = 3;
  const Frame t3 = tri.transform(tok);
  if (w.rank() == 0) {
    EXPECT_EQ(row_tokens(t3, "pairs", 0), (Strings{"the spam is", "spam is here"}));
  }
  HashingTF missing;
  missing.input_col = "missing";
  EXPECT_THROW(missing.transform(tok), ConfigError);
}

TEST(Text, CountVectorizerAndIdfFollowSpark) {
  const Strings docs = documents(40);
  // The reference, computed here on the whole corpus: term counts and document frequencies.
  std::map<std::string, std::pair<std::int64_t, std::int64_t>> counts;
  for (const auto& d : docs) {
    std::map<std::string, std::int64_t> seen;
    for (const auto& t : tokenize(d)) ++seen[t];
    for (const auto& [t, c] : seen) counts[t].first += c, counts[t].second += 1;
  }
  std::vector<std::pair<std::string, std::pair<std::int64_t, std::int64_t>>> order(counts.begin(), counts.end());
  std::erase_if(order, [](const auto& e) { return e.second.second < 3; });  // minDF 3
  std::stable_sort(order.begin(), order.end(), [](const auto& a, const auto& b) { return a.second.first > b.second.first; });
  order.resize(6);  // vocabSize 6
  const auto runs = at_every_rank_count<std::pair<CountVectorizerModel, IdfModel>>([&](comm::Communicator& c) {
    const Frame tok = Tokenizer{"text", "words"}.transform(text_frame(c, docs));
    CountVectorizerParams p;
    p.input_col = "words";
    p.vocab_size = 6;
    p.min_df = 3;
    const CountVectorizerModel cv = fit_count_vectorizer(tok, p);
    return std::pair{cv, fit_idf(cv.transform(tok), IdfParams{})};
  });
  for (const auto& [np, r] : runs) {
    const auto& [cv, idf] = r;
    ASSERT_EQ(cv.vocabulary.size(), order.size()) << np;
    for (std::size_t j = 0; j < order.size(); ++j) {
      EXPECT_EQ(cv.vocabulary[j], order[j].first) << "ranks " << np << " column " << j;
      EXPECT_EQ(idf.doc_freq[static_cast<Eigen::Index>(j)], order[j].second.second);
      EXPECT_DOUBLE_EQ(idf.idf[static_cast<Eigen::Index>(j)], std::log(41.0 / (order[j].second.second + 1.0)));
    }
  }
  EXPECT_EQ(runs.front().second.first.vocabulary[0], "spam");  // the skewed key: about half the tokens
}

TEST(Text, APipelineGivesTheSameBitsAtEveryRankCount) {
  const Strings docs = documents(37);
  const std::string yaml =
      "pipeline: [{Tokenizer: {inputCol: text, outputCol: words}},"
      " {StopWordsRemover: {inputCol: words, outputCol: kept}}, {NGram: {inputCol: kept, outputCol: bi, n: 2}},"
      " {HashingTF: {inputCol: bi, numFeatures: 256}}, {IDF: {minDocFreq: 1}}, {NaiveBayes: {}}]\n"
      "data: {format: synthetic}\n";
  const auto stages = io::parse_config(yaml, "test.yaml").pipeline;
  const auto runs = at_every_rank_count<std::vector<double>>([&](comm::Communicator& c) {
    const Frame f = text_frame(c, docs);
    const PipelineModel m = fit_pipeline(f, stages, FitContext{"", "none", false});
    const Predictions p = m.predict(f);
    std::vector<double> out;
    for (std::int64_t i = 0; i < p.raw.rows(); ++i)
      for (std::int64_t k = 0; k < p.raw.cols(); ++k) out.push_back(p.raw(i, k));
    return data::Partitioned<double>::from_local(c, out).collect();
  });
  for (const auto& [np, raw] : runs) EXPECT_EQ(raw, runs.back().second) << "ranks " << np << " against 1";
  EXPECT_EQ(runs.back().second.size(), 2u * docs.size());
}

TEST(Text, NaiveBayesOnSparseCountsEqualsDense) {
  auto& w = world();
  const Frame tok = Tokenizer{"text", "words"}.transform(text_frame(w, documents(30)));
  HashingTF tf;
  tf.input_col = "words";
  tf.num_features = 32;
  const Frame sparse = tf.transform(tok);
  const Frame dense = sparse.with_features(sparse.to_dense());
  const NaiveBayesModel a = fit_naive_bayes(sparse, {}), b = fit_naive_bayes(dense, {});
  EXPECT_TRUE(a.theta == b.theta);
  EXPECT_TRUE(a.pi == b.pi);
  EXPECT_TRUE(a.predict(sparse).raw.isApprox(b.predict(dense).raw, 1e-12));
}
