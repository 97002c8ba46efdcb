// Every cuDNN call lockstep makes: 2-D convolution forward (+ bias), backward-data and
// backward-weights (+ bias) plans (see include/lockstep/backend/conv_plan.hpp) on the legacy
// convolution API that cuDNN 9 still ships (cudnn_cnn.h; deprecated but complete).
//
// - Tensors stay plain NCHW float32 (weights KCRS); groups through cudnnSetConvolutionGroupCount.
// - Padding: cuDNN's legacy descriptor pads both sides by the same amount; lockstep's Window2d
//   stores the top/left padding and implies the bottom/right one by out_h/out_w ("same" pads one
//   more at the bottom/right when the total is odd). When symmetric padding does not give our
//   output size there is no plan, and the layer runs im2col + cuBLAS.
// - Arithmetic: CUDNN_FMA_MATH, plain float32 (no TF32 tensor cores), as cuBLAS runs in
//   runtime.cu, so results stay within float rounding of the CPU backend's.
// - Algorithms: cudnnGet*Algorithm_v7 (heuristics; no timing, so the choice is the same on every
//   run and every rank with the same GPU and cuDNN), taking the first result that is supported,
//   CUDNN_DETERMINISTIC and not tensor-op math. Deterministic algorithms accumulate without
//   atomics, so a plan gives the same bits at every launch, as the im2col path does; this holds in
//   every mode, which training.deterministic relies on. Where cuDNN has no such algorithm for a
//   geometry there is no plan (im2col + cuBLAS runs).
// - Everything a batch size needs (its tensor descriptors and algorithms) is made the first time a
//   batch of that size runs and kept; one workspace, grown then to the largest any batch size so far
//   needs, is kept by the plan: a training step makes no allocation here. The plan for max_rows is
//   made at once, so the usual workspace is allocated before the first step.
// - Streams: one cuDNN handle per device, on the legacy default stream, where the CUDA backend's
//   kernels and cuBLAS run; calls are asynchronous like theirs.
// - Errors: a failed call throws lockstep::Error naming the call and cudnnGetErrorString.
#include "backend/conv_libraries.hpp"
#include "lockstep/build_info.hpp"

#if LOCKSTEP_HAVE_CUDNN
#include <cudnn.h>

#include <algorithm>
#include <climits>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "backend/cuda/cuda_check.hpp"
#include "lockstep/core/error.hpp"

#define LOCKSTEP_CUDNN_CHECK(call)                                                                   \
  do {                                                                                               \
    const cudnnStatus_t lockstep_st_ = (call);                                                       \
    if (lockstep_st_ != CUDNN_STATUS_SUCCESS)                                                        \
      throw ::lockstep::Error(::lockstep::detail::concat(#call, " failed: ", cudnnGetErrorString(lockstep_st_), \
                                                         " (", __FILE__, ":", __LINE__, ")"));      \
  } while (0)

