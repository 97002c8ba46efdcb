// The seam through which core/ reaches device memory without including CUDA: the CUDA backend
// installs its caching allocator at start-up; without one, any device allocation is an error.
#pragma once

#include <cstddef>

#include "lockstep/core/tensor.hpp"

namespace lockstep {

class DeviceAllocator {
 public:
  virtual ~DeviceAllocator() = default;
  virtual void* allocate(std::size_t bytes) = 0;
  virtual void release(void* p, std::size_t bytes) = 0;
  virtual void memset(void* p, int value, std::size_t bytes) = 0;
  virtual void copy(void* dst, Device dst_dev, const void* src, Device src_dev, std::size_t bytes) = 0;
};

DeviceAllocator& device_allocator();
void set_device_allocator(DeviceAllocator* allocator);

}  // namespace lockstep
