// Walking an n-d array pair (input a, output b: same shape, any byte strides) as 1-d runs
// along the innermost dimension, without copying. Dimensions of size 1 are dropped and
// adjacent dimensions that are contiguous in both arrays are merged, so a contiguous array
// becomes one run. An optional "channel" dimension is never merged: each run knows the
// channel index of its first element and whether the channel advances along the run.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

namespace featcodec {

struct RunLayout {
  std::vector<ptrdiff_t> shape, a_str, b_str;  // reduced dims, byte strides
  int chan = -1;                               // reduced index of the channel dim, or -1
  size_t size = 1;                             // total number of elements

  RunLayout(const std::vector<ptrdiff_t>& shp, const std::vector<ptrdiff_t>& as,
            const std::vector<ptrdiff_t>& bs, int channel_axis) {
    const int nd = static_cast<int>(shp.size());
    for (int d = 0; d < nd; ++d) size *= static_cast<size_t>(shp[d]);
    for (int d = 0; d < nd; ++d) {
      if (shp[d] == 1) continue;  // channel axis of size 1: channel is always 0
      const bool is_chan = d == channel_axis;
      const int last = static_cast<int>(shape.size()) - 1;
      if (!is_chan && last >= 0 && last != chan && a_str[last] == as[d] * shp[d] &&
          b_str[last] == bs[d] * shp[d]) {
        shape[last] *= shp[d];
        a_str[last] = as[d];
        b_str[last] = bs[d];
        continue;
      }
      if (is_chan) chan = static_cast<int>(shape.size());
      shape.push_back(shp[d]);
      a_str.push_back(as[d]);
      b_str.push_back(bs[d]);
    }
    if (shape.empty()) {
      shape.push_back(1);
      a_str.push_back(0);
      b_str.push_back(0);
    }
  }

  // Call f(a_offset, b_offset, count, first_flat_index, channel0, channel_step) for each
  // run covering the flat (C-order) element range [lo, hi).
  template <class F>
  void for_runs(size_t lo, size_t hi, F&& f) const {
    const int nd = static_cast<int>(shape.size());
    std::vector<ptrdiff_t> idx(nd, 0);
    size_t rest = lo;
    for (int d = nd - 1; d >= 0; --d) {
      idx[d] = static_cast<ptrdiff_t>(rest % static_cast<size_t>(shape[d]));
      rest /= static_cast<size_t>(shape[d]);
    }
    const size_t inner = static_cast<size_t>(shape[nd - 1]);
    const bool chan_inner = chan == nd - 1;
    while (lo < hi) {
      const size_t j = static_cast<size_t>(idx[nd - 1]);
      const size_t cnt = inner - j < hi - lo ? inner - j : hi - lo;
      ptrdiff_t ao = 0, bo = 0;
      for (int d = 0; d < nd; ++d) {
        ao += idx[d] * a_str[d];
        bo += idx[d] * b_str[d];
      }
      const size_t c0 = chan >= 0 ? static_cast<size_t>(idx[chan]) : 0;
      f(ao, bo, cnt, lo, c0, chan_inner ? size_t{1} : size_t{0});
      lo += cnt;
      idx[nd - 1] = static_cast<ptrdiff_t>(j + cnt);
      for (int d = nd - 1; d > 0 && idx[d] == shape[d]; --d) {
        idx[d] = 0;
        ++idx[d - 1];
      }
    }
  }
};

}  // namespace featcodec
