// Data sources at every rank count: each reader must return the file's rows in file order whatever
// the number of ranks, and a problem in the input must become the same DataError on every rank,
// naming the file, the line or record, what was expected and what was found. Fixtures are small
// files that rank 0 writes into a shared temporary directory; the H5File wrapper that writes the
// HDF5 fixture is tested here too.
#include <gtest/gtest.h>
#include <zlib.h>

#include <algorithm>
#include <bit>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <initializer_list>
#include <map>

#include "detail/hdf5.hpp"
#include "lockstep/core/rng.hpp"
#include "lockstep/data/sources.hpp"
#include "support/test_comm.hpp"

using lockstep::DataError;
using lockstep::data::Example;
using lockstep::data::split_range;
using lockstep::testing::world;
namespace data = lockstep::data;

namespace {

// Fixture directories are removed by rank 0 once every test has run and every rank is past them.
std::vector<std::filesystem::path>& fixture_dirs() {
  static std::vector<std::filesystem::path> dirs;
  return dirs;
}
std::filesystem::path fixture_dir(const std::string& tag) {
  auto dir = lockstep::testing::shared_temp_dir(tag);
  fixture_dirs().push_back(dir);
  return dir;
}
class RemoveFixtures : public ::testing::Environment {
 public:
  void TearDown() override {
    world().barrier();
    if (world().rank() != 0) return;
    std::error_code ec;
    for (const auto& dir : fixture_dirs()) std::filesystem::remove_all(dir, ec);
  }
};
[[maybe_unused]] ::testing::Environment* const kRemoveFixtures = ::testing::AddGlobalTestEnvironment(new RemoveFixtures);

// Runs fn on rank 0 only; every rank leaves together, and a failure on rank 0 fails every rank
// instead of leaving the others waiting.
void on_rank0(const std::function<void()>& fn) {
  world().collectively([&] {
    if (world().rank() == 0) fn();
  });
}

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (!out) throw std::runtime_error("cannot write fixture " + path);
}

void write_gz(const std::string& path, const std::string& bytes) {
  gzFile f = gzopen(path.c_str(), "wb");
  if (!f) throw std::runtime_error("cannot create fixture " + path);
  const int n = gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size()));
  gzclose(f);
  if (n != static_cast<int>(bytes.size())) throw std::runtime_error("cannot write fixture " + path);
}

void put_be32(std::string& out, std::uint32_t v) {
  for (int s = 24; s >= 0; s -= 8) out.push_back(static_cast<char>((v >> s) & 0xFF));
}

// An IDX file: header for `type` and `dims`, then `payload` as the data bytes.
std::string idx_bytes(std::uint8_t type, const std::vector<std::uint32_t>& dims, const std::string& payload) {
  std::string out{'\0', '\0', static_cast<char>(type), static_cast<char>(dims.size())};
  for (auto d : dims) put_be32(out, d);
  return out + payload;
}

// The message of the DataError that fn throws, or a test failure when it throws nothing or
// something else. Every rank must throw, so every rank checks.
std::string data_error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const DataError& e) {
    return e.what();
  } catch (const std::exception& e) {
    ADD_FAILURE() << "expected a DataError, got another exception: " << e.what();
    return {};
  }
  ADD_FAILURE() << "expected a DataError on rank " << world().rank() << ", nothing was thrown";
  return {};
}

#define EXPECT_CONTAINS(haystack, needle) \
  EXPECT_NE(std::string(haystack).find(needle), std::string::npos) << "missing \"" << (needle) << "\" in: " << (haystack)

// ---- IDX fixtures: 37 records of 3x4 ubyte pixels, labels 0..9 ----
constexpr std::uint32_t kIdxRecords = 37;
constexpr std::uint32_t kIdxRows = 3, kIdxCols = 4;

std::string idx_pixels() {
  std::string px;
  for (std::uint32_t i = 0; i < kIdxRecords * kIdxRows * kIdxCols; ++i) px.push_back(static_cast<char>((i * 7 + 3) % 256));
  return px;
}
std::string idx_labels() {
  std::string ys;
  for (std::uint32_t i = 0; i < kIdxRecords; ++i) ys.push_back(static_cast<char>(i % 10));
  return ys;
}
std::vector<Example> idx_expected(float scale) {
  const std::string px = idx_pixels();
  std::vector<Example> out(kIdxRecords);
  const std::size_t d = kIdxRows * kIdxCols;
  for (std::size_t i = 0; i < kIdxRecords; ++i) {
    for (std::size_t j = 0; j < d; ++j) out[i].features.push_back(static_cast<float>(static_cast<unsigned char>(px[i * d + j])) * scale);
    out[i].label = static_cast<float>(i % 10);
  }
  return out;
}

}  // namespace

