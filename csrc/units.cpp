// Per-unit statistics for the index codec's grouped tables (featcodec.codecs.columns):
// each row of a (n, m) uint8/uint16 array of b-bit indices is one unit (a plane column or
// a mosaic tile). For every row: its lower median (the (m - 1) / 2-th smallest value) and
// one residual per value, by the unit's cheapest mode:
//   mode 0: (value - median) mod 2**b;
//   mode k (lags[k - 1] = L): (value[j] - value[j - L]) mod 2**b from j = L on, the
//           first L values as in mode 0 (a prediction from the value L places earlier:
//           the previous token, the pixel to the left or above).
// The cost of a mode is the sum of its residuals' magnitudes read as signed
// (min(r, 2**b - r)); the smallest wins, ties to the lower mode. Returned: medians,
// residuals, the chosen mode's cost, the modes, and mode 0's cost. Integer arithmetic only;
// rows are independent, so the result never depends on the thread count.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <tuple>
#include <vector>

#include "histogram.h"
#include "module.h"
#include "parallel.h"
#include "pool.h"

namespace py = pybind11;

namespace featcodec {
namespace {

// The k-th smallest of row[0..m) (values below 2**bits): counting for 8-bit rows and for
// 16-bit rows whose alphabet is no wider than 4 m (the 9-12-bit indices of error-bounded
// coding; `hist` holds 2**bits counters then), selection otherwise.
template <class T>
T kth(const T* row, size_t m, size_t k, int bits, std::vector<uint32_t>& hist, std::vector<T>& scratch) {
  if (sizeof(T) == 2 && (size_t(1) << bits) <= 4 * m) {
    // four interleaved tables (as for bytes below): error-bounded indices are peaky
    const size_t size = size_t(1) << bits;
    uint32_t* h = hist.data();
    std::fill(h, h + 4 * size, 0u);
    count_values4(row, m, size, h);
    size_t seen = 0;
    for (size_t v = 0; v < size; ++v) {
      seen += h[v] + h[size + v] + h[2 * size + v] + h[3 * size + v];
      if (seen > k) return T(v);
    }
    return T(size - 1);  // unreachable: k < m
  }
  if (sizeof(T) == 1) {
    // rows of 128 values or more: four interleaved histograms, as runs of one value (ReLU
    // zeros) would otherwise wait on each increment's store (informal timing: 2.7x on
    // MobileNetV2 columns, 1.9x on its 196-value tiles); shorter rows: one table, less
    // to clear per row
    const size_t tables = m >= 128 ? 4 : 1;
    uint32_t* h = hist.data();
    std::fill(h, h + 256 * tables, 0u);
    if (tables == 4) {
      count_bytes4(reinterpret_cast<const uint8_t*>(row), m, h);
    } else {
      for (size_t j = 0; j < m; ++j) ++h[row[j]];
    }
    size_t seen = 0;
    for (size_t v = 0; v < 256; ++v) {
      seen += h[v];
      if (tables == 4) seen += h[256 + v] + h[512 + v] + h[768 + v];
      if (seen > k) return T(v);
    }
    return T(255);  // unreachable: k < m
  }
  scratch.assign(row, row + m);
  std::nth_element(scratch.begin(), scratch.begin() + k, scratch.end());
  return scratch[k];
}

// sum over j of min(r, 2**bits - r) mod 2**bits, r = (a[j] - b[j]) mod 2**bits, in the
// element type (so the compiler vectorises it), summed in 32 bits per block of 2**16
// values (each term < 2**16), then in 64 bits
template <class T, class B>
int64_t cost(const T* a, B b, size_t n, T mask) {
  int64_t total = 0;
  for (size_t lo = 0; lo < n; lo += size_t(1) << 16) {
    const size_t hi = std::min(n, lo + (size_t(1) << 16));
    uint32_t acc = 0;
    for (size_t j = lo; j < hi; ++j) {
      const T r = T(T(a[j] - b(j)) & mask);
      const T neg = T(T(0 - r) & mask);
      acc += uint32_t(r < neg ? r : neg);
    }
    total += acc;
  }
  return total;
}

template <class T>
py::tuple residuals(const py::array_t<T, py::array::c_style>& units, int bits, const std::vector<int64_t>& lags,
                    int threads) {
  if (units.ndim() != 2) throw std::invalid_argument("units must be a 2-D array");
  if (bits < 1 || bits > int(8 * sizeof(T))) throw std::invalid_argument("bits out of range for the dtype");
  const size_t n = size_t(units.shape(0)), m = size_t(units.shape(1));
  if (m == 0) throw std::invalid_argument("units must have at least one value per row");
  if (lags.size() > 3) throw std::invalid_argument("at most 3 lags");
  for (int64_t L : lags)
    if (L < 1 || size_t(L) >= m) throw std::invalid_argument("every lag must be in [1, m)");
  py::array_t<T> med{py::ssize_t(n)};
  py::array_t<T> res = pool::array<T>({py::ssize_t(n), py::ssize_t(m)});
  py::array_t<int64_t> sums{py::ssize_t(n)};
  py::array_t<uint8_t> modes{py::ssize_t(n)};
  py::array_t<int64_t> base{py::ssize_t(n)};
  const T* u = units.data();
  T* pm = med.mutable_data();
  T* pr = res.mutable_data();
  int64_t* ps = sums.mutable_data();
  uint8_t* pd = modes.mutable_data();
  int64_t* pb = base.mutable_data();
  const uint32_t mask = (uint32_t(1) << bits) - 1;
  const size_t k = (m - 1) / 2;
  if (sizeof(T) == 2 && bits < 16) {  // kth counts 16-bit indices in a table of 2**bits: check them
    T top = 0;
    for (size_t i = 0; i < n * m; ++i) top = std::max(top, u[i]);
    if (uint32_t(top) > mask) throw std::invalid_argument("units hold a value of more than bits bits");
  }
  {
    py::gil_scoped_release release;
    parallel_for(n, threads, std::max<size_t>(1, (size_t(1) << 16) / m), [&](size_t b, size_t e, size_t) {
      std::vector<uint32_t> hist(4 * std::max<size_t>(256, sizeof(T) == 2 ? size_t(1) << bits : 0));
      std::vector<T> scratch;
      // locals, not the closure's references: a store of a uint8 residual may alias
      // anything, so a loop bound read through a reference is reloaded on every value
      // and the loop is not vectorised (informal: 24% of a MobileNetV2 map's call)
      const size_t width = m, kk = k;
      const T tmask = T(mask);
      for (size_t i = b; i < e; ++i) {
        const T* __restrict row = u + i * width;
        T* __restrict out = pr + i * width;  // a fresh array: never overlaps the units
        const T md = kth(row, width, kk, bits, hist, scratch);
        const auto median = [md](size_t) { return md; };
        int64_t best = cost(row, median, width, tmask);
        pb[i] = best;
        size_t mode = 0;
        for (size_t q = 0; q < lags.size(); ++q) {
          const size_t L = size_t(lags[q]);
          const T* back = row;  // row[j - L] for j >= L
          const int64_t s = cost(row, median, L, tmask) +
                            cost(row + L, [back](size_t j) { return back[j]; }, width - L, tmask);
          if (s < best) best = s, mode = q + 1;
        }
        const size_t L = mode ? size_t(lags[mode - 1]) : width;
        for (size_t j = 0; j < std::min(L, width); ++j) out[j] = T(T(row[j] - md) & tmask);
        for (size_t j = L; j < width; ++j) out[j] = T(T(row[j] - row[j - L]) & tmask);
        pm[i] = T(md);
        ps[i] = best;
        pd[i] = uint8_t(mode);
      }
    });
  }
  return py::make_tuple(med, res, sums, modes, base);
}

// Mode 0's residuals of every row, whatever its chosen mode: (row - med) mod 2**bits.
template <class T>
py::array_t<T> minus_median(const py::array_t<T, py::array::c_style>& units, const py::array_t<T, py::array::c_style>& med,
                            int bits) {
  if (units.ndim() != 2 || med.ndim() != 1 || med.shape(0) != units.shape(0))
    throw std::invalid_argument("units must be (n, m) and med (n,)");
  if (bits < 1 || bits > int(8 * sizeof(T))) throw std::invalid_argument("bits out of range for the dtype");
  const size_t n = size_t(units.shape(0)), m = size_t(units.shape(1));
  py::array_t<T> out = pool::array<T>({py::ssize_t(n), py::ssize_t(m)});
  const T* u = units.data();
  const T* pm = med.data();
  T* o = out.mutable_data();
  const T mask = T((uint32_t(1) << bits) - 1);
  py::gil_scoped_release release;
  for (size_t i = 0; i < n; ++i) {
    const T md = pm[i];
    for (size_t j = 0; j < m; ++j) o[i * m + j] = T(T(u[i * m + j] - md) & mask);
  }
  return out;
}

// Inverse of a mode-k row, in place: r[j] += median for j < L, then r[j] += r[j - L], all
// modulo 2**bits (the decoder's side of a prediction).
template <class T>
void undo_prediction(py::array_t<T, py::array::c_style>& r, const py::array_t<T, py::array::c_style>& med,
                     int64_t lag, int bits) {
  if (r.ndim() != 2 || med.ndim() != 1 || med.shape(0) != r.shape(0))
    throw std::invalid_argument("r must be (n, m) and med (n,)");
  if (bits < 1 || bits > int(8 * sizeof(T))) throw std::invalid_argument("bits out of range for the dtype");
  const size_t n = size_t(r.shape(0)), m = size_t(r.shape(1));
  if (lag < 1 || size_t(lag) >= m) throw std::invalid_argument("lag must be in [1, m)");
  const size_t L = size_t(lag);
  const uint32_t mask = (uint32_t(1) << bits) - 1;
  T* p = r.mutable_data();
  const T* pm = med.data();
  py::gil_scoped_release release;
  for (size_t i = 0; i < n; ++i) {
    T* row = p + i * m;
    for (size_t j = 0; j < L; ++j) row[j] = T((uint32_t(row[j]) + pm[i]) & mask);
    for (size_t j = L; j < m; ++j) row[j] = T((uint32_t(row[j]) + row[j - L]) & mask);
  }
}

// dst (C, R) = the transpose of src (R, C), both C-contiguous, in blocks of 32 x 32 so that
// both sides stay in cache (numpy's strided copy of a uint8 transpose reads one byte per
// cache line).
template <class T>
void transpose_blocks(const T* __restrict src, T* __restrict dst, size_t R, size_t C) {
  constexpr size_t B = 32;
  for (size_t i0 = 0; i0 < R; i0 += B)
    for (size_t j0 = 0; j0 < C; j0 += B) {
      const size_t i1 = std::min(R, i0 + B), j1 = std::min(C, j0 + B);
      for (size_t j = j0; j < j1; ++j)
        for (size_t i = i0; i < i1; ++i) dst[j * R + i] = src[i * C + j];
    }
}

// The transpose of a C-contiguous (R, C) array, as a new (C, R) one.
template <class T>
py::array_t<T> transpose(const py::array_t<T, py::array::c_style>& a) {
  if (a.ndim() != 2) throw std::invalid_argument("transpose takes a 2-D array");
  const size_t R = size_t(a.shape(0)), C = size_t(a.shape(1));
  py::array_t<T> out = pool::array<T>({py::ssize_t(C), py::ssize_t(R)});
  const T* src = a.data();
  T* dst = out.mutable_data();
  py::gil_scoped_release release;
  transpose_blocks(src, dst, R, C);
  return out;
}

// Copies n bytes, n small and known only at run time, in a few word moves (overlapping
// at the end) instead of a call to memcpy: tile rows are 4-128 bytes.
inline void copy_bytes(uint8_t* d, const uint8_t* s, size_t n) {
  if (n >= 8) {
    size_t o = 0;
    for (; o + 8 <= n; o += 8) std::memcpy(d + o, s + o, 8);
    if (o < n) std::memcpy(d + n - 8, s + n - 8, 8);
  } else if (n >= 4) {
    uint32_t a, b;
    std::memcpy(&a, s, 4);
    std::memcpy(&b, s + n - 4, 4);
    std::memcpy(d, &a, 4);
    std::memcpy(d + n - 4, &b, 4);
  } else {
    for (size_t i = 0; i < n; ++i) d[i] = s[i];
  }
}

// Tiles of an (R, C) plane, h x w each, R % h == C % w == 0, as rows: tile (I, J) (row I
// of tiles, column J) is row I * (C / w) + J of the (R / h * C / w, h * w) units, its
// values row-major; to_units=false is the inverse. Both sides are C-contiguous; a band of
// tiles (I fixed) is the same h * C values on both sides, so the copies stay in cache.
template <class T>
void retile(const T* src, T* dst, size_t R, size_t C, size_t h, size_t w, bool to_units) {
  const size_t tiles = C / w, bytes = w * sizeof(T);
  for (size_t I = 0; I < R / h; ++I) {
    const T* s = src + I * h * C;
    T* d = dst + I * h * C;
    for (size_t J = 0; J < tiles; ++J)
      for (size_t i = 0; i < h; ++i) {
        const size_t plane_at = i * C + J * w, unit_at = J * h * w + i * w;
        if (to_units)
          copy_bytes(reinterpret_cast<uint8_t*>(d + unit_at), reinterpret_cast<const uint8_t*>(s + plane_at), bytes);
        else
          copy_bytes(reinterpret_cast<uint8_t*>(d + plane_at), reinterpret_cast<const uint8_t*>(s + unit_at), bytes);
      }
  }
}

// plane (R, C) -> units (R / h * C / w, h * w)
template <class T>
py::array_t<T> tiles_of(const py::array_t<T, py::array::c_style>& plane, int64_t h, int64_t w) {
  if (plane.ndim() != 2 || h < 1 || w < 1 || plane.shape(0) % h || plane.shape(1) % w)
    throw std::invalid_argument("tiles_of takes a 2-D plane whose sides are multiples of h and w");
  const size_t R = size_t(plane.shape(0)), C = size_t(plane.shape(1));
  py::array_t<T> out = pool::array<T>({py::ssize_t(R / h * (C / w)), py::ssize_t(h * w)});
  const T* src = plane.data();
  T* dst = out.mutable_data();
  py::gil_scoped_release release;
  retile(src, dst, R, C, size_t(h), size_t(w), true);
  return out;
}

// units (R / h * C / w, h * w) -> plane (R, C)
template <class T>
py::array_t<T> plane_of_tiles(const py::array_t<T, py::array::c_style>& units, int64_t R, int64_t C, int64_t h,
                              int64_t w) {
  if (units.ndim() != 2 || h < 1 || w < 1 || R < 1 || C < 1 || R % h || C % w ||
      units.shape(0) != R / h * (C / w) || units.shape(1) != h * w)
    throw std::invalid_argument("plane_of_tiles: units must be (R/h * C/w, h*w) with R % h == C % w == 0");
  py::array_t<T> out = pool::array<T>({py::ssize_t(R), py::ssize_t(C)});
  const T* src = units.data();
  T* dst = out.mutable_data();
  py::gil_scoped_release release;
  retile(src, dst, size_t(R), size_t(C), size_t(h), size_t(w), false);
  return out;
}

// The grouped tables' groups (featcodec.codecs.grouped_tables): each unit's key is its
// mode plus 4 x the bit length of v * v, v = 16 x its mean |residual| (sum * 16 // m: a
// step of the bit length is half an octave of v), shifted right until at most max_groups
// keys are distinct; the groups are the distinct keys in ascending order. Returns (the
// group of each unit (uint8), the mode of each group). Integer arithmetic only.
py::tuple unit_groups(const py::array_t<int64_t, py::array::c_style>& sums,
                      const py::array_t<uint8_t, py::array::c_style>& modes, int64_t m, int64_t max_groups) {
  if (sums.ndim() != 1 || modes.ndim() != 1 || sums.shape(0) != modes.shape(0) || m < 1 || m > (int64_t(1) << 40) ||
      max_groups < 1 || max_groups > 256)
    throw std::invalid_argument("unit_groups: sums and modes of one length, 1 <= m <= 2**40, 1 <= max_groups <= 256");
  const size_t n = size_t(sums.shape(0));
  const int64_t* ps = sums.data();
  const uint8_t* pd = modes.data();
  std::vector<uint32_t> octave2(n);
  for (size_t i = 0; i < n; ++i) {
    // a sum of m magnitudes of 16-bit residuals is at most m * 2**15: v <= 2**19
    if (ps[i] < 0 || ps[i] > (m << 15) || pd[i] > 3)
      throw std::invalid_argument("unit_groups: sums must be in [0, m * 2**15], modes in 0..3");
    const uint64_t v = uint64_t(ps[i]) * 16 / uint64_t(m), vv = v * v;
    octave2[i] = vv ? uint32_t(64 - __builtin_clzll(vv)) : 0;
  }
  std::vector<int> rank;
  std::vector<int64_t> group_modes;
  int shift = 0;
  for (;; ++shift) {
    rank.assign(4 * 64 + 4, -1);  // keys <= 4 * 39 + 3
    for (size_t i = 0; i < n; ++i) rank[(octave2[i] >> shift) * 4 + pd[i]] = 0;
    int64_t g = 0;
    group_modes.clear();
    for (size_t key = 0; key < rank.size(); ++key)
      if (rank[key] == 0) {
        rank[key] = int(g++);
        group_modes.push_back(int64_t(key & 3));
      }
    if (g <= max_groups) break;
  }
  py::array_t<uint8_t> gid{py::ssize_t(n)};
  uint8_t* pg = gid.mutable_data();
  for (size_t i = 0; i < n; ++i) pg[i] = uint8_t(rank[(octave2[i] >> shift) * 4 + pd[i]]);
  return py::make_tuple(gid, group_modes);
}

}  // namespace

void register_units(py::module_& m) {
  m.def("tiles_of", &tiles_of<uint8_t>, py::arg("plane"), py::arg("h"), py::arg("w"));
  m.def("tiles_of", &tiles_of<uint16_t>, py::arg("plane"), py::arg("h"), py::arg("w"),
        "The h x w tiles of a C-contiguous (R, C) uint8/uint16 plane as the rows of a new "
        "(R/h * C/w, h*w) array, row by row of tiles, each tile row-major (numpy: "
        "plane.reshape(R//h, h, C//w, w).transpose(0, 2, 1, 3).reshape(-1, h*w)).");
  m.def("plane_of_tiles", &plane_of_tiles<uint8_t>, py::arg("units"), py::arg("R"), py::arg("C"), py::arg("h"),
        py::arg("w"));
  m.def("plane_of_tiles", &plane_of_tiles<uint16_t>, py::arg("units"), py::arg("R"), py::arg("C"), py::arg("h"),
        py::arg("w"), "The inverse of tiles_of: the (R, C) plane of these tiles.");
  m.def("transpose", &transpose<uint8_t>, py::arg("a"));
  m.def("transpose", &transpose<uint16_t>, py::arg("a"),
        "The transpose of a C-contiguous 2-D uint8/uint16 array, as a new C-contiguous array "
        "(blocked: several times numpy's strided copy on large planes).");
  m.def("unit_residuals", &residuals<uint8_t>, py::arg("units"), py::arg("bits"), py::arg("lags"),
        py::arg("threads"));
  m.def("unit_residuals", &residuals<uint16_t>, py::arg("units"), py::arg("bits"), py::arg("lags"),
        py::arg("threads"),
        "(medians, residuals, costs, modes, median costs) of a C-contiguous (n, m) uint8/uint16 array of "
        "bits-bit indices, one unit per row: each row's (m - 1) // 2-th smallest value, its "
        "residuals mod 2**bits under its cheapest mode (0: minus the median; k: minus the "
        "value lags[k-1] places earlier, the first lags[k-1] minus the median), and that "
        "mode's sum of min(r, 2**bits - r) (the last output: mode 0's). Use featcodec.codecs.columns, which validates "
        "its arguments.");
  m.def("unit_groups", &unit_groups, py::arg("sums"), py::arg("modes"), py::arg("m"), py::arg("max_groups"),
        "(group of each unit (uint8), mode of each group) for the grouped tables: units of one mode "
        "and one half-octave of mean |residual| (sums: int64 sums of the m residual magnitudes of "
        "each unit; modes: uint8) share a group, coarser where that makes more than max_groups; "
        "groups in ascending order of (spread, mode).");
  m.def("minus_median", &minus_median<uint8_t>, py::arg("units"), py::arg("med"), py::arg("bits"));
  m.def("minus_median", &minus_median<uint16_t>, py::arg("units"), py::arg("med"), py::arg("bits"),
        "(units - med[:, None]) mod 2**bits, a new array: mode 0's residuals of every row of a "
        "C-contiguous (n, m) uint8/uint16 array, med (n,) of the same dtype.");
  m.def("undo_prediction", &undo_prediction<uint8_t>, py::arg("r").noconvert(), py::arg("med").noconvert(),
        py::arg("lag"), py::arg("bits"));
  m.def("undo_prediction", &undo_prediction<uint16_t>, py::arg("r").noconvert(), py::arg("med").noconvert(),
        py::arg("lag"), py::arg("bits"),
        "In place on a C-contiguous (n, m) uint8/uint16 array of residuals predicted lag "
        "places back: add med (n,) to the first lag values of each row, then each value lag "
        "places back, modulo 2**bits. Use featcodec.codecs.columns.");
}

}  // namespace featcodec
