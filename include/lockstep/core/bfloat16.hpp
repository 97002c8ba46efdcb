// bfloat16: the top 16 bits of an IEEE float (8 exponent bits, 7 mantissa bits). The conversion
// from float rounds to nearest, ties to even, and keeps NaN a NaN; it is plain bit arithmetic,
// host and device alike, so the CPU backend rounds exactly where the GPU stores bf16, and the
// layout is that of CUDA's __nv_bfloat16 (the CUDA backend passes these arrays to cuBLAS).
#pragma once

#include <cstdint>
#include <cstring>

#include "lockstep/core/hostdevice.hpp"

namespace lockstep {

struct bf16 {
  std::uint16_t bits = 0;

  LOCKSTEP_HD static bf16 from_float(float f) {
#if defined(__CUDA_ARCH__)
    std::uint32_t u = __float_as_uint(f);
#else
    std::uint32_t u = 0;
    std::memcpy(&u, &f, sizeof u);
#endif
    bf16 b;
    if ((u & 0x7f800000u) == 0x7f800000u && (u & 0x007fffffu) != 0) {
      b.bits = static_cast<std::uint16_t>((u >> 16) | 0x0040u);  // quiet NaN, sign kept
      return b;
    }
    u += 0x7fffu + ((u >> 16) & 1u);  // round to nearest, ties to even (overflows to inf)
    b.bits = static_cast<std::uint16_t>(u >> 16);
    return b;
  }
  LOCKSTEP_HD float to_float() const {
    const std::uint32_t u = static_cast<std::uint32_t>(bits) << 16;
#if defined(__CUDA_ARCH__)
    return __uint_as_float(u);
#else
    float f = 0.0f;
    std::memcpy(&f, &u, sizeof f);
    return f;
#endif
  }
};
static_assert(sizeof(bf16) == 2);

// Element access in float whatever the storage: the backends' kernels are written once over these.
LOCKSTEP_HD float load_f(const float* p, std::int64_t i) {
  return p[i];
}
LOCKSTEP_HD float load_f(const bf16* p, std::int64_t i) {
  return p[i].to_float();
}
LOCKSTEP_HD void store_f(float* p, std::int64_t i, float v) {
  p[i] = v;
}
LOCKSTEP_HD void store_f(bf16* p, std::int64_t i, float v) {
  p[i] = bf16::from_float(v);
}
// The float that a value becomes when stored as bf16.
LOCKSTEP_HD float round_bf16(float v) {
  return bf16::from_float(v).to_float();
}

}  // namespace lockstep
