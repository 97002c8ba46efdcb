// The data-source registry and the Table: every expected format is registered (a format whose
// file was dropped by the linker would otherwise vanish silently), a format's keys are checked
// with their place in the YAML, the dispatch refuses unknown formats and missing files, and the
// table's row-wise repartition delivers each row's bytes to the rank asked for, at any rank count.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <functional>

#include "lockstep/data/partitioned.hpp"

#include "lockstep/data/image_folder.hpp"
#include "lockstep/data/source.hpp"
#include "lockstep/data/sources.hpp"
#include "support/test_comm.hpp"

using lockstep::ConfigError;
using lockstep::Param;
using lockstep::testing::world;
namespace data = lockstep::data;

namespace {

std::string config_error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "(no ConfigError)";
}

#define EXPECT_CONTAINS(haystack, needle) \
  EXPECT_NE(std::string(haystack).find(needle), std::string::npos) << "\"" << (needle) << "\" not in: " << (haystack)

data::Table read(const data::SourceSpec& spec, data::SplitKind split = data::SplitKind::kTrain,
                 const std::string& features = "") {
  data::SourceRequest req;
  req.split = split;
  req.features = features;
  return data::read_source(world(), spec, req, "test data");
}

}  // namespace

TEST(SourceRegistry, EveryExpectedFormatIsRegistered) {
  EXPECT_EQ(data::source_names(), (std::vector<std::string>{"csv", "hdf5", "idx", "image_folder", "jsonl", "libsvm", "synthetic"}));
  for (const auto& name : data::source_names()) EXPECT_TRUE(data::find_source(name)->read) << name;
}

TEST(SourceRegistry, FormatKeysAreCheckedWithTheirPlace) {
  data::SourceSpec spec{"synthetic", "x.yaml:3: data.format", {}, {}, {}};
  spec.params["synthetic.sampels"] = Param{{"3"}, false, "x.yaml:7: data.synthetic.sampels"};
  auto msg = config_error_of([&] { read(spec); });
  EXPECT_CONTAINS(msg, "x.yaml:7: data.synthetic.sampels: unknown parameter of data (format synthetic)");
  EXPECT_CONTAINS(msg, "synthetic.samples");  // the known keys are listed
  data::SourceSpec idx{"idx", "", {}, {}, {}};
  idx.params["scale"] = Param{{"-1"}, false, "x.yaml:5: data.scale"};
  msg = config_error_of([&] { read(idx, data::SplitKind::kTrain, "images.idx"); });
  EXPECT_CONTAINS(msg, "x.yaml:5: data.scale: expected a number > 0, got \"-1\"");
}

TEST(SourceRegistry, DispatchRefusesUnknownFormatsAndMissingFiles) {
  auto msg = config_error_of([&] { read({"parquet", "x.yaml:3: data.format", {}, {}, {}}); });
  EXPECT_CONTAINS(msg, "x.yaml:3: data.format: unknown format \"parquet\" (known: csv, hdf5, idx, image_folder, jsonl, libsvm, synthetic)");
  msg = config_error_of([&] { read({"csv", "", {}, {}, {}}); });
  EXPECT_CONTAINS(msg, "data.train.features: missing");
  msg = config_error_of([&] { read({"libsvm", "", {}, {"a", "b"}, {}}, data::SplitKind::kTrain, "x.svm"); });
  EXPECT_CONTAINS(msg, "data.label_columns: format libsvm");
}

TEST(SourceRegistry, SyntheticTableMatchesRowsAndSelectsClasses) {
  data::SourceSpec spec{"synthetic", "", {}, {}, {}};
  spec.params["synthetic.samples"] = Param{{"37"}, false, "x"};
  spec.params["synthetic.features"] = Param{{"5"}, false, "x"};
  const data::Table t = read(spec);
  EXPECT_EQ(t.global_rows, 37);
  EXPECT_EQ(t.sample_shape, (data::Shape{5}));
  EXPECT_EQ(t.row_offset, data::split_range(37, world().rank(), world().size()).begin);
  // The same rows as the per-row form, which tests/data/test_sources.cpp checks against the file.
  data::SyntheticOptions o;
  o.samples = 37;
  o.features = 5;
  o.classes = 4;
  const auto rows = data::make_synthetic(world(), o).local();
  ASSERT_EQ(static_cast<std::int64_t>(rows.size()), t.rows);
  for (std::int64_t i = 0; i < t.rows; ++i) {
    EXPECT_EQ(std::vector<float>(t.row(i), t.row(i) + 5), rows[static_cast<std::size_t>(i)].features);
    EXPECT_EQ(t.label(i), rows[static_cast<std::size_t>(i)].label);
  }
  spec.classes = {3, 1};
  const data::Table s = read(spec);
  std::int64_t want = 0;
  for (const auto& e : data::make_synthetic(world(), o).collect()) want += e.label == 3.0f || e.label == 1.0f;
  EXPECT_EQ(s.global_rows, want);
  for (std::int64_t i = 0; i < s.rows; ++i) EXPECT_TRUE(s.label(i) == 0.0f || s.label(i) == 1.0f);
}

