// The config boundary as a user meets it: a small YAML file resolves to typed values with every
// default filled in; every mistake (unknown key, wrong type, value out of range, bad --set) is a
// ConfigError naming the file, the line and the key path; --set overrides are applied before
// validation; and the canonical YAML and its hash (which go into checkpoints and are compared
// across ranks) are stable, change with every value and survive a round trip.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>

#include "lockstep/core/checked_size.hpp"
#include "lockstep/io/config.hpp"
#include "lockstep/train/model.hpp"

using lockstep::ConfigError;
using lockstep::io::Config;
using lockstep::io::config_hash;
using lockstep::io::parse_config;
using lockstep::io::to_yaml;

namespace {

// Line numbers below refer to this text (line 1 is the comment).
const std::string kBase =
    "# a small run\n"                               // 1
    "data:\n"                                       // 2
    "  format: synthetic\n"                         // 3
    "  train: {features: train.csv}\n"              // 4
    "  synthetic:\n"                                // 5
    "    samples: 256\n"                            // 6
    "model:\n"                                      // 7
    "  layers:\n"                                   // 8
    "    - {type: dense, units: 8}\n"               // 9
    "    - {type: relu}\n"                          // 10
    "    - {type: dropout, rate: 0.25}\n"           // 11
    "    - {type: dense, units: 4, bias: false}\n"  // 12
    "optimizer:\n"                                  // 13
    "  type: adam\n"                                // 14
    "  lr: 0.001\n"                                 // 15
    "training:\n"                                   // 16
    "  epochs: 2\n";                                // 17

// A layer parameter's text, as the config reader kept it.
std::string param(const lockstep::Spec& layer, const std::string& key) {
  const auto it = layer.params.find(key);
  return it == layer.params.end() ? "(absent)" : it->second.values.at(0);
}

// The message of the ConfigError that loading a config throws, as every subcommand loads one: the
// reader, then the network sections against nn's registries (layer types and their parameters,
// the loss, the initialiser). Fails the test if none is thrown.
std::string config_error(const std::string& yaml, const std::vector<std::string>& overrides = {}) {
  try {
    const Config c = parse_config(yaml, "test.yaml", overrides);
    if (c.pipeline.empty()) lockstep::train::check_network(c);  // what `lockstep train` checks before any data
  } catch (const ConfigError& e) {
    return e.what();
  }
  ADD_FAILURE() << "no ConfigError for:\n" << yaml;
  return "";
}

std::string replace_line(const std::string& text, const std::string& from, const std::string& to) {
  const auto at = text.find(from);
  EXPECT_NE(at, std::string::npos) << from;
  return text.substr(0, at) + to + text.substr(at + from.size());
}

#define EXPECT_HAS(haystack, needle) \
  EXPECT_NE(std::string(haystack).find(needle), std::string::npos) << "\"" << (needle) << "\" not in: " << (haystack)

}  // namespace

