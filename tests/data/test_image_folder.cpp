// data.format: image_folder at every rank count. The fixtures are written here with libpng and
// libjpeg (rank 0, into a shared temporary folder): each PNG colour type and bit depth and both
// JPEG kinds decode to the expected pixels; resize, crop and flip give torch's values; the rows and
// their augmentation are the same at any rank count; and every bad file is one DataError naming
// it on every rank, or is skipped and counted under drop_invalid.
#include <gtest/gtest.h>
#include <png.h>
#include <zlib.h>

#include <cmath>
#include <cstdio>
// clang-format off
#include <jpeglib.h>
// clang-format on

#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <set>

#include <unistd.h>

#include "lockstep/data/image_folder.hpp"
#include "lockstep/data/partitioned.hpp"
#include "lockstep/data/source.hpp"
#include "support/test_comm.hpp"

using lockstep::ConfigError;
using lockstep::DataError;
using lockstep::Param;
using lockstep::testing::world;
namespace data = lockstep::data;
namespace fs = std::filesystem;

namespace {

#define EXPECT_CONTAINS(haystack, needle) \
  EXPECT_NE(std::string(haystack).find(needle), std::string::npos) << "\"" << (needle) << "\" not in: " << (haystack)

// Each test's folder; rank 0 removes it when the test ends (every rank is past the read by then).
struct Folder {
  fs::path root = lockstep::testing::shared_temp_dir("imgfolder");
  ~Folder() {
    world().barrier();
    std::error_code ec;
    if (world().rank() == 0) fs::remove_all(root, ec);
  }
  std::string path(const std::string& rel) const { return (root / rel).string(); }
};

void on_rank0(const std::function<void()>& fn) {
  world().collectively([&] {
    if (world().rank() == 0) fn();
  });
}

void write_bytes(const std::string& path, const std::string& bytes) {
  fs::create_directories(fs::path(path).parent_path());
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}
std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}

// A PNG of `color` type and `depth`; `samples` holds each row's samples (one value per sample,
// 8 or 16 bits, packed by libpng for depths below 8). `palette` for PNG_COLOR_TYPE_PALETTE.
void write_png(const std::string& path, int w, int h, int color, int depth, const std::vector<int>& samples,
               const std::vector<png_color>& palette = {}) {
  fs::create_directories(fs::path(path).parent_path());
  std::FILE* f = std::fopen(path.c_str(), "wb");
  ASSERT_TRUE(f);
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, nullptr, nullptr, nullptr);
  png_infop info = png_create_info_struct(png);
  png_init_io(png, f);
  png_set_IHDR(png, info, w, h, depth, color, PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
               PNG_FILTER_TYPE_DEFAULT);
  if (!palette.empty()) png_set_PLTE(png, info, palette.data(), static_cast<int>(palette.size()));
  png_write_info(png, info);
  if (depth < 8) png_set_packing(png);
  const int per_row = static_cast<int>(samples.size()) / h;
  std::vector<png_byte> row(static_cast<std::size_t>(per_row * 2));
  for (int y = 0; y < h; ++y) {
    for (int i = 0; i < per_row; ++i) {
      const int v = samples[static_cast<std::size_t>(y * per_row + i)];
      if (depth == 16) {
        row[static_cast<std::size_t>(2 * i)] = static_cast<png_byte>(v >> 8);
        row[static_cast<std::size_t>(2 * i + 1)] = static_cast<png_byte>(v & 0xFF);
      } else {
        row[static_cast<std::size_t>(i)] = static_cast<png_byte>(v);
      }
    }
    png_write_row(png, row.data());
  }
  png_write_end(png, nullptr);
  png_destroy_write_struct(&png, &info);
  std::fclose(f);
}

void write_gray(const std::string& path, int w, int h, const std::vector<int>& v) {
  write_png(path, w, h, PNG_COLOR_TYPE_GRAY, 8, v);
}

