// YAML -> Config. A Section reads one mapping: each get() consumes a key, checks its type and
// range, and finish() rejects any key nobody consumed, listing the keys that are allowed.
#include "lockstep/io/config.hpp"

#include "lockstep/core/checked_size.hpp"
#include "lockstep/core/error.hpp"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <functional>
#include <map>
#include <set>
#include <sstream>

namespace lockstep::io {
namespace {

class Section {
 public:
  // overridden: key paths whose values came from --set (their YAML line numbers are meaningless).
  Section(YAML::Node node, std::string path, const std::string* source,
          const std::set<std::string>* overridden = nullptr)
      : node_(std::move(node)), path_(std::move(path)), source_(source), overridden_(overridden) {
    if (node_ && !node_.IsNull() && !node_.IsMap()) fail(path_, node_, "expected a mapping");
  }

  // "file.yaml:12: training.loss", or "file.yaml: --set: training.loss" for a --set value.
  std::string where(const std::string& key, const YAML::Node& at) const {
    std::ostringstream os;
    bool from_set = false;  // the key, or a parent of it, was given with --set
    if (overridden_) {
      for (const auto& o : *overridden_)
        from_set = from_set || key == o || key.rfind(o + ".", 0) == 0 || key.rfind(o + "[", 0) == 0;
    }
    if (from_set) {
      os << *source_ << ": --set";
    } else {
      os << *source_;
      if (at && at.Mark().line >= 0) os << ':' << (at.Mark().line + 1);
    }
    os << ": " << (key.empty() ? "(top level)" : key);
    return os.str();
  }

  [[noreturn]] void fail(const std::string& key, const YAML::Node& at, const std::string& what) const {
    throw ConfigError(where(key, at) + ": " + what);
  }

  std::string key_path(const std::string& key) const { return path_.empty() ? key : path_ + "." + key; }

  template <typename T>
  void get(const std::string& key, T& out, std::function<bool(const T&)> ok = {}, const std::string& range = "") {
    allowed_.insert(key);
    if (!node_ || !node_.IsMap() || !node_[key]) return;
    const YAML::Node v = node_[key];
    T parsed{};
    std::string found = v.IsScalar() ? "\"" + v.Scalar() + "\"" : (v.IsSequence() ? "a list" : "a mapping");
    if constexpr (std::is_same_v<T, std::vector<std::string>>) {
      if (!v.IsSequence()) fail(key_path(key), v, "expected a list of strings, got " + found);
      parsed = v.as<std::vector<std::string>>();
    } else {
      // Scalars are read by the one typed reader every registry uses (core/param_reader.hpp), so
      // a config key and a layer or stage parameter accept the same texts.
      if (!v.IsScalar()) fail(key_path(key), v, std::string("expected ") + param_type_word<T>() + ", got " + found);
      parsed = parse_param<T>(Param{{}, false, where(key_path(key), v)}, v.Scalar());
    }
    if (ok && !ok(parsed)) fail(key_path(key), v, "expected " + range + ", got " + found);
    out = parsed;
  }

  Section child(const std::string& key) {
    allowed_.insert(key);
    YAML::Node n = node_ && node_.IsMap() ? node_[key] : YAML::Node();
    return Section(n, key_path(key), source_, overridden_);
  }
  YAML::Node raw(const std::string& key) {
    allowed_.insert(key);
    return node_ && node_.IsMap() ? node_[key] : YAML::Node();
  }

  void finish() const {
    if (!node_ || !node_.IsMap()) return;
    for (const auto& kv : node_) {
      const std::string k = kv.first.as<std::string>();
      if (allowed_.count(k)) continue;
      std::string list;
      for (const auto& a : allowed_) list += (list.empty() ? "" : ", ") + a;
      fail(key_path(k), kv.first, "unknown key (allowed here: " + list + ")");
    }
  }