namespace lockstep::backend::cuda {
namespace {

// The cuDNN handle of the current device, made on first use; leaked on purpose (destroying it
// after the CUDA runtime has shut down at exit fails), as runtime.cu leaks its allocator.
cudnnHandle_t handle() {
  static std::mutex mu;
  static std::map<int, cudnnHandle_t> handles;
  int device = -1;
  LOCKSTEP_CUDA_CHECK(cudaGetDevice(&device));
  std::lock_guard<std::mutex> lock(mu);
  auto it = handles.find(device);
  if (it != handles.end()) return it->second;
  cudnnHandle_t h = nullptr;
  LOCKSTEP_CUDNN_CHECK(cudnnCreate(&h));
  LOCKSTEP_CUDNN_CHECK(cudnnSetStream(h, nullptr));  // the legacy default stream
  return handles.emplace(device, h).first->second;
}

struct TensorDesc {
  cudnnTensorDescriptor_t d = nullptr;
  TensorDesc() { LOCKSTEP_CUDNN_CHECK(cudnnCreateTensorDescriptor(&d)); }
  ~TensorDesc() { cudnnDestroyTensorDescriptor(d); }
  TensorDesc(const TensorDesc&) = delete;
  TensorDesc& operator=(const TensorDesc&) = delete;
  void set(std::int64_t n, std::int64_t c, std::int64_t h, std::int64_t w) {
    LOCKSTEP_CUDNN_CHECK(cudnnSetTensor4dDescriptor(d, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, static_cast<int>(n),
                                                    static_cast<int>(c), static_cast<int>(h), static_cast<int>(w)));
  }
};
struct FilterDesc {
  cudnnFilterDescriptor_t d = nullptr;
  FilterDesc() { LOCKSTEP_CUDNN_CHECK(cudnnCreateFilterDescriptor(&d)); }
  ~FilterDesc() { cudnnDestroyFilterDescriptor(d); }
  FilterDesc(const FilterDesc&) = delete;
  FilterDesc& operator=(const FilterDesc&) = delete;
};
struct ConvolutionDesc {
  cudnnConvolutionDescriptor_t d = nullptr;
  ConvolutionDesc() { LOCKSTEP_CUDNN_CHECK(cudnnCreateConvolutionDescriptor(&d)); }
  ~ConvolutionDesc() { cudnnDestroyConvolutionDescriptor(d); }
  ConvolutionDesc(const ConvolutionDesc&) = delete;
  ConvolutionDesc& operator=(const ConvolutionDesc&) = delete;
};

// Thrown while planning when cuDNN has no deterministic float32 algorithm for a pass: the first
// plan then turns into "no plan" (the reference path runs); a later batch size reports it.
struct NoAlgorithm {
  std::string what;
};

// The first heuristic result (they come best first) that runs, is deterministic and stays in
// plain float32 arithmetic.
template <typename Perf> decltype(Perf::algo) pick(const Perf* perf, int n, const char* pass) {
  for (int i = 0; i < n; ++i) {
    const Perf& p = perf[i];
    if (p.status == CUDNN_STATUS_SUCCESS && p.determinism == CUDNN_DETERMINISTIC &&
        p.mathType != CUDNN_TENSOR_OP_MATH && p.mathType != CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION)
      return p.algo;
  }
  throw NoAlgorithm{std::string("no deterministic float32 ") + pass + " algorithm among cuDNN's " +
                    std::to_string(n) + " candidates"};
}

// Symmetric padding pad along an axis gives lockstep's output length there.
bool symmetric_fits(std::int64_t in, std::int64_t k, std::int64_t s, std::int64_t dil, std::int64_t pad,
                    std::int64_t out) {
  const std::int64_t span = dil * (k - 1) + 1;
  return in + 2 * pad >= span && (in + 2 * pad - span) / s + 1 == out;
}

class CudnnConvPlan final : public ConvPlan {
 public:
  CudnnConvPlan(const ConvDesc& d, std::int64_t max_rows) : d_(d), h_(handle()) {
    const Window2d& g = d.g;
    LOCKSTEP_CUDNN_CHECK(cudnnSetFilter4dDescriptor(w_.d, CUDNN_DATA_FLOAT, CUDNN_TENSOR_NCHW,
                                                    static_cast<int>(d.filters), static_cast<int>(g.channels / d.groups),
                                                    static_cast<int>(g.kernel_h), static_cast<int>(g.kernel_w)));
    LOCKSTEP_CUDNN_CHECK(cudnnSetConvolution2dDescriptor(
        conv_.d, static_cast<int>(g.pad_h), static_cast<int>(g.pad_w), static_cast<int>(g.stride_h),
        static_cast<int>(g.stride_w), static_cast<int>(g.dilation_h), static_cast<int>(g.dilation_w),
        CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT));
    LOCKSTEP_CUDNN_CHECK(cudnnSetConvolutionGroupCount(conv_.d, static_cast<int>(d.groups)));
    LOCKSTEP_CUDNN_CHECK(cudnnSetConvolutionMathType(conv_.d, CUDNN_FMA_MATH));
    bias_.set(1, d.filters, 1, 1);
    entry(max_rows);  // the full batch now: its workspace is allocated before the first step
  }

  std::string library() const override { return "cudnn"; }

