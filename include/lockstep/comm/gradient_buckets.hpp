// GradientBuckets: a fixed plan, built once from the model's parameter layout, that splits the
// flat gradient buffer into contiguous buckets of about `bucket_bytes`. During backward the
// trainer reports how far the ready prefix of the buffer reaches; every bucket inside it starts
// its allreduce at once, so communication of late layers overlaps backward of early ones.
// finish() starts whatever is left, waits for all, and returns the seconds spent waiting (the
// communication that was not hidden).
#pragma once

#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

#include "lockstep/comm/communicator.hpp"

namespace lockstep::comm {

class GradientBuckets {
 public:
  struct Bucket {
    std::int64_t begin, end;  // element range in the flat buffer
  };

  // param_ranges: [begin, end) of every parameter in the flat buffer; buckets break only
  // between parameters. overlap=false reduces everything in finish().
  GradientBuckets(Communicator& comm, std::int64_t total_elements,
                  const std::vector<std::pair<std::int64_t, std::int64_t>>& param_ranges, std::size_t bucket_bytes,
                  bool overlap, ReduceOp op = ReduceOp::kAvg, CommType type = CommType::kF32);

  const std::vector<Bucket>& buckets() const { return buckets_; }

  void begin_step(void* grads);  // the flat gradient buffer, of the constructor's type
  // Elements [0, ready_end) hold final gradients for this step.
  void mark_ready(std::int64_t ready_end);
  double finish();

 private:
  void start(std::size_t i);

  Communicator& comm_;
  std::vector<Bucket> buckets_;
  bool overlap_;
  ReduceOp op_;
  CommType type_;
  char* grads_ = nullptr;
  std::size_t next_ = 0;
  std::vector<std::unique_ptr<Request>> pending_;
};

// Exact, associative gradient sum for deterministic training. Each float gradient becomes a
// fixed-point number with 64 fractional bits held in two int64 words (hi: floor(g * 2^32),
// lo: the remaining 32 bits), accumulated locally and summed across ranks with a native int64
// MPI_SUM. Integer addition does not care about order, so the sum is the same bits whatever the
// number of ranks or the reduction tree. Range: |g| < 2^20 per gradient element and add, and at
// most kMaxAdds adds (micro-batches) per reduction over all ranks together; anything else, NaN
// included, is reported by every rank.
class ExactGradientSum {
 public:
  static constexpr std::int64_t kMaxAdds = 2048;

  explicit ExactGradientSum(std::int64_t n);
  void reset();
  void add(const float* g);
  // out[i] = scale * (global sum of everything added on every rank). Collective.
  void allreduce_into(Communicator& comm, float* out, double scale);
  std::int64_t size() const { return n_; }

 private:
  std::int64_t n_;
  std::vector<std::int64_t> words_;  // hi[n], lo[n], bad count, add count
  std::int64_t adds_ = 0;
};

}  // namespace lockstep::comm