void write_jpeg(const std::string& path, int w, int h, int comps, const std::vector<std::uint8_t>& px) {
  fs::create_directories(fs::path(path).parent_path());
  std::FILE* f = std::fopen(path.c_str(), "wb");
  ASSERT_TRUE(f);
  jpeg_compress_struct c{};
  jpeg_error_mgr err{};
  c.err = jpeg_std_error(&err);
  jpeg_create_compress(&c);
  jpeg_stdio_dest(&c, f);
  c.image_width = static_cast<JDIMENSION>(w);
  c.image_height = static_cast<JDIMENSION>(h);
  c.input_components = comps;
  c.in_color_space = comps == 1 ? JCS_GRAYSCALE : JCS_RGB;
  jpeg_set_defaults(&c);
  jpeg_set_quality(&c, 100, TRUE);
  jpeg_start_compress(&c, TRUE);
  while (c.next_scanline < c.image_height) {
    JSAMPROW row = const_cast<std::uint8_t*>(px.data()) + c.next_scanline * static_cast<std::size_t>(w * comps);
    jpeg_write_scanlines(&c, &row, 1);
  }
  jpeg_finish_compress(&c);
  jpeg_destroy_compress(&c);
  std::fclose(f);
}

data::Table read(const std::string& root, data::ImageFolderOptions o = {}) {
  return data::read_image_folder_table(world(), root, o);
}

// Every rank's rows, in global order (features, then labels).
std::pair<std::vector<float>, std::vector<float>> gather(const data::Table& t) {
  return {world().allgather_vector(t.features), world().allgather_vector(t.labels)};
}

std::string data_error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const DataError& e) {
    return e.what();
  }
  return "(no DataError)";
}

data::ImageFolderOptions raw(int channels) {
  data::ImageFolderOptions o;
  o.channels = channels;
  o.scale = 1.0f;
  return o;
}

std::vector<float> floats(const std::vector<int>& v) { return {v.begin(), v.end()}; }

}  // namespace

TEST(ImageFolder, EachPngColourTypeDecodesToItsPixels) {
  Folder d;
  on_rank0([&] {
    write_png(d.path("gray8/a/x.png"), 3, 2, PNG_COLOR_TYPE_GRAY, 8, {0, 10, 20, 30, 40, 255});
    write_png(d.path("gray1/a/x.png"), 3, 1, PNG_COLOR_TYPE_GRAY, 1, {1, 0, 1});
    write_png(d.path("gray16/a/x.png"), 3, 1, PNG_COLOR_TYPE_GRAY, 16, {0, 25700, 65535});
    write_png(d.path("rgb8/a/x.png"), 2, 1, PNG_COLOR_TYPE_RGB, 8, {255, 0, 0, 10, 20, 30});
    write_png(d.path("rgb16/a/x.png"), 1, 1, PNG_COLOR_TYPE_RGB, 16, {65535, 0, 257 * 7});
    write_png(d.path("rgba/a/x.png"), 2, 1, PNG_COLOR_TYPE_RGB_ALPHA, 8, {1, 2, 3, 0, 4, 5, 6, 255});
    write_png(d.path("graya/a/x.png"), 2, 1, PNG_COLOR_TYPE_GRAY_ALPHA, 8, {9, 0, 99, 128});
    write_png(d.path("palette/a/x.png"), 3, 1, PNG_COLOR_TYPE_PALETTE, 4, {2, 0, 1},
              {png_color{10, 20, 30}, png_color{40, 50, 60}, png_color{70, 80, 90}});
  });
  // The gray image as RGB is its plane three times; channels are planes (C x H x W).
  EXPECT_EQ(gather(read(d.path("gray8"), raw(1))).first, floats({0, 10, 20, 30, 40, 255}));
  EXPECT_EQ(gather(read(d.path("gray8"), raw(3))).first,
            floats({0, 10, 20, 30, 40, 255, 0, 10, 20, 30, 40, 255, 0, 10, 20, 30, 40, 255}));
  EXPECT_EQ(gather(read(d.path("gray1"), raw(1))).first, floats({255, 0, 255}));
  EXPECT_EQ(gather(read(d.path("gray16"), raw(1))).first, floats({0, 100, 255}));
  EXPECT_EQ(gather(read(d.path("rgb8"), raw(3))).first, floats({255, 10, 0, 20, 0, 30}));
  // PIL's "L": (19595 R + 38470 G + 7471 B + 2^15) >> 16; Pillow 9.4 gives [76, 18].
  EXPECT_EQ(gather(read(d.path("rgb8"), raw(1))).first, floats({76, 18}));
  EXPECT_EQ(gather(read(d.path("rgb16"), raw(3))).first, floats({255, 0, 7}));
  EXPECT_EQ(gather(read(d.path("rgba"), raw(3))).first, floats({1, 4, 2, 5, 3, 6}));  // alpha dropped
  EXPECT_EQ(gather(read(d.path("graya"), raw(1))).first, floats({9, 99}));
  EXPECT_EQ(gather(read(d.path("palette"), raw(3))).first, floats({70, 10, 40, 80, 20, 50, 90, 30, 60}));
  const auto t = read(d.path("rgb8"), raw(3));
  EXPECT_EQ(t.sample_shape, (data::Shape{3, 1, 2}));
}

