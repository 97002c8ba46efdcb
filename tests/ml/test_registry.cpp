// The stage registry and pipeline files: every expected stage is registered (a registrar the
// linker dropped fails here, not in a user's `lockstep fit`), the unknown-stage message lists the
// registry's names, every stage's model saves and loads to the same predictions bit for bit, and
// a file with another pipeline format or stage format version is refused naming both.
#include <cmath>
#include <filesystem>

#include "detail/hdf5.hpp"
#include "lockstep/ml/pipeline.hpp"
#include "lockstep/ml/registry.hpp"
#include "lockstep/ml/tuning.hpp"
#include "ml_test_util.hpp"

using namespace lockstep;
using namespace lockstep::ml;
using namespace lockstep::testing;

namespace {

// The stages a pipeline YAML may name, with their tasks. NeuralNetwork (pipeline/ layer) is
// checked in tests/pipeline.
const std::vector<std::pair<std::string, StageTask>> kExpected = {
    {"StandardScaler", StageTask::kTransformer},          {"MinMaxScaler", StageTask::kTransformer},
    {"MaxAbsScaler", StageTask::kTransformer},            {"Normalizer", StageTask::kTransformer},
    {"StringIndexer", StageTask::kTransformer},           {"OneHotEncoder", StageTask::kTransformer},
    {"PCA", StageTask::kTransformer},                     {"FeatureSelector", StageTask::kTransformer},
    {"LinearRegression", StageTask::kRegression},         {"LogisticRegression", StageTask::kClassification},
    {"LinearSVC", StageTask::kClassification},            {"DecisionTreeClassifier", StageTask::kClassification},
    {"DecisionTreeRegressor", StageTask::kRegression},    {"RandomForestClassifier", StageTask::kClassification},
    {"RandomForestRegressor", StageTask::kRegression},    {"GBTClassifier", StageTask::kClassification},
    {"GBTRegressor", StageTask::kRegression},             {"KMeans", StageTask::kClustering},
    {"NaiveBayes", StageTask::kClassification},           {"Tokenizer", StageTask::kTransformer},
    {"RegexTokenizer", StageTask::kTransformer},          {"StopWordsRemover", StageTask::kTransformer},
    {"NGram", StageTask::kTransformer},                   {"HashingTF", StageTask::kTransformer},
    {"CountVectorizer", StageTask::kTransformer},         {"IDF", StageTask::kTransformer},
    {"ALS", StageTask::kRegression},
};

std::vector<io::StageConfig> pipeline_of(const std::string& yaml) {
  return io::parse_config("pipeline: " + yaml + "\ndata: {format: synthetic}\n", "test.yaml").pipeline;
}

const FitContext kQuiet{"", "none", false};

// One file per world size: ctest may run the np variants at the same time.
std::string model_path(const std::string& name) {
  return std::string(LOCKSTEP_BINARY_DIR) + "/test_registry_" + name + "_np" + std::to_string(world().size()) +
         ".h5";
}

// Both models give the same bits for every output on these rows.
void expect_same_outputs(const PipelineModel& a, const PipelineModel& b, const Frame& f, const std::string& what) {
  const RowMatrix ta = a.transform(f).to_dense(), tb = b.transform(f).to_dense();
  EXPECT_TRUE(ta == tb) << what << ": transform differs after loading";
  if (!a.has_predictor()) return;
  ASSERT_EQ(a.task(), b.task()) << what;
  const Predictions pa = a.predict(f), pb = b.predict(f);
  EXPECT_TRUE(pa.prediction == pb.prediction) << what << ": predictions differ after loading";
  EXPECT_TRUE(pa.probability == pb.probability) << what << ": probabilities differ after loading";
  EXPECT_TRUE(pa.raw == pb.raw) << what << ": raw outputs differ after loading";
  EXPECT_TRUE(a.feature_importances() == b.feature_importances()) << what;
}

// Text columns: for StringIndexer the sign of x0, for the text stages a short document from the
// signs of the first three features.
Frame with_text(const Frame& f) {
  std::vector<std::vector<std::string>> col(2);
  for (std::int64_t i = 0; i < f.rows(); ++i) {
    const auto x = f.dense_features().row(i);
    col[0].push_back(x(0) > 0 ? "red" : "blue");
    col[1].push_back(std::string(x(0) > 0 ? "Red" : "blue") + (x(1) > 0 ? " sky and" : " sea or") +
                     (x(2) > 0 ? " sun" : " the moon"));
  }
  return f.with_strings({"color", "doc"}, std::move(col));
}

}  // namespace