TEST(IdxSource, PlainAndGzipGiveTheFileOrderAtEveryRankCount) {
  auto& c = world();
  const auto dir = fixture_dir("idx");
  const std::string images = dir / "images.idx", labels = dir / "labels.idx";
  const std::string images_gz = dir / "images.idx.gz", labels_gz = dir / "labels.gz";
  on_rank0([&] {
    const std::string xi = idx_bytes(0x08, {kIdxRecords, kIdxRows, kIdxCols}, idx_pixels());
    const std::string yi = idx_bytes(0x08, {kIdxRecords}, idx_labels());
    write_bytes(images, xi);
    write_bytes(labels, yi);
    write_gz(images_gz, xi);
    write_gz(labels_gz, yi);
  });
  const auto expected = idx_expected(1.0f / 255.0f);
  for (const auto& [x, y] : std::vector<std::pair<std::string, std::string>>{
           {images, labels}, {images_gz, labels_gz}, {images_gz, labels}, {images, labels_gz}}) {
    SCOPED_TRACE(x + " + " + y);
    auto rows = data::read_idx(c, x, y);
    EXPECT_TRUE(rows.is_cached());
    EXPECT_EQ(rows.local_count(), split_range(kIdxRecords, c.rank(), c.size()).size());
    EXPECT_EQ(rows.collect(), expected);
    EXPECT_EQ(data::idx_dims(c, x), (std::vector<std::int64_t>{kIdxRecords, kIdxRows, kIdxCols}));
    EXPECT_EQ(data::idx_dims(c, y), (std::vector<std::int64_t>{kIdxRecords}));
  }
  // The scale option applies to images, never to labels.
  EXPECT_EQ(data::read_idx(c, images_gz, labels, {.scale = 1.0f}).collect(), idx_expected(1.0f));
}

TEST(IdxSource, WiderElementTypes) {
  auto& c = world();
  const auto dir = fixture_dir("idx-types");
  const std::string f32 = dir / "f32.idx", i16 = dir / "i16.idx", f64 = dir / "f64.idx", s8 = dir / "s8.idx",
                    i32_labels = dir / "labels.idx";
  constexpr std::uint32_t n = 7;
  on_rank0([&] {
    std::string pf, ps, pd, pb, py;
    for (std::uint32_t i = 0; i < n * 2; ++i) {
      put_be32(pf, std::bit_cast<std::uint32_t>(0.5f * static_cast<float>(i) - 1.0f));
      const auto v16 = static_cast<std::uint16_t>(static_cast<std::int16_t>(-300 + 100 * static_cast<int>(i)));
      ps.push_back(static_cast<char>(v16 >> 8));
      ps.push_back(static_cast<char>(v16 & 0xFF));
      const auto bits = std::bit_cast<std::uint64_t>(0.25 * i);
      put_be32(pd, static_cast<std::uint32_t>(bits >> 32));
      put_be32(pd, static_cast<std::uint32_t>(bits));
      pb.push_back(static_cast<char>(static_cast<std::int8_t>(static_cast<int>(i) - 5)));
    }
    for (std::uint32_t i = 0; i < n; ++i) put_be32(py, static_cast<std::uint32_t>(100000 + i));
    write_bytes(f32, idx_bytes(0x0D, {n, 2}, pf));
    write_gz(i16, idx_bytes(0x0B, {n, 2}, ps));
    write_bytes(f64, idx_bytes(0x0E, {n, 2}, pd));
    write_bytes(s8, idx_bytes(0x09, {n, 1, 2}, pb));
    write_bytes(i32_labels, idx_bytes(0x0C, {n}, py));
  });
  const auto check = [&](const std::string& path, const std::function<float(int)>& value) {
    SCOPED_TRACE(path);
    const auto rows = data::read_idx(c, path, i32_labels, {.scale = 1.0f}).collect();
    ASSERT_EQ(rows.size(), n);
    for (int i = 0; i < static_cast<int>(n); ++i) {
      const auto& r = rows[static_cast<std::size_t>(i)];
      EXPECT_EQ(r.features, (std::vector<float>{value(2 * i), value(2 * i + 1)}));
      EXPECT_EQ(r.label, static_cast<float>(100000 + i));
    }
  };
  check(f32, [](int i) { return 0.5f * static_cast<float>(i) - 1.0f; });
  check(i16, [](int i) { return static_cast<float>(-300 + 100 * i); });
  check(f64, [](int i) { return static_cast<float>(0.25 * i); });
  check(s8, [](int i) { return static_cast<float>(i - 5); });
}

