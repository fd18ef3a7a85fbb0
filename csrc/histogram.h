// Byte histograms that do not stall on runs of one value.
#pragma once

#include <cstddef>
#include <cstdint>

namespace featcodec {

// Adds the counts of row[0..m) to four interleaved 256-entry tables at h (value v of the
// t-th table at h[256 t + v]; a count is the sum of the four): one table would make each
// increment wait on the store of the one before whenever a value repeats (ReLU zeros).
template <class C>
inline void count_bytes4(const uint8_t* row, size_t m, C* h) {
  size_t j = 0;
  for (; j + 4 <= m; j += 4) {
    ++h[row[j]];
    ++h[256 + row[j + 1]];
    ++h[512 + row[j + 2]];
    ++h[768 + row[j + 3]];
  }
  for (; j < m; ++j) ++h[row[j]];
}

// The same for values below `size` (16-bit symbols): four interleaved tables of `size`
// entries at h (value v of the t-th table at h[size t + v]).
template <class T, class C>
inline void count_values4(const T* row, size_t m, size_t size, C* h) {
  size_t j = 0;
  for (; j + 4 <= m; j += 4) {
    ++h[row[j]];
    ++h[size + row[j + 1]];
    ++h[2 * size + row[j + 2]];
    ++h[3 * size + row[j + 3]];
  }
  for (; j < m; ++j) ++h[row[j]];
}

}  // namespace featcodec