TEST(Config, ValidFileResolvesWithDefaults) {
  const Config c = parse_config(kBase, "test.yaml");
  EXPECT_EQ(c.source, "test.yaml");
  // Given values.
  EXPECT_EQ(c.data.format, "synthetic");
  EXPECT_EQ(c.data.train.features, "train.csv");
  // The format's own keys stay text with their place; data/'s source reads them.
  ASSERT_EQ(c.data.params.count("synthetic.samples"), 1u);
  EXPECT_EQ(c.data.params.at("synthetic.samples").values, (std::vector<std::string>{"256"}));
  EXPECT_EQ(c.data.params.at("synthetic.samples").where, "test.yaml:6: data.synthetic.samples");
  ASSERT_EQ(c.model.layers.size(), 4u);
  EXPECT_EQ(c.model.layers[0].type, "dense");
  // Layer parameters stay text with their place; nn's layer registry reads them.
  EXPECT_EQ(param(c.model.layers[0], "units"), "8");
  EXPECT_EQ(c.model.layers[0].params.at("units").where, "test.yaml:9: model.layers[0].units");
  EXPECT_EQ(c.model.layers[0].params.count("bias"), 0u);
  EXPECT_EQ(c.model.layers[1].type, "relu");
  EXPECT_EQ(c.model.layers[2].type, "dropout");
  EXPECT_EQ(param(c.model.layers[2], "rate"), "0.25");
  EXPECT_EQ(param(c.model.layers[3], "units"), "4");
  EXPECT_EQ(param(c.model.layers[3], "bias"), "false");
  EXPECT_EQ(c.optimizer.type, "adam");
  EXPECT_EQ(c.optimizer.lr, 0.001);
  EXPECT_EQ(c.training.epochs, 2);
  // Defaults.
  EXPECT_EQ(c.data.params.count("scale"), 0u);  // defaults live with each format, in data/
  EXPECT_TRUE(c.data.label_columns.empty());
  EXPECT_EQ(c.model.init, "he_uniform");
  EXPECT_EQ(c.optimizer.momentum, 0.0);
  EXPECT_FALSE(c.optimizer.nesterov);
  EXPECT_EQ(c.optimizer.beta1, 0.9);
  EXPECT_EQ(c.optimizer.beta2, 0.999);
  EXPECT_EQ(c.optimizer.eps, 1e-8);
  EXPECT_EQ(c.schedule.type, "constant");
  EXPECT_EQ(c.training.batch_size, 64);
  EXPECT_EQ(c.training.seed, 42u);
  EXPECT_EQ(c.training.loss, "softmax_cross_entropy");
  EXPECT_EQ(c.training.device, "cpu");
  EXPECT_FALSE(c.training.deterministic);
  EXPECT_EQ(c.training.micro_batch, 16);
  EXPECT_EQ(c.training.bucket_mb, 1.0);
  EXPECT_TRUE(c.training.overlap);
  EXPECT_EQ(c.checkpoint.every_steps, 0);
  EXPECT_TRUE(c.checkpoint.at_epoch_end);
  EXPECT_EQ(c.output.dir, "runs/default");
  EXPECT_EQ(c.output.progress, "auto");
}

TEST(Config, UnknownKeysNameFileLineAndKeyPath) {
  {
    const auto msg = config_error(kBase + "tranining:\n  epochs: 3\n");  // line 18
    EXPECT_HAS(msg, "test.yaml:18");
    EXPECT_HAS(msg, "tranining");
    EXPECT_HAS(msg, "unknown key");
  }
  {
    const auto msg = config_error(replace_line(kBase, "  lr: 0.001\n", "  lrr: 0.001\n"));  // line 15
    EXPECT_HAS(msg, "test.yaml:15");
    EXPECT_HAS(msg, "optimizer.lrr");
    EXPECT_HAS(msg, "lr");  // the allowed keys are listed
  }
  {
    // A format's keys are checked by its source when the data is read (tests/data); the config
    // keeps the place for that message.
    const Config c =
        parse_config(replace_line(kBase, "    samples: 256\n", "    samples: 256\n    sampels: 3\n"), "test.yaml");
    ASSERT_EQ(c.data.params.count("synthetic.sampels"), 1u);
    EXPECT_EQ(c.data.params.at("synthetic.sampels").where, "test.yaml:7: data.synthetic.sampels");
  }
  {
    const auto msg = config_error(replace_line(kBase, "{type: relu}", "{type: relu, units: 3}"));  // line 10
    EXPECT_HAS(msg, "test.yaml:10");
    EXPECT_HAS(msg, "model.layers[1].units");
  }
}

