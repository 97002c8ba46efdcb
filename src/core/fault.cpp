// Fault injection (see fault.hpp).
#include "lockstep/core/fault.hpp"

#include <time.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <sstream>
#include <string>

#include "lockstep/core/error.hpp"

namespace lockstep::fault {
namespace {

struct Spec {
  std::string phase, kind = "throw", text;
  int rank = -1;
  std::int64_t step = -1;
  bool fired = false;
};

Spec* parse() {
  const char* env = std::getenv("LOCKSTEP_FAULT");
  if (!env || !*env) return nullptr;
  auto* s = new Spec;
  s->text = env;
  std::stringstream in(env);
  std::string rank, step;
  std::getline(in, s->phase, ':');
  std::getline(in, rank, ':');
  std::getline(in, s->kind, ':');
  std::getline(in, step, ':');
  if (s->kind.empty()) s->kind = "throw";
  try {
    s->rank = std::stoi(rank);
    if (!step.empty()) s->step = std::stoll(step);
  } catch (const std::exception&) {
    throw ConfigError("LOCKSTEP_FAULT=" + s->text + ": expected PHASE:RANK[:KIND[:STEP]]");
  }
  if (s->kind != "throw" && s->kind != "exit" && s->kind != "stall" && s->kind != "usr1" && s->kind != "term" &&
      s->kind != "slow")
    throw ConfigError("LOCKSTEP_FAULT=" + s->text + ": kind '" + s->kind +
                      "': expected throw, exit, stall, usr1, term or slow");
  return s;
}

}  // namespace

void point(const char* phase, int rank, std::int64_t step) {
  static Spec* spec = parse();
  if (!spec || spec->fired || spec->rank != rank || spec->phase != phase) return;
  if (spec->kind == "slow") {  // a straggler: 3 ms late at every point from STEP on, never fails
    if (spec->step >= 0 && step < spec->step) return;
    const timespec late{0, 3'000'000};
    nanosleep(&late, nullptr);
    return;
  }
  if (spec->step >= 0 && step != spec->step) return;
  spec->fired = true;
  timespec now{};
  clock_gettime(CLOCK_REALTIME, &now);  // the tests measure from here to the job's exit
  std::fprintf(stderr, "[rank %d] LOCKSTEP_FAULT=%s: injecting '%s' at %s (unix time %lld.%03ld)\n", rank,
               spec->text.c_str(), spec->kind.c_str(), phase, static_cast<long long>(now.tv_sec), now.tv_nsec / 1000000);
  std::fflush(stderr);
  if (spec->kind == "exit") std::raise(SIGKILL);
  if (spec->kind == "stall") std::raise(SIGSTOP);
  if (spec->kind == "usr1") std::raise(SIGUSR1);
  if (spec->kind == "term") std::raise(SIGTERM);
  if (spec->kind == "throw") throw Error("injected fault at " + std::string(phase) + " (LOCKSTEP_FAULT=" + spec->text + ")");
}

}  // namespace lockstep::fault