TEST(Registry, EveryExpectedStageIsRegistered) {
  for (const auto& [name, task] : kExpected) {
    const StageKind* k = find_stage_kind(name);
    ASSERT_NE(k, nullptr) << name << " is not in the stage registry (was its *_stages.cpp linked?)";
    EXPECT_EQ(k->name, name);
    EXPECT_EQ(task_name(k->task), task_name(task)) << name;
    EXPECT_GE(k->format_version, 1) << name;
    EXPECT_TRUE(k->fit && k->load) << name;
  }
  const auto names = stage_names();
  EXPECT_TRUE(std::is_sorted(names.begin(), names.end()));
  EXPECT_GE(names.size(), kExpected.size());
}

TEST(Registry, UnknownStageErrorListsTheRegisteredNames) {
  const Frame f = load_fixture(world(), "classification.csv");
  try {
    fit_pipeline(f, pipeline_of("[{LogisticRegresion: {}}]"), kQuiet);
    FAIL() << "expected a ConfigError";
  } catch (const ConfigError& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("test.yaml:1: pipeline[0].LogisticRegresion: unknown stage type \"LogisticRegresion\" (known: "),
              std::string::npos)
        << m;
    for (const auto& name : stage_names()) EXPECT_NE(m.find(name), std::string::npos) << m;
  }
}

// A parameter mistake in a late stage is found before any stage fits: check_pipeline reads every
// stage's parameters (lockstep fit runs it before reading data), and fit_pipeline runs it first.
TEST(Registry, EveryStagesParametersAreCheckedBeforeTheFirstFit) {
  const auto stages = pipeline_of(
      "[{Tokenizer: {inputCol: doc, outputCol: w}}, {HashingTF: {inputCol: w}},"
      " {LogisticRegression: {maxIter: 5}}, {NGram: {inputCol: w, outputCol: g, n: 0}}]");
  try {
    check_pipeline(world(), stages);
    ADD_FAILURE() << "expected a ConfigError";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("test.yaml:1: pipeline[3].NGram.n: expected an integer >= 1, got \"0\""),
              std::string::npos)
        << e.what();
  }
  // A frame without the text column: the fit would fail at stage 0, but the parameters come first.
  const Frame f = load_fixture(world(), "classification.csv");
  EXPECT_THROW(fit_pipeline(f, stages, kQuiet), ConfigError);
  EXPECT_NO_THROW(check_pipeline(world(), pipeline_of("[{Tokenizer: {inputCol: doc, outputCol: w}}]")));
}

TEST(Registry, ParameterErrorsNameTheirPlace) {
  const Frame f = load_fixture(world(), "classification.csv");
  auto expect_error = [&](const std::string& yaml, const std::string& want) {
    try {
      fit_pipeline(f, pipeline_of(yaml), kQuiet);
      ADD_FAILURE() << yaml << ": expected a ConfigError";
    } catch (const ConfigError& e) {
      EXPECT_NE(std::string(e.what()).find(want), std::string::npos) << e.what();
    }
  };
  expect_error("[{LogisticRegression: {regparam: 0.1}}]",
               "test.yaml:1: pipeline[0].LogisticRegression.regparam: unknown parameter of LogisticRegression (known: ");
  expect_error("[{LogisticRegression: {maxIter: 2.5}}]",
               "pipeline[0].LogisticRegression.maxIter: expected an integer, got \"2.5\"");
  expect_error("[{Normalizer: {p: 0.5}}]", "pipeline[0].Normalizer.p: expected a number >= 1, got \"0.5\"");
  // The estimator's own range check, prefixed with the stage's place.
  expect_error("[{LogisticRegression: {elasticNetParam: 2}}]", "test.yaml:1: pipeline[0].LogisticRegression: ");
}

TEST(Registry, TuningGridNamesMustBeRegisteredTunableStages) {
  const Frame f = load_fixture(world(), "classification.csv");
  io::TuningConfig t;
  t.type = "TrainValidationSplit";
  t.where = "test.yaml:3: tuning";
  t.grid = {{"LogisticRegresion.regParam", io::StageParam{{"0.1"}, true, "test.yaml:5: tuning.grid.x"}}};
  try {
    tune(f, pipeline_of("[{LogisticRegression: {}}]"), t, kQuiet);
    FAIL() << "expected a ConfigError";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("test.yaml:5: tuning.grid.x: unknown stage type \"LogisticRegresion\""),
              std::string::npos)
        << e.what();
  }
}

