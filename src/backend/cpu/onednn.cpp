// Every oneDNN call lockstep makes: 2-D convolution forward, backward-data and backward-weights
// plans (see include/lockstep/backend/conv_plan.hpp) on oneDNN 2.x's v2 API.
//
// Tensors stay plain NCHW (and OIHW / GOIHW weights); each primitive is created with format "any",
// so oneDNN picks its fastest layout for the machine (blocked nChw16c on AVX-512), and the plan
// reorders into and out of it. That is what PyTorch's CPU convolution (ideep over the same oneDNN)
// does for NCHW tensors. Everything a batch size needs (primitives, reorders, the blocked buffers,
// the scratchpad) is made the first time a batch of that size runs and kept: a training step makes
// no allocation here.
//
// Threads: oneDNN runs on the OpenMP runtime it was built with. Unless OMP_NUM_THREADS is set, each
// thread that runs a plan gets one OpenMP thread (one rank per core, as mpirun binds them).
#include "lockstep/build_info.hpp"

#include "backend/conv_libraries.hpp"

#if LOCKSTEP_HAVE_DNNL
#include <omp.h>

#include <cstdlib>
#include <map>
#include <oneapi/dnnl/dnnl.hpp>

#include "lockstep/core/error.hpp"

namespace lockstep::backend::cpu {
namespace {

using dnnl::memory;
using tag = memory::format_tag;
using dt = memory::data_type;

void set_threads_once() {
  thread_local bool done = false;
  if (done) return;
  done = true;
  const char* env = std::getenv("OMP_NUM_THREADS");
  if (!env || !*env) omp_set_num_threads(1);
}

// A user-layout memory and, when the primitive wants another layout, its own buffer and the
// reorder between the two (to the primitive for inputs, from it for outputs).
struct Port {
  memory user, prim;
  dnnl::reorder to_prim, from_prim;
  bool reordered = false;

  void make(const memory::desc& user_md, const memory::desc& prim_md, const dnnl::engine& eng, bool input) {
    user = memory(user_md, eng, DNNL_MEMORY_NONE);
    reordered = user_md != prim_md;
    if (!reordered) {
      prim = user;
      return;
    }
    prim = memory(prim_md, eng);
    if (input) to_prim = dnnl::reorder(user, prim);
    else from_prim = dnnl::reorder(prim, user);
  }
  // The primitive's memory for an input whose data is at p (reordered when the layouts differ).
  const memory& in(const void* p, dnnl::stream& s) {
    user.set_data_handle(const_cast<void*>(p));
    if (reordered) to_prim.execute(s, user, prim);
    return prim;
  }
  // The primitive's memory for an output that lands at p; finish() after the primitive ran.
  const memory& out(void* p) {
    user.set_data_handle(p);
    return prim;
  }
  void finish(dnnl::stream& s) {
    if (reordered) from_prim.execute(s, prim, user);
  }
};

class OneDnnConvPlan final : public ConvPlan {
 public:
  explicit OneDnnConvPlan(const ConvDesc& d) : d_(d), eng_(dnnl::engine::kind::cpu, 0), stream_(eng_) {
    const Window2d& g = d.g;
    strides_ = {g.stride_h, g.stride_w};
    dilates_ = {g.dilation_h - 1, g.dilation_w - 1};  // oneDNN counts the gaps between taps
    pad_l_ = {g.pad_h, g.pad_w};
    // The bottom/right padding that makes oneDNN's output size ours ("same" pads one more there).
    const auto right = [](std::int64_t in, std::int64_t out, std::int64_t k, std::int64_t s, std::int64_t dil,
                          std::int64_t pl) { return std::max<std::int64_t>((out - 1) * s + dil * (k - 1) + 1 - in - pl, 0); };
    pad_r_ = {right(g.height, g.out_h, g.kernel_h, g.stride_h, g.dilation_h, g.pad_h),
              right(g.width, g.out_w, g.kernel_w, g.stride_w, g.dilation_w, g.pad_w)};
    const std::int64_t cg = g.channels / d.groups;
    if (d.groups == 1) {
      wei_dims_ = {d.filters, cg, g.kernel_h, g.kernel_w};
      wei_tag_ = tag::oihw;
    } else {
      wei_dims_ = {d.groups, d.filters / d.groups, cg, g.kernel_h, g.kernel_w};
      wei_tag_ = tag::goihw;
    }
  }

  std::string library() const override { return "onednn"; }

