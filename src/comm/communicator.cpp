// Transport-independent parts of Communicator: typed helpers and collective error agreement.
#include "lockstep/comm/communicator.hpp"

#include <climits>
#include <numeric>

namespace lockstep::comm {

std::size_t comm_type_size(CommType t) {
  switch (t) {
    case CommType::kF32:
      return 4;
    case CommType::kF64:
      return 8;
    case CommType::kI32:
      return 4;
    case CommType::kI64:
      return 8;
    case CommType::kU8:
      return 1;
    case CommType::kI128:
      return 16;
    case CommType::kBF16:
      return 2;
  }
  return 0;
}

void Communicator::write_at_all(const std::string& path, std::int64_t, std::int64_t, std::istream&) {
  agree(path + ": this communicator (" + library_version() + ") has no parallel file I/O", ErrorKind::kIo);
}

void Communicator::broadcast(std::string& s, int root) {
  std::uint64_t n = s.size();
  broadcast(n, root);
  s.resize(n);
  if (n) broadcast(s.data(), n, root);
}

std::vector<std::string> Communicator::allgather_strings(const std::string& mine) {
  const auto sizes = allgather<std::uint64_t>(mine.size());
  std::vector<std::size_t> counts(sizes.begin(), sizes.end());
  std::string all(std::accumulate(counts.begin(), counts.end(), std::size_t{0}), '\0');
  allgatherv(mine.data(), all.data(), counts);
  std::vector<std::string> out;
  std::size_t off = 0;
  for (auto c : counts) {
    out.push_back(all.substr(off, c));
    off += c;
  }
  return out;
}

void Communicator::agree(const std::optional<std::string>& local_error, ErrorKind kind) {
  const std::int32_t mine = local_error ? rank() : size();
  const std::int32_t first = allreduce<std::int32_t>(mine, ReduceOp::kMin);
  if (first == size()) return;
  // One byte for the kind, then the message, from the lowest failing rank.
  std::string wire = local_error ? std::string(1, static_cast<char>(kind)) + *local_error : std::string();
  broadcast(wire, first);
  std::string msg = wire.substr(1);
  if (size() > 1) msg = "[rank " + std::to_string(first) + "] " + msg;
  switch (static_cast<ErrorKind>(wire[0])) {
    case ErrorKind::kConfig:
      throw_agreed<ConfigError>(msg);
    case ErrorKind::kData:
      throw_agreed<DataError>(msg);
    case ErrorKind::kIo:
      throw_agreed<IoError>(msg);
    case ErrorKind::kComm:
      throw_agreed<CommError>(msg);
    case ErrorKind::kCheckpoint:
      throw_agreed<CheckpointError>(msg);
    case ErrorKind::kError:
      break;
  }
  throw_agreed<Error>(msg);
}

void agree_on_first_bad_row(comm::Communicator& comm, std::int64_t row, const std::string& message) {
  const auto rows = comm.allgather<std::int64_t>(row);
  int owner = -1;
  std::int64_t lowest = INT64_MAX;
  for (std::size_t r = 0; r < rows.size(); ++r)
    if (rows[r] < lowest) lowest = rows[r], owner = static_cast<int>(r);
  if (owner < 0) return;
  // Only the owner reports it, so the agreed message's [rank r] names the rank that holds the row.
  comm.agree(comm.rank() == owner ? std::optional<std::string>(message) : std::nullopt,
             comm::Communicator::ErrorKind::kData);
}

}  // namespace lockstep::comm