 private:
  YAML::Node node_;
  std::string path_;
  const std::string* source_;
  const std::set<std::string>* overridden_ = nullptr;
  std::set<std::string> allowed_;
};

template <typename T>
std::function<bool(const T&)> positive() {
  return [](const T& v) { return v > 0; };
}
template <typename T>
std::function<bool(const T&)> non_negative() {
  return [](const T& v) { return v >= 0; };
}
std::function<bool(const std::string&)> one_of(std::initializer_list<const char*> choices) {
  std::vector<std::string> c(choices.begin(), choices.end());
  return [c](const std::string& v) { return std::find(c.begin(), c.end(), v) != c.end(); };
}

void apply_override(YAML::Node root, const std::string& text) {
  const auto eq = text.find('=');
  if (eq == std::string::npos || eq == 0) throw ConfigError("--set " + text + ": expected key.path=value");
  const std::string path = text.substr(0, eq);
  YAML::Node value;
  try {
    value = YAML::Load(text.substr(eq + 1));
  } catch (const YAML::Exception& e) {
    throw ConfigError("--set " + text + ": value is not valid YAML: " + e.msg);
  }
  std::vector<std::string> parts;
  std::stringstream ss(path);
  for (std::string p; std::getline(ss, p, '.');) parts.push_back(p);
  // Walk by reassignment: yaml-cpp nodes are handles, so node = node[k] moves down the tree.
  std::vector<YAML::Node> chain{root};
  for (std::size_t i = 0; i + 1 < parts.size(); ++i) {
    YAML::Node next = chain.back()[parts[i]];
    if (next && !next.IsMap() && !next.IsNull())
      throw ConfigError("--set " + text + ": " + parts[i] + " is not a mapping");
    chain.push_back(next);
  }
  chain.back()[parts.back()] = value;
}

StageParam stage_param(const YAML::Node& v, const std::string& where) {
  StageParam p;
  p.where = where;
  if (v.IsSequence()) {
    p.is_list = true;
    for (const auto& e : v) {
      if (!e.IsScalar()) throw ConfigError(where + ": expected a scalar or a list of scalars");
      p.values.push_back(e.Scalar());
    }
  } else if (v.IsScalar()) {
    p.values.push_back(v.Scalar());
  } else if (v.IsNull()) {
    p.values.push_back("");
  } else {
    throw ConfigError(where + ": expected a scalar or a list of scalars");
  }
  return p;
}

std::string mark(const std::string& source, const YAML::Node& n, const std::set<std::string>& overridden,
                 const std::string& key) {
  for (const auto& o : overridden)
    if (key == o || key.rfind(o + ".", 0) == 0 || key.rfind(o + "[", 0) == 0 || o.rfind(key, 0) == 0 || o == "pipeline")
      return source + ": --set: " + key;
  return source + (n && n.Mark().line >= 0 ? ":" + std::to_string(n.Mark().line + 1) : std::string()) + ": " + key;
}

// model.layers: each entry a mapping with a `type` and that type's parameters, kept as text with
// their places for nn's layer registry. Keras' `activation:` on any layer becomes a layer of its
// own after it ({type: dense, units: 64, activation: relu} is dense, then relu).
void parse_layers(const YAML::Node& n, const std::string& source, const std::set<std::string>& overridden,
                  std::vector<Spec>& out, const std::string& path) {
  if (!n || !n.IsSequence() || n.size() == 0)
    throw ConfigError(mark(source, n, overridden, path) + ": expected a non-empty list of layers");
  for (std::size_t i = 0; i < n.size(); ++i) {
    const std::string here = path + "[" + std::to_string(i) + "]";
    const YAML::Node e = n[i];
    if (!e.IsMap()) throw ConfigError(mark(source, e, overridden, here) + ": expected a mapping such as {type: relu}");
    Spec spec;
    spec.where = mark(source, e, overridden, here);
    std::string activation, activation_where;
    for (const auto& kv : e) {
      const std::string key = kv.first.as<std::string>();
      const std::string where = mark(source, kv.first, overridden, here + "." + key);
      if (key == "type" || key == "activation") {
        if (!kv.second.IsScalar() || kv.second.Scalar().empty())
          throw ConfigError(where + ": expected a name, got " +
                            (kv.second.IsScalar() ? "nothing" : "a mapping or list"));
        (key == "type" ? spec.type : activation) = kv.second.Scalar();
        if (key == "activation") activation_where = where;
        continue;
      }
      if (kv.second.IsMap() || (kv.second.IsSequence() && kv.second.size() > 0 && kv.second[0].IsMap())) {
        // A layer ({type: dense, ...}) or a list of them: nested specs (a residual block's keys).
        YAML::Node one(YAML::NodeType::Sequence);  // (assigning to a node copied from kv.second would
        if (kv.second.IsMap()) one.push_back(kv.second);  // overwrite the document's node itself)
        parse_layers(kv.second.IsMap() ? one : kv.second, source, overridden, spec.children[key], here + "." + key);
        continue;
      }
      spec.params[key] = stage_param(kv.second, where);
    }
    if (spec.type.empty()) throw ConfigError(spec.where + ".type: missing (the layer type, e.g. dense or relu)");
    if (activation == "softmax" && i + 1 != n.size())
      throw ConfigError(activation_where + ": softmax only on the last layer (with a cross-entropy loss)");
    out.push_back(std::move(spec));
    if (!activation.empty() && activation != "linear") out.push_back(Spec{activation, activation_where, {}, {}});
  }
}

// Keras' losses take probabilities from a final sigmoid or softmax; lockstep's take logits and
// fold the activation into the loss, which is exact and numerically stable (Keras does the same
// internally). So binary_crossentropy after a final sigmoid becomes bce_with_logits without it,
// and (sparse_)categorical_crossentropy after a final softmax becomes softmax_cross_entropy.
void fold_output_activation(Config& c, const Section& t) {
  auto& loss = c.training.loss;
  auto& layers = c.model.layers;
  const std::string last = layers.empty() ? "" : layers.back().type;
  if (loss == "binary_crossentropy") {
    if (last != "sigmoid")
      t.fail(t.key_path("loss"), YAML::Node(),
             "binary_crossentropy takes probabilities, so the last layer must be a "
             "sigmoid (e.g. {type: dense, units: 1, activation: sigmoid}); for logits use bce_with_logits");
    layers.pop_back();
    loss = "bce_with_logits";
  } else if (loss == "categorical_crossentropy" || loss == "sparse_categorical_crossentropy") {
    if (last != "softmax")
      t.fail(t.key_path("loss"), YAML::Node(),
             loss +
                 " takes probabilities, so the last layer must end in a softmax "
                 "(e.g. {type: dense, units: 10, activation: softmax}); for logits use softmax_cross_entropy");
    layers.pop_back();
    loss = "softmax_cross_entropy";
  }
  // softmax_cross_entropy applies the softmax itself: a second one would be wrong. Other losses (a
  // regression onto a distribution, an imported network that ends in a softmax) keep it.
  if (loss == "softmax_cross_entropy" && !layers.empty() && layers.back().type == "softmax")
    t.fail(t.key_path("loss"), YAML::Node(),
           "a final softmax goes with categorical_crossentropy or "
           "sparse_categorical_crossentropy (softmax_cross_entropy takes the logits, without it)");
}

// The sections of a neural network (model, optimizer, schedule, training), under `top`: the file's
// top level for `lockstep train`, or a NeuralNetwork stage of a pipeline.
void parse_nn(Section& top, const std::string* src, const std::set<std::string>& overridden, Config& c,
              bool require_layers = true) {
  Section m = top.child("model");
  auto& mc = c.model;
  m.get<std::string>("init_from", mc.init_from);
  mc.init_from_where = mark(*src, m.raw("init_from"), overridden, m.key_path("init_from"));
  m.get<std::string>("replace_from", mc.replace_from);
  mc.replace_from_where = mark(*src, m.raw("replace_from"), overridden, m.key_path("replace_from"));
  m.get<bool>("base_trainable", mc.base_trainable);
  m.get<std::int64_t>("init_layers", mc.init_layers, non_negative<std::int64_t>(), "an integer >= 0");
  if (mc.init_from.empty())
    for (const char* k : {"replace_from", "base_trainable", "init_layers"})
      if (const YAML::Node n = m.raw(k); n && !n.IsNull())
        m.fail(m.key_path(k), n, "needs model.init_from (the pretrained network it refers to)");
  // With init_from, the source's layers are the network; model.layers (the new head) may be empty.
  const YAML::Node layers = m.raw("layers");
  const bool no_layers = !layers || layers.IsNull() || (layers.IsSequence() && layers.size() == 0);
  if ((require_layers && mc.init_from.empty()) || !no_layers)
    parse_layers(m.raw("layers"), *src, overridden, mc.layers, m.key_path("layers"));
  m.get<std::string>("init", mc.init);
  mc.init_where = mark(*src, m.raw("init"), overridden, m.key_path("init"));
  m.finish();

  Section o = top.child("optimizer");
  auto& op = c.optimizer;
  o.get<std::string>("type", op.type, one_of({"sgd", "adam", "adamw"}), "one of sgd, adam, adamw");
  // Adam and AdamW default to lr 1e-3, as in Keras and PyTorch; SGD keeps 0.01.
  if (op.type == "adam" || op.type == "adamw") op.lr = 1e-3;
  o.get<double>(
      "lr", op.lr, [](const double& v) { return v > 0 && std::isfinite(v); }, "a finite number > 0");
  o.get<double>(
      "momentum", op.momentum, [](const double& v) { return v >= 0.0 && v < 1.0; }, "a number in [0, 1)");
  o.get<bool>("nesterov", op.nesterov);
  o.get<double>("weight_decay", op.weight_decay, non_negative<double>(), "a number >= 0");
  o.get<double>(
      "beta1", op.beta1, [](const double& v) { return v >= 0.0 && v < 1.0; }, "a number in [0, 1)");
  o.get<double>(
      "beta2", op.beta2, [](const double& v) { return v >= 0.0 && v < 1.0; }, "a number in [0, 1)");
  o.get<double>("eps", op.eps, positive<double>(), "a number > 0");
  o.finish();
  if (op.nesterov && op.momentum == 0.0)
    o.fail(o.key_path("nesterov"), YAML::Node(), "Nesterov momentum needs momentum > 0");

  Section s = top.child("schedule");
  s.get<std::string>("type", c.schedule.type, one_of({"constant", "step", "cosine"}), "one of constant, step, cosine");
  s.get<std::int64_t>("warmup_steps", c.schedule.warmup_steps, non_negative<std::int64_t>(), "an integer >= 0");
  s.get<std::int64_t>("step_size", c.schedule.step_size, positive<std::int64_t>(), "an integer > 0 (epochs)");
  s.get<double>("gamma", c.schedule.gamma, positive<double>(), "a number > 0");
  s.get<double>("min_lr", c.schedule.min_lr, non_negative<double>(), "a number >= 0");
  s.finish();

  Section t = top.child("training");
  auto& tr = c.training;
  t.get<std::int64_t>("epochs", tr.epochs, positive<std::int64_t>(), "an integer > 0");
  t.get<std::int64_t>("batch_size", tr.batch_size, positive<std::int64_t>(), "an integer > 0");
  t.get<std::uint64_t>("seed", tr.seed);
  t.get<std::string>("loss", tr.loss);  // nn's loss registry checks the name (Keras' names are folded below)
  tr.loss_where = mark(*src, t.raw("loss"), overridden, t.key_path("loss"));
  t.get<std::string>("device", tr.device, one_of({"cpu", "cuda"}), "one of cpu, cuda");
  t.get<bool>("deterministic", tr.deterministic);
  t.get<std::int64_t>("micro_batch", tr.micro_batch, positive<std::int64_t>(), "an integer > 0");
  t.get<double>("bucket_mb", tr.bucket_mb, positive<double>(), "a number > 0 (MiB)");
  t.get<bool>("overlap", tr.overlap);
  t.get<bool>("shared_memory", tr.shared_memory);
  std::string tiles = tr.tile_rows < 0 ? "auto" : std::to_string(tr.tile_rows);
  t.get<std::string>(
      "tile_rows", tiles,
      [](const std::string& v) {
        return v == "auto" || (!v.empty() && v.size() < 10 && v.find_first_not_of("0123456789") == std::string::npos);
      },
      "auto or an integer >= 0 (0: every rank keeps its own rows)");
  tr.tile_rows = tiles == "auto" ? -1 : std::stoll(tiles);
  t.get<std::string>("precision", tr.precision, one_of({"fp32", "bf16"}), "one of fp32, bf16");
  t.get<std::string>("reduce_precision", tr.reduce_precision, one_of({"fp32", "bf16"}), "one of fp32, bf16");
  // A row of an evaluation batch is at least one 4-byte feature, so a batch of more rows than
  // physical memory / 4 cannot be allocated whatever the data (922337203685477581 used to reach
  // the allocator as a bare std::bad_alloc).
  const std::int64_t most_rows = physical_memory_bytes() / 4;
  t.get<std::int64_t>(
      "eval_batch", tr.eval_batch, [=](const std::int64_t& v) { return v > 0 && v <= most_rows; },
      "an integer > 0 and at most " + std::to_string(most_rows) + " (a row takes at least 4 bytes; this machine has " +
          bytes_text(physical_memory_bytes()) + " of memory)");
  t.finish();
  fold_output_activation(c, t);
}

StageConfig parse_stage(const YAML::Node& n, const std::string& path, const std::string* src,
                        const std::set<std::string>& overridden) {
  if (!n.IsMap() || n.size() != 1)
    throw ConfigError(
        mark(*src, n, overridden, path) +
        ": expected a mapping with one key, the stage type (e.g. {LogisticRegression: {regParam: 0.01}})");
  StageConfig st;
  const auto kv = *n.begin();
  st.type = kv.first.as<std::string>();
  const std::string here = path + "." + st.type;
  st.where = mark(*src, kv.first, overridden, here);
  const YAML::Node body = kv.second;
  if (body && !body.IsNull() && !body.IsMap()) throw ConfigError(st.where + ": expected a mapping of parameters");
  if (st.type == "NeuralNetwork") {
    st.nn = std::make_shared<Config>();
    st.nn->source = *src;
    Section s(body, here, src, &overridden);
    parse_nn(s, src, overridden, *st.nn);
    s.finish();
    return st;
  }
  if (!body || body.IsNull()) return st;
  for (const auto& p : body) {
    const std::string key = p.first.as<std::string>();
    if (st.type == "FeatureSelector" && key == "estimator") {
      st.inner.push_back(parse_stage(p.second, here + ".estimator", src, overridden));
      continue;
    }
    st.params[key] = stage_param(p.second, mark(*src, p.first, overridden, here + "." + key));
  }
  return st;
}

// The ML sections (`lockstep fit`): the pipeline's stages and tuning, kept with their places; ml/
// reads the stage parameters. Their YAML as given goes into the config's canonical text.
void parse_pipeline(Section& top, const std::string& source, const std::set<std::string>& overridden, Config& c) {
  const std::string* src = &c.source;
  const YAML::Node pipe = top.raw("pipeline");
  if (pipe && !pipe.IsNull()) {
    if (!pipe.IsSequence() || pipe.size() == 0)
      throw ConfigError(mark(source, pipe, overridden, "pipeline") + ": expected a non-empty list of stages");
    for (std::size_t i = 0; i < pipe.size(); ++i)
      c.pipeline.push_back(parse_stage(pipe[i], "pipeline[" + std::to_string(i) + "]", src, overridden));
  }
  Section tu = top.child("tuning");
  auto& tn = c.tuning;
  tu.get<std::string>("type", tn.type, one_of({"none", "CrossValidator", "TrainValidationSplit"}),
                      "one of none, CrossValidator, TrainValidationSplit");
  tu.get<std::int64_t>(
      "numFolds", tn.num_folds, [](const std::int64_t& v) { return v >= 2; }, "an integer >= 2");
  tu.get<double>(
      "trainRatio", tn.train_ratio, [](const double& v) { return v > 0 && v < 1; }, "a number in (0, 1)");
  tu.get<std::uint64_t>("seed", tn.seed);
  tu.get<std::string>("metric", tn.metric,
                      one_of({"accuracy", "f1", "weightedPrecision", "weightedRecall", "logLoss", "areaUnderROC",
                              "areaUnderPR", "rmse", "mse", "mae", "r2", "cost"}),
                      "one of accuracy, f1, weightedPrecision, weightedRecall, logLoss, areaUnderROC, areaUnderPR, "
                      "rmse, mse, mae, r2, cost");
  const YAML::Node grid = tu.raw("grid");
  if (grid && !grid.IsNull()) {
    if (!grid.IsMap())
      throw ConfigError(mark(source, grid, overridden, "tuning.grid") +
                        ": expected a mapping of Stage.param: [values]");
    for (const auto& g : grid) {
      const std::string key = g.first.as<std::string>();
      tn.grid.emplace_back(key, stage_param(g.second, mark(source, g.first, overridden, "tuning.grid." + key)));
    }
  }
  tn.where = mark(source, top.raw("tuning"), overridden, "tuning");
  tu.finish();
  if (pipe || top.raw("tuning")) {
    YAML::Node keep;
    if (pipe) keep["pipeline"] = pipe;
    if (top.raw("tuning")) keep["tuning"] = top.raw("tuning");
    YAML::Emitter em;
    em << keep;
    c.pipeline_yaml = em.c_str();
  }
}

Config from_yaml(YAML::Node root, const std::string& source, const std::set<std::string>& overridden) {
  Config c;
  c.source = source;
  const std::string* src = &c.source;
  Section top(root, "", src, &overridden);

  Section d = top.child("data");
  d.get<std::string>("format", c.data.format);
  c.data.format_where = mark(source, d.raw("format"), overridden, "data.format");
  for (auto [name, split] : {std::pair{"train", &c.data.train}, std::pair{"test", &c.data.test}}) {
    Section s = d.child(name);
    s.get<std::string>("features", split->features);
    s.get<std::string>("labels", split->labels);
    s.finish();
  }
  {
    std::vector<std::string> classes;
    d.get<std::vector<std::string>>("classes", classes);
    for (const auto& v : classes) {
      std::size_t used = 0;
      long long k = -1;
      try {
        k = std::stoll(v, &used);
      } catch (const std::exception&) {
      }
      if (used != v.size() || k < 0 ||
          std::find(c.data.classes.begin(), c.data.classes.end(), k) != c.data.classes.end())
        d.fail(d.key_path("classes"), d.raw("classes"),
               "expected a list of distinct class labels (integers >= 0), got \"" + v + "\"");
      c.data.classes.push_back(k);
    }
    c.data.classes_where = mark(source, d.raw("classes"), overridden, "data.classes");
  }
  d.get<double>(
      "train_fraction", c.data.train_fraction, [](const double& v) { return v > 0.0 && v <= 1.0; },
      "a number in (0, 1]");
  c.data.train_fraction_where = mark(source, d.raw("train_fraction"), overridden, "data.train_fraction");
  d.get<std::uint64_t>("fraction_seed", c.data.fraction_seed);
  d.get<std::vector<std::string>>("label_columns", c.data.label_columns);
  // Everything else belongs to the format: kept with its place for data/'s source to read.
  const YAML::Node dn = YAML::Node(root)["data"];
  if (dn && dn.IsMap()) {
    for (const auto& kv : dn) {
      const std::string key = kv.first.as<std::string>();
      if (key == "format" || key == "train" || key == "test" || key == "classes" || key == "label_columns" ||
          key == "train_fraction" || key == "fraction_seed")
        continue;
      if (kv.second.IsMap()) {
        for (const auto& inner : kv.second) {
          const std::string name = key + "." + inner.first.as<std::string>();
          c.data.params[name] = stage_param(inner.second, mark(source, inner.first, overridden, "data." + name));
        }
      } else {
        c.data.params[key] = stage_param(kv.second, mark(source, kv.first, overridden, "data." + key));
      }
    }
  }

  // A pipeline config (`lockstep fit`) needs no top-level model, nor does one without a model section
  // (`lockstep predict --model net.onnx` takes the network from its file; train, evaluate and
  // predict --checkpoint refuse an empty model.layers when they build the model).
  const YAML::Node pipeline_node = YAML::Node(root)["pipeline"];
  const YAML::Node model_node = YAML::Node(root)["model"];
  parse_nn(top, src, overridden, c, !(pipeline_node && !pipeline_node.IsNull()) && model_node.IsDefined());

  Section k = top.child("checkpoint");
  k.get<std::int64_t>("every_steps", c.checkpoint.every_steps, non_negative<std::int64_t>(), "an integer >= 0");
  k.get<bool>("at_epoch_end", c.checkpoint.at_epoch_end);
  k.get<std::int64_t>(
      "keep", c.checkpoint.keep, [](const std::int64_t& v) { return v >= 1 && v <= 1000; }, "an integer in [1, 1000]");
  k.finish();

  Section cm = top.child("comm");
  cm.get<double>(
      "timeout_s", c.comm.timeout_s, [](const double& v) { return v >= 0 && std::isfinite(v); },
      "a number of seconds >= 0 (0: no deadline)");
  cm.finish();

  Section out = top.child("output");
  out.get<std::string>(
      "dir", c.output.dir, [](const std::string& v) { return !v.empty(); }, "a non-empty path");
  out.get<std::string>("progress", c.output.progress, one_of({"auto", "bar", "lines", "none"}),
                       "one of auto, bar, lines, none");
  out.get<std::int64_t>("log_every_steps", c.output.log_every_steps, positive<std::int64_t>(), "an integer > 0");
  out.get<bool>("trace", c.output.trace);
  out.finish();

  parse_pipeline(top, source, overridden, c);
  top.finish();
  return c;
}

// yaml-cpp keeps both pairs of a duplicated key and node[key] answers with the first, so a second
// `lr:` further down a file was silently ignored. Every mapping of the document, nested ones and
// those inside lists included, is checked once here. Aliases make the document a graph that can
// expand exponentially (or loop), so the walk is iterative and stops at kMaxNodes nodes, far above
// any real config.
void check_duplicate_keys(const YAML::Node& root, const std::string& source) {
  constexpr std::size_t kMaxNodes = 100000;
  std::vector<std::pair<YAML::Node, std::string>> todo{{root, ""}};
  std::size_t seen = 0;
  while (!todo.empty()) {
    auto [n, path] = std::move(todo.back());
    todo.pop_back();
    if (++seen > kMaxNodes)
      throw ConfigError(source + ": the document expands to more than " + std::to_string(kMaxNodes) +
                        " nodes (through aliases?); a config is far smaller");
    if (n.IsSequence()) {
      for (std::size_t i = 0; i < n.size(); ++i) todo.emplace_back(n[i], path + "[" + std::to_string(i) + "]");
    } else if (n.IsMap()) {
      std::map<std::string, int> lines;  // key -> the line it first appears on
      for (const auto& kv : n) {
        const int line = kv.first.Mark().line + 1;
        // Every key the reader looks up is a name; a list or mapping as a key (YAML's `? [a, b]`)
        // would otherwise fail deep in yaml-cpp as a conversion error naming nothing.
        if (!kv.first.IsScalar())
          throw ConfigError(source + ":" + std::to_string(line) + ": " + (path.empty() ? "(top level)" : path) +
                            ": expected a plain name as a key, got " +
                            (kv.first.IsMap() ? "a mapping" : kv.first.IsSequence() ? "a list" : "an empty key"));
        const std::string key = kv.first.Scalar();
        const std::string here = path.empty() ? key : path + "." + key;
        const auto [it, fresh] = lines.emplace(key, line);
        if (!fresh)
          throw ConfigError(source + ":" + std::to_string(line) + ": " + here + ": duplicate key (first given on line " +
                            std::to_string(it->second) + ")");
        todo.emplace_back(kv.second, here);
      }
    }
  }
}

}  // namespace

Config parse_config(const std::string& text, const std::string& source, const std::vector<std::string>& overrides) {
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::ParserException& e) {
    throw ConfigError(source + ":" + std::to_string(e.mark.line + 1) + ": not valid YAML: " + e.msg);
  }
  if (!root || root.IsNull()) root = YAML::Node(YAML::NodeType::Map);
  if (!root.IsMap()) throw ConfigError(source + ": expected a mapping at the top level");
  check_duplicate_keys(root, source);
  std::set<std::string> overridden;
  for (const auto& o : overrides) {
    apply_override(root, o);
    overridden.insert(o.substr(0, o.find('=')));
  }
  try {
    return from_yaml(root, source, overridden);
  } catch (const YAML::Exception& e) {  // a shape the reader did not expect, still the file's fault
    throw ConfigError(source + (e.mark.is_null() ? std::string() : ":" + std::to_string(e.mark.line + 1)) +
                      ": unexpected YAML: " + e.msg);
  }
}

