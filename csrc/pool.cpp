// The block cache of pool.h.
#include "pool.h"

#include <pybind11/stl.h>

#include <cstdlib>
#include <deque>
#include <mutex>
#include <new>
#include <string>

#if defined(__linux__)
#include <sys/mman.h>
#endif

#include "module.h"

namespace py = pybind11;

namespace featcodec {
namespace pool {
namespace {

constexpr size_t kPooled = size_t(1) << 16;    // smaller requests: plain malloc / free
constexpr size_t kGrain = size_t(1) << 16;     // pooled capacities are multiples of this

// Just before each block's data (64 bytes into its allocation, so 16-byte aligned like
// malloc's). Tried: a different offset in the page for each new block (against 4K
// aliasing between one block read and another written): the compiled transpose into such
// blocks ran 1.7x slower.
struct Head {
  void* raw;
  size_t capacity;
  size_t pooled;
  size_t unused;
};
constexpr size_t kOffset = 64;

struct Cache {
  std::mutex mu;
  std::deque<Head*> held;  // free blocks, the most recently given last
  size_t held_bytes = 0;
  size_t limit = size_t(128) << 20;
  Cache() {
    if (const char* e = std::getenv("FEATCODEC_POOL_MB")) {
      char* end = nullptr;
      const unsigned long long mb = std::strtoull(e, &end, 10);
      if (end != e && *end == '\0' && mb < (1ull << 24)) limit = size_t(mb) << 20;
    }
  }
  void trim(size_t keep) {  // under mu: free the oldest blocks until at most `keep` bytes are held
    while (held_bytes > keep) {
      Head* h = held.front();
      held.pop_front();
      held_bytes -= h->capacity;
      std::free(h->raw);
    }
  }
};

Cache& cache() {
  static Cache* c = new Cache;  // never destroyed: arrays may be freed during interpreter exit
  return *c;
}

}  // namespace

void* take(size_t bytes) {
  Cache& c = cache();
  const bool pooled = bytes >= kPooled && c.limit > 0;
  if (pooled) {
    std::lock_guard<std::mutex> lock(c.mu);
    // the most recently freed block that fits without wasting more than the request
    // itself (the likeliest to be in cache still)
    for (size_t i = c.held.size(); i-- > 0;) {
      Head* h = c.held[i];
      if (h->capacity >= bytes && h->capacity - bytes <= bytes + kGrain) {
        c.held.erase(c.held.begin() + std::ptrdiff_t(i));
        c.held_bytes -= h->capacity;
        return h + 1;
      }
    }
  }
  const size_t cap = pooled ? (bytes + kGrain - 1) / kGrain * kGrain : bytes;
  if (cap > SIZE_MAX - kOffset) throw std::bad_alloc();
  void* raw = std::malloc(kOffset + cap);
  if (raw == nullptr) throw std::bad_alloc();
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  // as numpy does for its arrays of 4 MB and more: ask for huge pages (one fault per 2 MB
  // where the kernel grants them; measured: without it a 16 MB CNN encode with the cache
  // off took twice the faults of numpy-allocated arrays)
  if (kOffset + cap >= (size_t(1) << 22)) {
    const uintptr_t start = (reinterpret_cast<uintptr_t>(raw) + 4095) & ~uintptr_t(4095);
    const uintptr_t end = reinterpret_cast<uintptr_t>(raw) + kOffset + cap;
    if (end > start) madvise(reinterpret_cast<void*>(start), end - start, MADV_HUGEPAGE);
  }
#endif
  uint8_t* data = static_cast<uint8_t*>(raw) + kOffset;
  Head* h = reinterpret_cast<Head*>(data) - 1;
  h->raw = raw;
  h->capacity = cap;
  h->pooled = pooled;
  return data;
}

void give(void* p) noexcept {
  if (p == nullptr) return;
  Head* h = static_cast<Head*>(p) - 1;
  Cache& c = cache();
  if (!h->pooled || h->capacity > c.limit) {
    std::free(h->raw);
    return;
  }
  std::lock_guard<std::mutex> lock(c.mu);
  c.held.push_back(h);
  c.held_bytes += h->capacity;
  c.trim(c.limit);
}

py::array array(const py::dtype& dt, const std::vector<py::ssize_t>& shape) {
  size_t n = 1;
  for (py::ssize_t s : shape) {
    if (s < 0) throw std::invalid_argument("array shape must not be negative");
    if (s > 0 && n > (SIZE_MAX / 2) / size_t(s)) throw std::bad_alloc();
    n *= size_t(s);
  }
  const size_t item = size_t(dt.itemsize());
  if (item > 0 && n > (SIZE_MAX / 2) / item) throw std::bad_alloc();
  void* p = take(std::max<size_t>(1, n * item));
  py::capsule owner(p, [](void* q) { give(q); });
  return py::array(dt, shape, p, owner);
}

}  // namespace pool

void register_pool(py::module_& m) {
  m.def(
      "empty", [](const std::vector<py::ssize_t>& shape, const py::dtype& dtype) { return pool::array(dtype, shape); },
      py::arg("shape"), py::arg("dtype"),
      "A new C-contiguous array (not zero-filled) from the core's block cache: blocks of 64 KiB "
      "and more are kept when freed (at most FEATCODEC_POOL_MB megabytes, default 128) and serve "
      "the next request, so repeated encodes of large tensors touch no fresh pages.");
  m.def(
      "pool_held",
      [] {
        pool::Cache& c = pool::cache();
        std::lock_guard<std::mutex> lock(c.mu);
        return py::make_tuple(c.held_bytes, c.held.size(), c.limit);
      },
      "(bytes, blocks, limit) the block cache holds free.");
  m.def(
      "pool_release",
      [] {
        pool::Cache& c = pool::cache();
        std::lock_guard<std::mutex> lock(c.mu);
        c.trim(0);
      },
      "Free every block the cache holds.");
}

}  // namespace featcodec
