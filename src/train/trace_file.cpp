// Gathering the ranks' trace events into one Chrome trace JSON (trace_file.hpp).
#include "lockstep/train/trace_file.hpp"

#include <algorithm>

#include "lockstep/core/log.hpp"
#include "lockstep/core/trace.hpp"
#include "lockstep/io/atomic_file.hpp"

namespace lockstep::train {

void start_trace(comm::Communicator& comm, std::int64_t max_events) {
  comm.barrier();
  trace::enable(max_events);
}

namespace {
// Rank r's text, on rank 0 (other ranks receive it and drop it): broadcast in pieces of 64 MiB.
std::string receive_part(comm::Communicator& comm, int r, std::int64_t bytes, const std::string& mine) {
  std::string part = comm.rank() == r ? mine : std::string(static_cast<std::size_t>(bytes), '\0');
  constexpr std::int64_t kPiece = std::int64_t{64} << 20;
  for (std::int64_t off = 0; off < bytes; off += kPiece)
    comm.broadcast(part.data() + off, static_cast<std::size_t>(std::min(kPiece, bytes - off)), r);
  return part;
}

std::string other_data(int ranks, std::int64_t events, std::int64_t dropped, std::int64_t cap) {
  std::string s = "\"otherData\":{\"ranks\":";
  s += std::to_string(ranks);
  s += ",\"events\":";
  s += std::to_string(events);
  s += ",\"dropped_events\":";
  s += std::to_string(dropped);
  s += ",\"max_events_per_rank\":";
  s += std::to_string(cap);
  s += ",\"clock\":\"steady_clock, microseconds since a barrier at the start\"}";
  return s;
}
}  // namespace

void write_trace(comm::Communicator& comm, const std::string& path) {
  trace::disable();
  const trace::Stats st = trace::stats();
  const std::string mine = trace::events_json(comm.rank(), comm.host_name());
  const auto sizes = comm.allgather<std::int64_t>(static_cast<std::int64_t>(mine.size()));
  std::int64_t counts[2] = {st.events, st.dropped};
  comm.allreduce(std::span<std::int64_t>(counts, 2), comm::ReduceOp::kSum);
  std::string all;
  if (comm.rank() == 0) all = "{\"traceEvents\":[\n";
  for (int r = 0; r < comm.size(); ++r) {
    std::string part = receive_part(comm, r, sizes[static_cast<std::size_t>(r)], mine);
    if (comm.rank() != 0) continue;
    if (r > 0) all += ",\n";
    all += part;
  }
  comm.collectively(
      [&] {
        if (comm.rank() != 0) return;
        all += "\n],\"displayTimeUnit\":\"ms\",";
        all += other_data(comm.size(), counts[0], counts[1], st.max_events);
        all += "}\n";
        io::write_file_atomically(path, all);
      },
      comm::Communicator::ErrorKind::kIo);
  trace::clear();
  if (counts[1] > 0)
    log::info("trace: " + std::to_string(counts[1]) + " events over the cap were dropped; see otherData in " + path);
  log::info("trace: " + path + " (" + std::to_string(counts[0]) + " events; open it in ui.perfetto.dev)");
}

}  // namespace lockstep::train