TEST(IdxSource, BadFilesFailOnEveryRankNamingTheFileAndTheExpectation) {
  auto& c = world();
  const auto dir = fixture_dir("idx-bad");
  const std::string images = dir / "images.idx", labels = dir / "labels.idx";
  const std::string bad_magic = dir / "bad-magic.idx", truncated = dir / "truncated.idx", truncated_gz = dir / "truncated.gz",
                    trailing_gz = dir / "trailing.gz", short_labels = dir / "short-labels.idx", missing = dir / "missing.idx",
                    tiny = dir / "tiny.idx";
  const std::string xi = idx_bytes(0x08, {kIdxRecords, kIdxRows, kIdxCols}, idx_pixels());
  on_rank0([&] {
    write_bytes(images, xi);
    write_bytes(labels, idx_bytes(0x08, {kIdxRecords}, idx_labels()));
    write_bytes(bad_magic, "\x89PNG\r\n\x1a\n" + xi);
    write_bytes(truncated, xi.substr(0, xi.size() - 10));
    // Cut well before the end so that, at 4 ranks, whole ranks' shares lie past the end of the data.
    write_gz(truncated_gz, xi.substr(0, xi.size() - 200));
    write_gz(trailing_gz, xi + "extra");
    write_bytes(short_labels, idx_bytes(0x08, {kIdxRecords - 1}, idx_labels().substr(1)));
    write_bytes(tiny, std::string("\0\0", 2));
  });
  const std::string data_bytes = std::to_string(kIdxRecords * kIdxRows * kIdxCols);
  const std::string of_records = " bytes of data for 37 records of 12 values";

  std::string msg = data_error_of([&] { data::read_idx(c, bad_magic, labels); });
  EXPECT_CONTAINS(msg, bad_magic);
  EXPECT_CONTAINS(msg, "expected magic 0x0000TTNN");
  EXPECT_CONTAINS(msg, "got 0x89504E47");

  msg = data_error_of([&] { data::read_idx(c, truncated, labels); });
  EXPECT_CONTAINS(msg, truncated + ": expected " + data_bytes + of_records + ", file has " +
                           std::to_string(kIdxRecords * kIdxRows * kIdxCols - 10));

  msg = data_error_of([&] { data::read_idx(c, truncated_gz, labels); });
  EXPECT_CONTAINS(msg, truncated_gz + ": expected " + data_bytes + of_records + ", file has " +
                           std::to_string(kIdxRecords * kIdxRows * kIdxCols - 200));

  msg = data_error_of([&] { data::read_idx(c, trailing_gz, labels); });
  EXPECT_CONTAINS(msg, trailing_gz + ": expected " + data_bytes + of_records + ", file has " +
                           std::to_string(kIdxRecords * kIdxRows * kIdxCols + 5));

  msg = data_error_of([&] { data::read_idx(c, images, short_labels); });
  EXPECT_CONTAINS(msg, short_labels + ": expected 37 records (as many as " + images + " has), got 36");

  msg = data_error_of([&] { data::read_idx(c, missing, labels); });
  EXPECT_CONTAINS(msg, missing + ": cannot open for reading: No such file or directory");

  msg = data_error_of([&] { data::idx_dims(c, missing); });
  EXPECT_CONTAINS(msg, missing + ": cannot open");

  msg = data_error_of([&] { data::idx_dims(c, tiny); });
  EXPECT_CONTAINS(msg, tiny + ": expected an IDX header starting with a 4-byte magic number, the file has only 2 bytes");

  // Labels with more than one value per record are not labels.
  msg = data_error_of([&] { data::read_idx(c, images, images); });
  EXPECT_CONTAINS(msg, images + ": expected one label per record, got dimensions (37, 3, 4)");

  // After all those errors the ranks are still in step.
  EXPECT_EQ(data::read_idx(c, images, labels).count(), std::int64_t{kIdxRecords});
}

// ---- CSV ----

namespace {

// Rows of a CSV fixture: an id column that is not a number, two features, the label, a third
// feature whose field is padded with many spaces on some rows so that lines differ a lot in
// length and some straddle rank boundaries.
struct CsvFixture {
  std::string text;
  std::vector<Example> z_then_x;  // features {z, x}
};

CsvFixture csv_fixture(int rows, const std::string& eol) {
  CsvFixture f;
  f.text = "id, x ,label,y,\"z\"" + eol;
  for (int i = 0; i < rows; ++i) {
    const float x = 0.5f * static_cast<float>(i), y = -1.0f * static_cast<float>(i), z = 1e3f + static_cast<float>(i);
    const std::string pad(i % 5 == 0 ? 300 : 0, ' ');
    f.text += "r" + std::to_string(i) + "," + std::to_string(x) + "," + std::to_string(i % 3) + ", " + std::to_string(y) +
              "," + pad + "+" + std::to_string(z) + pad + eol;
    f.z_then_x.push_back(Example{{z, x}, static_cast<float>(i % 3)});
  }
  return f;
}

}  // namespace

