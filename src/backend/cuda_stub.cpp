// The CUDA runtime facade in a build without the CUDA backend.
#include "lockstep/backend/cuda_runtime.hpp"
#include "lockstep/build_info.hpp"

#if !LOCKSTEP_HAVE_CUDA
#include "lockstep/core/error.hpp"

namespace lockstep::backend::cuda {

bool built() { return false; }
RuntimeInfo runtime_info() {
  RuntimeInfo r;
  r.error = "this lockstep was built without the CUDA backend (configure with -DLOCKSTEP_CUDA=ON)";
  return r;
}
int device_count() { return 0; }
void init_device(int) { throw Error(runtime_info().error); }
void synchronize() {}

}  // namespace lockstep::backend::cuda
#endif
