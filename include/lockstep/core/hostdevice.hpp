// LOCKSTEP_HD marks functions that compile for host and, under nvcc, for the device too, so that
// element-wise math is written once and exercised by the CPU tests.
#pragma once

#if defined(__CUDACC__)
#define LOCKSTEP_HD __host__ __device__ inline
#else
#define LOCKSTEP_HD inline
#endif
