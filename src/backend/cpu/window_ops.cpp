// CPU backend: the sliding-window ops (im2col/col2im for convolution, max and average pooling),
// plain loops over the per-element math of backend/window2d.hpp, one sample plane at a time.
// This is the portable reference path: the convolution's products are Eigen GEMMs over the
// column matrix (nn/conv2d.cpp), and faster paths are tested against it.
#include <algorithm>

#include "backend/cpu/cpu_ops.hpp"
#include "backend/f32_detour.hpp"

namespace lockstep::backend::cpu {
namespace {

using f32_detour::any_bf16;
using f32_detour::as_f32;
using f32_detour::store_back;

// The number of samples in t, checking that it holds a whole number of per-sample blocks.
std::int64_t samples(const Tensor& t, std::int64_t per_sample, const char* op, const char* what) {
  const std::int64_t rows = t.ndim() == 0 ? 0 : t.dim(0);
  LOCKSTEP_CHECK(per_sample > 0 && t.numel() == rows * per_sample, Error, "backend::", op, ": ", what, " ",
                 shape_str(t.shape()), " is not ", rows, " samples of ", per_sample, " values");
  return rows;
}

// Every tap of every output is inside the image (no padding, and the last window ends inside).
bool taps_all_inside(const Window2d& g) {
  return g.pad_h == 0 && g.pad_w == 0 && (g.out_h - 1) * g.stride_h + g.dilation_h * (g.kernel_h - 1) < g.height &&
         (g.out_w - 1) * g.stride_w + g.dilation_w * (g.kernel_w - 1) < g.width;
}

// No input element lies in two windows (stride at least the dilated kernel along both axes).
bool windows_disjoint(const Window2d& g) {
  return g.stride_h >= g.dilation_h * (g.kernel_h - 1) + 1 && g.stride_w >= g.dilation_w * (g.kernel_w - 1) + 1;
}

// max_pool_element without bounds checks, for windows that lie inside the image: the same first
// maximum in the same tap order, so the same values and argmax.
void max_pool_plane_inside(const Window2d& g, const float* plane, float* y, std::int32_t* arg) {
  if (g.kernel_h == 2 && g.kernel_w == 2 && g.dilation_h == 1 && g.dilation_w == 1) {  // the common 2x2
    for (std::int64_t oy = 0; oy < g.out_h; ++oy) {
      const std::int64_t r0 = oy * g.stride_h * g.width, r1 = r0 + g.width;
      for (std::int64_t ox = 0; ox < g.out_w; ++ox) {
        const std::int64_t c = ox * g.stride_w;
        // Taps in the generic order (r0, c), (r0, c+1), (r1, c), (r1, c+1); the first maximum wins.
        float best = plane[r0 + c];
        std::int64_t where = r0 + c;
        if (plane[r0 + c + 1] > best) best = plane[r0 + c + 1], where = r0 + c + 1;
        if (plane[r1 + c] > best) best = plane[r1 + c], where = r1 + c;
        if (plane[r1 + c + 1] > best) best = plane[r1 + c + 1], where = r1 + c + 1;
        y[oy * g.out_w + ox] = best;
        arg[oy * g.out_w + ox] = static_cast<std::int32_t>(where);
      }
    }
    return;
  }
  for (std::int64_t oy = 0; oy < g.out_h; ++oy)
    for (std::int64_t ox = 0; ox < g.out_w; ++ox) {
      const std::int64_t y0 = oy * g.stride_h, x0 = ox * g.stride_w;
      float best = plane[y0 * g.width + x0];
      auto where = static_cast<std::int32_t>(y0 * g.width + x0);
      for (std::int64_t ki = 0; ki < g.kernel_h; ++ki) {
        const std::int64_t row = (y0 + ki * g.dilation_h) * g.width;
        for (std::int64_t kj = 0; kj < g.kernel_w; ++kj) {
          const std::int64_t i = row + x0 + kj * g.dilation_w;
          if (plane[i] > best) best = plane[i], where = static_cast<std::int32_t>(i);
        }
      }
      y[oy * g.out_w + ox] = best;
      arg[oy * g.out_w + ox] = where;
    }
}

}  // namespace

void im2col(const Tensor& x, const Window2d& g, Tensor& col) {
  if (any_bf16({&x, &col})) {
    Tensor fc = as_f32(col);
    cpu::im2col(as_f32(x), g, fc);
    return store_back(fc, col);
  }
  const std::int64_t n = samples(x, g.channels * g.in_plane(), "im2col", "input");
  LOCKSTEP_CHECK(samples(col, g.col_rows() * g.out_plane(), "im2col", "columns") == n, Error,
                 "backend::im2col: ", n, " samples into ", shape_str(col.shape()));
  const float* px = x.data<float>();
  float* pc = col.data<float>();
  // Row (c, ki, kj) of the column matrix, one output row oy at a time: a run of out_w values read
  // with stride stride_w, or zeros where the tap falls outside the image.
  for (std::int64_t s = 0; s < n * g.channels; ++s) {
    const float* plane = px + s * g.in_plane();
    for (std::int64_t ki = 0; ki < g.kernel_h; ++ki) {
      for (std::int64_t kj = 0; kj < g.kernel_w; ++kj) {
        for (std::int64_t oy = 0; oy < g.out_h; ++oy) {
          const std::int64_t iy = g.in_y(oy, ki);
          float* out = pc + oy * g.out_w;
          if (iy < 0 || iy >= g.height) {
            std::fill(out, out + g.out_w, 0.0f);
            continue;
          }
          const float* row = plane + iy * g.width;
          for (std::int64_t ox = 0; ox < g.out_w; ++ox) {
            const std::int64_t ix = g.in_x(ox, kj);
            out[ox] = ix >= 0 && ix < g.width ? row[ix] : 0.0f;
          }
        }
        pc += g.out_plane();
      }
    }
  }
}

void col2im(const Tensor& col, const Window2d& g, Tensor& dx) {
  if (any_bf16({&col, &dx})) {
    Tensor fd = as_f32(dx);
    cpu::col2im(as_f32(col), g, fd);
    return store_back(fd, dx);
  }
  const std::int64_t n = samples(dx, g.channels * g.in_plane(), "col2im", "input gradient");
  LOCKSTEP_CHECK(samples(col, g.col_rows() * g.out_plane(), "col2im", "columns") == n, Error,
                 "backend::col2im: ", shape_str(col.shape()), " into ", n, " samples");
  const float* pc = col.data<float>();
  float* pd = dx.data<float>();
  for (std::int64_t s = 0; s < n; ++s) {
    const float* cs = pc + s * g.col_rows() * g.out_plane();
    float* ds = pd + s * g.channels * g.in_plane();
    for (std::int64_t c = 0; c < g.channels; ++c)
      for (std::int64_t iy = 0; iy < g.height; ++iy)
        for (std::int64_t ix = 0; ix < g.width; ++ix)
          ds[(c * g.height + iy) * g.width + ix] = fn::col2im_element(g, cs, c, iy, ix);
  }
}

void max_pool_forward(const Tensor& x, const Window2d& g, Tensor& y, Tensor& argmax) {
  if (any_bf16({&x, &y})) {
    Tensor fy = as_f32(y);
    cpu::max_pool_forward(as_f32(x), g, fy, argmax);
    return store_back(fy, y);
  }
  const std::int64_t planes = samples(x, g.channels * g.in_plane(), "max_pool_forward", "input") * g.channels;
  LOCKSTEP_CHECK(y.numel() == planes * g.out_plane() && argmax.numel() == y.numel() && argmax.dtype() == DType::kI32,
                 Error, "backend::max_pool_forward: output ", shape_str(y.shape()), ", argmax ",
                 shape_str(argmax.shape()), " ", dtype_name(argmax.dtype()));
  const float* px = x.data<float>();
  float* py = y.data<float>();
  std::int32_t* pa = argmax.data<std::int32_t>();
  if (taps_all_inside(g)) {
    for (std::int64_t p = 0; p < planes; ++p)
      max_pool_plane_inside(g, px + p * g.in_plane(), py + p * g.out_plane(), pa + p * g.out_plane());
    return;
  }
  for (std::int64_t p = 0; p < planes; ++p)
    for (std::int64_t oy = 0; oy < g.out_h; ++oy)
      for (std::int64_t ox = 0; ox < g.out_w; ++ox) {
        const std::int64_t o = p * g.out_plane() + oy * g.out_w + ox;
        py[o] = fn::max_pool_element(g, px + p * g.in_plane(), oy, ox, pa + o);
      }
}

void max_pool_backward(const Tensor& dy, const Tensor& argmax, const Window2d& g, Tensor& dx) {
  if (any_bf16({&dy, &dx})) {
    Tensor fd = as_f32(dx);
    cpu::max_pool_backward(as_f32(dy), argmax, g, fd);
    return store_back(fd, dx);
  }
  const std::int64_t planes = samples(dx, g.channels * g.in_plane(), "max_pool_backward", "input gradient") * g.channels;
  LOCKSTEP_CHECK(dy.numel() == planes * g.out_plane() && argmax.numel() == dy.numel(), Error,
                 "backend::max_pool_backward: gradient ", shape_str(dy.shape()), " for ", planes, " planes");
  const float* pdy = dy.data<float>();
  const std::int32_t* pa = argmax.data<std::int32_t>();
  float* pd = dx.data<float>();
  if (windows_disjoint(g)) {  // each input has at most one output that picked it: a scatter
    std::fill(pd, pd + planes * g.in_plane(), 0.0f);
    for (std::int64_t p = 0; p < planes; ++p)
      for (std::int64_t o = 0; o < g.out_plane(); ++o) {
        const std::int32_t a = pa[p * g.out_plane() + o];
        if (a >= 0) pd[p * g.in_plane() + a] = 0.0f + pdy[p * g.out_plane() + o];  // the gather's 0 + dy
      }
    return;
  }
  for (std::int64_t p = 0; p < planes; ++p)
    for (std::int64_t iy = 0; iy < g.height; ++iy)
      for (std::int64_t ix = 0; ix < g.width; ++ix)
        pd[p * g.in_plane() + iy * g.width + ix] =
            fn::max_pool_grad_element(g, pdy + p * g.out_plane(), pa + p * g.out_plane(), iy, ix);
}

void avg_pool_forward(const Tensor& x, const Window2d& g, Tensor& y) {
  if (any_bf16({&x, &y})) {
    Tensor fy = as_f32(y);
    cpu::avg_pool_forward(as_f32(x), g, fy);
    return store_back(fy, y);
  }
  const std::int64_t planes = samples(x, g.channels * g.in_plane(), "avg_pool_forward", "input") * g.channels;
  LOCKSTEP_CHECK(y.numel() == planes * g.out_plane(), Error, "backend::avg_pool_forward: output ",
                 shape_str(y.shape()), " for ", planes, " planes");
  const float* px = x.data<float>();
  float* py = y.data<float>();
  for (std::int64_t p = 0; p < planes; ++p)
    for (std::int64_t oy = 0; oy < g.out_h; ++oy)
      for (std::int64_t ox = 0; ox < g.out_w; ++ox)
        py[p * g.out_plane() + oy * g.out_w + ox] = fn::avg_pool_element(g, px + p * g.in_plane(), oy, ox);
}

void avg_pool_backward(const Tensor& dy, const Window2d& g, Tensor& dx) {
  if (any_bf16({&dy, &dx})) {
    Tensor fd = as_f32(dx);
    cpu::avg_pool_backward(as_f32(dy), g, fd);
    return store_back(fd, dx);
  }
  const std::int64_t planes = samples(dx, g.channels * g.in_plane(), "avg_pool_backward", "input gradient") * g.channels;
  LOCKSTEP_CHECK(dy.numel() == planes * g.out_plane(), Error, "backend::avg_pool_backward: gradient ",
                 shape_str(dy.shape()), " for ", planes, " planes");
  const float* pdy = dy.data<float>();
  float* pd = dx.data<float>();
  for (std::int64_t p = 0; p < planes; ++p)
    for (std::int64_t iy = 0; iy < g.height; ++iy)
      for (std::int64_t ix = 0; ix < g.width; ++ix)
        pd[p * g.in_plane() + iy * g.width + ix] = fn::avg_pool_grad_element(g, pdy + p * g.out_plane(), iy, ix);
}

}  // namespace lockstep::backend::cpu
