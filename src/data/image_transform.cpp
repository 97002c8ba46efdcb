// Pixel transforms of image rows: 8-bit H x W x C to float C x H x W with bilinear resizing, the
// centre crop, scale and normalisation (image_transform.hpp), and the per-epoch random crop and
// horizontal flip the trainer applies to training rows (image_folder.hpp).
#include "data/image_transform.hpp"

#include <algorithm>
#include <cstring>

#include "lockstep/core/error.hpp"
#include "lockstep/core/rng.hpp"
#include "lockstep/data/image_folder.hpp"

namespace lockstep::data {
namespace detail {
namespace {

// For output index o of n_out over n_in: the two input indices and the weight of the second, with
// half-pixel centres (align_corners=False) and the source position clamped at 0, as torch does.
struct Tap {
  std::int64_t i0, i1;
  float w1;
};
std::vector<Tap> taps(std::int64_t n_in, std::int64_t n_out) {
  std::vector<Tap> t(static_cast<std::size_t>(n_out));
  const double ratio = static_cast<double>(n_in) / static_cast<double>(n_out);
  for (std::int64_t o = 0; o < n_out; ++o) {
    const double src = std::max(0.0, (static_cast<double>(o) + 0.5) * ratio - 0.5);
    const auto i0 = std::min(static_cast<std::int64_t>(src), n_in - 1);
    const std::int64_t i1 = std::min(i0 + 1, n_in - 1);
    t[static_cast<std::size_t>(o)] = {i0, i1, static_cast<float>(src - static_cast<double>(i0))};
  }
  return t;
}

}  // namespace

std::vector<float> to_chw(const DecodedImage& img, std::int64_t out_h, std::int64_t out_w) {
  const std::int64_t c = img.channels, h = img.height, w = img.width;
  if (out_h <= 0) out_h = h;
  if (out_w <= 0) out_w = w;
  std::vector<float> out(static_cast<std::size_t>(c * out_h * out_w));
  const std::uint8_t* p = img.pixels.data();
  if (out_h == h && out_w == w) {
    for (std::int64_t y = 0; y < h; ++y)
      for (std::int64_t x = 0; x < w; ++x)
        for (std::int64_t k = 0; k < c; ++k) out[static_cast<std::size_t>((k * h + y) * w + x)] = p[(y * w + x) * c + k];
    return out;
  }
  const auto ty = taps(h, out_h), tx = taps(w, out_w);
  for (std::int64_t k = 0; k < c; ++k) {
    for (std::int64_t y = 0; y < out_h; ++y) {
      const Tap& a = ty[static_cast<std::size_t>(y)];
      float* row = out.data() + (k * out_h + y) * out_w;
      for (std::int64_t x = 0; x < out_w; ++x) {
        const Tap& b = tx[static_cast<std::size_t>(x)];
        auto at = [&](std::int64_t yy, std::int64_t xx) { return static_cast<float>(p[(yy * w + xx) * c + k]); };
        const float top = at(a.i0, b.i0) + b.w1 * (at(a.i0, b.i1) - at(a.i0, b.i0));
        const float bottom = at(a.i1, b.i0) + b.w1 * (at(a.i1, b.i1) - at(a.i1, b.i0));
        row[x] = top + a.w1 * (bottom - top);
      }
    }
  }
  return out;
}

void crop_chw(const float* src, std::int64_t c, std::int64_t h, std::int64_t w, std::int64_t y0, std::int64_t x0,
              std::int64_t ch, std::int64_t cw, bool flip, float* dst) {
  for (std::int64_t k = 0; k < c; ++k) {
    for (std::int64_t y = 0; y < ch; ++y) {
      const float* s = src + (k * h + y0 + y) * w + x0;
      float* d = dst + (k * ch + y) * cw;
      if (flip) {
        for (std::int64_t x = 0; x < cw; ++x) d[x] = s[cw - 1 - x];
      } else {
        std::memcpy(d, s, static_cast<std::size_t>(cw) * sizeof(float));
      }
    }
  }
}

void normalize_chw(std::vector<float>& v, std::int64_t c, float scale, const std::vector<float>& mean,
                   const std::vector<float>& std) {
  const std::size_t plane = v.size() / static_cast<std::size_t>(c);
  for (std::int64_t k = 0; k < c; ++k) {
    const auto kk = static_cast<std::size_t>(k);
    const float m = mean.empty() ? 0.0f : mean[mean.size() == 1 ? 0 : kk];
    const float inv = std.empty() ? 1.0f : 1.0f / std[std.size() == 1 ? 0 : kk];
    float* p = v.data() + kk * plane;
    for (std::size_t i = 0; i < plane; ++i) p[i] = (p[i] * scale - m) * inv;
  }
}

}  // namespace detail

Shape augmented_shape(const Table& t) {
  if (t.augment.crop_h <= 0 || t.sample_shape.size() != 3) return t.sample_shape;
  return {t.sample_shape[0], t.augment.crop_h, t.augment.crop_w};
}

void augment_row(const Table& t, const float* src, float* dst, std::uint64_t seed, std::int64_t epoch,
                 std::int64_t global_row) {
  LOCKSTEP_CHECK(t.sample_shape.size() == 3, Error, "image augmentation needs C x H x W rows");
  const std::int64_t c = t.sample_shape[0], h = t.sample_shape[1], w = t.sample_shape[2];
  const bool crop = t.augment.crop_h > 0;
  const std::int64_t ch = crop ? t.augment.crop_h : h, cw = crop ? t.augment.crop_w : w;
  // Always the same three draws, so a row's crop does not depend on whether flipping is on.
  CounterRng rng(seed, RngStream::kAugment, static_cast<std::uint64_t>(epoch), static_cast<std::uint64_t>(global_row));
  const auto y0 = static_cast<std::int64_t>(rng.below(static_cast<std::uint64_t>(h - ch + 1)));
  const auto x0 = static_cast<std::int64_t>(rng.below(static_cast<std::uint64_t>(w - cw + 1)));
  const bool flip = t.augment.hflip && (rng.next_u32() & 1u);
  detail::crop_chw(src, c, h, w, y0, x0, ch, cw, flip, dst);
}

Table without_augment(const Table& t) {
  Table out = t;
  out.augment = Augment{};
  if (t.augment.crop_h <= 0) return out;
  const Shape s = augmented_shape(t);
  const std::int64_t c = t.sample_shape[0], h = t.sample_shape[1], w = t.sample_shape[2];
  const std::int64_t f = s[0] * s[1] * s[2];
  out.features.assign(static_cast<std::size_t>(t.rows * f), 0.0f);
  for (std::int64_t i = 0; i < t.rows; ++i) {
    detail::crop_chw(t.row(i), c, h, w, (h - s[1]) / 2, (w - s[2]) / 2, s[1], s[2], false, out.features.data() + i * f);
  }
  out.sample_shape = s;
  return out;
}

}  // namespace lockstep::data
