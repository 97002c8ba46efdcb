// Learning-rate schedules against their formulas.
#include <gtest/gtest.h>

#include <cmath>

#include "lockstep/train/schedule.hpp"

using lockstep::io::ScheduleConfig;
using lockstep::train::learning_rate;

TEST(Schedule, ConstantStepCosineWarmup) {
  ScheduleConfig c;
  EXPECT_DOUBLE_EQ(learning_rate(c, 0.1, 500, 100, 1000), 0.1);
  c.type = "step";
  c.step_size = 2;
  c.gamma = 0.5;
  EXPECT_DOUBLE_EQ(learning_rate(c, 0.1, 199, 100, 1000), 0.1);   // epoch 1
  EXPECT_DOUBLE_EQ(learning_rate(c, 0.1, 200, 100, 1000), 0.05);  // epoch 2
  EXPECT_DOUBLE_EQ(learning_rate(c, 0.1, 450, 100, 1000), 0.025); // epoch 4
  c.type = "cosine";
  c.min_lr = 0.01;
  EXPECT_DOUBLE_EQ(learning_rate(c, 0.1, 0, 100, 1000), 0.1);
  EXPECT_NEAR(learning_rate(c, 0.1, 500, 100, 1000), 0.055, 1e-12);
  EXPECT_NEAR(learning_rate(c, 0.1, 1000, 100, 1000), 0.01, 1e-12);
  c.warmup_steps = 10;
  EXPECT_NEAR(learning_rate(c, 0.1, 0, 100, 1000), 0.01, 1e-12);  // (0+1)/10 of the base
  EXPECT_NEAR(learning_rate(c, 0.1, 9, 100, 1000), 0.1, 1e-12);
  EXPECT_NEAR(learning_rate(c, 0.1, 10, 100, 1000), 0.1, 1e-12);  // cosine starts after warm-up
}