TEST(ImageFolder, JpegDecodesCloseToItsPixels) {
  Folder d;
  std::vector<std::uint8_t> gray(64), rgb(64 * 3);
  for (int i = 0; i < 64; ++i) gray[static_cast<std::size_t>(i)] = static_cast<std::uint8_t>(100 + i / 8);
  for (int i = 0; i < 64 * 3; ++i) rgb[static_cast<std::size_t>(i)] = static_cast<std::uint8_t>(i % 3 == 0 ? 200 : 60);
  on_rank0([&] {
    write_jpeg(d.path("g/a/x.jpg"), 8, 8, 1, gray);
    write_jpeg(d.path("c/a/x.jpeg"), 8, 8, 3, rgb);
  });
  const auto g = gather(read(d.path("g"), raw(1))).first;
  ASSERT_EQ(g.size(), 64u);
  for (int i = 0; i < 64; ++i) EXPECT_NEAR(g[static_cast<std::size_t>(i)], 100 + i / 8, 2.0) << i;
  const auto c = gather(read(d.path("c"), raw(3))).first;
  ASSERT_EQ(c.size(), 192u);
  for (int i = 0; i < 192; ++i) EXPECT_NEAR(c[static_cast<std::size_t>(i)], i < 64 ? 200 : 60, 3.0) << i;
}

TEST(ImageFolder, ResizeIsTorchBilinearAndCropsTakeTheWindow) {
  Folder d;
  on_rank0([&] {
    write_gray(d.path("up/a/x.png"), 2, 2, {0, 100, 200, 255});
    std::vector<int> v(16);
    for (int i = 0; i < 16; ++i) v[static_cast<std::size_t>(i)] = i * 10;
    write_gray(d.path("big/a/x.png"), 4, 4, v);
  });
  auto o = raw(1);
  o.height = o.width = 4;
  // torch.nn.functional.interpolate(mode="bilinear", align_corners=False, antialias=False).
  const std::vector<float> want{0,   25,      75,      100,    50,  72.1875, 116.5625, 138.75,
                                150, 166.5625, 199.6875, 216.25, 200, 213.75,  241.25,   255};
  const auto got = gather(read(d.path("up"), o)).first;
  ASSERT_EQ(got.size(), want.size());
  for (std::size_t i = 0; i < want.size(); ++i) EXPECT_NEAR(got[i], want[i], 1e-4) << i;
  o.height = o.width = 2;  // halving averages each 2 x 2 block
  EXPECT_EQ(gather(read(d.path("big"), o)).first, (std::vector<float>{25, 45, 105, 125}));
  auto c = raw(1);
  c.crop = "center", c.crop_h = 2, c.crop_w = 2;
  EXPECT_EQ(gather(read(d.path("big"), c)).first, (std::vector<float>{50, 60, 90, 100}));
  // scale, mean and std: (v * scale - mean) / std.
  auto n = raw(1);
  n.scale = 0.5f, n.mean = {10.0f}, n.std = {2.0f};
  EXPECT_EQ(gather(read(d.path("up"), n)).first, (std::vector<float>{-5, 20, 45, 58.75f}));
}