TEST(Pipeline, EveryStageSavesAndLoadsToTheSameOutputs) {
  auto& w = world();
  const Frame cls = with_text(load_fixture(w, "classification.csv"));
  const Frame reg = load_fixture(w, "regression.csv", true);
  const Frame blobs = load_fixture(w, "blobs.csv");
  const std::vector<std::tuple<std::string, const Frame*, std::string>> cases = {
      {"scalers_logistic", &cls,
       "[{StandardScaler: {withMean: true}}, {MinMaxScaler: {min: -1}}, {MaxAbsScaler: {}}, {Normalizer: {p: 3}},"
       " {LogisticRegression: {maxIter: 20, thresholds: [0.5, 0.4, 0.6]}}]"},
      {"text_onehot_svc", &cls,
       "[{StringIndexer: {inputCol: color, outputCol: color_index}}, {OneHotEncoder: {inputCols: [color_index]}},"
       " {LinearSVC: {maxIter: 20}}]"},
      {"pca_linear", &reg, "[{PCA: {k: 3}}, {LinearRegression: {regParam: 0.1, elasticNetParam: 0.5}}]"},
      {"select_tree", &cls,
       "[{FeatureSelector: {numFeatures: 2, estimator: {RandomForestClassifier: {numTrees: 3}}}},"
       " {DecisionTreeClassifier: {maxDepth: 3}}]"},
      {"forest_cls", &cls, "[{RandomForestClassifier: {numTrees: 3, maxDepth: 3}}]"},
      {"tree_reg", &reg, "[{DecisionTreeRegressor: {maxDepth: 3}}]"},
      {"forest_reg", &reg, "[{RandomForestRegressor: {numTrees: 3, maxDepth: 3}}]"},
      {"gbt_reg", &reg, "[{GBTRegressor: {maxIter: 3}}]"},
      {"kmeans", &blobs, "[{KMeans: {k: 3}}]"},
      {"bayes", &blobs, "[{NaiveBayes: {modelType: gaussian}}]"},
      {"bayes_multinomial", &cls, "[{MinMaxScaler: {}}, {NaiveBayes: {}}]"},
      {"transformers_only", &cls, "[{StandardScaler: {}}]"},
      {"text_hashing_bayes", &cls,
       "[{Tokenizer: {inputCol: doc, outputCol: words}}, {StopWordsRemover: {inputCol: words, outputCol: kept}},"
       " {NGram: {inputCol: kept, outputCol: bi}}, {HashingTF: {inputCol: bi, numFeatures: 64}}, {IDF: {}},"
       " {NaiveBayes: {}}]"},
      {"text_count_logistic", &cls,
       "[{RegexTokenizer: {inputCol: doc, outputCol: words, pattern: '[a-z]+', gaps: false, minTokenLength: 2}},"
       " {CountVectorizer: {inputCol: words, vocabSize: 5, minDF: 2}}, {LogisticRegression: {maxIter: 10}}]"},
  };
  for (const auto& [name, frame, yaml] : cases) {
    const PipelineModel fitted = fit_pipeline(*frame, pipeline_of(yaml), kQuiet);
    const std::string path = model_path(name);
    fitted.save(w, path, "pipeline: " + yaml);
    const PipelineModel loaded = PipelineModel::load(w, path);
    ASSERT_EQ(loaded.size(), fitted.size()) << name;
    for (std::size_t i = 0; i < fitted.size(); ++i) EXPECT_EQ(loaded.stage_type(i), fitted.stage_type(i)) << name;
    expect_same_outputs(fitted, loaded, *frame, name);
    w.barrier();
    if (w.rank() == 0) std::filesystem::remove(path);
  }
  // GBTClassifier needs two classes.
  const Frame bin = load_fixture(w, "binary.csv");
  const PipelineModel gbt = fit_pipeline(bin, pipeline_of("[{GBTClassifier: {maxIter: 3}}]"), kQuiet);
  gbt.save(w, model_path("gbt_cls"), "");
  expect_same_outputs(gbt, PipelineModel::load(w, model_path("gbt_cls")), bin, "gbt_cls");
}