TEST(CsvSource, SelectedColumnsInFileOrderWithCrlf) {
  auto& c = world();
  const auto dir = fixture_dir("csv");
  const std::string crlf = dir / "crlf.csv", lf = dir / "lf.csv", blank_end = dir / "blank-end.csv",
                    header_only = dir / "header-only.csv", semi = dir / "semi.csv";
  const CsvFixture with_crlf = csv_fixture(41, "\r\n");
  const CsvFixture with_lf = csv_fixture(41, "\n");
  on_rank0([&] {
    write_bytes(crlf, with_crlf.text);
    write_bytes(lf, with_lf.text.substr(0, with_lf.text.size() - 1));  // no newline at the end
    write_bytes(blank_end, with_lf.text + "\n  \r\n");
    write_bytes(header_only, "a,label");
    write_bytes(semi, "label;a\n1;2\n3;4\n");
  });
  const data::CsvOptions opts{.label_column = "label", .feature_columns = {"z", "x"}};
  for (const auto& path : {crlf, lf, blank_end}) {
    SCOPED_TRACE(path);
    auto rows = data::read_csv(c, path, opts);
    EXPECT_TRUE(rows.is_cached());
    EXPECT_EQ(rows.collect(), with_lf.z_then_x);
  }
  EXPECT_EQ(data::read_csv(c, header_only).count(), 0);
  data::CsvOptions semicolons;
  semicolons.delimiter = ';';
  EXPECT_EQ(data::read_csv(c, semi, semicolons).collect(), (std::vector<Example>{{{2.0f}, 1.0f}, {{4.0f}, 3.0f}}));

  // Every column but the label is a feature by default; "id" holds no numbers.
  const std::string msg = data_error_of([&] { data::read_csv(c, crlf); });
  EXPECT_CONTAINS(msg, crlf + ":2: column \"id\": expected a number, got \"r0\"");
}

TEST(CsvSource, QuotedTextFieldsHoldDelimitersAndDoubledQuotes) {
  auto& c = world();
  const auto dir = fixture_dir("csv-quoted");
  const std::string good = dir / "mail.csv", open_quote = dir / "open-quote.csv";
  on_rank0([&] {
    write_bytes(good,
                "label,text,x\n1,\"Hello, world\",2\n0, \"say \"\"hi\"\", then go\" ,3\n1,plain,4\n0,\"\",5\n");
    write_bytes(open_quote, "label,text\n1,\"fine\"\n0,\"not closed, at all\n");
  });
  data::CsvOptions o;
  o.string_columns = {"text"};
  const data::Table t = data::read_csv_table(c, good, o);
  const auto texts = data::Partitioned<std::string>::from_local(c, t.text.at(0)).collect();
  EXPECT_EQ(texts, (std::vector<std::string>{"Hello, world", "say \"hi\", then go", "plain", ""}));
  EXPECT_EQ(data::Partitioned<float>::from_local(c, t.features).collect(), (std::vector<float>{2, 3, 4, 5}));
  const std::string msg = data_error_of([&] { data::read_csv_table(c, open_quote, o); });
  EXPECT_CONTAINS(msg, open_quote + ":3: a quoted field is not closed by a double quote on this line");
}

TEST(CsvSource, BadRowNamesItsGlobalLineAtEveryRankCount) {
  auto& c = world();
  const auto dir = fixture_dir("csv-bad");
  const CsvFixture f = csv_fixture(50, "\r\n");
  // Lines are numbered from 1 for the header; rows are lines 2..51.
  std::map<int, std::string> paths;
  for (const int bad_line : {2, 17, 30, 51}) paths[bad_line] = dir / ("bad-" + std::to_string(bad_line) + ".csv");
  const std::string bad_number = dir / "bad-number.csv", no_label = dir / "no-label.csv", empty = dir / "empty.csv";
  on_rank0([&] {
    for (const auto& [bad_line, path] : paths) {
      std::string text;
      int line = 1;
      std::size_t pos = 0;
      while (pos < f.text.size()) {
        const std::size_t end = f.text.find('\n', pos) + 1;
        std::string l = f.text.substr(pos, end - pos);
        if (line == bad_line) l = "r,1,2,3\r\n";
        text += l;
        pos = end;
        ++line;
      }
      write_bytes(path, text);
    }
    write_bytes(bad_number, f.text + "r50,1,2,abc,4\r\n");
    write_bytes(no_label, "a,b,c\n1,2,3\n");
    write_bytes(empty, "");
  });
  for (const auto& [bad_line, path] : paths) {
    const std::string msg = data_error_of([&] { data::read_csv(c, path, {.feature_columns = {"x", "y"}}); });
    EXPECT_CONTAINS(msg, path + ":" + std::to_string(bad_line) + ": expected 5 columns, got 4");
  }
  std::string msg = data_error_of([&] { data::read_csv(c, bad_number, {.feature_columns = {"x", "y"}}); });
  EXPECT_CONTAINS(msg, bad_number + ":52: column \"y\": expected a number, got \"abc\"");

  msg = data_error_of([&] { data::read_csv(c, no_label); });
  EXPECT_CONTAINS(msg, no_label + ":1: label column \"label\" not found; the header has columns \"a\", \"b\", \"c\"");
  msg = data_error_of([&] { data::read_csv(c, no_label, {.label_column = "a", .feature_columns = {"b", "q"}}); });
  EXPECT_CONTAINS(msg, no_label + ":1: feature column \"q\" not found");
  msg = data_error_of([&] { data::read_csv(c, empty); });
  EXPECT_CONTAINS(msg, empty + ":1: expected a header line naming the columns, the file is empty");
  msg = data_error_of([&] { data::read_csv(c, dir / "missing.csv"); });
  EXPECT_CONTAINS(msg, (dir / "missing.csv").string() + ": cannot open for reading: No such file or directory");
}

