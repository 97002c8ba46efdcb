// Damaged pipeline model files: every dataset of a fitted model of each kind (trees, forests and
// GBTs; linear models; k-means; naive Bayes; ALS; the feature stages; a NeuralNetwork) is replaced in
// the ways damage shows up: emptied, one row too many, flattened from 2-D to 1-D, and (index
// datasets) every value out of range or negative. Loading must then be an IoError naming the file,
// the stage group and the dataset — never a crash, a bad_alloc or a hang (ctest's timeout) — or,
// where the damage still describes a model (a centre too many, a negative coefficient), a model
// whose transform and predict end normally or with a lockstep error.
#include <array>
#include <filesystem>
#include <functional>

#include "detail/hdf5.hpp"
#include "lockstep/ml/pipeline.hpp"
#include "ml_test_util.hpp"

using namespace lockstep;
using namespace lockstep::ml;
using namespace lockstep::testing;

namespace {

const FitContext kQuiet{"", "none", false};

std::string file_path(const std::string& name) {
  return std::string(LOCKSTEP_BINARY_DIR) + "/test_model_files_" + name + "_np" + std::to_string(world().size()) +
         ".h5";
}

// Datasets written as integers or float32; the others are float64.
bool is_int(const std::string& name) {
  return name == "nodeInts" || name == "treeOffsets" || name == "categories" || name == "columns";
}
bool is_float(const std::string& name) { return name == "params"; }

struct Dataset {
  std::string group, name;
  std::vector<std::int64_t> shape;
  std::vector<double> values;
};

void write_dataset(detail::H5File& h, const std::string& path, const std::string& name, const std::vector<double>& v,
                   const std::vector<std::int64_t>& shape) {
  if (h.exists(path)) h.remove(path);
  if (is_int(name)) {
    std::vector<std::int64_t> iv(v.begin(), v.end());
    h.write<std::int64_t>(path, iv.data(), shape);
  } else if (is_float(name)) {
    std::vector<float> fv(v.begin(), v.end());
    h.write<float>(path, fv.data(), shape);
  } else {
    h.write<double>(path, v.data(), shape);
  }
}

struct Mutation {
  std::string what;
  bool must_fail;  // false: the result may still be a model; it must then work or fail cleanly
  std::function<bool(Dataset&)> apply;  // false: does not apply to this dataset
};

std::vector<Mutation> mutations() {
  return {
      {"empty", true,
       [](Dataset& d) {
         d.shape[0] = 0;
         d.values.clear();
         return true;
       }},
      {"one row too many", false,
       [](Dataset& d) {
         const auto row = static_cast<std::ptrdiff_t>(d.values.size() /
                                                      static_cast<std::size_t>(std::max<std::int64_t>(d.shape[0], 1)));
         const std::vector<double> first(d.values.begin(), d.values.begin() + row);
         d.values.insert(d.values.end(), first.begin(), first.end());
         d.shape[0] += 1;
         return true;
       }},
      {"flattened", true,
       [](Dataset& d) {
         if (d.shape.size() != 2) return false;
         d.shape = {static_cast<std::int64_t>(d.values.size())};
         return true;
       }},
      {"out of range", true,
       [](Dataset& d) {
         if (!is_int(d.name)) return false;
         for (auto& v : d.values) v = static_cast<double>(std::int64_t{1} << 40);
         return true;
       }},
      {"negative", true,
       [](Dataset& d) {
         for (auto& v : d.values) v = is_int(d.name) ? -2.0 : -1.0;
         return true;
       }},
  };
}

// A text column for StringIndexer: the sign of x0.
Frame with_text(const Frame& f) {
  std::vector<std::vector<std::string>> col(1);
  for (std::int64_t i = 0; i < f.rows(); ++i) col[0].push_back(f.dense_features()(i, 0) > 0 ? "red" : "blue");
  return f.with_strings({"color"}, std::move(col));
}

// Ratings for ALS: 12 users x 6 items, this rank's contiguous share of the rows.
Frame ratings(comm::Communicator& c) {
  std::vector<std::array<float, 3>> all;
  for (int u = 0; u < 12; ++u)
    for (int i = 0; i < 6; ++i)
      if ((u + 2 * i) % 3 != 0) all.push_back({float(u), float(i), float(1 + (u * i) % 5)});
  const auto n = static_cast<std::int64_t>(all.size());
  const std::int64_t lo = n * c.rank() / c.size(), hi = n * (c.rank() + 1) / c.size();
  RowMatrix x(hi - lo, 2);
  Vec y(hi - lo);
  for (std::int64_t j = lo; j < hi; ++j) {
    const auto& r = all[static_cast<std::size_t>(j)];
    x(j - lo, 0) = r[0], x(j - lo, 1) = r[1], y[j - lo] = r[2];
  }
  return Frame::dense(c, x, y, {}, {"user", "item"});
}

// Every dataset of every stage group, with its values.
std::vector<Dataset> datasets_of(const std::string& path) {
  const auto h = detail::H5File::open_read(path);
  std::vector<Dataset> out;
  for (const auto& stage : h.list("/pipeline")) {
    const std::string g = "/pipeline/" + stage;
    for (const auto& name : h.list(g))
      out.push_back({g, name, h.shape(g + "/" + name), h.read<double>(g + "/" + name)});
  }
  return out;
}

// Loads `path`; on success runs the model on `f`. Returns the load error, or "" when it loaded.
std::string load_and_use(const std::string& path, const Frame& f) {
  auto& w = world();
  try {
    const PipelineModel m = PipelineModel::load(w, path);
    try {
      if (m.has_predictor()) m.predict(f);
      else m.transform(f);
    } catch (const lockstep::Error&) {
      // a clean, named refusal at use (a feature count that no longer matches, say)
    }
    return "";
  } catch (const IoError& e) {
    return e.what();
  }
}

}  // namespace

