#include "lockstep/train/schedule.hpp"

#include <algorithm>
#include <cmath>

namespace lockstep::train {

double learning_rate(const io::ScheduleConfig& s, double base, std::int64_t step, std::int64_t steps_per_epoch,
                     std::int64_t total_steps) {
  double lr = base;
  if (s.type == "step") {
    const std::int64_t epoch = steps_per_epoch > 0 ? step / steps_per_epoch : 0;
    lr = base * std::pow(s.gamma, static_cast<double>(epoch / s.step_size));
  } else if (s.type == "cosine") {
    const std::int64_t span = std::max<std::int64_t>(total_steps - s.warmup_steps, 1);
    const double t = std::clamp(static_cast<double>(step - s.warmup_steps) / static_cast<double>(span), 0.0, 1.0);
    lr = s.min_lr + 0.5 * (base - s.min_lr) * (1.0 + std::cos(3.141592653589793 * t));
  }
  if (s.warmup_steps > 0 && step < s.warmup_steps) {
    lr *= static_cast<double>(step + 1) / static_cast<double>(s.warmup_steps);
  }
  return lr;
}

}  // namespace lockstep::train