TEST(Table, RepartitionMovesRowsAsBytes) {
  data::SourceSpec spec{"synthetic", "", {}, {}, {}};
  spec.params["synthetic.samples"] = Param{{"41"}, false, "x"};
  spec.params["synthetic.features"] = Param{{"3"}, false, "x"};
  const data::Table t = read(spec);
  const int p = world().size();
  std::vector<int> dest(static_cast<std::size_t>(t.rows));
  // Row g goes to rank (g * 7) % p, and every fifth row is dropped.
  for (std::int64_t i = 0; i < t.rows; ++i) {
    const std::int64_t g = t.row_offset + i;
    dest[static_cast<std::size_t>(i)] = g % 5 == 4 ? -1 : static_cast<int>((g * 7) % p);
  }
  std::vector<std::int64_t> ids;
  const data::Table got = data::repartition_rows(world(), t, dest, &ids);
  const data::Table all = read(spec);  // every rank checks against the rows it can regenerate
  data::SyntheticOptions o;
  o.samples = 41;
  o.features = 3;
  o.classes = 4;
  const auto every = data::make_synthetic(world(), o).collect();
  std::int64_t expected = 0;
  for (std::int64_t g = 0; g < 41; ++g) expected += g % 5 != 4 && (g * 7) % p == world().rank();
  ASSERT_EQ(got.rows, expected);
  for (std::int64_t i = 0; i < got.rows; ++i) {
    const auto g = static_cast<std::size_t>(ids[static_cast<std::size_t>(i)]);
    EXPECT_EQ(static_cast<int>((static_cast<std::int64_t>(g) * 7) % p), world().rank());
    EXPECT_EQ(std::vector<float>(got.row(i), got.row(i) + 3), every[g].features);
    EXPECT_EQ(got.label(i), every[g].label);
  }
  (void)all;
}

TEST(Table, RepartitionIntoReusedBuffersEqualsAFreshRepartition) {
  // The trainer's shuffle: the same output table and scratch every epoch, with shares that grow,
  // shrink and vanish, after prepare_repartition sized them for a guess.
  data::SourceSpec spec{"synthetic", "", {}, {}, {}};
  spec.params["synthetic.samples"] = Param{{"57"}, false, "x"};
  spec.params["synthetic.features"] = Param{{"5"}, false, "x"};
  const data::Table t = read(spec);
  const int p = world().size();
  data::Table out;
  data::RepartitionScratch scratch;
  data::prepare_repartition(t, 3, out, scratch);
  EXPECT_EQ(out.features.size(), 0u);  // prepared, not filled
  for (int epoch = 0; epoch < 4; ++epoch) {
    std::vector<int> dest(static_cast<std::size_t>(t.rows));
    for (std::int64_t i = 0; i < t.rows; ++i) {
      const std::int64_t g = t.row_offset + i;
      // epoch 0: most rows move; 1: a few; 2: none; 3: all to the last rank.
      dest[static_cast<std::size_t>(i)] = epoch == 0 ? static_cast<int>((g * 5 + 1) % p)
                                          : epoch == 1 ? (g % 9 == 0 ? static_cast<int>(g % p) : -1)
                                          : epoch == 2 ? -1
                                                       : p - 1;
    }
    std::vector<std::int64_t> ids_fresh, ids_reused;
    const data::Table fresh = data::repartition_rows(world(), t, dest, &ids_fresh);
    data::repartition_rows_into(world(), t, dest, out, &ids_reused, scratch);
    ASSERT_EQ(out.rows, fresh.rows) << "epoch " << epoch;
    EXPECT_EQ(out.features, fresh.features) << "epoch " << epoch;
    EXPECT_EQ(out.labels, fresh.labels) << "epoch " << epoch;
    EXPECT_EQ(ids_reused, ids_fresh) << "epoch " << epoch;
  }
}

