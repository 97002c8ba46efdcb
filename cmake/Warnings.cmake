# Compile options shared by every lockstep target.
add_library(lockstep_options INTERFACE)
target_compile_options(lockstep_options INTERFACE
  $<$<COMPILE_LANGUAGE:CXX>:-Wall -Wextra -Wpedantic -Wno-unused-parameter>)
# GCC 12 reports -Wmaybe-uninitialized inside Eigen's AVX-512 kernels (inlined intrinsics of
# avx512fintrin.h) wherever Eigen products are instantiated with -march=native; the ML layer, its
# tests and benches all instantiate them, so the false positive is silenced everywhere. Definite
# -Wuninitialized stays on.
if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
  target_compile_options(lockstep_options INTERFACE $<$<COMPILE_LANGUAGE:CXX>:-Wno-maybe-uninitialized>)
endif()
# lockstep never reads floating-point exception flags; without this GCC refuses to vectorise
# float<->integer conversions and floor (the exact gradient sum). It changes no results, unlike
# -ffast-math, which lockstep does not use: determinism depends on IEEE semantics.
target_compile_options(lockstep_options INTERFACE $<$<COMPILE_LANGUAGE:CXX>:-fno-trapping-math>)
if(LOCKSTEP_WERROR)
  target_compile_options(lockstep_options INTERFACE $<$<COMPILE_LANGUAGE:CXX>:-Werror>)
  # nvcc's own warnings and the host compiler's, both as errors, for the CUDA backend too.
  target_compile_options(lockstep_options INTERFACE
    $<$<COMPILE_LANGUAGE:CUDA>:--Werror=all-warnings -Xcompiler=-Wall,-Wextra,-Wno-unused-parameter,-Werror>)
endif()
if(LOCKSTEP_ARCH)
  target_compile_options(lockstep_options INTERFACE $<$<COMPILE_LANGUAGE:CXX>:-march=${LOCKSTEP_ARCH}>)
elseif(LOCKSTEP_NATIVE)
  target_compile_options(lockstep_options INTERFACE $<$<COMPILE_LANGUAGE:CXX>:-march=native>)
endif()
if(LOCKSTEP_SANITIZE)
  target_compile_options(lockstep_options INTERFACE -fsanitize=address,undefined -fno-omit-frame-pointer)
  target_link_options(lockstep_options INTERFACE -fsanitize=address,undefined)
endif()
if(LOCKSTEP_FUZZ)
  # Coverage for libFuzzer in every lockstep object (the fuzz binaries add the fuzzer's main), and
  # every sanitizer report fatal, so the fuzzer stops at the first.
  target_compile_options(lockstep_options INTERFACE -fsanitize=fuzzer-no-link,address,undefined
                                                    -fno-sanitize-recover=all -fno-omit-frame-pointer -g)
  target_link_options(lockstep_options INTERFACE -fsanitize=address,undefined)
endif()