TEST(Pipeline, OtherFormatVersionsAreRefusedNamingBoth) {
  auto& w = world();
  const Frame f = load_fixture(w, "classification.csv");
  const PipelineModel m =
      fit_pipeline(f, pipeline_of("[{StandardScaler: {}}, {LogisticRegression: {maxIter: 5}}]"), kQuiet);
  const std::string path = model_path("versions");
  // edit(file) changes the saved file on rank 0; load must then fail on every rank with `want`.
  auto expect_refused = [&](const std::function<void(detail::H5File&)>& edit, const std::string& want) {
    m.save(w, path, "");
    if (w.rank() == 0) {
      detail::H5File h = detail::H5File::open_rw(path);
      edit(h);
      h.close();
    }
    w.barrier();
    try {
      PipelineModel::load(w, path);
      ADD_FAILURE() << "expected an IoError containing " << want;
    } catch (const IoError& e) {
      EXPECT_NE(std::string(e.what()).find(want), std::string::npos) << e.what();
    }
  };
  expect_refused([](detail::H5File& h) { h.set_attr("/pipeline/stage1", "formatVersion", std::int64_t{7}); },
                 path + ":/pipeline/stage1: LogisticRegression saved in format version 7, but this build reads "
                        "version 1");
  expect_refused([](detail::H5File& h) { h.set_attr("/pipeline", "format", "lockstep-pipeline-9"); },
                 path + ":/pipeline: format \"lockstep-pipeline-9\", but this build reads \"lockstep-pipeline-1\"");
  expect_refused([](detail::H5File& h) { h.set_attr("/pipeline/stage0", "type", "Bogus"); },
                 path + ":/pipeline/stage0: unknown stage type \"Bogus\" (this build knows: ");
  w.barrier();
  if (w.rank() == 0) std::filesystem::remove(path);
}

// A text label indexed by a StringIndexer (outputCol: label) is the label that a pipeline's
// metrics and tuning score. Before the stages, such a frame's label is a constant 0 (the CSV
// column is text); scored against it, a model that predicts index 0 everywhere had accuracy 1,
// AUC was NaN, and CrossValidator picked the most regularised (constant) model.
TEST(Pipeline, TheStringIndexedLabelIsTheOneScoredAndTuned) {
  auto& w = world();
  const Frame base = load_fixture(w, "classification.csv");
  std::vector<std::vector<std::string>> kind(1);
  for (std::int64_t i = 0; i < base.rows(); ++i) kind[0].push_back(base.label()[i] == 2.0 ? "yes" : "no");
  const Frame f = base.with_label(Vec::Zero(base.rows())).with_strings({"kind"}, std::move(kind));
  const auto stages =
      pipeline_of("[{StringIndexer: {inputCol: kind, outputCol: label}}, {LogisticRegression: {regParam: 0.001}}]");
  const PipelineModel m = fit_pipeline(f, stages, kQuiet);
  const auto scores = m.evaluate(f);
  const Frame t = m.transform(f);
  const Predictions p = m.predict(f);
  double hits = 0.0;
  for (std::int64_t i = 0; i < t.rows(); ++i) hits += p.prediction[i] == t.label()[i] ? 1.0 : 0.0;
  hits = w.allreduce<double>(hits, comm::ReduceOp::kSum);
  EXPECT_DOUBLE_EQ(scores.at("accuracy"), hits / static_cast<double>(t.global_rows()));
  EXPECT_GT(scores.at("accuracy"), 0.7);
  EXPECT_LT(scores.at("accuracy"), 1.0);
  ASSERT_TRUE(scores.count("areaUnderROC"));
  EXPECT_TRUE(std::isfinite(scores.at("areaUnderROC")));
  EXPECT_GT(scores.at("areaUnderROC"), 0.7);
  // regParam 100 predicts the majority class ("no", index 0) for every row: against the constant
  // 0 label it scored 1 and won; against the indexed label it is the worse candidate.
  for (const char* type : {"CrossValidator", "TrainValidationSplit"}) {
    io::TuningConfig tc;
    tc.type = type;
    tc.where = "test.yaml:3: tuning";
    tc.grid = {{"LogisticRegression.regParam", io::StageParam{{"0.001", "100"}, true, "test.yaml:5: tuning.grid"}}};
    const TuningResult r = tune(f, stages, tc, kQuiet);
    ASSERT_EQ(r.candidates.size(), 2u) << type;
    EXPECT_LT(r.candidates[0].second, 1.0) << type;
    EXPECT_GT(r.candidates[0].second, r.candidates[1].second) << type;
    EXPECT_EQ(r.best, r.candidates[0].second) << type;
  }
}
