// NcclCommunicator: collectives over device buffers with NCCL, for one rank per GPU. Built with
// the CUDA backend. Rank 0 creates the NCCL unique id and broadcasts it over the MPI
// communicator; each rank drives the GPU chosen by its node-local rank (after CUDA_VISIBLE_DEVICES
// or Slurm's --gpus-per-task have narrowed what it sees). Host-side needs (rank, size, exscan,
// barrier, shared windows, agreement on errors) go through the MPI communicator it wraps.
//
// Hangs: every wait polls the communicator's asynchronous error and a deadline; on either the
// NCCL communicator is aborted and a CommError names the collective, so a dead peer ends the job
// instead of hanging it.
#pragma once

#include <chrono>
#include <memory>

#include "lockstep/comm/communicator.hpp"

namespace lockstep::comm {

struct NcclOptions {
  std::chrono::seconds timeout{300};  // a collective that takes longer is a failure
};

// Collective over `mpi`. Throws CommError (agreed on every rank) if NCCL or the device cannot be
// set up, or in a build without NCCL.
std::unique_ptr<Communicator> make_nccl(Communicator& mpi, int device, NcclOptions options = {});
// NCCL's version as major*10000 + minor*100 + patch, 0 without NCCL.
int nccl_version();

}  // namespace lockstep::comm
