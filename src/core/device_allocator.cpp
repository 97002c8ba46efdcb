// Default device allocator: refuses, with a message that says why.
#include "lockstep/core/device_allocator.hpp"

namespace lockstep {
namespace {
class NoDeviceAllocator final : public DeviceAllocator {
  [[noreturn]] static void fail() {
    throw Error("device memory requested, but this lockstep was built without the CUDA backend "
                "(configure with -DLOCKSTEP_CUDA=ON) or no CUDA device was initialised");
  }
  void* allocate(std::size_t) override { fail(); }
  void release(void*, std::size_t) override {}
  void memset(void*, int, std::size_t) override { fail(); }
  void copy(void*, Device, const void*, Device, std::size_t) override { fail(); }
};
NoDeviceAllocator g_none;
DeviceAllocator* g_current = &g_none;
}  // namespace

DeviceAllocator& device_allocator() { return *g_current; }
void set_device_allocator(DeviceAllocator* allocator) { g_current = allocator ? allocator : &g_none; }

}  // namespace lockstep
