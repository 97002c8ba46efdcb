// The CUDA runtime facade (cuda_runtime.hpp) and the caching device allocator.
//
// The allocator keeps freed blocks in per-size free lists instead of returning them to the
// driver: cudaMalloc and cudaFree synchronise the device and cost tens of microseconds, and a
// training step allocates the same sizes every time, so after the first step no allocation
// reaches the driver.
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <map>
#include <mutex>
#include <vector>

#include "backend/cuda/cuda_check.hpp"
#include "lockstep/backend/cuda_runtime.hpp"
#include "lockstep/core/device_allocator.hpp"

namespace lockstep::backend::cuda {
namespace {

class CachingAllocator final : public DeviceAllocator {
 public:
  ~CachingAllocator() override {
    for (auto& [size, blocks] : free_)
      for (void* p : blocks) cudaFree(p);
  }
  void* allocate(std::size_t bytes) override {
    const std::size_t size = round(bytes);
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = free_.find(size);
      if (it != free_.end() && !it->second.empty()) {
        void* p = it->second.back();
        it->second.pop_back();
        return p;
      }
    }
    void* p = nullptr;
    cudaError_t err = cudaMalloc(&p, size);
    if (err == cudaErrorMemoryAllocation) {  // give the cached blocks back and try once more
      cudaGetLastError();
      release_cached();
      err = cudaMalloc(&p, size);
    }
    if (err != cudaSuccess) {
      throw Error(detail::concat("CUDA device allocation of ", bytes, " bytes failed: ", cudaGetErrorString(err)));
    }
    return p;
  }
  void release(void* p, std::size_t bytes) override {
    std::lock_guard<std::mutex> lock(mu_);
    free_[round(bytes)].push_back(p);
  }
  void memset(void* p, int value, std::size_t bytes) override { LOCKSTEP_CUDA_CHECK(cudaMemset(p, value, bytes)); }
  void copy(void* dst, Device, const void* src, Device, std::size_t bytes) override {
    // Unified addressing: the runtime tells host from device pointers itself.
    LOCKSTEP_CUDA_CHECK(cudaMemcpy(dst, src, bytes, cudaMemcpyDefault));
  }

 private:
  static std::size_t round(std::size_t bytes) { return bytes == 0 ? 512 : (bytes + 511) / 512 * 512; }
  void release_cached() {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& [size, blocks] : free_) {
      for (void* p : blocks) cudaFree(p);
      blocks.clear();
    }
  }
  std::mutex mu_;
  std::map<std::size_t, std::vector<void*>> free_;
};

struct State {
  int device = -1;
  cublasHandle_t blas = nullptr;
  CachingAllocator* allocator = nullptr;  // leaked on purpose: tensors may outlive main's scope
};
State& state() {
  static State s;
  return s;
}

}  // namespace

cublasHandle_t blas() {
  LOCKSTEP_CHECK(state().blas != nullptr, Error, "CUDA backend used before backend::cuda::init_device");
  return state().blas;
}

bool built() { return true; }

int device_count() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();  // clear the sticky "no driver" / "no device" error
    return 0;
  }
  return n;
}

RuntimeInfo runtime_info() {
  RuntimeInfo r;
  r.built = true;
  cudaRuntimeGetVersion(&r.runtime_version);
  if (cudaDriverGetVersion(&r.driver_version) != cudaSuccess) r.driver_version = 0;
  int major = 0, minor = 0, patch = 0;
  if (cublasGetProperty(MAJOR_VERSION, &major) == CUBLAS_STATUS_SUCCESS &&
      cublasGetProperty(MINOR_VERSION, &minor) == CUBLAS_STATUS_SUCCESS &&
      cublasGetProperty(PATCH_LEVEL, &patch) == CUBLAS_STATUS_SUCCESS) {
    r.cublas_version = major * 10000 + minor * 100 + patch;
  }
  int n = 0;
  const cudaError_t err = cudaGetDeviceCount(&n);
  if (err != cudaSuccess) {
    r.error = cudaGetErrorString(err);
    cudaGetLastError();
    return r;
  }
  if (n == 0) r.error = "no CUDA device visible";
  for (int i = 0; i < n; ++i) {
    cudaDeviceProp p{};
    if (cudaGetDeviceProperties(&p, i) != cudaSuccess) continue;
    char bus[32] = {0};
    cudaDeviceGetPCIBusId(bus, sizeof bus, i);
    r.devices.push_back({i, p.name, p.major, p.minor, p.totalGlobalMem, bus});
  }
  return r;
}

void init_device(int device) {
  auto& s = state();
  const int n = device_count();
  LOCKSTEP_CHECK(device >= 0 && device < n, Error, "CUDA device ", device, " requested, but this process sees ", n,
                 n == 0 ? " (no driver or no device; check CUDA_VISIBLE_DEVICES)" : "");
  LOCKSTEP_CUDA_CHECK(cudaSetDevice(device));
  if (s.device == device) return;
  if (s.blas) cublasDestroy(s.blas);
  LOCKSTEP_CUBLAS_CHECK(cublasCreate(&s.blas));
  // Plain FP32 products (no TF32): results comparable with the CPU backend's.
  LOCKSTEP_CUBLAS_CHECK(cublasSetMathMode(s.blas, CUBLAS_DEFAULT_MATH));
  if (!s.allocator) s.allocator = new CachingAllocator();
  set_device_allocator(s.allocator);
  s.device = device;
}

void synchronize() { LOCKSTEP_CUDA_CHECK(cudaDeviceSynchronize()); }

void* allocate_pinned(std::size_t bytes) {
  void* p = nullptr;
  LOCKSTEP_CUDA_CHECK(cudaHostAlloc(&p, bytes == 0 ? 1 : bytes, cudaHostAllocDefault));
  return p;
}

void free_pinned(void* p) noexcept {
  if (p) cudaFreeHost(p);
}

CopyStream::CopyStream(int slots) {
  cudaStream_t s = nullptr;
  LOCKSTEP_CUDA_CHECK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
  stream_ = s;
  for (int i = 0; i < slots; ++i) {
    cudaEvent_t e = nullptr;
    LOCKSTEP_CUDA_CHECK(cudaEventCreateWithFlags(&e, cudaEventDisableTiming));
    events_.push_back(e);
  }
}

CopyStream::~CopyStream() {
  for (void* e : events_) cudaEventDestroy(static_cast<cudaEvent_t>(e));
  if (stream_) cudaStreamDestroy(static_cast<cudaStream_t>(stream_));
}

void CopyStream::copy_async(int slot, void* device_dst, const void* pinned_src, std::size_t bytes) {
  auto* s = static_cast<cudaStream_t>(stream_);
  LOCKSTEP_CUDA_CHECK(cudaMemcpyAsync(device_dst, pinned_src, bytes, cudaMemcpyHostToDevice, s));
  LOCKSTEP_CUDA_CHECK(cudaEventRecord(static_cast<cudaEvent_t>(events_.at(static_cast<std::size_t>(slot))), s));
}

void CopyStream::compute_waits_for(int slot) {
  // Kernels run on the legacy default stream; it waits for the copy's event, the host does not.
  LOCKSTEP_CUDA_CHECK(
      cudaStreamWaitEvent(cudaStreamLegacy, static_cast<cudaEvent_t>(events_.at(static_cast<std::size_t>(slot))), 0));
}

}  // namespace lockstep::backend::cuda
