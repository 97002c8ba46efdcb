// The layer types that ship with lockstep, for code that builds layers by hand (tests, benches).
// Models built from a config get them through the registry (layer_registry.hpp).
#pragma once

#include "lockstep/nn/activation.hpp"
#include "lockstep/nn/batchnorm.hpp"
#include "lockstep/nn/conv2d.hpp"
#include "lockstep/nn/dense.hpp"
#include "lockstep/nn/dropout.hpp"
#include "lockstep/nn/flatten.hpp"
#include "lockstep/nn/pooling.hpp"
#include "lockstep/nn/residual.hpp"
