// Fault injection, for testing how a job fails: LOCKSTEP_FAULT=PHASE:RANK[:KIND[:STEP]] makes rank
// RANK fail at PHASE (load, step, checkpoint, eval, fit), at global step STEP for `step` (default:
// the first time the phase is reached). KIND is `throw` (default: a lockstep::Error, as a bug or a
// local I/O failure would raise), `exit` (the process dies at once, as if killed) or `stall` (the
// process stops itself with SIGSTOP, as a hung node would), or `usr1`/`term` (the process sends
// itself SIGUSR1/SIGTERM, as Slurm or an operator would), or `slow` (the rank sleeps 3 ms every
// time it reaches PHASE from STEP on: a straggler that never fails). Unset, each point costs one branch.
// The failure-modes page of the docs lists what each fault does to a job, measured with this.
#pragma once

#include <cstdint>

namespace lockstep::fault {

void point(const char* phase, int rank, std::int64_t step = -1);

}  // namespace lockstep::fault
