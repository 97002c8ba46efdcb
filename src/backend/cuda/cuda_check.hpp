// One check per foreign API, each wrapping every call once and adding the library's own error
// string (the nccl-tests pattern). Private to src/backend/cuda/.
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include "lockstep/core/error.hpp"

#define LOCKSTEP_CUDA_CHECK(call)                                                                    \
  do {                                                                                               \
    const cudaError_t lockstep_err_ = (call);                                                        \
    if (lockstep_err_ != cudaSuccess)                                                                \
      throw ::lockstep::Error(::lockstep::detail::concat(#call, " failed: ", cudaGetErrorName(lockstep_err_), \
                                                         ": ", cudaGetErrorString(lockstep_err_), " (", __FILE__, \
                                                         ":", __LINE__, ")"));                       \
  } while (0)

#define LOCKSTEP_CUBLAS_CHECK(call)                                                                  \
  do {                                                                                               \
    const cublasStatus_t lockstep_st_ = (call);                                                      \
    if (lockstep_st_ != CUBLAS_STATUS_SUCCESS)                                                       \
      throw ::lockstep::Error(::lockstep::detail::concat(#call, " failed: ", cublasGetStatusName(lockstep_st_), \
                                                         ": ", cublasGetStatusString(lockstep_st_), " (", __FILE__, \
                                                         ":", __LINE__, ")"));                       \
  } while (0)

namespace lockstep::backend::cuda {
// The cuBLAS handle of the current device (created by init_device).
cublasHandle_t blas();
}  // namespace lockstep::backend::cuda
