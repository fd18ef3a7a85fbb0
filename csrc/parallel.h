// A tiny deterministic parallel-for: split [0, n) into `threads` contiguous ranges and run
// them on std::threads (the calling thread takes the first). Each range is a pure function
// of (n, threads), and the kernels using it are element-wise, so results never depend on
// the thread count. Call it with the GIL released.
#pragma once
#include <algorithm>
#include <cstddef>
#include <exception>
#include <thread>
#include <vector>

namespace featcodec {

// Run fn(begin, end, part) over `parts` contiguous pieces of [0, n). Small inputs (less than
// `min_per_thread` items per piece) use fewer threads; n == 0 runs nothing.
template <class Fn>
void parallel_for(size_t n, int threads, size_t min_per_thread, Fn&& fn) {
  if (n == 0) return;
  size_t parts = threads < 1 ? 1 : static_cast<size_t>(threads);
  if (min_per_thread < 1) min_per_thread = 1;
  parts = std::min(parts, std::max<size_t>(1, n / min_per_thread));
  if (parts <= 1) {
    fn(size_t{0}, n, size_t{0});
    return;
  }
  std::vector<std::thread> pool;
  std::vector<std::exception_ptr> errors(parts);
  pool.reserve(parts - 1);
  auto range = [&](size_t p) {
    return std::pair<size_t, size_t>(n * p / parts, n * (p + 1) / parts);
  };
  for (size_t p = 1; p < parts; ++p) {
    pool.emplace_back([&, p] {
      try {
        auto r = range(p);
        fn(r.first, r.second, p);
      } catch (...) {
        errors[p] = std::current_exception();
      }
    });
  }
  try {
    auto r = range(0);
    fn(r.first, r.second, size_t{0});
  } catch (...) {
    errors[0] = std::current_exception();
  }
  for (auto& t : pool) t.join();
  for (auto& e : errors)
    if (e) std::rethrow_exception(e);
}

}  // namespace featcodec