// ---- LIBSVM ----

TEST(LibsvmSource, InfersFeatureCountAndKeepsFileOrder) {
  auto& c = world();
  const auto dir = fixture_dir("libsvm");
  const std::string path = dir / "a.svm", empty = dir / "empty.svm";
  std::vector<data::SparseExample> expected;
  std::string text = "# a comment line\n";
  for (int i = 0; i < 29; ++i) {
    data::SparseExample e;
    e.label = i % 2 ? 1.0f : -1.0f;
    std::string line = i % 2 ? "+1" : "-1";
    for (int k = 1; k <= 1 + i % 4; ++k) {
      const int index = k * (i + 1);
      const float value = 0.25f * static_cast<float>(k);
      line += k % 2 ? ' ' : '\t';
      line += std::to_string(index) + ":" + std::to_string(value);
      e.indices.push_back(index - 1);
      e.values.push_back(value);
    }
    if (i == 3) line += " qid:7 # trailing comment";
    text += line + (i % 3 ? "\n" : "\r\n");
    if (i == 10) text += "\n   \n";
    expected.push_back(e);
  }
  // The largest index: k = 4 at the largest i with i % 4 == 3, i = 27.
  const std::int64_t max_index = 4 * 28;
  on_rank0([&] {
    write_bytes(path, text);
    write_bytes(empty, "");
  });
  auto d = data::read_libsvm(c, path);
  EXPECT_EQ(d.num_features, max_index);
  EXPECT_TRUE(d.rows.is_cached());
  EXPECT_EQ(d.rows.collect(), expected);
  EXPECT_EQ(data::read_libsvm(c, path, {.num_features = 500}).num_features, 500);

  const Example dense = expected[5].to_dense(max_index);
  ASSERT_EQ(dense.features.size(), static_cast<std::size_t>(max_index));
  EXPECT_EQ(dense.label, expected[5].label);
  EXPECT_EQ(dense.features[5], 0.25f);   // index 6 -> 5
  EXPECT_EQ(dense.features[11], 0.5f);   // index 12 -> 11
  EXPECT_EQ(dense.features[0], 0.0f);
  EXPECT_THROW(expected[5].to_dense(6), DataError);

  auto none = data::read_libsvm(c, empty);
  EXPECT_EQ(none.rows.count(), 0);
  EXPECT_EQ(none.num_features, 0);
}

TEST(LibsvmSource, BadIndexNamesItsLine) {
  auto& c = world();
  const auto dir = fixture_dir("libsvm-bad");
  std::string good;
  for (int i = 0; i < 40; ++i) good += std::to_string(i % 3) + " 1:0.5 " + std::to_string(2 + i) + ":1.5\n";
  const std::string zero = dir / "zero.svm", decreasing = dir / "decreasing.svm", no_colon = dir / "no-colon.svm";
  // The bad line goes in after line 23, near the middle, so it is line 24.
  std::size_t cut = 0;
  for (int i = 0; i < 23; ++i) cut = good.find('\n', cut) + 1;
  on_rank0([&] {
    write_bytes(zero, good.substr(0, cut) + "1 0:1.5\n" + good.substr(cut));
    write_bytes(decreasing, good + "1 5:1 3:2\n");
    write_bytes(no_colon, "1 abc\n" + good);
  });
  std::string msg = data_error_of([&] { data::read_libsvm(c, zero); });
  EXPECT_CONTAINS(msg, zero + ":24: feature index 0 is invalid (LIBSVM indices are 1-based and strictly increasing)");
  msg = data_error_of([&] { data::read_libsvm(c, decreasing); });
  EXPECT_CONTAINS(msg, decreasing + ":41: feature index 3 is invalid after index 5");
  msg = data_error_of([&] { data::read_libsvm(c, no_colon); });
  EXPECT_CONTAINS(msg, no_colon + ":1: expected \"index:value\", got \"abc\"");
  msg = data_error_of([&] { data::read_libsvm(c, decreasing, {.num_features = 30}); });
  EXPECT_CONTAINS(msg, decreasing + ":30: feature index 31 exceeds num_features 30");
}

// ---- HDF5 ----

