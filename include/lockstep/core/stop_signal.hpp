// Stop requests by signal. SIGUSR1 (what Slurm sends ahead of a time limit with
// `#SBATCH --signal=B:USR1@N`, forwarded by the batch script) and SIGTERM (preemption, scancel,
// mpirun being terminated) ask a training run to stop cleanly: the handler only records the signal;
// the trainer reduces the request over the ranks at its next step, so every rank stops after the
// same step, writes one checkpoint, and exits with kExitStopped.
#pragma once

namespace lockstep {

// The exit status of a run that stopped on request with a checkpoint: resume it with --resume
// (EX_TEMPFAIL from sysexits.h: "try again later").
inline constexpr int kExitStopped = 75;

// Installs the handlers for SIGUSR1 and SIGTERM (until restore_stop_signals()).
void install_stop_signals();
void restore_stop_signals();
// The signal that asked to stop (SIGUSR1 or SIGTERM), or 0. Async-signal-safe to set; any thread.
int stop_signal();
// "SIGUSR1", "SIGTERM", or the number.
const char* signal_name(int sig);

}  // namespace lockstep
