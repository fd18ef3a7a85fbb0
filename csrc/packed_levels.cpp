// Packed transform levels (format version 10, docs/format.md), for
// featcodec.stages.value_transform and featcodec.transform.lloydmax.round_levels:
// - round_levels: the fit's levels as float32 with the fewest mantissa bits that keep each
//   within 1/256 of its gap to the nearest level (integer exponents only: every platform
//   rounds alike);
// - pack_levels / unpack_levels: each level's float32 bits as a key that ascends with the
//   value, the low mantissa bits that are zero in every level dropped; each row as its
//   first key, its first step to the next key (less one), then each step's change from
//   the step before (zigzag), in LEB128 varints. The fitted levels' steps change slowly,
//   so most changes take one byte.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "module.h"
#include "varint.h"

namespace py = pybind11;

namespace featcodec {
namespace {

inline uint32_t bits_of(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

inline float float_of(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// the binary exponent e of x = m 2**e, 0.5 <= |m| < 1 (x finite, not 0)
inline int exponent(double x) {
  int e;
  std::frexp(x, &e);
  return e;
}

py::array_t<double> round_levels(py::array_t<double, py::array::c_style | py::array::forcecast> levels) {
  const int64_t n = levels.size();
  const double* in = levels.data();
  std::vector<float> lv(n);
  std::vector<double> l64(n);
  for (int64_t i = 0; i < n; ++i) {
    lv[i] = static_cast<float>(in[i]);
    l64[i] = lv[i];
  }
  py::array_t<double> out(n);
  double* o = out.mutable_data();
  std::copy(l64.begin(), l64.end(), o);
  if (n < 2) return out;
  for (int64_t i = 0; i + 1 < n; ++i)
    if (!(l64[i + 1] - l64[i] > 0)) return out;  // not ascending (or not finite): as they are
  // |v| < 2**E moves by at most 2**(E - 2 - m) at m mantissa bits; the gap is >= 2**(G - 1)
  int need = -64;
  for (int64_t i = 0; i < n; ++i) {
    if (lv[i] == 0.0f) continue;  // zero stays zero
    const double left = i > 0 ? l64[i] - l64[i - 1] : l64[1] - l64[0];
    const double right = i + 1 < n ? l64[i + 1] - l64[i] : l64[n - 1] - l64[n - 2];
    need = std::max(need, exponent(l64[i]) - exponent(std::min(left, right)));
  }
  const int shift = 23 - std::min(std::max(need + 7, 0), 23);
  if (shift == 0) return out;
  std::vector<float> r(n);
  for (int64_t i = 0; i < n; ++i) {
    const uint32_t u = bits_of(lv[i]);
    const uint32_t mag = (((u & 0x7FFFFFFFu) + (1u << (shift - 1))) >> shift) << shift;
    r[i] = float_of((u & 0x80000000u) | mag);
    if (!std::isfinite(r[i]) || (i > 0 && !(r[i] > r[i - 1]))) return out;
  }
  for (int64_t i = 0; i < n; ++i) o[i] = r[i];
  return out;
}

// signed -> unsigned varint value and back: 0, -1, 1, -2, ... -> 0, 1, 2, 3, ...
inline int64_t zigzag(int64_t v) { return v >= 0 ? 2 * v : -2 * v - 1; }
inline int64_t unzigzag(int64_t z) { return z & 1 ? -(z >> 1) - 1 : z >> 1; }

// the key of float32 bits u: ascends with the value (-0.0 just below +0.0)
inline uint32_t key_of(uint32_t u) { return (u >> 31) ? 0xFFFFFFFFu - u : (u | 0x80000000u); }

py::tuple pack_levels(py::array_t<float, py::array::c_style | py::array::forcecast> levels) {
  if (levels.ndim() < 1 || levels.ndim() > 2 || levels.size() == 0)
    throw std::invalid_argument("pack_levels: levels must be a non-empty row or rows");
  const int64_t count = levels.shape(levels.ndim() - 1), n = levels.size();
  const float* lv = levels.data();
  int shift = 23;
  for (int64_t i = 0; i < n; ++i) {
    const uint32_t mant = bits_of(lv[i]) & 0x7FFFFFu;
    if (mant != 0) shift = std::min(shift, __builtin_ctz(mant));
  }
  std::string out;
  out.reserve(static_cast<size_t>(n) * 2);
  int64_t prev = 0, step = 0;  // the row's last key and the last step between keys
  for (int64_t i = 0; i < n; ++i) {
    const int64_t q = static_cast<int64_t>(key_of(bits_of(lv[i])) >> shift), at = i % count;
    if (at == 0) {
      varint::put(out, q);  // a row's first key
    } else if (q <= prev) {
      throw std::invalid_argument("pack_levels: levels must ascend strictly in each row");
    } else if (at == 1) {
      varint::put(out, q - prev - 1);  // its first step, less one
    } else {
      varint::put(out, zigzag((q - prev) - step));  // then each step's change
    }
    step = q - prev;
    prev = q;
  }
  return py::make_tuple(shift, py::bytes(out));
}

// The (rows, count) float32 levels of a packed section, or None when raw is not exactly
// rows * count minimal varints whose keys ascend strictly and stay below 2**(32 - shift).
py::object unpack_levels(py::buffer raw, int shift, int64_t rows, int64_t count) {
  const py::buffer_info info = raw.request();
  if (info.ndim > 1 || shift < 0 || shift > 23 || rows < 1 || count < 1)
    throw std::invalid_argument("unpack_levels: 1-D bytes, 0 <= shift <= 23, rows and count >= 1");
  const auto* b = static_cast<const uint8_t*>(info.ptr);
  const int64_t size = info.size * info.itemsize;
  if (size < rows * count || size > varint::kMaxBytes * rows * count) return py::none();
  py::array_t<float> out({rows, count});
  float* o = out.mutable_data();
  const int64_t limit = int64_t{1} << (32 - shift);
  int64_t pos = 0;
  for (int64_t r = 0; r < rows; ++r) {
    int64_t q = 0, step = 0;
    for (int64_t i = 0; i < count; ++i) {
      int64_t v;
      if (!varint::get(b, size, pos, v)) return py::none();
      // the last step is below 2**32 (checked), |unzigzag(v)| below 2**34: no overflow
      step = i == 0 ? 0 : i == 1 ? v + 1 : step + unzigzag(v);
      q = i == 0 ? v : q + step;
      if (step < (i == 0 ? 0 : 1) || q >= limit) return py::none();  // ascending, within 32 bits
      uint32_t key = static_cast<uint32_t>(q << shift);
      if (key < 0x80000000u) key |= (1u << shift) - 1;  // a negative value's dropped bits were ones
      o[r * count + i] = float_of(key < 0x80000000u ? 0xFFFFFFFFu - key : key ^ 0x80000000u);
    }
  }
  if (pos != size) return py::none();
  return std::move(out);
}

}  // namespace

void register_packed_levels(py::module_& m) {
  m.def("round_levels", &round_levels, py::arg("levels"),
        "Ascending levels as float32 (returned as float64) with the fewest mantissa bits that keep "
        "each within 1/256 of its gap to the nearest level; unchanged if rounding would not keep "
        "them finite and strictly ascending.");
  m.def("pack_levels", &pack_levels, py::arg("levels"),
        "(shift, bytes): the packed levels section (format version 10) of strictly ascending "
        "float32 levels, one row or rows.");
  m.def("unpack_levels", &unpack_levels, py::arg("raw"), py::arg("shift"), py::arg("rows"), py::arg("count"),
        "The (rows, count) float32 levels of a packed section; None when raw is not one.");
}

}  // namespace featcodec