TEST(H5File, DatasetsGroupsAndAttributesRoundTrip) {
  // Each rank works on its own file: the wrapper is not collective.
  const auto dir = fixture_dir("h5file");
  const std::string path = dir / ("rank" + std::to_string(world().rank()) + ".h5");
  using lockstep::detail::H5File;
  {
    auto f = H5File::create(path);
    f.create_group("/model/layers/0");
    f.create_group("/model/layers/0");  // again: no error
    const std::vector<float> w{1, 2, 3, 4, 5, 6};
    f.write("/model/layers/0/weight", w.data(), {2, 3});
    const std::vector<std::int64_t> step{42};
    f.write("/state/step", step.data(), {});  // a scalar, intermediate group created
    const std::vector<std::uint8_t> bytes{9, 8, 7};
    f.write("/bytes", bytes.data(), {3});
    const std::vector<double> empty;
    f.write("/empty", empty.data(), {0, 4});
    f.set_attr("/", "format", "lockstep-checkpoint");
    f.set_attr("/", "version", 3);
    f.set_attr("/model", "lr", 0.125);
    f.set_attr("/model/layers/0/weight", "fan_in", std::int64_t{3});
    f.set_attr("/", "version", 4);  // replaced
    f.set_attr("/", "config", std::string(100000, 'y'));  // over HDF5's 64 KiB compact attribute limit
    f.flush();
    f.close();
    f.close();  // idempotent
  }
  auto f = H5File::open_read(path);
  EXPECT_EQ(f.path(), path);
  EXPECT_TRUE(f.exists("/"));
  EXPECT_TRUE(f.exists("/model/layers/0/weight"));
  EXPECT_TRUE(f.exists("model/layers"));
  EXPECT_FALSE(f.exists("/model/missing/deeper"));
  EXPECT_FALSE(f.exists("/bytes/inside/a/dataset"));
  EXPECT_EQ(f.list("/"), (std::vector<std::string>{"bytes", "empty", "model", "state"}));
  EXPECT_EQ(f.list("/model/layers/0"), (std::vector<std::string>{"weight"}));
  EXPECT_EQ(f.shape("/model/layers/0/weight"), (std::vector<std::int64_t>{2, 3}));
  EXPECT_EQ(f.shape("/state/step"), (std::vector<std::int64_t>{}));
  EXPECT_EQ(f.shape("/empty"), (std::vector<std::int64_t>{0, 4}));
  EXPECT_EQ(f.read<double>("/model/layers/0/weight"), (std::vector<double>{1, 2, 3, 4, 5, 6}));
  EXPECT_EQ(f.read<std::int32_t>("/bytes"), (std::vector<std::int32_t>{9, 8, 7}));
  EXPECT_EQ(f.read<std::int64_t>("/state/step"), (std::vector<std::int64_t>{42}));
  EXPECT_TRUE(f.read<float>("/empty").empty());
  EXPECT_EQ(f.read_rows<float>("/model/layers/0/weight", 1, 2), (std::vector<float>{4, 5, 6}));
  EXPECT_TRUE(f.read_rows<float>("/model/layers/0/weight", 2, 2).empty());
  EXPECT_EQ(f.attr_string("/", "format"), "lockstep-checkpoint");
  EXPECT_EQ(f.attr_string("/", "config").size(), 100000u);
  EXPECT_EQ(f.attr_int("/", "version"), 4);
  EXPECT_EQ(f.attr_double("/model", "lr"), 0.125);
  EXPECT_EQ(f.attr_double("/", "version"), 4.0);
  EXPECT_EQ(f.attr_int("/model/layers/0/weight", "fan_in"), 3);
  EXPECT_TRUE(f.has_attr("/model", "lr"));
  EXPECT_FALSE(f.has_attr("/model", "momentum"));

  // Errors name the file, the object and what went wrong.
  const auto io_error = [](const std::function<void()>& fn) -> std::string {
    try {
      fn();
    } catch (const lockstep::IoError& e) {
      return e.what();
    }
    return "(no IoError)";
  };
  std::string msg = io_error([&] { f.read<float>("/nope"); });
  EXPECT_CONTAINS(msg, path + ":/nope: cannot open dataset: ");
  msg = io_error([&] { f.read_rows<float>("/model/layers/0/weight", 1, 3); });
  EXPECT_CONTAINS(msg, path + ":/model/layers/0/weight: expected rows within [0, 2), got [1, 3)");
  msg = io_error([&] { f.attr_int("/model", "lr"); });
  EXPECT_CONTAINS(msg, path + ":/model: attribute \"lr\": expected an integer, found a float");
  msg = io_error([&] { f.attr_string("/", "missing"); });
  EXPECT_CONTAINS(msg, path + ":/: cannot open attribute \"missing\": ");
  msg = io_error([&] { H5File::open_read(dir / "absent.h5"); });
  EXPECT_CONTAINS(msg, (dir / "absent.h5").string() + ": cannot open for reading: ");
  msg = io_error([&] { f.create_group("/x"); });  // read-only file
  EXPECT_CONTAINS(msg, path + ":/x: cannot create group: ");
}