TEST(ImageFolder, RandomCropAndFlipAreKeyedBySeedEpochAndRow) {
  Folder d;
  on_rank0([&] {
    std::vector<int> v(16);
    for (int i = 0; i < 16; ++i) v[static_cast<std::size_t>(i)] = i;
    write_gray(d.path("r/a/x.png"), 4, 4, v);
  });
  auto o = raw(1);
  o.crop = "random", o.crop_h = 2, o.crop_w = 3, o.horizontal_flip = true, o.training = true;
  const auto t = read(d.path("r"), o);
  EXPECT_EQ(t.sample_shape, (data::Shape{1, 4, 4}));  // rows stay whole; the trainer crops
  EXPECT_EQ(data::augmented_shape(t), (data::Shape{1, 2, 3}));
  o.training = false;  // test rows: the centre crop, no flip
  EXPECT_EQ(gather(read(d.path("r"), o)).first, (std::vector<float>{4, 5, 6, 8, 9, 10}));
  std::vector<float> src(16);
  for (int i = 0; i < 16; ++i) src[static_cast<std::size_t>(i)] = static_cast<float>(i);
  std::set<std::vector<float>> seen;
  for (std::int64_t epoch = 0; epoch < 40; ++epoch) {
    std::vector<float> a(6), b(6);
    data::augment_row(t, src.data(), a.data(), 7, epoch, 3);
    data::augment_row(t, src.data(), b.data(), 7, epoch, 3);
    EXPECT_EQ(a, b);  // a function of (seed, epoch, row) alone
    // A 2 x 3 window of the 4 x 4 ramp, maybe mirrored: rows step by 4, columns by +-1.
    EXPECT_EQ(a[3] - a[0], 4.0f);
    EXPECT_EQ(std::abs(a[1] - a[0]), 1.0f);
    seen.insert(a);
  }
  EXPECT_GT(seen.size(), 6u);  // 2 x 3 offsets x 2 flips = 12 possible; 40 epochs see most
  const data::Table test = data::without_augment(t);
  EXPECT_EQ(test.sample_shape, (data::Shape{1, 2, 3}));
  EXPECT_FALSE(test.augment.active());
}

TEST(ImageFolder, RowsAndOrderAreTheSameAtAnyRankCount) {
  Folder d;
  // Class folders in byte order ("B" < "a" < "b"), files sorted within (sub-folders walked),
  // hidden files ignored: each image's one pixel is its expected global index.
  const std::vector<std::string> files{"B/0.png", "B/1.png", "a/2.png", "a/3.png", "a/s/4.png", "a/t.png",
                                       "b/6.png", "b/7.png", "b/8.png", "b/9.png", "b/a.png"};
  const std::vector<float> labels{0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 2};
  on_rank0([&] {
    for (std::size_t i = 0; i < files.size(); ++i) {
      write_gray(d.path(files[i]), 2, 1, {static_cast<int>(i), 100 + static_cast<int>(i)});
    }
    write_bytes(d.path("a/.hidden"), "not an image");
    write_bytes(d.path(".git/x"), "not a class");
  });
  std::vector<std::string> classes;
  const auto t = data::read_image_folder_table(world(), d.root.string(), raw(1), &classes);
  EXPECT_EQ(classes, (std::vector<std::string>{"B", "a", "b"}));
  const auto [x, y] = gather(t);
  std::vector<float> want;
  for (std::size_t i = 0; i < files.size(); ++i) want.insert(want.end(), {float(i), float(100 + i)});
  EXPECT_EQ(x, want);
  EXPECT_EQ(y, labels);
  const auto r = data::split_range(static_cast<std::int64_t>(files.size()), world().rank(), world().size());
  EXPECT_EQ(t.rows, r.size());
  // Augmentation is a function of the global row: each rank's rows flip as the same rows of the
  // whole set do (at np = 1), and some rows flip while others do not.
  data::Table aug = t;
  aug.augment.hflip = true;
  std::vector<float> mine(static_cast<std::size_t>(2 * t.rows)), whole(want.size());
  for (std::int64_t i = 0; i < t.rows; ++i) data::augment_row(aug, t.row(i), &mine[2 * i], 1, 2, r.begin + i);
  int flipped = 0;
  for (std::size_t g = 0; g < files.size(); ++g) {
    data::augment_row(aug, &want[2 * g], &whole[2 * g], 1, 2, static_cast<std::int64_t>(g));
    flipped += whole[2 * g] != want[2 * g];
  }
  EXPECT_EQ(world().allgather_vector(mine), whole);
  EXPECT_GT(flipped, 0);
  EXPECT_LT(flipped, static_cast<int>(files.size()));
}

