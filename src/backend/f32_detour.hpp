// bf16 operands through float32 kernels: float32 copies in (on the tensor's own device), the
// float32 kernel, one rounding of the results back into the caller's bf16 tensors. The CPU backend
// runs every bf16 op this way (an emulation of the GPU's bf16 storage with float32 arithmetic);
// the CUDA backend its losses, which read few values.
#pragma once

#include <initializer_list>
#include <utility>

#include "lockstep/backend/ops.hpp"

namespace lockstep::backend::f32_detour {

inline bool any_bf16(std::initializer_list<const Tensor*> ts) {
  for (const Tensor* t : ts)
    if (t && t->defined() && t->dtype() == DType::kBF16) return true;
  return false;
}

// t itself when it is float32 (or undefined), else a float32 copy on t's device.
inline Tensor as_f32(const Tensor& t) {
  if (!t.defined() || t.dtype() == DType::kF32) return t;
  Tensor f(t.shape(), DType::kF32, t.device());
  backend::cast(t, f);
  return f;
}

// Writes a float32 result back into the caller's tensor when that one is bf16.
inline void store_back(const Tensor& f, Tensor& t) {
  if (t.defined() && t.raw() != f.raw()) backend::cast(f, t);
}

// A loss on possibly-bf16 outputs and gradient: fn(float32 outputs, float32 gradient or nullptr).
template <typename Loss>
LossSum loss(const Tensor& out, Tensor* grad, Loss&& fn) {
  Tensor fg = grad && grad->defined() ? as_f32(*grad) : Tensor();
  const LossSum r = std::forward<Loss>(fn)(as_f32(out), fg.defined() ? &fg : nullptr);
  if (fg.defined()) store_back(fg, *grad);
  return r;
}

}  // namespace lockstep::backend::f32_detour
