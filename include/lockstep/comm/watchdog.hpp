// The collective watchdog: a deadline on every wait for other ranks that does not depend on MPI
// making progress. A rank that stalls (stopped, swapping, stuck in a loop, its node wedged) leaves
// the others inside a collective forever, and MPI has no timeout of its own; here every blocking
// wait is marked, a thread of the watchdog's own looks at the oldest mark once a second, and when
// one is older than comm.timeout_s it prints which rank, on which host, waited in which collective
// for how long, and ends the process with status 1. The launcher (mpirun, srun) then ends the
// other ranks, or their own watchdogs do.
//
// A job that the scheduler suspends (every rank SIGSTOPped, then SIGCONTinued) is not a stall: time
// during which the watchdog's own thread did not run is not counted against any wait.
#pragma once

#include <string>

namespace lockstep::comm {

// 300 s unless configured: long enough for rank 0 to read or write a large file while the others
// wait for it, short enough that a hung job does not burn its whole allocation.
inline constexpr double kDefaultTimeoutSeconds = 300.0;

// Seconds a wait may last before the process ends; 0 disables the deadline. Any thread.
void set_watchdog_timeout(double seconds);
double watchdog_timeout();
// What the message says about this process.
void set_watchdog_identity(int rank, int size, const std::string& host);

// Marks a blocking wait for the other ranks while it lives. `what` names the collective
// ("MPI_Allreduce", "SharedWindow::fence") and must outlive the mark (a string literal).
class WatchdogWait {
 public:
  explicit WatchdogWait(const char* what);
  ~WatchdogWait();
  WatchdogWait(const WatchdogWait&) = delete;
  WatchdogWait& operator=(const WatchdogWait&) = delete;

 private:
  int slot_;
};

}  // namespace lockstep::comm