  void forward(const Tensor& x, const Tensor& w, const Tensor* bias, Tensor& y) override {
    const Entry& e = entry(x.dim(0));
    const float one = 1.0f, zero = 0.0f;
    LOCKSTEP_CUDNN_CHECK(cudnnConvolutionForward(h_, &one, e.x.d, x.raw(), w_.d, w.raw(), conv_.d, e.fwd, ws_.raw(),
                                                 ws_bytes(), &zero, e.y.d, y.raw()));
    if (d_.bias) LOCKSTEP_CUDNN_CHECK(cudnnAddTensor(h_, &one, bias_.d, bias->raw(), &one, e.y.d, y.raw()));
  }

  void backward_data(const Tensor& dy, const Tensor& w, Tensor& dx) override {
    const Entry& e = entry(dy.dim(0));
    const float one = 1.0f, zero = 0.0f;
    LOCKSTEP_CUDNN_CHECK(cudnnConvolutionBackwardData(h_, &one, w_.d, w.raw(), e.y.d, dy.raw(), conv_.d, e.bwd_data,
                                                      ws_.raw(), ws_bytes(), &zero, e.x.d, dx.raw()));
  }

  void backward_weights(const Tensor& x, const Tensor& dy, Tensor& dw, Tensor* db) override {
    const Entry& e = entry(x.dim(0));
    const float one = 1.0f, zero = 0.0f;
    LOCKSTEP_CUDNN_CHECK(cudnnConvolutionBackwardFilter(h_, &one, e.x.d, x.raw(), e.y.d, dy.raw(), conv_.d,
                                                        e.bwd_filter, ws_.raw(), ws_bytes(), &zero, w_.d, dw.raw()));
    if (d_.bias) LOCKSTEP_CUDNN_CHECK(cudnnConvolutionBackwardBias(h_, &one, e.y.d, dy.raw(), &zero, bias_.d, db->raw()));
  }

 private:
  struct Entry {
    TensorDesc x, y;
    cudnnConvolutionFwdAlgo_t fwd{};
    cudnnConvolutionBwdDataAlgo_t bwd_data{};
    cudnnConvolutionBwdFilterAlgo_t bwd_filter{};
  };

  std::size_t ws_bytes() const { return ws_.defined() ? static_cast<std::size_t>(ws_.numel()) : 0; }

  const Entry& entry(std::int64_t rows) {
    auto it = entries_.find(rows);
    if (it != entries_.end()) return *it->second;
    auto e = std::make_unique<Entry>();
    try {
      build(rows, *e);
    } catch (const NoAlgorithm& none) {
      if (entries_.empty()) throw;  // the first plan: make_cudnn_conv_plan answers "no plan"
      throw Error(detail::concat("cuDNN: ", none.what, " for a batch of ", rows, " (", describe(),
                                 "); run with LOCKSTEP_CONV=reference"));
    }
    return *entries_.emplace(rows, std::move(e)).first->second;
  }

  // Descriptors and algorithms for a batch of `rows`; grows the workspace to what they need.
  void build(std::int64_t rows, Entry& e) {
    const Window2d& g = d_.g;
    e.x.set(rows, g.channels, g.height, g.width);
    e.y.set(rows, d_.filters, g.out_h, g.out_w);
    int n = 0;
    std::size_t need = 0, bytes = 0;
    cudnnConvolutionFwdAlgoPerf_t fwd[CUDNN_CONVOLUTION_FWD_ALGO_COUNT];
    LOCKSTEP_CUDNN_CHECK(cudnnGetConvolutionForwardAlgorithm_v7(h_, e.x.d, w_.d, conv_.d, e.y.d,
                                                                CUDNN_CONVOLUTION_FWD_ALGO_COUNT, &n, fwd));
    e.fwd = pick(fwd, n, "forward");
    LOCKSTEP_CUDNN_CHECK(cudnnGetConvolutionForwardWorkspaceSize(h_, e.x.d, w_.d, conv_.d, e.y.d, e.fwd, &bytes));
    need = std::max(need, bytes);
    cudnnConvolutionBwdDataAlgoPerf_t bwd_data[CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT];
    LOCKSTEP_CUDNN_CHECK(cudnnGetConvolutionBackwardDataAlgorithm_v7(h_, w_.d, e.y.d, conv_.d, e.x.d,
                                                                     CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT, &n, bwd_data));
    e.bwd_data = pick(bwd_data, n, "backward-data");
    LOCKSTEP_CUDNN_CHECK(
        cudnnGetConvolutionBackwardDataWorkspaceSize(h_, w_.d, e.y.d, conv_.d, e.x.d, e.bwd_data, &bytes));
    need = std::max(need, bytes);
    cudnnConvolutionBwdFilterAlgoPerf_t bwd_filter[CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT];
    LOCKSTEP_CUDNN_CHECK(cudnnGetConvolutionBackwardFilterAlgorithm_v7(
        h_, e.x.d, e.y.d, conv_.d, w_.d, CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT, &n, bwd_filter));
    e.bwd_filter = pick(bwd_filter, n, "backward-filter");
    LOCKSTEP_CUDNN_CHECK(
        cudnnGetConvolutionBackwardFilterWorkspaceSize(h_, e.x.d, e.y.d, conv_.d, w_.d, e.bwd_filter, &bytes));
    need = std::max(need, bytes);
    if (need > ws_bytes()) ws_ = Tensor({static_cast<std::int64_t>(need)}, DType::kU8, Device::kCuda);
  }