TEST(Hdf5Source, RowsInFileOrderAndCollectiveErrors) {
  auto& c = world();
  const auto dir = fixture_dir("hdf5");
  const std::string path = dir / "data.h5", bad = dir / "bad.h5";
  constexpr std::int64_t n = 29, d = 5;
  std::vector<float> x(static_cast<std::size_t>(n * d));
  std::vector<std::int32_t> y(static_cast<std::size_t>(n));
  std::vector<Example> expected(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i) {
    for (std::int64_t j = 0; j < d; ++j) {
      x[static_cast<std::size_t>(i * d + j)] = static_cast<float>(i) + 0.125f * static_cast<float>(j);
      expected[static_cast<std::size_t>(i)].features.push_back(x[static_cast<std::size_t>(i * d + j)]);
    }
    y[static_cast<std::size_t>(i)] = static_cast<std::int32_t>(i % 4);
    expected[static_cast<std::size_t>(i)].label = static_cast<float>(i % 4);
  }
  on_rank0([&] {
    auto f = lockstep::detail::H5File::create(path);
    f.write("/features", x.data(), {n, d});
    f.write("/labels", y.data(), {n});
    f.write("/train/X", x.data(), {n, d});
    f.write("/train/y", y.data(), {n, 1});
    f.close();
    auto b = lockstep::detail::H5File::create(bad);
    b.write("/features", x.data(), {n * d});
    b.write("/labels", y.data(), {n - 1});
    b.write("/X", x.data(), {n, d});
    b.close();
  });
  auto rows = data::read_hdf5(c, path);
  EXPECT_TRUE(rows.is_cached());
  EXPECT_EQ(rows.local_count(), split_range(n, c.rank(), c.size()).size());
  EXPECT_EQ(rows.collect(), expected);
  EXPECT_EQ(data::read_hdf5(c, path, {.features_dataset = "/train/X", .labels_dataset = "/train/y"}).collect(), expected);

  std::string msg = data_error_of([&] { data::read_hdf5(c, bad); });
  EXPECT_CONTAINS(msg, bad + ":/features: expected a 2-D dataset (rows x features), got shape (145)");
  msg = data_error_of([&] { data::read_hdf5(c, bad, {.features_dataset = "/X"}); });
  EXPECT_CONTAINS(msg, bad + ":/labels: expected 29 rows (as many as /X has), got 28");
  msg = data_error_of([&] { data::read_hdf5(c, path, {.features_dataset = "/nope"}); });
  EXPECT_CONTAINS(msg, path + ": expected a dataset /nope, not found; the root group has /features, /labels, /train");
  msg = data_error_of([&] { data::read_hdf5(c, dir / "absent.h5"); });
  EXPECT_CONTAINS(msg, (dir / "absent.h5").string() + ": cannot open for reading");
}

// ---- synthetic ----

TEST(SyntheticSource, SameRowsAtEveryRankCount) {
  auto& c = world();
  const data::SyntheticOptions opts{.samples = 103, .features = 6, .classes = 3, .seed = 77, .noise = 0.5f};
  auto rows = data::make_synthetic(c, opts);
  EXPECT_TRUE(rows.is_cached());
  EXPECT_EQ(rows.local_count(), split_range(opts.samples, c.rank(), c.size()).size());
  const auto all = rows.collect();
  ASSERT_EQ(all.size(), 103u);
  // Recomputed from the documented recipe: row i from CounterRng(seed, kSynthetic, i, 0), class
  // centres from CounterRng(seed, kSynthetic, class, 1) times 3.
  for (std::size_t i = 0; i < all.size(); ++i) {
    lockstep::CounterRng rng(opts.seed, lockstep::RngStream::kSynthetic, i, 0);
    const auto k = rng.below(3);
    lockstep::CounterRng centre(opts.seed, lockstep::RngStream::kSynthetic, k, 1);
    ASSERT_EQ(all[i].label, static_cast<float>(k)) << "row " << i;
    ASSERT_EQ(all[i].features.size(), 6u);
    for (std::size_t j = 0; j < 6; ++j) {
      const float mu = static_cast<float>(3.0 * centre.normal());
      EXPECT_FLOAT_EQ(all[i].features[j], mu + 0.5f * static_cast<float>(rng.normal())) << "row " << i << " feature " << j;
    }
  }
  auto other_seed = opts;
  other_seed.seed = 78;
  EXPECT_NE(data::make_synthetic(c, other_seed).collect(), all);
  auto bad = opts;
  bad.classes = 0;
  EXPECT_THROW(data::make_synthetic(c, bad), lockstep::ConfigError);
}

// ---- the real thing, when it is installed ----