Config load_config(const std::string& path, const std::vector<std::string>& overrides) {
  std::ifstream in(path);
  if (!in) throw ConfigError(path + ": cannot open the config file");
  std::stringstream ss;
  ss << in.rdbuf();
  return parse_config(ss.str(), path, overrides);
}

namespace {
// A parameter as the config gave it: its text, or a flow list of texts.
void emit_param(YAML::Emitter& e, const std::string& key, const Param& p) {
  e << YAML::Key << key << YAML::Value;
  if (p.is_list) {
    e << YAML::Flow << YAML::BeginSeq;
    for (const auto& v : p.values) e << v;
    e << YAML::EndSeq;
  } else {
    e << p.values[0];
  }
}
void emit_layers(YAML::Emitter& e, const std::vector<Spec>& layers) {
  e << YAML::BeginSeq;
  for (const auto& l : layers) {
    e << YAML::Flow << YAML::BeginMap << YAML::Key << "type" << YAML::Value << l.type;
    for (const auto& [key, p] : l.params) emit_param(e, key, p);
    for (const auto& [key, children] : l.children) {
      e << YAML::Key << key << YAML::Value;
      emit_layers(e, children);
    }
    e << YAML::EndMap;
  }
  e << YAML::EndSeq;
}
}  // namespace