  std::string describe() const {
    const Window2d& g = d_.g;
    return detail::concat("conv ", g.channels, "x", g.height, "x", g.width, " -> ", d_.filters, "x", g.out_h, "x",
                          g.out_w, ", kernel ", g.kernel_h, "x", g.kernel_w, ", stride ", g.stride_h, "x", g.stride_w,
                          ", dilation ", g.dilation_h, "x", g.dilation_w, ", groups ", d_.groups);
  }

  ConvDesc d_;
  cudnnHandle_t h_;
  FilterDesc w_;
  ConvolutionDesc conv_;
  TensorDesc bias_;
  Tensor ws_;  // the workspace every pass shares (they run one after another on one stream)
  std::map<std::int64_t, std::unique_ptr<Entry>> entries_;
};

// Whether cuDNN's legacy API takes this descriptor as lockstep means it: symmetric padding that
// gives lockstep's output size, and every extent (and every tensor's element count) in an int.
bool covered(const ConvDesc& d, std::int64_t max_rows) {
  const Window2d& g = d.g;
  if (!symmetric_fits(g.height, g.kernel_h, g.stride_h, g.dilation_h, g.pad_h, g.out_h) ||
      !symmetric_fits(g.width, g.kernel_w, g.stride_w, g.dilation_w, g.pad_w, g.out_w))
    return false;
  const std::int64_t rows = std::max<std::int64_t>(max_rows, 1);
  for (const std::int64_t n : {rows * g.channels * g.in_plane(), rows * d.filters * g.out_plane(),
                               d.filters * (g.channels / d.groups) * g.taps(), g.pad_h, g.pad_w, g.stride_h, g.stride_w,
                               g.dilation_h, g.dilation_w})
    if (n > INT_MAX) return false;
  return true;
}

}  // namespace

std::unique_ptr<ConvPlan> make_cudnn_conv_plan(const ConvDesc& desc, DType dtype, std::int64_t max_rows) {
  if (dtype != DType::kF32) return nullptr;  // bf16 takes the reference path (float32 arithmetic)
  if (!covered(desc, max_rows)) return nullptr;
  try {
    return std::make_unique<CudnnConvPlan>(desc, max_rows);
  } catch (const NoAlgorithm&) {
    return nullptr;
  }
}

std::string cudnn_version() {
  const std::size_t v = cudnnGetVersion();  // major * 10000 + minor * 100 + patch since cuDNN 9
  return detail::concat("cudnn ", v / 10000, ".", v / 100 % 100, ".", v % 100);
}

}  // namespace lockstep::backend::cuda

#else  // no cuDNN in this build: CUDA convolutions take im2col + cuBLAS

namespace lockstep::backend::cuda {
std::unique_ptr<ConvPlan> make_cudnn_conv_plan(const ConvDesc&, DType, std::int64_t) { return nullptr; }
std::string cudnn_version() { return ""; }
}  // namespace lockstep::backend::cuda

#endif