TEST(ImageFolder, SampleDecodesAndResizesLikePillowAndTorch) {
  const std::string photo = "/usr/lib/python3/dist-packages/sklearn/datasets/images/china.jpg";
  if (!fs::exists(photo)) GTEST_SKIP() << photo << " is missing (python3-sklearn is not installed)";
  Folder d;
  on_rank0([&] { write_bytes(d.path("p/china/china.jpg"), read_bytes(photo)); });
  auto o = raw(3);
  const auto full = read(d.path("p"), o);
  ASSERT_EQ(full.sample_shape, (data::Shape{3, 427, 640}));
  if (full.rows == 1) {
    // Pillow (the same libjpeg-turbo) decodes pixel (y 100, x 200) to (123, 47, 11).
    const std::int64_t plane = 427 * 640, at = 100 * 640 + 200;
    EXPECT_EQ(full.features[at], 123);
    EXPECT_EQ(full.features[plane + at], 47);
    EXPECT_EQ(full.features[2 * plane + at], 11);
  }
  o.height = 64, o.width = 96;
  const auto small = read(d.path("p"), o);
  if (small.rows == 1) {
    // torch interpolate(size=(64, 96), bilinear, align_corners=False) of Pillow's pixels at (10, 20).
    const std::int64_t plane = 64 * 96, at = 10 * 96 + 20;
    EXPECT_NEAR(small.features[at], 196.0352, 1e-2);
    EXPECT_NEAR(small.features[plane + at], 216.8516, 1e-2);
    EXPECT_NEAR(small.features[2 * plane + at], 241.1667, 1e-2);
  }
}

namespace {

// A valid 1 x 1 PNG whose IHDR claims w x h (the CRC recomputed, so only the size is wrong).
std::string png_claiming(const std::string& valid, std::uint32_t w, std::uint32_t h) {
  std::string s = valid;
  for (int k = 0; k < 4; ++k) {
    s[static_cast<std::size_t>(16 + k)] = static_cast<char>((w >> (24 - 8 * k)) & 0xFF);
    s[static_cast<std::size_t>(20 + k)] = static_cast<char>((h >> (24 - 8 * k)) & 0xFF);
  }
  const auto crc = crc32(0, reinterpret_cast<const Bytef*>(s.data() + 12), 17);
  for (int k = 0; k < 4; ++k) s[static_cast<std::size_t>(29 + k)] = static_cast<char>((crc >> (24 - 8 * k)) & 0xFF);
  return s;
}

// A valid JPEG whose SOF0 claims w x h.
std::string jpeg_claiming(const std::string& valid, std::uint16_t w, std::uint16_t h) {
  std::string s = valid;
  const auto sof = s.find("\xFF\xC0");
  s[sof + 5] = static_cast<char>(h >> 8), s[sof + 6] = static_cast<char>(h & 0xFF);
  s[sof + 7] = static_cast<char>(w >> 8), s[sof + 8] = static_cast<char>(w & 0xFF);
  return s;
}

}  // namespace

