// Python bindings of the rANS coders: zero-copy numpy input and output, the GIL released
// while coding, C++ errors translated to featcodec.FormatError / TruncatedError /
// InputError.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include "module.h"
#include "rans.h"

namespace py = pybind11;

namespace featcodec {
namespace {

using rans::CdfTables;
using rans::Encoded;

py::bytes to_bytes(const Encoded& enc) {
  const size_t size = enc.size();
  PyObject* obj = PyBytes_FromStringAndSize(nullptr, Py_ssize_t(size));
  if (!obj) throw py::error_already_set();
  py::bytes out = py::reinterpret_steal<py::bytes>(obj);
  {
    py::gil_scoped_release release;
    enc.write_to(reinterpret_cast<uint8_t*>(PyBytes_AS_STRING(obj)));
  }
  return out;
}

struct ByteView {
  py::buffer_info info;
  const uint8_t* ptr;
  size_t size;
};

ByteView byte_view(const py::buffer& b) {
  py::buffer_info info = b.request();
  if (info.ndim > 1 && !PyBuffer_IsContiguous(nullptr, 'C'))
    throw rans::InputError("rANS data must be a contiguous bytes-like object");
  const size_t size = size_t(info.size) * size_t(info.itemsize);
  const auto* ptr = static_cast<const uint8_t*>(info.ptr);
  return ByteView{std::move(info), ptr, size};
}

template <class T>
const T* contiguous(const py::array& a, const char* name, int ndim) {
  if (!py::isinstance<py::array_t<T>>(a) || a.ndim() != ndim ||
      !(a.flags() & py::array::c_style))
    throw rans::InputError(std::string(name) + " must be a C-contiguous " +
                           std::to_string(ndim) + "-D array of " +
                           py::str(py::dtype::of<T>()).cast<std::string>());
  return static_cast<const T*>(a.data());
}

CdfTables tables(const py::array& cdfs, const py::array& lengths, const py::array& offsets) {
  CdfTables t;
  t.cdfs = contiguous<int32_t>(cdfs, "cdfs", 2);
  t.lengths = contiguous<int32_t>(lengths, "cdf_lengths", 1);
  t.offsets = contiguous<int32_t>(offsets, "offsets", 1);
  t.num_tables = cdfs.shape(0);
  t.stride = cdfs.shape(1);
  if (lengths.shape(0) != t.num_tables || offsets.shape(0) != t.num_tables)
    throw rans::InputError("cdfs, cdf_lengths and offsets must have one entry per table");
  return t;
}

// A stream being decoded piece by piece; owns a reference to its bytes.
class IndexedStream {
 public:
  explicit IndexedStream(const py::bytes& data)
      : data_(data),
        dec_(reinterpret_cast<const uint8_t*>(PyBytes_AS_STRING(data_.ptr())),
             size_t(PyBytes_GET_SIZE(data_.ptr()))) {}
  py::array decode(const py::array& indexes, const py::array& cdfs, const py::array& lengths,
                   const py::array& offsets) {
    const int32_t* ix = contiguous<int32_t>(indexes, "indexes", 1);
    const CdfTables t = tables(cdfs, lengths, offsets);
    const uint64_t n = uint64_t(indexes.shape(0));
    py::array_t<int32_t> out{py::ssize_t(n)};
    int32_t* o = out.mutable_data();
    {
      py::gil_scoped_release release;
      dec_.decode(ix, n, t, o);
    }
    return std::move(out);
  }
  void finish() const { dec_.finish(); }

