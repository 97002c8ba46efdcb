// Convolutions through cuDNN (see include/lockstep/backend/conv_plan.hpp). Placeholder until the
// cuDNN plan lands: no plan, so CUDA convolutions take im2col + cuBLAS.
#include "backend/conv_libraries.hpp"
#include "lockstep/build_info.hpp"

namespace lockstep::backend::cuda {

std::unique_ptr<ConvPlan> make_cudnn_conv_plan(const ConvDesc&, DType, std::int64_t) { return nullptr; }
std::string cudnn_version() { return ""; }

}  // namespace lockstep::backend::cuda
