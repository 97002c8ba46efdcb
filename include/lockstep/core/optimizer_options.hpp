// OptimizerOptions: the optimizer section of a run (`optimizer:` in YAML), one record that the
// config reader fills and nn's make_optimizer reads. It lives in core/ because both io/ (which
// parses it) and nn/ (which uses it) sit on core/ and neither may include the other.
#pragma once

#include <string>

namespace lockstep {

struct OptimizerOptions {
  std::string type = "sgd";  // sgd | adam | adamw
  double lr = 0.01;          // the config reader makes it 1e-3 for adam and adamw unless given
  double momentum = 0.0;
  bool nesterov = false;
  double weight_decay = 0.0;
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;
};

}  // namespace lockstep