TEST(SourceRegistry, CsvLabelColumnsAndIdxImageShape) {
  const auto dir = lockstep::testing::shared_temp_dir("registry");
  const std::string csv = (dir / "two.csv").string(), idx = (dir / "img.idx").string();
  world().collectively([&] {
    if (world().rank() != 0) return;
    std::ofstream(csv) << "a,y1,b,y2\n1,10,2,20\n3,30,4,40\n5,50,6,60\n";
    std::string bytes{'\0', '\0', '\x08', '\x03', 0, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0, 3};
    for (int i = 0; i < 12; ++i) bytes.push_back(static_cast<char>(i));
    std::ofstream(idx, std::ios::binary) << bytes;
  });
  const data::Table t = read({"csv", "", {}, {"y1", "y2"}, {}}, data::SplitKind::kFile, csv);
  EXPECT_EQ(t.num_labels, 2);
  EXPECT_EQ(t.sample_shape, (data::Shape{2}));
  EXPECT_EQ(t.feature_names, (std::vector<std::string>{"a", "b"}));
  for (std::int64_t i = 0; i < t.rows; ++i) {
    const std::int64_t g = t.row_offset + i;
    EXPECT_EQ(t.label(i, 0), static_cast<float>(10 + 20 * g));
    EXPECT_EQ(t.label(i, 1), static_cast<float>(20 + 20 * g));
    EXPECT_EQ(t.row(i)[1], static_cast<float>(2 + 2 * g));
  }
  const data::Table img = data::read_idx_table(world(), idx, "", data::IdxOptions{1.0f});
  EXPECT_EQ(img.sample_shape, (data::Shape{1, 2, 3}));
  EXPECT_EQ(img.num_features(), 6);
  EXPECT_EQ(img.global_rows, 0);  // read_idx_table alone does not agree the global facts
  world().barrier();
  if (world().rank() == 0) std::filesystem::remove_all(dir);
}

TEST(SourceRegistry, IdxCropAndFlipAugmentTrainingAndCentreCropTheOtherSplits) {
  // 4 images of 1 x 4 x 5, pixel value = image * 20 + position.
  const auto dir = lockstep::testing::shared_temp_dir("idxcrop");
  const std::string idx = (dir / "img.idx").string(), flat = (dir / "flat.idx").string();
  world().collectively([&] {
    if (world().rank() != 0) return;
    std::string bytes{'\0', '\0', '\x08', '\x03', 0, 0, 0, 4, 0, 0, 0, 4, 0, 0, 0, 5};
    for (int n = 0; n < 4; ++n)
      for (int i = 0; i < 20; ++i) bytes.push_back(static_cast<char>(n * 20 + i));
    std::ofstream(idx, std::ios::binary) << bytes;
    std::string two{'\0', '\0', '\x08', '\x02', 0, 0, 0, 2, 0, 0, 0, 3, 1, 2, 3, 4, 5, 6};
    std::ofstream(flat, std::ios::binary) << two;
  });
  data::SourceSpec spec{"idx", "", {}, {}, {}};
  spec.params["scale"] = Param{{"1"}, false, "x.yaml:4: data.scale"};
  spec.params["crop"] = Param{{"random"}, false, "x.yaml:5: data.crop"};
  spec.params["crop_size"] = Param{{"2", "3"}, true, "x.yaml:6: data.crop_size"};
  spec.params["horizontal_flip"] = Param{{"true"}, false, "x.yaml:7: data.horizontal_flip"};
  // Training rows stay whole; the trainer crops and flips them per epoch (augmented_shape).
  const data::Table train = read(spec, data::SplitKind::kTrain, idx);
  EXPECT_EQ(train.sample_shape, (data::Shape{1, 4, 5}));
  EXPECT_EQ(data::augmented_shape(train), (data::Shape{1, 2, 3}));
  EXPECT_TRUE(train.augment.hflip);
  // Test rows are centre-cropped at load, never flipped: rows 1..2, columns 1..3 of each image.
  const data::Table test = read(spec, data::SplitKind::kTest, idx);
  EXPECT_EQ(test.sample_shape, (data::Shape{1, 2, 3}));
  EXPECT_FALSE(test.augment.active());
  for (std::int64_t i = 0; i < test.rows; ++i) {
    const float base = static_cast<float>((test.row_offset + i) * 20);
    EXPECT_EQ(std::vector<float>(test.row(i), test.row(i) + 6),
              (std::vector<float>{base + 6, base + 7, base + 8, base + 11, base + 12, base + 13}));
  }
  // Errors name the key.
  spec.params["crop_size"] = Param{{"5"}, false, "x.yaml:6: data.crop_size"};
  EXPECT_CONTAINS(config_error_of([&] { read(spec, data::SplitKind::kTrain, idx); }),
                  "x.yaml:6: data.crop_size: a crop of 5 x 5 needs images at least that large");
  spec.params.erase("crop_size");
  EXPECT_CONTAINS(config_error_of([&] { read(spec, data::SplitKind::kTrain, idx); }),
                  "x.yaml:5: data.crop: crop random needs data.crop_size");
  spec.params.erase("crop");
  EXPECT_CONTAINS(config_error_of([&] { read(spec, data::SplitKind::kTrain, flat); }),
                  "x.yaml:7: data.horizontal_flip: needs image samples");
  world().barrier();
  if (world().rank() == 0) std::filesystem::remove_all(dir);
}

