// A 128-bit signed integer (GCC/Clang extension), the word of lockstep's exact fixed-point sums.
#pragma once

namespace lockstep {
__extension__ typedef __int128 int128;
}  // namespace lockstep
