// The typed parameter reader moved to core/ (lockstep/core/param_reader.hpp) so that layers below
// io/ (data/'s sources) can read their own parameters; these names keep io/'s callers unchanged.
#pragma once

#include "lockstep/core/param_reader.hpp"
#include "lockstep/io/config.hpp"

namespace lockstep::io {

template <typename T>
using Range = lockstep::ParamRange<T>;
using lockstep::at_least;
using lockstep::between;
using lockstep::greater_than;
using lockstep::one_of;
using lockstep::param_type_word;
using lockstep::ParamReader;
using lockstep::parse_param;

}  // namespace lockstep::io
