// Stop requests by signal (see stop_signal.hpp): the handler stores the signal number and nothing
// else, which is all a handler may safely do.
#include "lockstep/core/stop_signal.hpp"

#include <atomic>
#include <csignal>

namespace lockstep {
namespace {

std::atomic<int> g_stop{0};
static_assert(std::atomic<int>::is_always_lock_free, "the handler needs a lock-free flag");

struct sigaction g_old_usr1, g_old_term;

extern "C" void on_stop_signal(int sig) {
  int expected = 0;
  g_stop.compare_exchange_strong(expected, sig);  // the first request names the stop
}

}  // namespace

void install_stop_signals() {
  struct sigaction sa {};
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;  // a read or MPI call in progress goes on; the trainer looks at steps
  sigaction(SIGUSR1, &sa, &g_old_usr1);
  sigaction(SIGTERM, &sa, &g_old_term);
}

void restore_stop_signals() {
  sigaction(SIGUSR1, &g_old_usr1, nullptr);
  sigaction(SIGTERM, &g_old_term, nullptr);
}

int stop_signal() {
  return g_stop.load(std::memory_order_relaxed);
}

const char* signal_name(int sig) {
  switch (sig) {
    case SIGUSR1: return "SIGUSR1";
    case SIGTERM: return "SIGTERM";
    case SIGINT: return "SIGINT";
    default: return "a signal";
  }
}

}  // namespace lockstep
