// Unsigned LEB128 varints of whole arrays, for featcodec.stream.varints: the outlier
// positions and the packed transform levels. Values lie in [0, 2**35), so a varint has at
// most 5 bytes; the reader takes minimal encodings only, so every array has one byte
// string. (A Python loop or a dozen numpy passes cost 50-80 us on the 256 levels of an
// 8-bit transform; this is a pass over the bytes.)
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <stdexcept>
#include <string>

#include "module.h"
#include "varint.h"

namespace py = pybind11;

namespace featcodec {
namespace {

py::bytes varints_encode(py::array_t<int64_t, py::array::c_style | py::array::forcecast> values) {
  const int64_t* v = values.data();
  const int64_t n = values.size();
  std::string out;
  out.reserve(static_cast<size_t>(n) * 2);
  for (int64_t i = 0; i < n; ++i) {
    if (v[i] < 0 || v[i] >= varint::kLimit) throw std::invalid_argument("varints hold integers in [0, 2**35).");
    varint::put(out, v[i]);
  }
  return py::bytes(out);
}

// The `count` values of `raw`, or None when raw is not exactly `count` minimal varints of
// at most 5 bytes.
py::object varints_decode(py::buffer raw, int64_t count) {
  const py::buffer_info info = raw.request();
  if (info.ndim > 1 || count < 0) throw std::invalid_argument("varints_decode: 1-D bytes and count >= 0");
  const auto* b = static_cast<const uint8_t*>(info.ptr);
  const int64_t size = info.size * info.itemsize;
  if (size > varint::kMaxBytes * count || size < count) return py::none();
  py::array_t<int64_t> out(count);
  int64_t* o = out.mutable_data();
  int64_t pos = 0;
  for (int64_t i = 0; i < count; ++i)
    if (!varint::get(b, size, pos, o[i])) return py::none();
  if (pos != size) return py::none();
  return std::move(out);
}

}  // namespace

void register_varints(py::module_& m) {
  m.def("varints_encode", &varints_encode, py::arg("values"),
        "The unsigned LEB128 varints of the integers `values` (each in [0, 2**35)), in order.");
  m.def("varints_decode", &varints_decode, py::arg("raw"), py::arg("count"),
        "The `count` integers (int64) that varints_encode wrote as exactly `raw`; None when raw "
        "is not that (another number of varints, one cut off, longer than 5 bytes, not minimal).");
}

}  // namespace featcodec
