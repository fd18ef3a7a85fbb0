// Python bindings of the rANS coders: zero-copy numpy input and output, the GIL released
// while coding, C++ errors translated to featcodec.FormatError / TruncatedError /
// InputError.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cmath>
#include <cstring>
#include <string_view>
#include <vector>

#include "histogram.h"
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

// The C-contiguous uint8 group ids (n,) of n units, each below `groups` (1..256).
const uint8_t* group_ids(const py::array& gid, size_t n, int64_t groups) {
  const auto* g = contiguous<uint8_t>(gid, "gid", 1);
  if (size_t(gid.shape(0)) != n) throw rans::InputError("gid must have one entry per unit");
  if (groups < 1 || groups > 256) throw rans::InputError("groups must be in [1, 256]");
  for (size_t i = 0; i < n; ++i)
    if (g[i] >= groups) throw rans::InputError("gid names a group beyond groups");
  return g;
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

// The static rANS streams of the rows of each group (gid (n,) in [0, groups)) of the
// C-contiguous (n, m) uint8/uint16 units, in row order: the rows gathered group after
// group into one buffer, then coded with encode_static_many.
std::vector<Encoded> encode_groups(const py::array& units, const py::array& gid, int64_t groups, int threads) {
  if (!(units.flags() & py::array::c_style) || units.ndim() != 2)
    throw rans::InputError("units must be a C-contiguous 2-D array");
  const size_t n = size_t(units.shape(0)), m = size_t(units.shape(1));
  const uint8_t* g = group_ids(gid, n, groups);
  const bool wide = py::isinstance<py::array_t<uint16_t>>(units);
  if (!wide && !py::isinstance<py::array_t<uint8_t>>(units)) throw rans::InputError("units must be uint8 or uint16");
  const size_t item = wide ? 2 : 1;
  py::gil_scoped_release release;
  std::vector<size_t> start(size_t(groups) + 1, 0);
  for (size_t i = 0; i < n; ++i) ++start[g[i] + 1];
  for (int64_t k = 0; k < groups; ++k) start[k + 1] += start[k];
  const pool::Buffer buf = pool::buffer(n * m * item);  // not zero-filled: all copied over
  std::vector<size_t> at(start.begin(), start.end() - 1);
  const auto* src = static_cast<const uint8_t*>(units.data());
  for (size_t i = 0; i < n; ++i) std::memcpy(buf.get() + (at[g[i]]++) * m * item, src + i * m * item, m * item);
  std::vector<uint64_t> count(static_cast<size_t>(groups));
  std::vector<const uint8_t*> p8(static_cast<size_t>(groups));
  std::vector<const uint16_t*> p16(static_cast<size_t>(groups));
  for (int64_t k = 0; k < groups; ++k) {
    const uint8_t* p = buf.get() + start[k] * m * item;
    count[k] = uint64_t(start[k + 1] - start[k]) * m;
    p8[k] = p;
    p16[k] = reinterpret_cast<const uint16_t*>(p);
  }
  return wide ? rans::encode_static_many16(p16, count, threads_arg(threads))
              : rans::encode_static_many8(p8, count, threads_arg(threads));
}

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
      "rans_scale_indexes",
      [](const py::array& scales, const py::array& thresholds) {
        const auto* s = contiguous<int64_t>(scales, "scales", 1);
        const auto* t = contiguous<int64_t>(thresholds, "thresholds", 1);
        const size_t n = size_t(scales.shape(0)), m = size_t(thresholds.shape(0));
        for (size_t i = 1; i < m; ++i)
          if (t[i] < t[i - 1]) throw rans::InputError("thresholds must be ascending");
        py::array_t<int32_t> out(static_cast<py::ssize_t>(n));
        int32_t* o = out.mutable_data();
        {
          py::gil_scoped_release release;
          for (size_t i = 0; i < n; ++i) {
            const int64_t v = s[i];
            size_t lo = 0, len = m;  // binary search down to 16 thresholds ...
            while (len > 16) {
              const size_t half = len / 2;
              const bool below = t[lo + half] < v;
              lo = below ? lo + half + 1 : lo;
              len = below ? len - half - 1 : half;
            }
            int32_t c = 0;  // ... then a count the compiler vectorises
            for (size_t j = 0; j < len; ++j) c += t[lo + j] < v;
            o[i] = int32_t(lo) + c;
          }
        }
        return out;
      },
      py::arg("scales"), py::arg("thresholds"),
      "For C-contiguous int64 scales (n,) and ascending int64 thresholds (m,): the number of "
      "thresholds strictly below each scale (numpy's searchsorted(thresholds, scales, 'left')), "
      "as int32: the learned codecs' Gaussian table choice by integer comparison.");

  m.def(
      "group_information",
      [](const py::array& units, const py::array& gid, int64_t groups) {
        if (units.ndim() != 2) throw rans::InputError("units must be a C-contiguous 2-D array");
        const bool wide = py::isinstance<py::array_t<uint16_t>>(units);
        const size_t n = size_t(units.shape(0)), m = size_t(units.shape(1));
        const uint8_t* g = group_ids(gid, n, groups);
        py::array_t<double> out(static_cast<py::ssize_t>(groups));
        py::array_t<int64_t> distinct(static_cast<py::ssize_t>(groups)), bound(static_cast<py::ssize_t>(groups));
        double* o = out.mutable_data();
        int64_t *d = distinct.mutable_data(), *lb = bound.mutable_data();
        // o[k]: the sum over group k's symbols of -log2(frequency), d[k]: how many distinct
        // symbols it has, lb[k]: rans::static_size_bound of them, from its histogram h of
        // `size` (`stride` interleaved copies)
        const auto information = [o, d, lb](int64_t k, const auto* h, size_t size, size_t stride) {
          uint64_t total = 0, present = 0;
          double sum = 0.0;
          for (size_t a = 0; a < size; ++a) {
            uint64_t c = 0;
            for (size_t r = 0; r < stride; ++r) c += h[r * size + a];
            if (c) {
              total += c;
              ++present;
              sum += double(c) * std::log2(double(c));
            }
          }
          o[k] = total ? double(total) * std::log2(double(total)) - sum : 0.0;
          d[k] = int64_t(present);
          lb[k] = rans::static_size_bound(o[k], present, total);
        };
        if (wide) {
          const auto* u = contiguous<uint16_t>(units, "units", 2);
          py::gil_scoped_release release;
          // per group four interleaved histograms (as for bytes) as wide as the largest
          // symbol needs, or one where four would not stay small (wide alphabets, many groups)
          uint16_t top = 0;
          for (size_t i = 0; i < n * m; ++i) top = std::max(top, u[i]);
          const size_t size = size_t(top) + 1;
          const size_t ways = size_t(groups) * size * 4 <= (size_t(1) << 20) ? 4 : 1;
          std::vector<uint32_t> hist(size_t(groups) * size * ways, 0);  // n * m < 2**31 values
          for (size_t i = 0; i < n; ++i) {
            uint32_t* h = hist.data() + size_t(g[i]) * size * ways;
            if (ways == 4) {
              count_values4(u + i * m, m, size, h);
            } else {
              for (size_t j = 0; j < m; ++j) ++h[u[i * m + j]];
            }
          }
          for (int64_t k = 0; k < groups; ++k) information(k, hist.data() + size_t(k) * size * ways, size, ways);
        } else {
          const auto* u = contiguous<uint8_t>(units, "units", 2);
          py::gil_scoped_release release;
          // four interleaved histograms per group: runs of one symbol would otherwise wait
          // on each increment's store
          std::vector<uint64_t> hist(size_t(groups) * 1024, 0);
          for (size_t i = 0; i < n; ++i) {
            uint64_t* h = hist.data() + size_t(g[i]) * 1024;
            count_bytes4(u + i * m, m, h);
          }
          for (int64_t k = 0; k < groups; ++k) information(k, hist.data() + size_t(k) * 1024, 256, 4);
        }
        return py::make_tuple(out, distinct, bound);
      },
      py::arg("units"), py::arg("gid"), py::arg("groups"),
      "(information, distinct, bound) of the rows of the C-contiguous (n, m) uint8 or uint16 "
      "units whose gid (n,) is k, for k in range(groups): the empirical information (bits: the "
      "sum of -log2 of each symbol's frequency in its group; no static-table coder spends less "
      "on the group's symbols), the number of distinct symbols, and a lower bound on the bytes "
      "rans_encode_static writes for the group (its information, and the least its table and "
      "framing take).");

  m.def(
      "rans_grouped_payload",
      [](const py::array& units, const py::array& gid, int64_t groups, const py::bytes& head,
         const std::vector<py::bytes>& first, int threads) {
        const std::vector<Encoded> enc = encode_groups(units, gid, groups, threads);
        std::vector<std::string_view> lead;
        for (const auto& b : first) lead.emplace_back(b);
        const std::string_view h(head);
        size_t total = h.size() + 4 * (lead.size() + enc.size());
        const auto u32 = [](size_t v) {
          if (v > 0xFFFFFFFFu) throw rans::InputError("a grouped payload's part exceeds 4 GiB");
          return uint32_t(v);
        };
        for (const auto& b : lead) total += u32(b.size());
        for (const auto& e : enc) total += u32(e.size());
        PyObject* obj = PyBytes_FromStringAndSize(nullptr, Py_ssize_t(total));
        if (!obj) throw py::error_already_set();
        py::bytes out = py::reinterpret_steal<py::bytes>(obj);
        uint8_t* p = reinterpret_cast<uint8_t*>(PyBytes_AS_STRING(obj));
        {
          py::gil_scoped_release release;
          std::memcpy(p, h.data(), h.size());
          p += h.size();
          for (const auto& b : lead) rans::store_le32(p, uint32_t(b.size())), p += 4;
          for (const auto& e : enc) rans::store_le32(p, uint32_t(e.size())), p += 4;
          for (const auto& b : lead) std::memcpy(p, b.data(), b.size()), p += b.size();
          for (const auto& e : enc) e.write_to(p), p += e.size();
        }
        return out;
      },
      py::arg("units"), py::arg("gid"), py::arg("groups"), py::arg("head"), py::arg("first"),
      py::arg("threads") = 1,
      "The grouped tables' payload as one bytes object: head, the u32 little-endian lengths of "
      "the parts, then the parts: first (bytes each), then for k in range(groups) the bytes "
      "rans_encode_static gives the rows of the C-contiguous (n, m) uint8/uint16 units whose "
      "gid (n,) is k, in row order.");

  m.def(
      "rans_decode_static",
      [](const py::buffer& data, uint64_t count, int threads, py::object out) -> py::array {
        ByteView v = byte_view(data);
        uint64_t stored = 0;
        const int bits = rans::static_alphabet_bits(v.ptr, v.size, &stored);
        if (stored != count)  // checked before allocating the output
          throw rans::FormatError("rANS stream holds " + std::to_string(stored) +
                                  " symbols, " + std::to_string(count) + " were asked for");
        py::array dst;
        if (out.is_none()) {
          if (bits == 8)
            dst = pool::array<uint8_t>({py::ssize_t(count)});
          else
            dst = pool::array<uint16_t>({py::ssize_t(count)});
        } else {
          dst = py::reinterpret_borrow<py::array>(out);
          const bool ok = bits == 8 ? py::isinstance<py::array_t<uint8_t>>(dst)
                                    : py::isinstance<py::array_t<uint16_t>>(dst);
          if (!ok || uint64_t(dst.size()) != count || !(dst.flags() & py::array::c_style) ||
              !dst.writeable())
            throw rans::InputError("out must be a writeable C-contiguous uint" +
                                   std::to_string(bits) + " array of " +
                                   std::to_string(count) + " elements");
        }
        void* o = dst.mutable_data();
        {
          py::gil_scoped_release release;
          if (bits == 8)
            rans::decode_static8(v.ptr, v.size, static_cast<uint8_t*>(o), count,
                                 threads_arg(threads));
          else
            rans::decode_static16(v.ptr, v.size, static_cast<uint16_t*>(o), count,
                                  threads_arg(threads));
        }
        return dst;
      },
      py::arg("data"), py::arg("count"), py::arg("threads") = 1, py::arg("out") = py::none(),
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
