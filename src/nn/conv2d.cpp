// Conv2d over im2col and backend GEMMs (the portable reference path), the window geometry that
// pooling shares, and the conv2d registry row (see conv2d.hpp).
#include "lockstep/nn/conv2d.hpp"

#include <limits>

#include "lockstep/backend/ops.hpp"
#include "lockstep/nn/layer_registry.hpp"

namespace lockstep::nn {
namespace {

using Padding = WindowSpec::Padding;
constexpr std::int64_t kMaxExtent = std::int64_t{1} << 24;  // any kernel, stride, padding or dilation

std::string dims(std::int64_t h, std::int64_t w) { return std::to_string(h) + "x" + std::to_string(w); }

// Output length along one axis, and the leading padding it implies; -1 when the kernel does not fit.
// end_pad: the trailing padding of an explicit [top, left, bottom, right] list, -1 for as leading.
std::int64_t out_len(std::int64_t in, std::int64_t k, std::int64_t s, std::int64_t d, Padding mode, std::int64_t& pad,
                     std::int64_t end_pad) {
  const std::int64_t span = d * (k - 1) + 1;
  if (mode == Padding::kSame) {
    const std::int64_t out = (in + s - 1) / s;
    pad = std::max<std::int64_t>((out - 1) * s + span - in, 0) / 2;
    return out;
  }
  if (mode == Padding::kValid) pad = 0;
  const std::int64_t padded = in + pad + (mode == Padding::kExplicit && end_pad >= 0 ? end_pad : pad);
  if (padded < span) return -1;
  return (padded - span) / s + 1;
}

// A scalar or a list [h, w] of integers >= lo into (h, w); false when the key is absent.
bool read_pair(ParamReader& p, const Spec& spec, const std::string& key, std::int64_t lo, std::int64_t& h,
               std::int64_t& w) {
  std::vector<std::int64_t> v;
  const ParamRange<std::int64_t> range{[lo](const std::int64_t& x) { return x >= lo && x <= kMaxExtent; },
                                       "an integer in [" + std::to_string(lo) + ", " + std::to_string(kMaxExtent) + "]"};
  if (!p.get_list(key, v, range)) return false;
  if (v.size() != 1 && v.size() != 2)
    ParamReader::fail(spec.params.at(key), range.expected + " or a list [" + key + "_h, " + key + "_w] of them",
                      "a list of " + std::to_string(v.size()));
  h = v[0];
  w = v.back();
  return true;
}

void read_padding(ParamReader& p, const Spec& spec, WindowSpec& ws) {
  std::vector<std::string> v;
  if (!p.get_list("padding", v)) return;
  const Param& param = spec.params.at("padding");
  const std::string expected = "same, valid, an integer >= 0, a list [pad_h, pad_w] or [top, left, bottom, right]";
  if (v.size() == 1 && (v[0] == "same" || v[0] == "valid")) {
    ws.padding = v[0] == "same" ? Padding::kSame : Padding::kValid;
    return;
  }
  if (v.empty() || v.size() == 3 || v.size() > 4)
    ParamReader::fail(param, expected, "a list of " + std::to_string(v.size()));
  std::int64_t n[4] = {0, 0, 0, 0};
  for (std::size_t i = 0; i < v.size(); ++i) {
    try {
      n[i] = parse_param<std::int64_t>(param, v[i]);
    } catch (const ConfigError&) {
      ParamReader::fail(param, expected, "\"" + v[i] + "\"");
    }
    if (n[i] < 0 || n[i] > kMaxExtent) ParamReader::fail(param, expected, "\"" + v[i] + "\"");
  }
  ws.padding = Padding::kExplicit;
  ws.pad_h = n[0];
  ws.pad_w = v.size() >= 2 ? n[1] : n[0];
  if (v.size() == 4) ws.pad_bottom = n[2], ws.pad_right = n[3];
}

}  // namespace

std::string WindowSpec::padding_text() const {
  switch (padding) {
    case Padding::kSame:
      return "same";
    case Padding::kValid:
      return "valid";
    case Padding::kExplicit:
      break;
  }
  if (pad_bottom >= 0 || pad_right >= 0)
    return detail::concat("[", pad_h, ", ", pad_w, ", ", pad_bottom >= 0 ? pad_bottom : pad_h, ", ",
                          pad_right >= 0 ? pad_right : pad_w, "]");
  return detail::concat("[", pad_h, ", ", pad_w, "]");
}

backend::Window2d WindowSpec::plan(const Shape& input, const std::string& layer) const {
  LOCKSTEP_CHECK(input.size() == 3 && shape_numel(input) > 0, ConfigError, where, ": ", layer,
                 " needs a per-sample input of shape {channels, height, width}, got ", shape_str(input),
                 " (a flat input has lost its image shape; IDX and image-folder data keep it)");
  backend::Window2d g;
  g.channels = input[0];
  g.height = input[1];
  g.width = input[2];
  g.kernel_h = kernel_h, g.kernel_w = kernel_w, g.stride_h = stride_h, g.stride_w = stride_w;
  g.dilation_h = dilation_h, g.dilation_w = dilation_w, g.pad_h = pad_h, g.pad_w = pad_w;
  g.out_h = out_len(g.height, kernel_h, stride_h, dilation_h, padding, g.pad_h, pad_bottom);
  g.out_w = out_len(g.width, kernel_w, stride_w, dilation_w, padding, g.pad_w, pad_right);
  if (g.out_h <= 0 || g.out_w <= 0) {
    const std::string dilated =
        dilation_h * dilation_w > 1 ? " (" + dims(dilation_h * (kernel_h - 1) + 1, dilation_w * (kernel_w - 1) + 1) +
                                          " with dilation)"
                                    : "";
    throw ConfigError(where + ".kernel: the " + dims(kernel_h, kernel_w) + " kernel" + dilated +
                      " is larger than its input " +
                      dims(g.height + pad_h + (pad_bottom >= 0 ? pad_bottom : pad_h),
                           g.width + pad_w + (pad_right >= 0 ? pad_right : pad_w)) +
                      " (input " + shape_str(input) + ", padding " + padding_text() + ")");
  }
  return g;
}

WindowSpec read_window_spec(ParamReader& p, const Spec& spec, std::int64_t stride_default, bool allow_dilation) {
  WindowSpec ws;
  ws.where = spec.where;
  if (!read_pair(p, spec, "kernel", 1, ws.kernel_h, ws.kernel_w))
    throw ConfigError(spec.where + ".kernel: missing (an integer >= 1 or a list [kernel_h, kernel_w])");
  ws.stride_h = stride_default > 0 ? stride_default : ws.kernel_h;
  ws.stride_w = stride_default > 0 ? stride_default : ws.kernel_w;
  read_pair(p, spec, "stride", 1, ws.stride_h, ws.stride_w);
  if (allow_dilation) read_pair(p, spec, "dilation", 1, ws.dilation_h, ws.dilation_w);
  read_padding(p, spec, ws);
  return ws;
}

Conv2d::Conv2d(std::int64_t filters, WindowSpec window, std::int64_t groups, bool bias)
    : filters_(filters), groups_(groups), window_(std::move(window)), use_bias_(bias) {
  LOCKSTEP_CHECK(filters_ > 0 && groups_ > 0 && filters_ % groups_ == 0, ConfigError, window_.where,
                 ".groups: expected a divisor of filters (", filters_, "), got ", groups_);
}

backend::Window2d Conv2d::geometry(const Shape& input) const {
  backend::Window2d g = window_.plan(input, "conv2d");
  LOCKSTEP_CHECK(g.channels % groups_ == 0, ConfigError, window_.where, ".groups: expected a divisor of the ",
                 g.channels, " input channels, got ", groups_);
  return g;
}

Shape Conv2d::output_shape(const Shape& input) const {
  const backend::Window2d g = geometry(input);
  g_ = g;  // the shape this layer will run on
  return {filters_, g.out_h, g.out_w};
}

std::vector<ParamSpec> Conv2d::param_specs(const Shape& input) const {
  const backend::Window2d g = geometry(input);
  const std::int64_t per_group = g.channels / groups_, taps = g.taps();
  // PyTorch's fans: in = (channels / groups) * taps, out = filters * taps.
  std::vector<ParamSpec> s{{"weight", {filters_, per_group, g.kernel_h, g.kernel_w}, per_group * taps, filters_ * taps, false}};
  if (use_bias_) s.push_back({"bias", {filters_}, per_group * taps, filters_ * taps, true});
  return s;
}

void Conv2d::bind(std::vector<Parameter*> params) {
  weight_ = params.at(0);
  bias_ = use_bias_ ? params.at(1) : nullptr;
}

void Conv2d::plan_buffers(const Tensor& x) {
  const std::int64_t rows = x.dim(0);
  const bool same_kind = col_.defined() && col_.dtype() == x.dtype() && col_.device() == x.device();
  if (same_kind && col_.dim(0) >= rows) return;
  const std::int64_t cols = g_.col_rows(), plane = g_.out_plane();
  col_ = Tensor({rows, cols, plane}, x.dtype(), x.device());
  dcol_ = Tensor({rows, cols, plane}, x.dtype(), x.device());
  channel_sums_ = Tensor({rows, filters_}, x.dtype(), x.device());
  if (!same_kind) {
    Tensor ones({plane});
    for (float& v : ones.span<float>()) v = 1.0f;
    ones_ = Tensor({plane}, x.dtype(), x.device());
    backend::cast(ones.clone(x.device()), ones_);
    bias_plane_ = Tensor({filters_, plane}, x.dtype(), x.device());
  }
}

Tensor Conv2d::block(const Tensor& t, std::int64_t n, std::int64_t g, std::int64_t r, std::int64_t c) const {
  const std::int64_t i = n * groups_ + g;
  return t.reshape({t.numel() / (r * c), r * c}).rows(i, i + 1).reshape({r, c});
}

backend::ConvPlan* Conv2d::library_plan(const Tensor& x) {
  if (backend::conv_impl() == backend::ConvImpl::kReference) return nullptr;
  // Libraries take one dtype per call (bf16 gradients of float32 activations take the reference).
  if (weight_->compute.dtype() != x.dtype() || (trainable_ && weight_->grad.dtype() != x.dtype())) return nullptr;
  const bool same = plan_tried_ && plan_dtype_ == x.dtype() && plan_device_ == x.device() && x.dim(0) <= plan_rows_;
  if (!same) {
    plan_ = backend::make_conv_plan({g_, filters_, groups_, use_bias_}, x.device(), x.dtype(), x.dim(0));
    plan_tried_ = true;
    plan_dtype_ = x.dtype();
    plan_device_ = x.device();
    plan_rows_ = x.dim(0);
  }
  return plan_.get();
}

void Conv2d::forward(const Tensor& x, Tensor& y, const ForwardContext&) {
  const std::int64_t rows = x.dim(0);
  LOCKSTEP_CHECK(g_.out_h > 0 && x.numel() == rows * g_.channels * g_.in_plane(), Error,
                 "conv2d: input batch ", shape_str(x.shape()), " for samples of ", g_.channels, "x", g_.height, "x",
                 g_.width, " (output_shape sets the input shape)");
  x_ = x;
  used_plan_ = library_plan(x);
  if (used_plan_) {
    used_plan_->forward(x, weight_->compute, bias_ ? &bias_->compute : nullptr, y);
    return;
  }
  reference_forward(x, y);
}

void Conv2d::reference_forward(const Tensor& x, Tensor& y) {
  const std::int64_t rows = x.dim(0);
  plan_buffers(x);
  Tensor col = col_.rows(0, rows);
  backend::im2col(x, g_, col);
  const std::int64_t fg = filters_ / groups_, k = g_.col_rows() / groups_, plane = g_.out_plane();
  for (std::int64_t n = 0; n < rows; ++n)
    for (std::int64_t g = 0; g < groups_; ++g) {
      Tensor yb = block(y, n, g, fg, plane);
      backend::gemm(false, false, 1.0f, block(weight_->compute, 0, g, fg, k), block(col, n, g, k, plane), 0.0f, yb);
    }
  if (bias_) {
    backend::gemm(false, false, 1.0f, bias_->compute.reshape({filters_, 1}), ones_.reshape({1, plane}), 0.0f,
                  bias_plane_);
    Tensor flat = y.reshape({rows, filters_ * plane});
    backend::add_row_vector(flat, bias_plane_);
  }
}

void Conv2d::backward(const Tensor& dy, Tensor* dx) {
  if (!used_plan_) {
    reference_backward(dy, dx);
    return;
  }
  if (!trainable_) {  // frozen: the input gradient only
    if (dx) used_plan_->backward_data(dy, weight_->compute, *dx);
    return;
  }
  used_plan_->backward(x_, dy, weight_->compute, weight_->grad, bias_ ? &bias_->grad : nullptr, dx);
}

void Conv2d::reference_backward(const Tensor& dy, Tensor* dx) {
  const std::int64_t rows = x_.dim(0);
  const std::int64_t fg = filters_ / groups_, k = g_.col_rows() / groups_, plane = g_.out_plane();
  const Tensor col = col_.rows(0, rows);
  for (std::int64_t g = 0; g < groups_ && trainable_; ++g) {  // dW_g = sum over samples of dy_g col_g^T, in sample order
    Tensor dw = block(weight_->grad, 0, g, fg, k);
    for (std::int64_t n = 0; n < rows; ++n)
      backend::gemm(false, true, 1.0f, block(dy, n, g, fg, plane), block(col, n, g, k, plane), n == 0 ? 0.0f : 1.0f, dw);
  }
  if (bias_ && trainable_) {  // db = dy summed over each plane, then over samples
    Tensor sums = channel_sums_.rows(0, rows);
    Tensor sums_col = sums.reshape({rows * filters_, 1});
    backend::gemm(false, false, 1.0f, dy.reshape({rows * filters_, plane}), ones_.reshape({plane, 1}), 0.0f, sums_col);
    backend::sum_rows(sums, 0.0f, bias_->grad);
  }
  if (!dx) return;
  Tensor dcol = dcol_.rows(0, rows);
  for (std::int64_t n = 0; n < rows; ++n)
    for (std::int64_t g = 0; g < groups_; ++g) {
      Tensor db = block(dcol, n, g, k, plane);
      backend::gemm(true, false, 1.0f, block(weight_->compute, 0, g, fg, k), block(dy, n, g, fg, plane), 0.0f, db);
    }
  backend::col2im(dcol, g_, *dx);
}

namespace {
const LayerRegistrar kConv2d{
    {"conv2d",
     "filters (an integer > 0), kernel (an integer or [kh, kw]), stride (default 1), padding (valid (default), same, "
     "N, [ph, pw] or [top, left, bottom, right]), dilation (default 1), groups (default 1), bias (true or false; default true)",
     [](ParamReader& p, const Spec& spec, std::uint32_t) -> std::unique_ptr<Layer> {
       std::int64_t filters = 0, groups = 1;
       bool bias = true;
       if (!p.get("filters", filters, at_least(std::int64_t{1})))
         throw ConfigError(spec.where + ".filters: missing (conv2d layers need filters > 0)");
       WindowSpec ws = read_window_spec(p, spec, 1, true);
       p.get("groups", groups, at_least(std::int64_t{1}));
       p.get("bias", bias);
       return std::make_unique<Conv2d>(filters, std::move(ws), groups, bias);
     }}};
}  // namespace

}  // namespace lockstep::nn