TEST(Config, WrongTypesNameTheKeyAndTheExpectedType) {
  {
    const auto msg = config_error(replace_line(kBase, "  epochs: 2\n", "  epochs: ten\n"));  // line 17
    EXPECT_HAS(msg, "test.yaml:17");
    EXPECT_HAS(msg, "training.epochs");
    EXPECT_HAS(msg, "expected an integer");
    EXPECT_HAS(msg, "ten");
  }
  EXPECT_HAS(config_error(replace_line(kBase, "  epochs: 2\n", "  epochs: 2.5\n")), "expected an integer");
  EXPECT_HAS(config_error(kBase + "  overlap: maybe\n"), "training.overlap");
  EXPECT_HAS(config_error(kBase + "  overlap: maybe\n"), "training.overlap: expected true or false, got \"maybe\"");
  EXPECT_HAS(config_error(replace_line(kBase, "  lr: 0.001\n", "  lr: fast\n")), "expected a number");
  EXPECT_HAS(config_error(replace_line(kBase, "  lr: 0.001\n", "  lr: [1, 2]\n")), "optimizer.lr");
  EXPECT_HAS(config_error(kBase + "output: [a, b]\n"), "expected a mapping");
  EXPECT_HAS(config_error(kBase + "  seed: -1\n"), "training.seed");
}

TEST(Config, OutOfRangeValuesNameTheKeyAndTheRange) {
  {
    const auto msg = config_error(replace_line(kBase, "  lr: 0.001\n", "  lr: -1\n"));  // line 15
    EXPECT_HAS(msg, "test.yaml:15");
    EXPECT_HAS(msg, "optimizer.lr");
    EXPECT_HAS(msg, "expected a finite number > 0");
    EXPECT_HAS(msg, "-1");
  }
  EXPECT_HAS(config_error(replace_line(kBase, "  epochs: 2\n", "  epochs: 0\n")), "an integer > 0");
  EXPECT_HAS(config_error(replace_line(kBase, "rate: 0.25", "rate: 1.0")), "model.layers[2].rate");
  EXPECT_HAS(config_error(replace_line(kBase, "type: adam", "type: adagrad")), "one of sgd, adam, adamw");
  EXPECT_HAS(config_error(replace_line(kBase, "units: 8", "units: -8")), "model.layers[0].units");
  EXPECT_HAS(config_error(kBase + "  loss: hinge\n"), "training.loss");
  EXPECT_HAS(config_error(replace_line(kBase, "type: adam", "type: sgd\n  nesterov: true")), "optimizer.nesterov");
}

TEST(Config, MissingRequiredSectionsAreReported) {
  EXPECT_HAS(config_error(""), "model.layers");  // data.train.features is the source's to ask for (tests/data)
  EXPECT_HAS(config_error("data: {format: synthetic}\n"), "model.layers");
  EXPECT_HAS(config_error("data: {format: synthetic}\nmodel: {layers: []}\n"), "model.layers");
  EXPECT_HAS(config_error("data: {format: synthetic}\nmodel: {layers: [{units: 3}]}\n"), "model.layers[0].type");
  EXPECT_HAS(config_error("data: {format: synthetic\n"), "test.yaml");  // not valid YAML
}