  void forward(const Tensor& x, const Tensor& w, const Tensor* bias, Tensor& y) override {
    Entry& e = entry(x.dim(0));
    std::unordered_map<int, memory> args{{DNNL_ARG_SRC, e.f_src.in(x.raw(), stream_)},
                                         {DNNL_ARG_WEIGHTS, e.f_wei.in(w.raw(), stream_)},
                                         {DNNL_ARG_DST, e.f_dst.out(y.raw())},
                                         {DNNL_ARG_SCRATCHPAD, scratch_}};
    if (d_.bias) {
      bias_user_.set_data_handle(bias->raw());
      args.emplace(DNNL_ARG_BIAS, bias_user_);
    }
    e.fwd.execute(stream_, args);
    e.f_dst.finish(stream_);
    stream_.wait();
  }

  void backward_data(const Tensor& dy, const Tensor& w, Tensor& dx) override {
    Entry& e = entry(dy.dim(0));
    data_grad(e, e.d_ddst.in(dy.raw(), stream_), w, dx);
  }

  void backward_weights(const Tensor& x, const Tensor& dy, Tensor& dw, Tensor* db) override {
    Entry& e = entry(x.dim(0));
    weights_grad(e, e.w_src.in(x.raw(), stream_), e.w_ddst.in(dy.raw(), stream_), dw, db);
  }

  // x in the forward's layout is still in f_src.prim (the forward of this batch reordered it), and
  // dy is reordered once when both backward primitives want the same layout.
  void backward(const Tensor& x, const Tensor& dy, const Tensor& w, Tensor& dw, Tensor* db, Tensor* dx) override {
    Entry& e = entry(x.dim(0));
    const memory& src = e.src_shared ? e.f_src.prim : e.w_src.in(x.raw(), stream_);
    const memory& ddst = e.w_ddst.in(dy.raw(), stream_);
    weights_grad(e, src, ddst, dw, db);
    if (dx) data_grad(e, e.ddst_shared ? ddst : e.d_ddst.in(dy.raw(), stream_), w, *dx);
  }

 private:
  struct Entry;  // below
  void data_grad(Entry& e, const memory& ddst, const Tensor& w, Tensor& dx) {
    e.bwd_data.execute(stream_, {{DNNL_ARG_DIFF_DST, ddst},
                                 {DNNL_ARG_WEIGHTS, e.d_wei.in(w.raw(), stream_)},
                                 {DNNL_ARG_DIFF_SRC, e.d_dsrc.out(dx.raw())},
                                 {DNNL_ARG_SCRATCHPAD, scratch_}});
    e.d_dsrc.finish(stream_);
    stream_.wait();
  }
  void weights_grad(Entry& e, const memory& src, const memory& ddst, Tensor& dw, Tensor* db) {
    std::unordered_map<int, memory> args{{DNNL_ARG_SRC, src},
                                         {DNNL_ARG_DIFF_DST, ddst},
                                         {DNNL_ARG_DIFF_WEIGHTS, e.w_dwei.out(dw.raw())},
                                         {DNNL_ARG_SCRATCHPAD, scratch_}};
    if (d_.bias) {
      bias_user_.set_data_handle(db->raw());
      args.emplace(DNNL_ARG_DIFF_BIAS, bias_user_);
    }
    e.bwd_weights.execute(stream_, args);
    e.w_dwei.finish(stream_);
    stream_.wait();
  }

  struct Entry {
    dnnl::convolution_forward fwd;
    dnnl::convolution_backward_data bwd_data;
    dnnl::convolution_backward_weights bwd_weights;
    Port f_src, f_wei, f_dst, d_ddst, d_wei, d_dsrc, w_src, w_ddst, w_dwei;
    bool src_shared = false, ddst_shared = false;  // backward() may reuse f_src.prim / w_ddst.prim
  };

  Entry& entry(std::int64_t rows) {
    set_threads_once();
    auto it = entries_.find(rows);
    if (it != entries_.end()) return it->second;
    return entries_.emplace(rows, build(rows)).first->second;
  }