namespace {

data::SourceSpec jsonl_spec(std::vector<std::string> features, std::vector<std::string> strings) {
  data::SourceSpec spec{"jsonl", "", {}, {}, {}};
  spec.params["feature_columns"] = Param{std::move(features), true, "x.yaml:4: data.feature_columns"};
  spec.params["string_columns"] = Param{std::move(strings), true, "x.yaml:5: data.string_columns"};
  return spec;
}

std::string data_error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const lockstep::DataError& e) {
    return e.what();
  }
  return "(no DataError)";
}

// Writes `text` to a file of the test's own (one per world size: ctest runs the np variants at once).
std::string jsonl_file(const std::string& name, const std::string& text) {
  const auto dir = std::filesystem::temp_directory_path() / ("lockstep-jsonl-np" + std::to_string(world().size()));
  const std::string path = (dir / name).string();
  if (world().rank() == 0) {
    std::filesystem::create_directories(dir);
    std::ofstream(path, std::ios::binary) << text;
  }
  world().barrier();
  return path;
}

}  // namespace

// JSON lines: members found by name in any order, escapes and \u (surrogate pairs too) decoded to
// UTF-8, other members (nested ones too) skipped, blank lines skipped, booleans as 0/1; the same
// rows at any rank count (each rank reads its byte share). Errors name the file and global line.
TEST(JsonlSource, MembersByNameEscapesAndNestedValues) {
  const std::string good = jsonl_file("good.jsonl",
      "{\"label\": 1, \"text\": \"Hi \\\"there\\\"\\n\\u00e9\\ud83d\\ude00\", \"x\": 2.5}\n"
      "\n"
      "{\"meta\": {\"a\": [1, {\"b\": \"}\"}], \"c\": null}, \"x\": -1e2, \"text\": \"\", \"label\": 0}\r\n"
      "  {\"text\": \"tab\\there\", \"x\": true, \"label\": 2, \"extra\": [] }\n");
  const data::Table t = read(jsonl_spec({"x"}, {"text"}), data::SplitKind::kTrain, good);
  std::vector<std::string> texts;
  for (const auto& s : t.text.at(0)) texts.push_back(s);
  std::vector<float> x(t.features.begin(), t.features.end()), y(t.labels.begin(), t.labels.end());
  // Gather to compare whole columns at any rank count.
  const auto all_texts = data::Partitioned<std::string>::from_local(world(), texts).collect();
  EXPECT_EQ(all_texts, (std::vector<std::string>{"Hi \"there\"\n\xC3\xA9\xF0\x9F\x98\x80", "", "tab\there"}));
  EXPECT_EQ(data::Partitioned<float>::from_local(world(), x).collect(), (std::vector<float>{2.5f, -100.0f, 1.0f}));
  EXPECT_EQ(data::Partitioned<float>::from_local(world(), y).collect(), (std::vector<float>{1.0f, 0.0f, 2.0f}));
  EXPECT_EQ(t.feature_names, (std::vector<std::string>{"x"}));
}

TEST(JsonlSource, BadLinesAreNamed) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"{\"label\": 1, \"x\": 1, \"text\": \"\"}\n{\"label\": 0, \"text\": \"\"}\n",
       "bad0.jsonl:2: the object has no member \"x\" (a feature column)"},
      {"{\"label\": 1, \"x\": \"one\"}\n", "bad1.jsonl:1: expected a number, got a string"},
      {"{\"label\": 1, \"x\": 1, \"text\": 5}\n", "bad2.jsonl:1: member \"text\" is a text column: expected a string"},
      {"{\"label\": 1, \"x\": 1, \"text\": \"abc}\n", "bad3.jsonl:1: a string is not closed"},
      {"{\"label\": 1, \"x\": 1, \"text\": \"a\\qb\"}\n", "bad4.jsonl:1: an unknown escape \\q"},
      {"[1, 2]\n", "bad5.jsonl:1: expected '{'"},
      {"{\"label\": 1, \"x\": 1} {}\n", "bad6.jsonl:1: expected the end of the line after the object"},
      {"{\"label\": 1, \"x\": 1, \"text\": \"\\u12\"}\n", "bad7.jsonl:1: a \\u escape needs four hex digits"},
      {"{\"label\": 1, \"x\": 1, \"deep\": [[[\n", "bad8.jsonl:1: "},
  };
  for (std::size_t k = 0; k < cases.size(); ++k) {
    const std::string path = jsonl_file("bad" + std::to_string(k) + ".jsonl", cases[k].first);
    const std::string msg = data_error_of([&] { read(jsonl_spec({"x"}, {"text"}), data::SplitKind::kTrain, path); });
    EXPECT_CONTAINS(msg, cases[k].second);
  }
}
