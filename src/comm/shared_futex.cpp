// Process-shared futexes (see shared_futex.hpp).
#include "lockstep/comm/shared_futex.hpp"

#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <climits>
#include <ctime>

namespace lockstep::comm {

// The window is MAP_SHARED between processes: plain FUTEX_WAIT/FUTEX_WAKE, not the private ones.
void shared_futex_wait(std::uint32_t* word, std::uint32_t expected, long nanoseconds) {
  timespec ts{0, nanoseconds};
  syscall(SYS_futex, word, FUTEX_WAIT, expected, &ts, nullptr, 0);
}

void shared_futex_wake_all(std::uint32_t* word) {
  syscall(SYS_futex, word, FUTEX_WAKE, INT_MAX, nullptr, nullptr, 0);
}

}  // namespace lockstep::comm