TEST(ModelFiles, EveryDamagedDatasetIsRefusedNamingFileStageAndDatasetOrStillWorks) {
  auto& w = world();
  const Frame cls = with_text(load_fixture(w, "classification.csv"));
  const Frame reg = load_fixture(w, "regression.csv", true);
  const Frame blobs = load_fixture(w, "blobs.csv");
  const Frame bin = load_fixture(w, "binary.csv");
  const Frame rated = ratings(w);
  const std::string nn_dir = file_path("nn_run");
  if (w.rank() == 0) std::filesystem::remove_all(nn_dir);
  w.barrier();
  const std::vector<std::tuple<std::string, const Frame*, std::string>> cases = {
      {"features_logistic", &cls,
       "[{StandardScaler: {withMean: true}}, {MinMaxScaler: {}}, {MaxAbsScaler: {}}, {PCA: {k: 3}},"
       " {LogisticRegression: {maxIter: 5, thresholds: [0.5, 0.4, 0.6]}}]"},
      {"onehot_svc", &cls,
       "[{StringIndexer: {inputCol: color, outputCol: color_index}}, {OneHotEncoder: {inputCols: [color_index]}},"
       " {LinearSVC: {maxIter: 5}}]"},
      {"select_forest", &cls,
       "[{FeatureSelector: {numFeatures: 2, estimator: {DecisionTreeClassifier: {maxDepth: 2}}}},"
       " {RandomForestClassifier: {numTrees: 2, maxDepth: 3}}]"},
      {"linear", &reg, "[{LinearRegression: {}}]"},
      {"gbt", &bin, "[{GBTClassifier: {maxIter: 2, maxDepth: 2}}]"},
      {"kmeans", &blobs, "[{KMeans: {k: 3}}]"},
      {"bayes", &blobs, "[{NaiveBayes: {modelType: gaussian}}]"},
      {"als", &rated, "[{ALS: {rank: 2, maxIter: 2}}]"},
      {"nn", &cls,
       "[{NeuralNetwork: {model: {layers: [{type: dense, units: 4}, {type: relu}, {type: dense, units: 3}]},"
       " training: {epochs: 1, batch_size: 12}}}]"},
  };
  int refused = 0, tried = 0;
  for (const auto& [name, frame, yaml] : cases) {
    const auto stages = io::parse_config("pipeline: " + yaml + "\ndata: {format: synthetic}\n", "t.yaml").pipeline;
    const PipelineModel fitted = fit_pipeline(*frame, stages, FitContext{nn_dir, "none", false});
    const std::string good = file_path(name), bad = file_path(name + "_damaged");
    fitted.save(w, good, "");
    const auto sets = datasets_of(good);  // every rank reads the same file
    for (const auto& original : sets) {
      for (const auto& m : mutations()) {
        Dataset d = original;
        if (!m.apply(d)) continue;
        const std::string label = name + " " + d.group + "/" + d.name + ": " + m.what;
        if (w.rank() == 0) {
          std::filesystem::copy_file(good, bad, std::filesystem::copy_options::overwrite_existing);
          auto h = detail::H5File::open_rw(bad);
          write_dataset(h, d.group + "/" + d.name, d.name, d.values, d.shape);
          h.close();
        }
        w.barrier();
        const std::string err = load_and_use(bad, *frame);
        ++tried;
        if (!err.empty()) {
          ++refused;
          EXPECT_NE(err.find(bad + ":" + d.group), std::string::npos) << label << ": " << err;
          EXPECT_NE(err.find("(stage "), std::string::npos) << label << ": " << err;
        } else {
          // Negative real values (coefficients, thresholds) can still be a model; negative indices cannot.
          EXPECT_FALSE(m.must_fail && (m.what != "negative" || is_int(d.name))) << label << ": loaded without an error";
        }
        w.barrier();
      }
    }
    if (w.rank() == 0) std::filesystem::remove(good), std::filesystem::remove(bad);
  }
  if (w.rank() == 0) std::printf("damaged datasets: %d tried, %d refused at load\n", tried, refused);
  EXPECT_GT(tried, 100);
  EXPECT_GT(refused, tried / 2);
}
