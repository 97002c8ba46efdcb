# Compile options shared by every lockstep target.
add_library(lockstep_options INTERFACE)
target_compile_options(lockstep_options INTERFACE
  $<$<COMPILE_LANGUAGE:CXX>:-Wall -Wextra -Wpedantic -Wno-unused-parameter>)
if(LOCKSTEP_WERROR)
  target_compile_options(lockstep_options INTERFACE $<$<COMPILE_LANGUAGE:CXX>:-Werror>)
endif()
if(LOCKSTEP_NATIVE)
  target_compile_options(lockstep_options INTERFACE $<$<COMPILE_LANGUAGE:CXX>:-march=native>)
endif()
if(LOCKSTEP_SANITIZE)
  target_compile_options(lockstep_options INTERFACE -fsanitize=address,undefined -fno-omit-frame-pointer)
  target_link_options(lockstep_options INTERFACE -fsanitize=address,undefined)
endif()
