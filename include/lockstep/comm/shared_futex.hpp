// Sleeping and waking across the processes of one node on a 32-bit word in a shared window
// (Communicator::allocate_shared): process-shared futexes, for waits on counters in the window that
// must give the core away instead of spinning (train::TiledStep).
#pragma once

#include <cstdint>

namespace lockstep::comm {

// Sleeps while *word == expected, at most `nanoseconds` (< 1 s); returns early when woken, on a
// signal, or when the word already differs.
void shared_futex_wait(std::uint32_t* word, std::uint32_t expected, long nanoseconds);
// Wakes every process sleeping on word.
void shared_futex_wake_all(std::uint32_t* word);

}  // namespace lockstep::comm
