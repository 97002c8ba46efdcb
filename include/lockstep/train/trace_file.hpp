// The run's timeline file (output.trace: true): every rank's trace events (core/trace.hpp) in one
// Chrome trace JSON that Perfetto (ui.perfetto.dev) and chrome://tracing load; one process per
// rank ("rank N (host)"), one track per thread. scripts/trace_summary.py prints its breakdown.
#pragma once

#include <cstdint>
#include <string>

#include "lockstep/comm/communicator.hpp"

namespace lockstep::train {

// Starts tracing on every rank right after a barrier, so the ranks' clocks (microseconds since
// then) line up. At most max_events events per rank are kept. Collective.
void start_trace(comm::Communicator& comm, std::int64_t max_events = 2'000'000);

// Stops tracing and gathers every rank's events to rank 0 (one rank at a time, so no rank holds
// more than its own events and one other's, except rank 0), which writes
// {"traceEvents": [...], "displayTimeUnit": "ms", "otherData": {...}} to `path` through a
// temporary file. otherData says the rank count, the events kept and dropped over the cap. Any
// rank's failure is the same IoError on every rank. Collective.
void write_trace(comm::Communicator& comm, const std::string& path);

}  // namespace lockstep::train