std::string to_yaml(const Config& c) {
  YAML::Emitter e;
  e << YAML::BeginMap;
  e << YAML::Key << "data" << YAML::Value << YAML::BeginMap;
  e << YAML::Key << "format" << YAML::Value << c.data.format;
  for (auto [name, split] : {std::pair{"train", &c.data.train}, std::pair{"test", &c.data.test}}) {
    e << YAML::Key << name << YAML::Value << YAML::BeginMap << YAML::Key << "features" << YAML::Value << split->features
      << YAML::Key << "labels" << YAML::Value << split->labels << YAML::EndMap;
  }
  // The format's parameters, sorted by name; "a.b" names are written back as nested mappings.
  for (auto it = c.data.params.begin(); it != c.data.params.end();) {
    const auto dot = it->first.find('.');
    const auto emit = [&](const std::string& key, const StageParam& p) { emit_param(e, key, p); };
    if (dot == std::string::npos) {
      emit(it->first, it->second);
      ++it;
      continue;
    }
    const std::string group = it->first.substr(0, dot + 1);
    e << YAML::Key << group.substr(0, dot) << YAML::Value << YAML::BeginMap;
    for (; it != c.data.params.end() && it->first.rfind(group, 0) == 0; ++it)
      emit(it->first.substr(dot + 1), it->second);
    e << YAML::EndMap;
  }
  if (!c.data.classes.empty()) e << YAML::Key << "classes" << YAML::Value << YAML::Flow << c.data.classes;
  if (c.data.train_fraction != 1.0) {
    e << YAML::Key << "train_fraction" << YAML::Value << c.data.train_fraction << YAML::Key << "fraction_seed"
      << YAML::Value << c.data.fraction_seed;
  }
  if (!c.data.label_columns.empty())
    e << YAML::Key << "label_columns" << YAML::Value << YAML::Flow << c.data.label_columns;
  e << YAML::EndMap;

  e << YAML::Key << "model" << YAML::Value << YAML::BeginMap << YAML::Key << "layers" << YAML::Value;
  emit_layers(e, c.model.layers);
  e << YAML::Key << "init" << YAML::Value << c.model.init;
  if (!c.model.init_from.empty()) {  // resolved: the full layer list and how many came from the source
    e << YAML::Key << "init_from" << YAML::Value << c.model.init_from;
    if (c.model.init_layers >= 0) {
      e << YAML::Key << "init_layers" << YAML::Value << c.model.init_layers;
    } else {
      if (!c.model.replace_from.empty()) e << YAML::Key << "replace_from" << YAML::Value << c.model.replace_from;
      e << YAML::Key << "base_trainable" << YAML::Value << c.model.base_trainable;
    }
  }
  e << YAML::EndMap;

  const auto& o = c.optimizer;
  e << YAML::Key << "optimizer" << YAML::Value << YAML::BeginMap << YAML::Key << "type" << YAML::Value << o.type
    << YAML::Key << "lr" << YAML::Value << o.lr << YAML::Key << "momentum" << YAML::Value << o.momentum << YAML::Key
    << "nesterov" << YAML::Value << o.nesterov << YAML::Key << "weight_decay" << YAML::Value << o.weight_decay
    << YAML::Key << "beta1" << YAML::Value << o.beta1 << YAML::Key << "beta2" << YAML::Value << o.beta2 << YAML::Key
    << "eps" << YAML::Value << o.eps << YAML::EndMap;

  const auto& s = c.schedule;
  e << YAML::Key << "schedule" << YAML::Value << YAML::BeginMap << YAML::Key << "type" << YAML::Value << s.type
    << YAML::Key << "warmup_steps" << YAML::Value << s.warmup_steps << YAML::Key << "step_size" << YAML::Value
    << s.step_size << YAML::Key << "gamma" << YAML::Value << s.gamma << YAML::Key << "min_lr" << YAML::Value << s.min_lr
    << YAML::EndMap;

  const auto& t = c.training;
  e << YAML::Key << "training" << YAML::Value << YAML::BeginMap << YAML::Key << "epochs" << YAML::Value << t.epochs
    << YAML::Key << "batch_size" << YAML::Value << t.batch_size << YAML::Key << "seed" << YAML::Value << t.seed
    << YAML::Key << "loss" << YAML::Value << t.loss << YAML::Key << "device" << YAML::Value << t.device << YAML::Key
    << "deterministic" << YAML::Value << t.deterministic << YAML::Key << "micro_batch" << YAML::Value << t.micro_batch
    << YAML::Key << "bucket_mb" << YAML::Value << t.bucket_mb << YAML::Key << "overlap" << YAML::Value << t.overlap
    << YAML::Key << "shared_memory" << YAML::Value << t.shared_memory << YAML::Key << "tile_rows" << YAML::Value
    << (t.tile_rows < 0 ? std::string("auto") : std::to_string(t.tile_rows)) << YAML::Key << "precision" << YAML::Value
    << t.precision << YAML::Key << "reduce_precision" << YAML::Value << t.reduce_precision << YAML::Key << "eval_batch"
    << YAML::Value << t.eval_batch << YAML::EndMap;

  e << YAML::Key << "checkpoint" << YAML::Value << YAML::BeginMap << YAML::Key << "every_steps" << YAML::Value
    << c.checkpoint.every_steps << YAML::Key << "at_epoch_end" << YAML::Value << c.checkpoint.at_epoch_end
    << YAML::Key << "keep" << YAML::Value << c.checkpoint.keep << YAML::EndMap;
  e << YAML::Key << "comm" << YAML::Value << YAML::BeginMap << YAML::Key << "timeout_s" << YAML::Value
    << c.comm.timeout_s << YAML::EndMap;
  e << YAML::Key << "output" << YAML::Value << YAML::BeginMap << YAML::Key << "dir" << YAML::Value << c.output.dir
    << YAML::Key << "progress" << YAML::Value << c.output.progress << YAML::Key << "log_every_steps" << YAML::Value
    << c.output.log_every_steps;
  if (c.output.trace) e << YAML::Key << "trace" << YAML::Value << true;  // absent when off: older hashes hold
  e << YAML::EndMap;
  if (!c.pipeline_yaml.empty()) {
    const YAML::Node extra = YAML::Load(c.pipeline_yaml);
    for (const auto& kv : extra) e << YAML::Key << kv.first << YAML::Value << kv.second;
  }
  e << YAML::EndMap;
  return std::string(e.c_str()) + "\n";
}

std::uint64_t config_hash(const Config& c) {
  std::uint64_t h = 1469598103934665603ull;
  for (unsigned char ch : to_yaml(c)) {
    h ^= ch;
    h *= 1099511628211ull;
  }
  return h;
}

std::string hex64(std::uint64_t v) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
  return buf;
}

}  // namespace lockstep::io