  // The three primitives for a batch of `rows`, their layout ports, and a scratchpad large enough
  // for every batch size so far.
  Entry build(std::int64_t rows) {
    const Window2d& g = d_.g;
    const memory::desc src_user({rows, g.channels, g.height, g.width}, dt::f32, tag::nchw);
    const memory::desc dst_user({rows, d_.filters, g.out_h, g.out_w}, dt::f32, tag::nchw);
    const memory::desc wei_user(wei_dims_, dt::f32, wei_tag_);
    const memory::desc bias_md({d_.filters}, dt::f32, tag::x);
    const memory::desc src_any({rows, g.channels, g.height, g.width}, dt::f32, tag::any);
    const memory::desc dst_any({rows, d_.filters, g.out_h, g.out_w}, dt::f32, tag::any);
    const memory::desc wei_any(wei_dims_, dt::f32, tag::any);
    const memory::desc no_bias;
    dnnl::primitive_attr attr;
    attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
    const auto alg = dnnl::algorithm::convolution_direct;

    const dnnl::convolution_forward::primitive_desc fpd(
        {dnnl::prop_kind::forward_training, alg, src_any, wei_any, d_.bias ? bias_md : no_bias, dst_any, strides_,
         dilates_, pad_l_, pad_r_},
        attr, eng_);
    const dnnl::convolution_backward_data::primitive_desc dpd(
        {alg, src_any, wei_any, dst_any, strides_, dilates_, pad_l_, pad_r_}, attr, eng_, fpd);
    const dnnl::convolution_backward_weights::primitive_desc wpd(
        {alg, src_any, wei_any, d_.bias ? bias_md : no_bias, dst_any, strides_, dilates_, pad_l_, pad_r_}, attr, eng_,
        fpd);
    Entry e{dnnl::convolution_forward(fpd), dnnl::convolution_backward_data(dpd),
            dnnl::convolution_backward_weights(wpd), {}, {}, {}, {}, {}, {}, {}, {}, {}};
    e.f_src.make(src_user, fpd.src_desc(), eng_, true);
    e.f_wei.make(wei_user, fpd.weights_desc(), eng_, true);
    e.f_dst.make(dst_user, fpd.dst_desc(), eng_, false);
    e.d_ddst.make(dst_user, dpd.diff_dst_desc(), eng_, true);
    e.d_wei.make(wei_user, dpd.weights_desc(), eng_, true);
    e.d_dsrc.make(src_user, dpd.diff_src_desc(), eng_, false);
    e.w_src.make(src_user, wpd.src_desc(), eng_, true);
    e.w_ddst.make(dst_user, wpd.diff_dst_desc(), eng_, true);
    e.w_dwei.make(wei_user, wpd.diff_weights_desc(), eng_, false);
    e.src_shared = e.f_src.reordered && fpd.src_desc() == wpd.src_desc();
    e.ddst_shared = dpd.diff_dst_desc() == wpd.diff_dst_desc();
    if (!bias_user_) bias_user_ = memory(bias_md, eng_, DNNL_MEMORY_NONE);
    std::size_t need = 0;
    for (const memory::desc& s : {fpd.scratchpad_desc(), dpd.scratchpad_desc(), wpd.scratchpad_desc()})
      need = std::max(need, s.get_size());
    if (!scratch_ || scratch_.get_desc().get_size() < need)
      scratch_ = memory(memory::desc({static_cast<memory::dim>(need)}, dt::u8, tag::x), eng_);
    return e;
  }

  ConvDesc d_;
  dnnl::engine eng_;
  dnnl::stream stream_;
  memory::dims strides_, dilates_, pad_l_, pad_r_, wei_dims_;
  tag wei_tag_ = tag::oihw;
  memory bias_user_, scratch_;
  std::map<std::int64_t, Entry> entries_;
};

}  // namespace

std::unique_ptr<ConvPlan> make_onednn_conv_plan(const ConvDesc& desc, DType dtype, std::int64_t) {
  if (dtype != DType::kF32) return nullptr;  // bf16 takes the reference path (float32 arithmetic)
  try {
    return std::make_unique<OneDnnConvPlan>(desc);
  } catch (const dnnl::error& e) {
    throw Error(std::string("oneDNN: cannot plan a convolution: ") + e.what());
  }
}

std::string onednn_version() {
  const dnnl_version_t* v = dnnl_version();
  return "onednn " + std::to_string(v->major) + "." + std::to_string(v->minor) + "." + std::to_string(v->patch);
}

}  // namespace lockstep::backend::cpu

#else  // no oneDNN in this build

namespace lockstep::backend::cpu {
std::unique_ptr<ConvPlan> make_onednn_conv_plan(const ConvDesc&, DType, std::int64_t) { return nullptr; }
std::string onednn_version() { return ""; }
}  // namespace lockstep::backend::cpu

#endif
