// Transparent huge pages for large buffers that are about to be written for the first time.
// Every first touch of a 4 KiB page is a page fault, and in a virtual machine (a guest fault, and
// the host backing the page) one can cost several microseconds: the epoch shuffle's three 47 MB
// buffers (Fashion-MNIST at np=2) spent 0.2-0.5 s in faults before its copies ran. Where the kernel's transparent huge
// pages are in "madvise" mode (Debian's default), advising the buffer first turns those 35,000
// faults into about 70 of 2 MiB each. A no-op below 4 MiB and where THP is off or unsupported.
#pragma once

#include <cstddef>

namespace lockstep {

// Asks for 2 MiB pages over the 2 MiB-aligned part of [p, p + bytes). Never fails.
void advise_huge_pages(const void* p, std::size_t bytes) noexcept;

// Reserves n elements in a vector-like container (no element written yet) and advises them, so
// the resize or the writes that follow fault in huge pages.
template <typename V>
void reserve_huge(V& v, std::size_t n) {
  v.reserve(n);
  advise_huge_pages(v.data(), v.capacity() * sizeof(typename V::value_type));
}

}  // namespace lockstep
