// Pixel transforms of decoded images (image_transform.cpp). Private to the library.
#pragma once

#include <cstdint>
#include <vector>

#include "data/image_decode.hpp"

namespace lockstep::data::detail {

// The image as float C x H x W (values 0..255, not yet scaled), resized to out_h x out_w when
// they differ from its own (bilinear, half-pixel centres, no antialiasing; <= 0 keeps the size).
std::vector<float> to_chw(const DecodedImage& img, std::int64_t out_h, std::int64_t out_w);

// The ch x cw window at (y0, x0) of a C x h x w image, mirrored left-right when `flip`, into dst.
void crop_chw(const float* src, std::int64_t c, std::int64_t h, std::int64_t w, std::int64_t y0, std::int64_t x0,
              std::int64_t ch, std::int64_t cw, bool flip, float* dst);

// v = (v * scale - mean[c]) / std[c] per channel plane (mean and std: empty, one, or one per channel).
void normalize_chw(std::vector<float>& v, std::int64_t c, float scale, const std::vector<float>& mean,
                   const std::vector<float>& std);

}  // namespace lockstep::data::detail
