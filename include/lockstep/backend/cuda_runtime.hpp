// What the CUDA backend can tell and do without exposing CUDA types: whether it was built, which
// devices this process sees, and selecting one. In a build without CUDA every function answers
// "not built" (device_count() is 0, init_device throws), so callers need no #ifdefs.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

namespace lockstep::backend::cuda {

struct DeviceInfo {
  int index = 0;
  std::string name;
  int major = 0, minor = 0;  // compute capability
  std::size_t memory_bytes = 0;
  std::string pci_bus_id;
};

struct RuntimeInfo {
  bool built = false;       // this lockstep has the CUDA backend
  int runtime_version = 0;  // e.g. 13000
  int driver_version = 0;   // 0 when no driver is loaded
  int cublas_version = 0;
  std::vector<DeviceInfo> devices;
  std::string error;  // why there are no devices, if there are none
};

bool built();
// Never throws.
RuntimeInfo runtime_info();
// Devices visible to this process (honours CUDA_VISIBLE_DEVICES); 0 without driver or devices.
int device_count();
// Makes `device` current for this process, creates the cuBLAS handle and installs the caching
// device allocator. Throws lockstep::Error naming the device and CUDA's reason.
void init_device(int device);
// Waits for the device's work; rethrows any asynchronous kernel error.
void synchronize();

// Page-locked host memory, which the GPU's copy engines read directly (a copy from pageable
// memory goes through a staging buffer and cannot overlap compute). Throws lockstep::Error.
void* allocate_pinned(std::size_t bytes);
void free_pinned(void* p) noexcept;

// Host-to-device copies on a stream of their own, so the copy of the next batch overlaps the
// current step's kernels. Each copy is tagged with a slot; compute_waits_for(slot) makes the
// compute stream wait for that slot's latest copy without blocking the host.
class CopyStream {
 public:
  explicit CopyStream(int slots);
  ~CopyStream();
  CopyStream(const CopyStream&) = delete;
  CopyStream& operator=(const CopyStream&) = delete;
  void copy_async(int slot, void* device_dst, const void* pinned_src, std::size_t bytes);
  void compute_waits_for(int slot);

 private:
  void* stream_ = nullptr;
  std::vector<void*> events_;
};

}  // namespace lockstep::backend::cuda
