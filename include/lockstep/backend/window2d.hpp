// The geometry of 2-D sliding-window ops (convolution through im2col/col2im, max and average
// pooling) and their per-element math, written once as host/device functions: the CPU backend
// calls them in loops, the CUDA backend in kernels, so the CPU tests check the math the GPU runs.
//
// A sample is [channels, height, width], row-major. Output position (oy, ox) reads the window whose
// top-left tap is at (oy * stride_h - pad_h, ox * stride_w - pad_w), with taps dilation apart.
// Only the top/left padding is stored: padding past the bottom/right edge is implied by out_h and
// out_w (TensorFlow's "same" pads one more row at the bottom than at the top). Taps outside the
// image read 0 in a convolution and are skipped by pooling (an average divides by the taps inside
// the image, as Keras and oneDNN's avg_pool exclude_padding do).
//
// Gradients are gathers (each input element sums the outputs that read it, in a fixed order), not
// scatters: no atomics, so both backends give the same bits at every launch.
#pragma once

#include <cstdint>

#include "lockstep/core/bfloat16.hpp"
#include "lockstep/core/hostdevice.hpp"

namespace lockstep::backend {

struct Window2d {
  std::int64_t channels = 0, height = 0, width = 0;
  std::int64_t kernel_h = 1, kernel_w = 1, stride_h = 1, stride_w = 1;
  std::int64_t pad_h = 0, pad_w = 0, dilation_h = 1, dilation_w = 1;
  std::int64_t out_h = 0, out_w = 0;

  LOCKSTEP_HD std::int64_t taps() const { return kernel_h * kernel_w; }
  LOCKSTEP_HD std::int64_t in_plane() const { return height * width; }
  LOCKSTEP_HD std::int64_t out_plane() const { return out_h * out_w; }
  // Rows of one sample's column matrix (channels * taps) by out_plane() columns.
  LOCKSTEP_HD std::int64_t col_rows() const { return channels * taps(); }
  // The input row (column) that tap ki (kj) of output row oy (column ox) reads; may be outside.
  LOCKSTEP_HD std::int64_t in_y(std::int64_t oy, std::int64_t ki) const { return oy * stride_h - pad_h + ki * dilation_h; }
  LOCKSTEP_HD std::int64_t in_x(std::int64_t ox, std::int64_t kj) const { return ox * stride_w - pad_w + kj * dilation_w; }
  // The output row that reads input row iy through tap ki, or -1 when none does.
  LOCKSTEP_HD std::int64_t out_y(std::int64_t iy, std::int64_t ki) const {
    return through(iy + pad_h - ki * dilation_h, stride_h, out_h);
  }
  LOCKSTEP_HD std::int64_t out_x(std::int64_t ix, std::int64_t kj) const {
    return through(ix + pad_w - kj * dilation_w, stride_w, out_w);
  }
  // The taps [*lo, *hi] through which some output row (column) can read input row iy (column ix):
  // the gathers loop over these only, so a global pool's gradient costs one tap, not the plane.
  LOCKSTEP_HD void taps_y(std::int64_t iy, std::int64_t* lo, std::int64_t* hi) const {
    tap_range(iy + pad_h, stride_h * (out_h - 1), dilation_h, kernel_h, lo, hi);
  }
  LOCKSTEP_HD void taps_x(std::int64_t ix, std::int64_t* lo, std::int64_t* hi) const {
    tap_range(ix + pad_w, stride_w * (out_w - 1), dilation_w, kernel_w, lo, hi);
  }

