// Large working buffers and returned arrays from a cache of blocks. A fresh allocation of
// megabytes is zeroed page by page by the kernel on first touch (a minor fault, about 2 us
// per 4 KiB page here, counted in the calling thread's CPU time), and glibc returns freed
// memory to the kernel once enough of it is free, so an encode of a 16 MB tensor took
// 3,400-5,700 such faults every call (a fifth of its time). Blocks of 64 KiB and more go
// back to this cache instead (the most recently freed first, at most FEATCODEC_POOL_MB
// megabytes held, default 128, 0: none) and serve the next request that fits.
#pragma once
#include <pybind11/numpy.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

namespace featcodec {
namespace pool {

// At least `bytes` bytes, aligned to 16 (throws std::bad_alloc); give them back with give().
void* take(size_t bytes);
void give(void* p) noexcept;

struct Deleter {
  void operator()(uint8_t* p) const noexcept { give(p); }
};
using Buffer = std::unique_ptr<uint8_t[], Deleter>;
inline Buffer buffer(size_t bytes) { return Buffer(static_cast<uint8_t*>(take(bytes))); }

// A new C-contiguous numpy array (not zero-filled) whose memory comes from take() and goes
// back with give() when the array is freed.
pybind11::array array(const pybind11::dtype& dt, const std::vector<pybind11::ssize_t>& shape);
template <class T>
pybind11::array_t<T> array(const std::vector<pybind11::ssize_t>& shape) {
  return pybind11::reinterpret_steal<pybind11::array_t<T>>(array(pybind11::dtype::of<T>(), shape).release());
}

}  // namespace pool
}  // namespace featcodec
