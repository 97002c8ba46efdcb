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
void* allocate_pinned(std::size_t) { throw Error(runtime_info().error); }
void free_pinned(void*) noexcept {}
CopyStream::CopyStream(int) { throw Error(runtime_info().error); }
CopyStream::~CopyStream() = default;
void CopyStream::copy_async(int, void*, const void*, std::size_t) {}
void CopyStream::compute_waits_for(int) {}

}  // namespace lockstep::backend::cuda
#endif