TEST(Config, OverridesAreAppliedBeforeValidation) {
  const Config c =
      parse_config(kBase, "test.yaml",
                   {"training.epochs=3", "schedule.type=cosine", "schedule.min_lr=0.0001",
                    "data.test.features=test.csv", "checkpoint.every_steps=50", "data.feature_columns=[a,b]",
                    "output.dir=runs/x", "model.layers=[{type: dense, units: 2}]"});
  EXPECT_EQ(c.training.epochs, 3);
  EXPECT_EQ(c.schedule.type, "cosine");  // no schedule section in the file: created by the override
  EXPECT_EQ(c.schedule.min_lr, 0.0001);
  EXPECT_EQ(c.data.test.features, "test.csv");
  EXPECT_EQ(c.data.train.features, "train.csv");  // siblings of an overridden key survive
  EXPECT_EQ(c.checkpoint.every_steps, 50);
  EXPECT_EQ(c.data.params.at("feature_columns").values, (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(c.output.dir, "runs/x");
  ASSERT_EQ(c.model.layers.size(), 1u);
  EXPECT_EQ(param(c.model.layers[0], "units"), "2");
  EXPECT_EQ(c.optimizer.lr, 0.001);  // untouched keys keep the file's values
  // The last override of a key wins.
  EXPECT_EQ(parse_config(kBase, "test.yaml", {"training.epochs=3", "training.epochs=5"}).training.epochs, 5);
}

TEST(Config, BadOverridesAreConfigErrors) {
  EXPECT_HAS(config_error(kBase, {"training.epochz=3"}), "training.epochz");
  EXPECT_HAS(config_error(kBase, {"optimizer.lr=0"}), "optimizer.lr");
  EXPECT_HAS(config_error(kBase, {"training.epochs=three"}), "expected an integer");
  EXPECT_HAS(config_error(kBase, {"training.epochs"}), "key.path=value");
  EXPECT_HAS(config_error(kBase, {"=3"}), "key.path=value");
  EXPECT_HAS(config_error(kBase, {"training.epochs.max=3"}), "not a mapping");
  EXPECT_HAS(config_error(kBase, {"nonsense.key=1"}), "nonsense");
}

TEST(Config, LoadConfigReadsAFileAndNamesItInErrors) {
  const auto dir = std::filesystem::temp_directory_path() / ("lockstep-config-test-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const auto path = (dir / "run.yaml").string();
  { std::ofstream(path) << kBase; }
  const Config c = lockstep::io::load_config(path, {"training.epochs=4"});
  EXPECT_EQ(c.source, path);
  EXPECT_EQ(c.training.epochs, 4);
  { std::ofstream(path) << replace_line(kBase, "  lr: 0.001\n", "  lrr: 0.001\n"); }
  try {
    lockstep::io::load_config(path);
    ADD_FAILURE() << "unknown key accepted";
  } catch (const ConfigError& e) {
    EXPECT_HAS(e.what(), path + ":15");
  }
  try {
    lockstep::io::load_config((dir / "missing.yaml").string());
    ADD_FAILURE() << "missing file accepted";
  } catch (const ConfigError& e) {
    EXPECT_HAS(e.what(), "missing.yaml");
  }
  std::filesystem::remove_all(dir);
}

TEST(Config, HashIsStableAndChangesWithEveryValue) {
  const Config base = parse_config(kBase, "test.yaml");
  const auto h = config_hash(base);
  EXPECT_EQ(config_hash(parse_config(kBase, "test.yaml")), h);
  EXPECT_EQ(config_hash(parse_config(kBase, "other-name.yaml")), h) << "the hash is of the values, not the file name";
  EXPECT_EQ(lockstep::io::hex64(h).size(), 16u);
  // One change per key of the schema.
  const std::vector<std::vector<std::string>> changes{
      {"data.format=csv"},
      {"data.train.features=x.csv"},
      {"data.train.labels=y.idx"},
      {"data.test.features=t.csv"},
      {"data.test.labels=u.idx"},
      {"data.scale=0.5"},
      {"data.label_column=y"},
      {"data.feature_columns=[a]"},
      {"data.num_features=7"},
      {"data.features_dataset=/f"},
      {"data.labels_dataset=/l"},
      {"data.on_invalid=skip"},
      {"data.synthetic.samples=100"},
      {"data.synthetic.test_samples=10"},
      {"data.synthetic.features=3"},
      {"data.synthetic.classes=3"},
      {"data.synthetic.seed=9"},
      {"data.synthetic.noise=0.5"},
      {"model.layers=[{type: dense, units: 8}, {type: relu}, {type: dropout, rate: 0.25}, {type: dense, units: 5, "
       "bias: false}]"},
      {"model.layers=[{type: dense, units: 8}, {type: relu}, {type: dropout, rate: 0.5}, {type: dense, units: 4, bias: "
       "false}]"},
      {"model.layers=[{type: dense, units: 8}, {type: relu}, {type: dropout, rate: 0.25}, {type: dense, units: 4}]"},
      {"model.layers=[{type: dense, units: 8}, {type: tanh}, {type: dropout, rate: 0.25}, {type: dense, units: 4, "
       "bias: false}]"},
      {"model.init=xavier_normal"},
      {"optimizer.type=sgd"},
      {"optimizer.lr=0.5"},
      {"optimizer.lr=0.0010000000000000002"},  // the next double after 0.001
      {"optimizer.momentum=0.5"},
      {"optimizer.momentum=0.5", "optimizer.nesterov=true"},
      {"optimizer.weight_decay=0.1"},
      {"optimizer.beta1=0.8"},
      {"optimizer.beta2=0.99"},
      {"optimizer.eps=1e-6"},
      {"schedule.type=step"},
      {"schedule.warmup_steps=5"},
      {"schedule.step_size=2"},
      {"schedule.gamma=0.5"},
      {"schedule.min_lr=0.01"},
      {"training.epochs=3"},
      {"training.batch_size=32"},
      {"training.seed=1"},
      {"training.loss=mse"},
      {"training.device=cuda"},
      {"training.deterministic=true"},
      {"training.micro_batch=8"},
      {"training.bucket_mb=2"},
      {"training.overlap=false"},
      {"training.eval_batch=10"},
      {"checkpoint.every_steps=5"},
      {"checkpoint.at_epoch_end=false"},
      {"output.dir=elsewhere"},
      {"output.progress=none"},
      {"output.log_every_steps=7"},
  };
  std::set<std::uint64_t> seen{h};
  for (const auto& change : changes) {
    const Config c = parse_config(kBase, "test.yaml", change);
    EXPECT_TRUE(seen.insert(config_hash(c)).second) << change.back() << " does not change the hash (or collides)";
    // The canonical YAML resolves to the same config.
    const Config again = parse_config(to_yaml(c), "resolved.yaml");
    EXPECT_EQ(to_yaml(again), to_yaml(c)) << change.back();
    EXPECT_EQ(config_hash(again), config_hash(c)) << change.back();
  }
}

TEST(Config, CanonicalYamlRoundTripsExactly) {
  // Values a plain emitter could lose: doubles needing 17 digits (1/255, 0.1 + 0.2), large seeds,
  // and strings that YAML would otherwise read as something else.
  const Config c = parse_config(
      kBase, "test.yaml",
      {"optimizer.lr=0.30000000000000004", "training.seed=18446744073709551615", "output.dir='runs/a b: #c'",
       "data.label_column='true'", "data.feature_columns=['1', 'null', 'x,y', ' lead']", "data.labels_dataset='~'"});
  const std::string yaml = to_yaml(c);
  const Config back = parse_config(yaml, "resolved.yaml");
  EXPECT_EQ(to_yaml(back), yaml);
  EXPECT_EQ(config_hash(back), config_hash(c));
  EXPECT_EQ(back.optimizer.lr, 0.30000000000000004);
  EXPECT_EQ(back.training.seed, 18446744073709551615ull);
  EXPECT_EQ(back.output.dir, "runs/a b: #c");
  EXPECT_EQ(back.data.params.at("label_column").values, (std::vector<std::string>{"true"}));
  EXPECT_EQ(back.data.params.at("feature_columns").values, (std::vector<std::string>{"1", "null", "x,y", " lead"}));
  EXPECT_EQ(back.data.params.at("labels_dataset").values, (std::vector<std::string>{"~"}));
  ASSERT_EQ(back.model.layers.size(), c.model.layers.size());
  for (std::size_t i = 0; i < c.model.layers.size(); ++i) {
    EXPECT_EQ(back.model.layers[i].type, c.model.layers[i].type);
    ASSERT_EQ(back.model.layers[i].params.size(), c.model.layers[i].params.size());
    for (const auto& [key, p] : c.model.layers[i].params) EXPECT_EQ(param(back.model.layers[i], key), p.values[0]);
  }
}

// Keras-style heads: an activation on a dense layer is a layer of its own, and Keras' probability
// losses fold the final sigmoid or softmax into the logit losses.
TEST(Config, KerasStyleLayersAndLossesResolveToLogitHeads) {
  const std::string keras =
      "data: {format: synthetic}\n"
      "model:\n"
      "  layers:\n"
      "    - {type: dense, units: 64, activation: relu}\n"
      "    - {type: dense, units: 1, activation: sigmoid}\n"
      "optimizer: {type: adam}\n"
      "training: {loss: binary_crossentropy, batch_size: 32}\n";
  const Config c = parse_config(keras, "k.yaml");
  ASSERT_EQ(c.model.layers.size(), 3u);
  EXPECT_EQ(c.model.layers[0].type, "dense");
  EXPECT_EQ(c.model.layers[1].type, "relu");
  EXPECT_EQ(c.model.layers[2].type, "dense");
  EXPECT_EQ(param(c.model.layers[2], "units"), "1");
  EXPECT_EQ(c.training.loss, "bce_with_logits");
  EXPECT_EQ(c.optimizer.lr, 1e-3) << "Adam defaults to lr 1e-3, as in Keras and PyTorch";
  EXPECT_EQ(to_yaml(parse_config(to_yaml(c), "again.yaml")), to_yaml(c));

  const std::string softmax =
      "data: {format: synthetic}\n"
      "model: {layers: [{type: dense, units: 10, activation: softmax}]}\n"
      "training: {loss: sparse_categorical_crossentropy}\n";
  const Config s = parse_config(softmax, "s.yaml");
  ASSERT_EQ(s.model.layers.size(), 1u);
  EXPECT_EQ(s.training.loss, "softmax_cross_entropy");
  EXPECT_EQ(s.optimizer.lr, 0.01) << "SGD keeps its default";
}

TEST(Config, KerasHeadsWithoutTheirActivationAreErrors) {
  const std::string no_sigmoid =
      "data: {format: synthetic}\n"
      "model: {layers: [{type: dense, units: 1}]}\n"
      "training: {loss: binary_crossentropy}\n";
  EXPECT_NE(config_error(no_sigmoid).find("training.loss: binary_crossentropy takes probabilities"), std::string::npos)
      << config_error(no_sigmoid);
  const std::string stray_softmax =
      "data: {format: synthetic}\n"
      "model: {layers: [{type: dense, units: 10, activation: softmax}]}\n"
      "training: {loss: softmax_cross_entropy}\n";
  EXPECT_NE(config_error(stray_softmax).find("a final softmax goes with"), std::string::npos);
  // A regression onto a distribution keeps its softmax (an imported network's, for one).
  const std::string regression_softmax =
      "data: {format: synthetic}\n"
      "model: {layers: [{type: dense, units: 10, activation: softmax}]}\n"
      "training: {loss: mse}\n";
  EXPECT_NO_THROW(lockstep::train::check_network(parse_config(regression_softmax, "test.yaml")));
  const std::string inner_softmax =
      "data: {format: synthetic}\n"
      "model: {layers: [{type: dense, units: 10, activation: softmax}, {type: dense, units: 2}]}\n";
  EXPECT_NE(config_error(inner_softmax).find("test.yaml:2: model.layers[0].activation: softmax only on the last"),
            std::string::npos)
      << config_error(inner_softmax);
  EXPECT_NE(config_error(kBase, {"optimizer.lr=.inf"}).find("optimizer.lr: expected a number, got \".inf\""),
            std::string::npos);
}

TEST(Config, ClassSelection) {
  const Config c = parse_config(kBase + "  batch_size: 8\n", "c.yaml", {"data.classes=[7, 9]"});
  EXPECT_EQ(c.data.classes, (std::vector<std::int64_t>{7, 9}));
  EXPECT_NE(to_yaml(c).find("classes: [7, 9]"), std::string::npos);
  EXPECT_EQ(to_yaml(parse_config(kBase, "c.yaml")).find("classes: ["), std::string::npos)
      << "configs without classes keep their canonical YAML (and hash)";
  EXPECT_NE(config_error(kBase, {"data.classes=[1, 1]"}).find("data.classes: expected a list of distinct"),
            std::string::npos);
  EXPECT_NE(config_error(kBase, {"data.classes=[a]"}).find("data.classes"), std::string::npos);
}

// yaml-cpp keeps both pairs of a repeated key and reads the first; a repeated key anywhere in the
// document (top level, nested, inside a list of layers) is an error naming the second one's line.
TEST(Config, DuplicateKeysAreErrorsNamingTheLineAndKey) {
  {
    const auto msg = config_error(kBase + "  epochs: 3\n");  // line 18 repeats line 17
    EXPECT_HAS(msg, "test.yaml:18: training.epochs: duplicate key (first given on line 17)");
  }
  EXPECT_HAS(config_error(kBase + "optimizer: {type: sgd}\n"), "test.yaml:18: optimizer: duplicate key (first given on line 13)");
  EXPECT_HAS(config_error(replace_line(kBase, "{type: relu}", "{type: relu, type: tanh}")),
             "test.yaml:10: model.layers[1].type: duplicate key");
  EXPECT_HAS(config_error(replace_line(kBase, "    samples: 256\n", "    samples: 256\n    samples: 512\n")),
             "test.yaml:7: data.synthetic.samples: duplicate key (first given on line 6)");
  // Aliases that expand without end are refused, not walked.
  std::string bomb = "a: &a0 [x, x, x, x, x, x, x, x, x, x]\n";
  for (char i = '1'; i < '8'; ++i) {
    // Appended piece by piece: GCC 12 warns falsely (-Wrestrict) about "literal" + std::string.
    bomb.append("a").push_back(i);
    bomb.append(": &a").push_back(i);
    bomb.append(" [");
    for (int k = 0; k < 8; ++k) bomb.append(k ? ", *a" : "*a").push_back(static_cast<char>(i - 1));
    bomb.append("]\n");
  }
  EXPECT_HAS(config_error(bomb), "test.yaml: the document expands to more than 100000 nodes");
}

// Sizes from the config are checked before anything is allocated: the units that overflow
// the element count, a layer too large for this machine, and an eval_batch no memory could hold.
TEST(Config, HugeSizesAreErrorsNamingTheKeyNotBadAlloc) {
  const auto model_error = [](const std::string& yaml) -> std::string {
    try {
      lockstep::train::build_model(parse_config(yaml, "test.yaml"), {784});
    } catch (const ConfigError& e) {
      return e.what();
    }
    ADD_FAILURE() << "no ConfigError for:\n" << yaml;
    return "";
  };
  {
    const auto msg = model_error(replace_line(kBase, "units: 8", "units: 922337203685477581"));
    EXPECT_HAS(msg, "test.yaml:9: model.layers[0].units: parameter weight of shape [784, 922337203685477581]");
    EXPECT_HAS(msg, "784 x 922337203685477581 is more than a 64-bit count holds");
  }
  {
    const auto msg = model_error(replace_line(kBase, "units: 4,", "units: 4000000000000,"));
    EXPECT_HAS(msg, "test.yaml:12: model.layers[3].units:");
    EXPECT_HAS(msg, "of memory this machine has");
  }
  {
    const auto msg = config_error(kBase + "  eval_batch: 922337203685477581\n");
    EXPECT_HAS(msg, "test.yaml:18: training.eval_batch: expected an integer > 0 and at most");
    EXPECT_HAS(msg, "922337203685477581");
  }
  // The largest eval_batch accepted is still refused where the batch is made, with its size.
  const Config c = parse_config(kBase, "test.yaml");
  auto model = lockstep::train::build_model(c, {784});
  lockstep::data::Table rows;
  rows.sample_shape = {784};
  try {
    lockstep::train::forward_rows(*model, rows, lockstep::physical_memory_bytes() / 4, [](auto, auto, auto&, auto&) {});
    ADD_FAILURE() << "no ConfigError";
  } catch (const ConfigError& e) {
    EXPECT_HAS(e.what(), "training.eval_batch: a batch of");
  }
}