TEST(IdxSource, FashionMnistTestSet) {
  const std::string dir = "/usr/share/datasets/fashion-mnist/";
  const std::string images = dir + "t10k-images-idx3-ubyte.gz", labels = dir + "t10k-labels-idx1-ubyte.gz";
  if (!std::filesystem::exists(images) || !std::filesystem::exists(labels)) {
    GTEST_SKIP() << "Fashion-MNIST is not installed at " << dir;
  }
  auto& c = world();
  EXPECT_EQ(data::idx_dims(c, images), (std::vector<std::int64_t>{10000, 28, 28}));
  auto rows = data::read_idx(c, images, labels);
  EXPECT_EQ(rows.count(), 10000);
  // Per-class counts (the test set has 1000 of each) and the pixel range, without gathering the rows.
  using Counts = std::vector<std::int64_t>;
  const Counts counts = rows.aggregate(
      Counts(12, 0),
      [](Counts acc, Example&& e) {
        const auto k = static_cast<std::int64_t>(e.label);
        ++acc[static_cast<std::size_t>(k >= 0 && k < 10 ? k : 10)];
        for (const float v : e.features) {
          if (e.features.size() != 784 || v < 0.0f || v > 1.0f) ++acc[11];
        }
        return acc;
      },
      [](Counts a, const Counts& b) {
        for (std::size_t i = 0; i < a.size(); ++i) a[i] += b[i];
        return a;
      });
  for (int k = 0; k < 10; ++k) EXPECT_EQ(counts[static_cast<std::size_t>(k)], 1000) << "class " << k;
  EXPECT_EQ(counts[10], 0) << "labels outside 0..9";
  EXPECT_EQ(counts[11], 0) << "rows without 784 features in [0, 1]";
}

// ---- sizes from untrusted headers: an error naming the file and the size, never a bad_alloc ----

TEST(UntrustedSizes, IdxDimensionsThatDescribeNothingOrTooMuch) {
  auto& c = world();
  const auto dir = fixture_dir("idx-sizes");
  const std::string zero_width = dir / "zero-width.idx", overflow = dir / "overflow.idx";
  on_rank0([&] {
    // 2^32 - 1 records of no values: 12 bytes that used to make every rank allocate 16 GiB of labels.
    write_bytes(zero_width, idx_bytes(0x08, {0xFFFFFFFFu, 0}, ""));
    // No records, and trailing dimensions whose product overflows 64 bits.
    write_bytes(overflow, idx_bytes(0x0E, {0, 0xFFFFFFFFu, 0xFFFFFFFFu, 0xFFFFFFFFu}, ""));
  });
  EXPECT_CONTAINS(data_error_of([&] { data::read_idx_table(c, zero_width, ""); }),
                  zero_width + ": dimensions (4294967295, 0): expected every dimension after the first (the record count) to be >= 1, got 0");
  EXPECT_CONTAINS(data_error_of([&] { data::read_idx_table(c, overflow, ""); }),
                  overflow + ": dimensions (0, 4294967295, 4294967295, ...) describe more than 2^50 bytes");
}

TEST(UntrustedSizes, CsvReservesByBytesReadNotLinesTimesColumns) {
  auto& c = world();
  const auto dir = fixture_dir("csv-wide");
  const std::string path = dir / "wide.csv";
  // A million columns over a million blank lines: 3 MB that used to reserve 4 TB.
  on_rank0([&] { write_bytes(path, std::string(999999, ',') + "label\n" + std::string(1000000, '\n')); });
  const auto t = data::read_csv_table(c, path);
  EXPECT_EQ(t.rows, 0);
  EXPECT_EQ(t.num_features(), 999999);
}

TEST(UntrustedSizes, LibsvmWidthTooLargeToDensifyIsAnAgreedError) {
  auto& c = world();
  const auto dir = fixture_dir("libsvm-wide");
  const std::string path = dir / "wide.svm";
  on_rank0([&] { write_bytes(path, "1 2147483648:1\n"); });
  data::Table t = data::read_libsvm_table(c, path);
  EXPECT_EQ(t.num_features(), 2147483648);
  setenv("LOCKSTEP_MEMORY_LIMIT_MB", "512", 1);  // below the row's 8 GiB on any machine
  const std::string msg = data_error_of([&] { data::densify(c, t, path); });
  unsetenv("LOCKSTEP_MEMORY_LIMIT_MB");
  // Only the rank that holds the row finds it too large; every rank throws its message.
  EXPECT_CONTAINS(msg, path + ": the dense form of 1 rows of {2147483648} features: 8589934592 bytes (8.0 GiB), more than the 512.0 MiB of memory");
}

TEST(UntrustedSizes, Hdf5ShapeLargerThanTheFileCouldHold) {
  // A 763-byte file declaring a 1000000 x 1000 dataset it never wrote (made by
  // tests/fuzz/make_hdf5_seeds.c): the fill value would read as 4 GB of zeros.
  const std::string path = LOCKSTEP_SOURCE_DIR "/tests/fuzz/corpus/hdf5/unwritten_huge.h5";
  EXPECT_CONTAINS(data_error_of([&] { data::read_hdf5_table(world(), path); }),
                  path + ":/features: shape (1000000, 1000) as float: 4000000000 bytes (3.7 GiB), more than the 763 bytes "
                         "file could hold even compressed (at most 4096 values per byte of file); is it corrupt?");
}
