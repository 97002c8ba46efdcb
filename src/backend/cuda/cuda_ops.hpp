// CUDA backend declarations (private to src/, free of CUDA headers so ops.cpp can dispatch to it).
// The tensors are on the current CUDA device; see include/lockstep/backend/ops.hpp for semantics.
#pragma once

#include "lockstep/backend/ops.hpp"

namespace lockstep::backend::cuda {
#include "backend/ops_decl.inc"
}  // namespace lockstep::backend::cuda
