// Per-unit statistics for the index codec's grouped tables (featcodec.codecs.columns):
// each row of a (n, m) uint8/uint16 array of b-bit indices is one unit (a plane column or
// a mosaic tile). For every row: its lower median (the (m - 1) / 2-th smallest value),
// the residuals (value - median) mod 2**b in the array's dtype, and the sum of the
// residuals' magnitudes read as signed (min(r, 2**b - r)). One pass per row, integer
// arithmetic only; rows are independent, so the result never depends on the thread count.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <algorithm>
#include <cstdint>
#include <stdexcept>
#include <tuple>
#include <vector>

#include "module.h"
#include "parallel.h"

namespace py = pybind11;

namespace featcodec {
namespace {

// The k-th smallest of row[0..m): counting for 8-bit rows, selection otherwise.
template <class T>
T kth(const T* row, size_t m, size_t k, std::vector<uint32_t>& hist, std::vector<T>& scratch) {
  if (sizeof(T) == 1) {
    std::fill(hist.begin(), hist.end(), 0u);
    for (size_t j = 0; j < m; ++j) ++hist[row[j]];
    size_t seen = 0;
    for (size_t v = 0; v < 256; ++v) {
      seen += hist[v];
      if (seen > k) return T(v);
    }
    return T(255);  // unreachable: k < m
  }
  scratch.assign(row, row + m);
  std::nth_element(scratch.begin(), scratch.begin() + k, scratch.end());
  return scratch[k];
}

template <class T>
py::tuple residuals(const py::array_t<T, py::array::c_style>& units, int bits, int threads) {
  if (units.ndim() != 2) throw std::invalid_argument("units must be a 2-D array");
  if (bits < 1 || bits > int(8 * sizeof(T))) throw std::invalid_argument("bits out of range for the dtype");
  const size_t n = size_t(units.shape(0)), m = size_t(units.shape(1));
  if (m == 0) throw std::invalid_argument("units must have at least one value per row");
  py::array_t<T> med{py::ssize_t(n)};
  py::array_t<T> res({py::ssize_t(n), py::ssize_t(m)});
  py::array_t<int64_t> sums{py::ssize_t(n)};
  const T* u = units.data();
  T* pm = med.mutable_data();
  T* pr = res.mutable_data();
  int64_t* ps = sums.mutable_data();
  const uint32_t mask = (uint32_t(1) << bits) - 1;
  const size_t k = (m - 1) / 2;
  {
    py::gil_scoped_release release;
    parallel_for(n, threads, std::max<size_t>(1, (size_t(1) << 16) / m), [&](size_t b, size_t e, size_t) {
      std::vector<uint32_t> hist(256);
      std::vector<T> scratch;
      for (size_t i = b; i < e; ++i) {
        const T* row = u + i * m;
        T* out = pr + i * m;
        const uint32_t md = kth(row, m, k, hist, scratch);
        int64_t s = 0;
        for (size_t j = 0; j < m; ++j) {
          const uint32_t r = (uint32_t(row[j]) - md) & mask;
          out[j] = T(r);
          s += std::min(r, (mask - r + 1) & mask);
        }
        pm[i] = T(md);
        ps[i] = s;
      }
    });
  }
  return py::make_tuple(med, res, sums);
}

}  // namespace

void register_units(py::module_& m) {
  m.def("unit_residuals", &residuals<uint8_t>, py::arg("units"), py::arg("bits"), py::arg("threads"));
  m.def("unit_residuals", &residuals<uint16_t>, py::arg("units"), py::arg("bits"), py::arg("threads"),
        "(medians, residuals, sums) of a C-contiguous (n, m) uint8/uint16 array of bits-bit "
        "indices, one unit per row: each row's (m - 1) // 2-th smallest value, (value - "
        "median) mod 2**bits, and the sum of min(r, 2**bits - r). Use "
        "featcodec.codecs.columns, which validates its arguments.");
}

}  // namespace featcodec