TEST(ImageFolder, EveryBadFileIsAnErrorNamingItOrIsDroppedAndCounted) {
  Folder d;
  std::map<std::string, std::string> cases;  // file -> what the message must say
  on_rank0([&] {
    write_gray(d.path("ok.png"), 4, 4, std::vector<int>(16, 7));
    std::vector<std::uint8_t> px(16 * 16 * 3, 90);
    write_jpeg(d.path("ok.jpg"), 16, 16, 3, px);
  });
  const std::string png = read_bytes(d.path("ok.png")), jpg = read_bytes(d.path("ok.jpg"));
  const std::vector<std::pair<std::string, std::string>> bad{
      {"empty.png", ""},
      {"cut.png", png.substr(0, png.size() / 2)},
      {"cut.jpg", jpg.substr(0, jpg.size() / 2)},
      {"garbage.png", std::string(100, '\x5a')},
      {"notes.txt", "these are notes, not an image\n"},
      {"readme.png", "a text file named like a PNG\n"},
      {"huge.png", png_claiming(png, 100000, 100000)},
      {"huge.jpg", jpeg_claiming(jpg, 60000, 60000)},
  };
  const std::vector<std::string> says{"empty file",
                                      "truncated PNG",
                                      "cannot decode JPEG",
                                      "not a PNG or JPEG image",
                                      "not a PNG or JPEG image",
                                      "not a PNG or JPEG image",
                                      "declared dimensions 100000 x 100000 exceed",
                                      "declared dimensions 60000 x 60000 exceed"};
  for (std::size_t k = 0; k < bad.size(); ++k) {
    const std::string root = d.path("case" + std::to_string(k));
    const std::string file = root + "/c/" + bad[k].first;
    on_rank0([&] {
      for (int i = 0; i < 3; ++i) write_gray(root + "/c/" + std::to_string(i) + ".png", 4, 4, std::vector<int>(16, i));
      write_bytes(file, bad[k].second);
    });
    const std::string msg = data_error_of([&] { read(root, raw(1)); });  // every rank: the agreed error
    EXPECT_CONTAINS(msg, file);
    EXPECT_CONTAINS(msg, says[k]);
    auto o = raw(1);
    o.drop_invalid = true;
    const auto t = read(root, o);
    EXPECT_EQ(world().allreduce<std::int64_t>(t.rows, lockstep::comm::ReduceOp::kSum), 3) << bad[k].first;
  }
}

TEST(ImageFolder, BadFolderLayoutsAreErrorsNamingThem) {
  Folder d;
  on_rank0([&] {
    write_gray(d.path("emptyclass/a/0.png"), 1, 1, {0});
    fs::create_directories(d.path("emptyclass/b"));
    fs::create_directories(d.path("noclasses"));
    write_bytes(d.path("noclasses/loose.png"), "x");
    write_gray(d.path("loops/a/0.png"), 1, 1, {5});
    fs::create_directory_symlink("..", d.path("loops/a/up"));  // not followed
    fs::create_directories(d.path("selfloop/a"));
    fs::create_symlink("self.png", d.path("selfloop/a/self.png"));
  });
  EXPECT_CONTAINS(data_error_of([&] { read(d.path("emptyclass")); }), d.path("emptyclass/b") + ": empty class folder");
  EXPECT_CONTAINS(data_error_of([&] { read(d.path("noclasses")); }), d.path("noclasses") + ": no class folders");
  EXPECT_CONTAINS(data_error_of([&] { read(d.path("loops/a/0.png")); }), "not a folder");
  EXPECT_EQ(gather(read(d.path("loops"), raw(1))).first, (std::vector<float>{5}));
  EXPECT_CONTAINS(data_error_of([&] { read(d.path("selfloop")); }), d.path("selfloop/a/self.png"));
}

