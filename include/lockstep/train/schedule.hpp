// Learning-rate schedules: constant, step (decay by gamma every step_size epochs) and cosine
// (to min_lr over the run), each optionally preceded by a linear warm-up from 0.
#pragma once

#include <cstdint>

#include "lockstep/io/config.hpp"

namespace lockstep::train {

double learning_rate(const io::ScheduleConfig& s, double base_lr, std::int64_t global_step,
                     std::int64_t steps_per_epoch, std::int64_t total_steps);

}  // namespace lockstep::train