 private:
  py::bytes data_;
  rans::IndexedDecoder dec_;
};

int threads_arg(int threads) { return threads < 1 ? 1 : threads; }

}  // namespace

void register_rans(py::module_& m) {
  py::register_exception_translator([](std::exception_ptr p) {
    auto errors = [] { return py::module_::import("featcodec.errors"); };
    try {
      if (p) std::rethrow_exception(p);
    } catch (const rans::TruncatedError& e) {
      PyErr_SetString(errors().attr("TruncatedError").ptr(), e.what());
    } catch (const rans::FormatError& e) {
      PyErr_SetString(errors().attr("FormatError").ptr(), e.what());
    } catch (const rans::InputError& e) {
      PyErr_SetString(errors().attr("InputError").ptr(), e.what());
    }
  });

  m.def(
      "rans_encode_static",
      [](const py::array& symbols, int threads) {
        if (!(symbols.flags() & py::array::c_style))
          throw rans::InputError("symbols must be C-contiguous");
        const uint64_t n = uint64_t(symbols.size());
        Encoded enc;
        if (py::isinstance<py::array_t<uint8_t>>(symbols)) {
          const auto* s = static_cast<const uint8_t*>(symbols.data());
          py::gil_scoped_release release;
          enc = rans::encode_static8(s, n, threads_arg(threads));
        } else if (py::isinstance<py::array_t<uint16_t>>(symbols)) {
          const auto* s = static_cast<const uint16_t*>(symbols.data());
          py::gil_scoped_release release;
          enc = rans::encode_static16(s, n, threads_arg(threads));
        } else {
          throw rans::InputError("symbols must be uint8 or uint16");
        }
        return to_bytes(enc);
      },
      py::arg("symbols"), py::arg("threads") = 1,
      "Static-model rANS: encode a C-contiguous uint8/uint16 array (table inside).");

  m.def(
      "rans_decode_static",
      [](const py::buffer& data, uint64_t count, int threads) -> py::array {
        ByteView v = byte_view(data);
        uint64_t stored = 0;
        const int bits = rans::static_alphabet_bits(v.ptr, v.size, &stored);
        if (stored != count)  // checked before allocating the output
          throw rans::FormatError("rANS stream holds " + std::to_string(stored) +
                                  " symbols, " + std::to_string(count) + " were asked for");
        if (bits == 8) {
          py::array_t<uint8_t> out{py::ssize_t(count)};
          uint8_t* o = out.mutable_data();
          {
            py::gil_scoped_release release;
            rans::decode_static8(v.ptr, v.size, o, count, threads_arg(threads));
          }
          return std::move(out);
        }
        py::array_t<uint16_t> out{py::ssize_t(count)};
        uint16_t* o = out.mutable_data();
        {
          py::gil_scoped_release release;
          rans::decode_static16(v.ptr, v.size, o, count, threads_arg(threads));
        }
        return std::move(out);
      },
      py::arg("data"), py::arg("count"), py::arg("threads") = 1,
      "Static-model rANS: decode `count` symbols (uint8 or uint16, as encoded).");

  m.def(
      "rans_encode_indexed",
      [](const py::array& symbols, const py::array& indexes, const py::array& cdfs,
         const py::array& lengths, const py::array& offsets) {
        const int32_t* s = contiguous<int32_t>(symbols, "symbols", 1);
        const int32_t* ix = contiguous<int32_t>(indexes, "indexes", 1);
        if (symbols.shape(0) != indexes.shape(0))
          throw rans::InputError("symbols and indexes must have the same length");
        const CdfTables t = tables(cdfs, lengths, offsets);
        const uint64_t n = uint64_t(symbols.shape(0));
        Encoded enc;
        {
          py::gil_scoped_release release;
          enc = rans::encode_indexed(s, ix, n, t);
        }
        return to_bytes(enc);
      },
      py::arg("symbols"), py::arg("indexes"), py::arg("cdfs"), py::arg("cdf_lengths"),
      py::arg("offsets"), "Indexed-CDF rANS encode (CompressAI semantics, precision 16).");

  m.def(
      "rans_decode_indexed",
      [](const py::buffer& data, const py::array& indexes, const py::array& cdfs,
         const py::array& lengths, const py::array& offsets) {
        ByteView v = byte_view(data);
        const int32_t* ix = contiguous<int32_t>(indexes, "indexes", 1);
        const CdfTables t = tables(cdfs, lengths, offsets);
        const uint64_t n = uint64_t(indexes.shape(0));
        py::array_t<int32_t> out{py::ssize_t(n)};
        int32_t* o = out.mutable_data();
        {
          py::gil_scoped_release release;
          rans::decode_indexed(v.ptr, v.size, ix, n, t, o);
        }
        return out;
      },
      py::arg("data"), py::arg("indexes"), py::arg("cdfs"), py::arg("cdf_lengths"),
      py::arg("offsets"), "Indexed-CDF rANS decode (CompressAI semantics, precision 16).");

  py::class_<IndexedStream>(m, "RansIndexedStream",
                            "An indexed-CDF rANS stream decoded piece by piece.")
      .def(py::init<const py::bytes&>(), py::arg("data"))
      .def("decode", &IndexedStream::decode, py::arg("indexes"), py::arg("cdfs"),
           py::arg("cdf_lengths"), py::arg("offsets"),
           "Decode the next len(indexes) symbols.")
      .def("finish", &IndexedStream::finish,
           "Check that the stream was consumed exactly and ended in the initial states.");
}

}  // namespace featcodec