TEST(ImageFolder, KeysAreCheckedWithTheirPlace) {
  auto msg_of = [](std::map<std::string, Param> params) {
    data::SourceSpec spec{"image_folder", "", std::move(params), {}, {}};
    data::SourceRequest req;
    req.split = data::SplitKind::kTrain;
    req.features = "/nonexistent";
    try {
      data::read_source(world(), spec, req, "images");
    } catch (const ConfigError& e) {
      return std::string(e.what());
    }
    return std::string("(no ConfigError)");
  };
  EXPECT_CONTAINS(msg_of({{"size", Param{{"1", "2", "3"}, true, "x.yaml:5: data.size"}}}),
                  "x.yaml:5: data.size: expected [H, W]");
  EXPECT_CONTAINS(msg_of({{"channels", Param{{"2"}, false, "x.yaml:4: data.channels"}}}),
                  "x.yaml:4: data.channels: expected 1 or 3");
  EXPECT_CONTAINS(msg_of({{"crop", Param{{"random"}, false, "x.yaml:6: data.crop"}}}),
                  "x.yaml:6: data.crop: crop random needs data.crop_size");
  EXPECT_CONTAINS(msg_of({{"mean", Param{{"0.1", "0.2"}, true, "x.yaml:7: data.mean"}}}),
                  "x.yaml:7: data.mean: expected one value, or one per channel (3)");
  EXPECT_CONTAINS(msg_of({{"size", Param{{"8"}, true, "x.yaml:5: data.size"}},
                          {"crop", Param{{"center"}, false, "x.yaml:6: data.crop"}},
                          {"crop_size", Param{{"9"}, false, "x.yaml:7: data.crop_size"}}}),
                  "x.yaml:7: data.crop_size: expected a crop no larger than data.size");
}

// A file no one may read (chmod 000) is an error naming it, or dropped and counted. root reads any
// file whatever its mode, so the case cannot arise there.
TEST(ImageFolder, AnUnreadableFileIsAnErrorNamingItOrIsDropped) {
  if (::geteuid() == 0) GTEST_SKIP() << "running as root, who can read a file of mode 000";
  Folder d;
  const std::string file = d.path("c/x/locked.png");
  on_rank0([&] {
    for (int i = 0; i < 2; ++i) write_gray(d.path("c/x/" + std::to_string(i) + ".png"), 2, 2, {1, 2, 3, 4});
    write_gray(file, 2, 2, {1, 2, 3, 4});
    fs::permissions(file, fs::perms::none);
  });
  EXPECT_CONTAINS(data_error_of([&] { read(d.path("c"), raw(1)); }), file);
  auto o = raw(1);
  o.drop_invalid = true;
  EXPECT_EQ(world().allreduce<std::int64_t>(read(d.path("c"), o).rows, lockstep::comm::ReduceOp::kSum), 2);
  on_rank0([&] { fs::permissions(file, fs::perms::owner_all); });
}

