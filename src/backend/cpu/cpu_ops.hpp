// CPU backend declarations (private to src/). See include/lockstep/backend/ops.hpp for semantics.
#pragma once

#include "lockstep/backend/ops.hpp"

namespace lockstep::backend::cpu {
#include "backend/ops_decl.inc"
}  // namespace lockstep::backend::cpu