 private:
  LOCKSTEP_HD static std::int64_t through(std::int64_t v, std::int64_t stride, std::int64_t n) {
    if (v < 0 || v % stride != 0) return -1;
    return v / stride < n ? v / stride : -1;
  }
  // Taps k in [0, kernel) with 0 <= v - k * dilation <= last.
  LOCKSTEP_HD static void tap_range(std::int64_t v, std::int64_t last, std::int64_t dilation, std::int64_t kernel,
                                    std::int64_t* lo, std::int64_t* hi) {
    const std::int64_t above = v - last;  // k >= ceil(above / dilation)
    const std::int64_t first = above <= 0 ? 0 : (above + dilation - 1) / dilation;
    const std::int64_t final_tap = v < 0 ? -1 : v / dilation;
    *lo = first;
    *hi = final_tap < kernel - 1 ? final_tap : kernel - 1;
  }
};

namespace fn {

// col2im for one input element (c, iy, ix) of one sample: the sum of the column entries that
// im2col copied from it. col is the sample's [channels * taps, out_plane] matrix.
template <typename T>
LOCKSTEP_HD float col2im_element(const Window2d& g, const T* col, std::int64_t c, std::int64_t iy, std::int64_t ix) {
  float s = 0.0f;
  std::int64_t ki0 = 0, ki1 = 0, kj0 = 0, kj1 = 0;
  g.taps_y(iy, &ki0, &ki1);
  g.taps_x(ix, &kj0, &kj1);
  for (std::int64_t ki = ki0; ki <= ki1; ++ki) {
    const std::int64_t oy = g.out_y(iy, ki);
    if (oy < 0) continue;
    for (std::int64_t kj = kj0; kj <= kj1; ++kj) {
      const std::int64_t ox = g.out_x(ix, kj);
      if (ox < 0) continue;
      s += load_f(col, ((c * g.kernel_h + ki) * g.kernel_w + kj) * g.out_plane() + oy * g.out_w + ox);
    }
  }
  return s;
}

// Max over the taps inside the image of output (oy, ox) of one plane; *arg = iy * width + ix of
// the first maximum (-1 if the window holds no pixel, which the layers' checks rule out).
template <typename T>
LOCKSTEP_HD float max_pool_element(const Window2d& g, const T* plane, std::int64_t oy, std::int64_t ox,
                                   std::int32_t* arg) {
  float best = 0.0f;
  std::int32_t where = -1;
  for (std::int64_t ki = 0; ki < g.kernel_h; ++ki) {
    const std::int64_t iy = g.in_y(oy, ki);
    if (iy < 0 || iy >= g.height) continue;
    for (std::int64_t kj = 0; kj < g.kernel_w; ++kj) {
      const std::int64_t ix = g.in_x(ox, kj);
      if (ix < 0 || ix >= g.width) continue;
      const float v = load_f(plane, iy * g.width + ix);
      if (where < 0 || v > best) best = v, where = static_cast<std::int32_t>(iy * g.width + ix);
    }
  }
  *arg = where;
  return best;
}

// d(input element iy, ix) of a max pool: the upstream gradients of the outputs that picked it.
template <typename T>
LOCKSTEP_HD float max_pool_grad_element(const Window2d& g, const T* dy_plane, const std::int32_t* arg_plane,
                                        std::int64_t iy, std::int64_t ix) {
  const auto me = static_cast<std::int32_t>(iy * g.width + ix);
  float s = 0.0f;
  std::int64_t ki0 = 0, ki1 = 0, kj0 = 0, kj1 = 0;
  g.taps_y(iy, &ki0, &ki1);
  g.taps_x(ix, &kj0, &kj1);
  for (std::int64_t ki = ki0; ki <= ki1; ++ki) {
    const std::int64_t oy = g.out_y(iy, ki);
    if (oy < 0) continue;
    for (std::int64_t kj = kj0; kj <= kj1; ++kj) {
      const std::int64_t ox = g.out_x(ix, kj);
      if (ox >= 0 && arg_plane[oy * g.out_w + ox] == me) s += load_f(dy_plane, oy * g.out_w + ox);
    }
  }
  return s;
}

// The number of taps of output (oy, ox) inside the image: an average's divisor.
LOCKSTEP_HD std::int64_t taps_inside(const Window2d& g, std::int64_t oy, std::int64_t ox) {
  std::int64_t rows = 0, cols = 0;
  for (std::int64_t ki = 0; ki < g.kernel_h; ++ki) rows += g.in_y(oy, ki) >= 0 && g.in_y(oy, ki) < g.height;
  for (std::int64_t kj = 0; kj < g.kernel_w; ++kj) cols += g.in_x(ox, kj) >= 0 && g.in_x(ox, kj) < g.width;
  return rows * cols;
}

template <typename T>
LOCKSTEP_HD float avg_pool_element(const Window2d& g, const T* plane, std::int64_t oy, std::int64_t ox) {
  float s = 0.0f;
  for (std::int64_t ki = 0; ki < g.kernel_h; ++ki) {
    const std::int64_t iy = g.in_y(oy, ki);
    if (iy < 0 || iy >= g.height) continue;
    for (std::int64_t kj = 0; kj < g.kernel_w; ++kj) {
      const std::int64_t ix = g.in_x(ox, kj);
      if (ix >= 0 && ix < g.width) s += load_f(plane, iy * g.width + ix);
    }
  }
  const std::int64_t n = taps_inside(g, oy, ox);
  return n > 0 ? s / static_cast<float>(n) : 0.0f;
}

template <typename T>
LOCKSTEP_HD float avg_pool_grad_element(const Window2d& g, const T* dy_plane, std::int64_t iy, std::int64_t ix) {
  float s = 0.0f;
  std::int64_t ki0 = 0, ki1 = 0, kj0 = 0, kj1 = 0;
  g.taps_y(iy, &ki0, &ki1);
  g.taps_x(ix, &kj0, &kj1);
  for (std::int64_t ki = ki0; ki <= ki1; ++ki) {
    const std::int64_t oy = g.out_y(iy, ki);
    if (oy < 0) continue;
    for (std::int64_t kj = kj0; kj <= kj1; ++kj) {
      const std::int64_t ox = g.out_x(ix, kj);
      if (ox >= 0) s += load_f(dy_plane, oy * g.out_w + ox) / static_cast<float>(taps_inside(g, oy, ox));
    }
  }
  return s;
}

}  // namespace fn
}  // namespace lockstep::backend