// A test folder's labels are the training folder's class indices (torchvision users expect one
// class_to_idx): a test folder without some classes keeps the others' indices, and a class the
// training folder lacks is one error naming both folders and the class.
TEST(ImageFolder, TestFoldersMapToTheTrainingClasses) {
  Folder d;
  on_rank0([&] {
    for (const char* c : {"ant", "bee", "cat"}) write_gray(d.path(std::string("train/") + c + "/0.png"), 1, 1, {1});
    write_gray(d.path("test/bee/0.png"), 1, 1, {2});
    write_gray(d.path("test/cat/0.png"), 1, 1, {3});
    write_gray(d.path("test/cat/1.png"), 1, 1, {4});
    write_gray(d.path("odd/ant/0.png"), 1, 1, {5});
    write_gray(d.path("odd/dog/0.png"), 1, 1, {6});
  });
  const auto classes = data::image_folder_classes(world(), d.path("train"));
  EXPECT_EQ(classes, (std::vector<std::string>{"ant", "bee", "cat"}));
  auto o = raw(1);
  EXPECT_EQ(gather(read(d.path("test"), o)).second, (std::vector<float>{0, 1, 1}));  // alone: renumbered
  o.classes = classes;
  o.classes_from = d.path("train");
  std::vector<std::string> names;
  const auto t = data::read_image_folder_table(world(), d.path("test"), o, &names);
  EXPECT_EQ(gather(t).second, (std::vector<float>{1, 2, 2}));
  EXPECT_EQ(names, classes);
  EXPECT_EQ(t.class_names, classes);
  const std::string msg = data_error_of([&] { read(d.path("odd"), o); });
  EXPECT_CONTAINS(msg, d.path("odd/dog") + ": class folder \"dog\" is not one of the 3 classes of the training data " +
                           d.path("train") + " (ant, bee, cat)");
  // Through the source registry, as train/evaluate/predict read a split.
  data::SourceSpec spec{"image_folder", "", {{"channels", Param{{"1"}, false, "x.yaml:3: data.channels"}}}, {}, {}};
  data::SourceRequest req;
  req.split = data::SplitKind::kTest;
  req.features = d.path("test");
  req.class_names = classes;
  req.class_names_from = "run/checkpoint.h5";
  EXPECT_EQ(world().allgather_vector(data::read_source(world(), spec, req, "test").labels),
            (std::vector<float>{1, 2, 2}));
  req.features = d.path("odd");
  EXPECT_CONTAINS(data_error_of([&] { data::read_source(world(), spec, req, "test"); }),
                  "classes of the training data run/checkpoint.h5");
}

// scikit-learn's second sample photograph (the first, china.jpg, is checked above): decoded as
// Pillow does, reduced to gray with PIL's "L" weights at every pixel, and resized as torch does.
// Skipped without python3-sklearn.
TEST(ImageFolder, SecondSamplePhotoDecodesGrayAndResizes) {
  const std::string photo = "/usr/lib/python3/dist-packages/sklearn/datasets/images/flower.jpg";
  if (!fs::exists(photo)) GTEST_SKIP() << photo << " is missing (python3-sklearn is not installed)";
  Folder d;
  on_rank0([&] { write_bytes(d.path("p/flower/flower.jpg"), read_bytes(photo)); });
  const auto rgb = gather(read(d.path("p"), raw(3))).first;
  ASSERT_EQ(rgb.size(), 3u * 427 * 640);
  const auto gray = gather(read(d.path("p"), raw(1))).first;
  ASSERT_EQ(gray.size(), 427u * 640);
  // Gray is PIL's "L" of the RGB pixels, exactly, at every pixel.
  const std::size_t plane = 427 * 640;
  std::size_t off = 0;
  for (std::size_t i = 0; i < plane; ++i) {
    const auto r = static_cast<std::uint32_t>(rgb[i]), g = static_cast<std::uint32_t>(rgb[plane + i]),
               b = static_cast<std::uint32_t>(rgb[2 * plane + i]);
    off += gray[i] != static_cast<float>((r * 19595u + g * 38470u + b * 7471u + 0x8000u) >> 16);
  }
  EXPECT_EQ(off, 0u);
  // Pillow 9.4: convert("RGB") at (y 100, x 200) is (5, 21, 21), convert("L") there 16.
  EXPECT_EQ(rgb[100 * 640 + 200], 5);
  EXPECT_EQ(rgb[plane + 100 * 640 + 200], 21);
  EXPECT_EQ(gray[100 * 640 + 200], 16);
  auto o = raw(1);
  o.height = 32, o.width = 48;
  const auto small = gather(read(d.path("p"), o)).first;
  ASSERT_EQ(small.size(), 32u * 48);
  // torch interpolate(size=(32, 48), bilinear, align_corners=False) of Pillow's "L" at (10, 20).
  EXPECT_NEAR(small[10 * 48 + 20], 175.9608, 1e-2);
}
