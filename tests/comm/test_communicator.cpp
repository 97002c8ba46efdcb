// Collectives at every rank count: results a user would see (sums, orders, errors) must match
// what a single process computes.
#include <gtest/gtest.h>

#include <numeric>
#include <thread>

#include "support/test_comm.hpp"

using lockstep::comm::CommType;
using lockstep::comm::ReduceOp;
using lockstep::testing::world;

TEST(Communicator, AllreduceOpsAndTypes) {
  auto& c = world();
  const int p = c.size(), r = c.rank();
  EXPECT_EQ(c.allreduce<std::int64_t>(r + 1, ReduceOp::kSum), std::int64_t{p} * (p + 1) / 2);
  EXPECT_EQ(c.allreduce<std::int32_t>(r, ReduceOp::kMax), p - 1);
  EXPECT_EQ(c.allreduce<double>(r + 0.5, ReduceOp::kMin), 0.5);
  EXPECT_FLOAT_EQ(c.allreduce<float>(static_cast<float>(r), ReduceOp::kAvg), (p - 1) / 2.0f);
  std::vector<double> v{1.0 * r, 2.0, -1.0 * r};
  c.allreduce(std::span<double>(v), ReduceOp::kSum);
  EXPECT_DOUBLE_EQ(v[0], p * (p - 1) / 2.0);
  EXPECT_DOUBLE_EQ(v[1], 2.0 * p);
}

TEST(Communicator, Int128SumIsExact) {
  auto& c = world();
  // Values whose float sum would lose bits: 2^100 and small parts.
  std::vector<lockstep::int128> v{(static_cast<lockstep::int128>(1) << 100) + c.rank(), -static_cast<lockstep::int128>(c.rank())};
  c.allreduce(v.data(), v.size(), CommType::kI128, ReduceOp::kSum);
  const int p = c.size();
  EXPECT_TRUE(v[0] == (static_cast<lockstep::int128>(p) << 100) + p * (p - 1) / 2);
  EXPECT_TRUE(v[1] == -static_cast<lockstep::int128>(p * (p - 1) / 2));
}

TEST(Communicator, NonblockingAllreduceOverlapsAndCompletes) {
  auto& c = world();
  std::vector<std::vector<float>> bufs(8, std::vector<float>(1000));
  std::vector<std::unique_ptr<lockstep::comm::Request>> reqs;
  for (std::size_t b = 0; b < bufs.size(); ++b) {
    std::fill(bufs[b].begin(), bufs[b].end(), static_cast<float>(b + c.rank()));
    reqs.push_back(c.iallreduce(bufs[b].data(), bufs[b].size(), CommType::kF32, ReduceOp::kSum));
  }
  for (auto& q : reqs) q->wait();
  const int p = c.size();
  for (std::size_t b = 0; b < bufs.size(); ++b)
    EXPECT_FLOAT_EQ(bufs[b][999], static_cast<float>(b * p + p * (p - 1) / 2));
  // A blocking collective after nonblocking ones sees them complete first.
  EXPECT_EQ(c.allreduce<std::int64_t>(1, ReduceOp::kSum), p);
}

// MPI runs at MPI_THREAD_SERIALIZED: only the thread that made the world communicator (and the
// one progress thread) may call MPI, so a collective from another thread is refused before it
// reaches MPI, on every rank alike.
TEST(Communicator, CallsFromAnotherThreadAreRefused) {
  auto& c = world();
  int refused = 0;
  std::thread t([&] {
    try {
      c.barrier();
    } catch (const lockstep::CommError&) {
      ++refused;
    }
    float x = 1.0f;
    try {
      c.iallreduce(&x, 1, CommType::kF32, ReduceOp::kSum)->wait();
    } catch (const lockstep::CommError&) {
      ++refused;
    }
    try {
      c.split(0, 0);
    } catch (const lockstep::CommError&) {
      ++refused;
    }
  });
  t.join();
  EXPECT_EQ(refused, 3);
  EXPECT_EQ(c.allreduce<std::int64_t>(1, ReduceOp::kSum), c.size());  // the owner still can
}

TEST(Communicator, BroadcastGatherScan) {
  auto& c = world();
  std::string s = c.rank() == 0 ? "hello from zero" : "";
  c.broadcast(s, 0);
  EXPECT_EQ(s, "hello from zero");
  auto ranks = c.allgather<std::int32_t>(c.rank());
  for (int i = 0; i < c.size(); ++i) EXPECT_EQ(ranks[static_cast<std::size_t>(i)], i);
  auto strs = c.allgather_strings(std::string(static_cast<std::size_t>(c.rank()), 'x'));
  for (int i = 0; i < c.size(); ++i) EXPECT_EQ(strs[static_cast<std::size_t>(i)].size(), static_cast<std::size_t>(i));
  EXPECT_EQ(c.exscan(c.rank() + 1), c.rank() * (c.rank() + 1) / 2);
}

TEST(Communicator, AlltoallvRoutesBytes) {
  auto& c = world();
  const int p = c.size();
  // Rank r sends (r + 1) bytes of value r to every rank.
  std::vector<std::size_t> sc(static_cast<std::size_t>(p), static_cast<std::size_t>(c.rank() + 1)), rc(static_cast<std::size_t>(p));
  for (int i = 0; i < p; ++i) rc[static_cast<std::size_t>(i)] = static_cast<std::size_t>(i + 1);
  std::string send(static_cast<std::size_t>(p * (c.rank() + 1)), static_cast<char>(c.rank()));
  std::string recv(static_cast<std::size_t>(p * (p + 1) / 2), '?');
  c.alltoallv(send.data(), sc, recv.data(), rc);
  std::string expect;
  for (int i = 0; i < p; ++i) expect += std::string(static_cast<std::size_t>(i + 1), static_cast<char>(i));
  EXPECT_EQ(recv, expect);
}

TEST(Communicator, AgreeTurnsOneRanksFailureIntoEveryRanksError) {
  auto& c = world();
  const int bad = c.size() - 1;
  std::optional<std::string> err;
  if (c.rank() == bad) err = "data/x.csv:7: expected 3 columns, got 2";
  try {
    c.agree(err);
    FAIL() << "agree() returned although rank " << bad << " failed";
  } catch (const lockstep::Error& e) {
    EXPECT_NE(std::string(e.what()).find("data/x.csv:7: expected 3 columns, got 2"), std::string::npos) << e.what();
  }
  EXPECT_NO_THROW(c.agree(std::nullopt));
}
