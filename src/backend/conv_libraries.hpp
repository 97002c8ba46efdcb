// The per-device convolution libraries behind backend::make_conv_plan (private to src/backend).
// Each returns nullptr (or an empty version) when its library is not in this build or does not
// cover the descriptor and dtype.
#pragma once

#include <memory>
#include <string>

#include "lockstep/backend/conv_plan.hpp"

namespace lockstep::backend {
namespace cpu {
std::unique_ptr<ConvPlan> make_onednn_conv_plan(const ConvDesc& desc, DType dtype, std::int64_t max_rows);
std::string onednn_version();  // "onednn 2.6.3", or "" without oneDNN
}  // namespace cpu
namespace cuda {
std::unique_ptr<ConvPlan> make_cudnn_conv_plan(const ConvDesc& desc, DType dtype, std::int64_t max_rows);
std::string cudnn_version();  // "cudnn 9.x.y", or "" without cuDNN
}  // namespace cuda
}  // namespace lockstep::backend
