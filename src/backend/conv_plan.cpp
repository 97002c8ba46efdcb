// The process-wide convolution switch and the choice of library per device (see conv_plan.hpp).
#include "lockstep/backend/conv_plan.hpp"

#include <atomic>
#include <cstdlib>
#include <cstring>

#include "backend/conv_libraries.hpp"
#include "lockstep/build_info.hpp"
#include "lockstep/core/error.hpp"

namespace lockstep::backend {
namespace {

ConvImpl from_env() {
  const char* v = std::getenv("LOCKSTEP_CONV");
  if (!v || !*v || std::strcmp(v, "auto") == 0) return ConvImpl::kAuto;
  if (std::strcmp(v, "reference") == 0) return ConvImpl::kReference;
  throw ConfigError(std::string("LOCKSTEP_CONV: expected auto or reference, got \"") + v + "\"");
}

std::atomic<int>& impl_slot() {
  static std::atomic<int> slot{static_cast<int>(from_env())};
  return slot;
}

}  // namespace

ConvImpl conv_impl() { return static_cast<ConvImpl>(impl_slot().load()); }
void set_conv_impl(ConvImpl impl) { impl_slot().store(static_cast<int>(impl)); }

std::unique_ptr<ConvPlan> make_conv_plan(const ConvDesc& desc, Device device, DType dtype, std::int64_t max_rows) {
  if (conv_impl() == ConvImpl::kReference) return nullptr;
  if (device == Device::kCpu) return cpu::make_onednn_conv_plan(desc, dtype, max_rows);
#if LOCKSTEP_HAVE_CUDA
  return cuda::make_cudnn_conv_plan(desc, dtype, max_rows);
#else
  return nullptr;
#endif
}

std::string conv_libraries() {
  std::string s = cpu::onednn_version();
#if LOCKSTEP_HAVE_CUDA
  const std::string c = cuda::cudnn_version();
  if (!c.empty()) s += (s.empty() ? "" : ", ") + c;
#endif
  return s.empty() ? "none (im2col + GEMM only)" : s;
}

}  // namespace lockstep::backend
