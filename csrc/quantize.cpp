// Interval quantization (value -> index of its interval among sorted thresholds) and its
// inverse lookup (index -> level), for featcodec.kernels.
//
// Forward: every input element becomes a monotone uint32 key (quant_math.h). A table
// indexed by the key's top B bits gives the number of thresholds in lower buckets; a short
// fixed-length finish counts the thresholds of the element's own bucket that are <= key.
// The finish length K is the largest bucket occupancy, known when the table is built, so
// there is no data-dependent branch, and the result is exactly np.searchsorted(side="right")
// for every input. 16-bit inputs (float16/bfloat16) on large arrays use a complete
// 65536-entry bits -> index table instead.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstring>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include "module.h"
#include "parallel.h"
#include "quant_math.h"
#include "strided.h"

namespace py = pybind11;

namespace featcodec {
namespace {

// ---------------------------------------------------------------------------------------
// Input element readers: load one element, return its float32 key and a non-finite flag.

struct InF32 {
  static constexpr size_t size = 4;
  static inline uint32_t key(const char* p, uint32_t& bad) {
    uint32_t u;
    std::memcpy(&u, p, 4);
    bad |= static_cast<uint32_t>((u & 0x7FFFFFFFu) >= qm::kF32ExpMask);
    return qm::f32_key(u);
  }
};
struct InF16 {
  static constexpr size_t size = 2;
  static inline uint32_t key(const char* p, uint32_t& bad) {
    uint16_t h;
    std::memcpy(&h, p, 2);
    bad |= static_cast<uint32_t>(qm::f16_bits_nonfinite(h));
    return qm::f32_key(qm::f16_to_f32_bits(h));
  }
};
struct InBF16 {
  static constexpr size_t size = 2;
  static inline uint32_t key(const char* p, uint32_t& bad) {
    uint16_t b;
    std::memcpy(&b, p, 2);
    bad |= static_cast<uint32_t>(qm::bf16_bits_nonfinite(b));
    return qm::f32_key(qm::bf16_to_f32_bits(b));
  }
};
struct InF64 {
  static constexpr size_t size = 8;
  static inline uint32_t key(const char* p, uint32_t& bad) {
    uint64_t d;
    std::memcpy(&d, p, 8);
    bad |= static_cast<uint32_t>((d & 0x7FF0000000000000ull) == 0x7FF0000000000000ull);
    return qm::f32_key(qm::f64_floor_to_f32_bits(d));
  }
};

// ---------------------------------------------------------------------------------------
// The lookup plan: per channel, sorted threshold keys (padded with sentinels) and a table
// of first-candidate counts indexed by key >> shift.

template <class TableT>
struct Plan {
  uint32_t C = 1, T = 0;
  uint32_t bits = 8, shift = 24;  // table has 2^bits entries, index = key >> shift
  uint32_t K = 0;                 // largest bucket occupancy over all channels
  size_t kstride = 0, tsize = 0;  // per-channel strides of keys and table
  std::vector<uint32_t> keys;
  std::vector<TableT> table;

  // thr: (C, T) float32, C-contiguous and validated (finite, ascending) by the caller.
  Plan(const float* thr, uint32_t C_, uint32_t T_, uint32_t bits_, int threads)
      : C(C_), T(T_), bits(bits_), shift(32 - bits_) {
    tsize = size_t{1} << bits;
    // Occupancy is not known before building; pad for the worst case (a whole channel).
    kstride = static_cast<size_t>(T) + T + 1;
    keys.assign(static_cast<size_t>(C) * kstride, qm::kKeySentinel);
    table.assign(static_cast<size_t>(C) * tsize, 0);
    std::vector<uint32_t> occ(C, 0);
    parallel_for(C, threads, 16, [&](size_t lo, size_t hi, size_t) {
      for (size_t c = lo; c < hi; ++c) occ[c] = build_channel(thr + c * T, c);
    });
    for (uint32_t o : occ) K = o > K ? o : K;
  }

  uint32_t build_channel(const float* t, size_t c) {
    uint32_t* kc = keys.data() + c * kstride;
    for (uint32_t j = 0; j < T; ++j) {
      uint32_t u;
      std::memcpy(&u, t + j, 4);
      kc[j] = qm::f32_key(u);
    }
    TableT* tc = table.data() + c * tsize;
    uint32_t j = 0, occ = 0;
    for (size_t h = 0; h < tsize; ++h) {
      while (j < T && (kc[j] >> shift) < h) ++j;
      tc[h] = static_cast<TableT>(j);
      uint32_t e = j;
      while (e < T && (kc[e] >> shift) == h) ++e;
      if (e - j > occ) occ = e - j;
    }
    return occ;
  }
};

// Count of channel thresholds <= k: table start, then a finish over K candidates.
template <class TableT, int K>
struct Finish {
  static inline uint32_t count(const TableT* tab, const uint32_t* keys, uint32_t shift,
                               uint32_t /*Kdyn*/, uint32_t k) {
    const uint32_t b = tab[k >> shift];
    uint32_t r = b;
    for (int j = 0; j < K; ++j) r += static_cast<uint32_t>(keys[b + j] <= k);
    return r;
  }
};
template <class TableT>
struct Finish<TableT, -1> {  // many thresholds share a bucket: branchless binary search
  static inline uint32_t count(const TableT* tab, const uint32_t* keys, uint32_t shift,
                               uint32_t Kdyn, uint32_t k) {
    const uint32_t b = tab[k >> shift];
    return b + qm::count_le(keys + b, Kdyn, k);
  }
};

template <class In, class Out, class TableT, int K>
uint32_t run_table(const char* in, ptrdiff_t is, char* out, ptrdiff_t os, size_t n,
                   const Plan<TableT>& p, size_t c0, size_t cstep) {
  uint32_t bad = 0;
  const uint32_t shift = p.shift, Kd = p.K;
  if (cstep == 0) {
    const TableT* tab = p.table.data() + c0 * p.tsize;
    const uint32_t* keys = p.keys.data() + c0 * p.kstride;
    if (is == static_cast<ptrdiff_t>(In::size) && os == static_cast<ptrdiff_t>(sizeof(Out))) {
      Out* o = reinterpret_cast<Out*>(out);
      for (size_t i = 0; i < n; ++i) {
        const uint32_t k = In::key(in + i * is, bad);
        o[i] = static_cast<Out>(Finish<TableT, K>::count(tab, keys, shift, Kd, k));
      }
    } else {
      for (size_t i = 0; i < n; ++i) {
        const uint32_t k = In::key(in + static_cast<ptrdiff_t>(i) * is, bad);
        const Out v = static_cast<Out>(Finish<TableT, K>::count(tab, keys, shift, Kd, k));
        std::memcpy(out + static_cast<ptrdiff_t>(i) * os, &v, sizeof(Out));
      }
    }
  } else {  // the channel advances with the element
    for (size_t i = 0; i < n; ++i) {
      const size_t c = c0 + i;
      const uint32_t k = In::key(in + static_cast<ptrdiff_t>(i) * is, bad);
      const Out v = static_cast<Out>(Finish<TableT, K>::count(
          p.table.data() + c * p.tsize, p.keys.data() + c * p.kstride, shift, Kd, k));
      std::memcpy(out + static_cast<ptrdiff_t>(i) * os, &v, sizeof(Out));
    }
  }
  return bad;
}

// Complete bits -> index table for 16-bit inputs (single channel).
template <class Out>
uint32_t run_lut16(const char* in, ptrdiff_t is, char* out, ptrdiff_t os, size_t n,
                   const Out* lut, bool bf16) {
  uint32_t bad = 0;
  const uint16_t expmask = bf16 ? 0x7F80u : 0x7C00u;
  if (is == 2 && os == static_cast<ptrdiff_t>(sizeof(Out))) {
    const uint16_t* x = reinterpret_cast<const uint16_t*>(in);
    Out* o = reinterpret_cast<Out*>(out);
    for (size_t i = 0; i < n; ++i) {
      const uint16_t h = x[i];
      bad |= static_cast<uint32_t>((h & expmask) == expmask);
      o[i] = lut[h];
    }
  } else {
    for (size_t i = 0; i < n; ++i) {
      uint16_t h;
      std::memcpy(&h, in + static_cast<ptrdiff_t>(i) * is, 2);
      bad |= static_cast<uint32_t>((h & expmask) == expmask);
      std::memcpy(out + static_cast<ptrdiff_t>(i) * os, &lut[h], sizeof(Out));
    }
  }
  return bad;
}

// ---------------------------------------------------------------------------------------
// Array plumbing.

std::vector<ptrdiff_t> shape_of(const py::array& a) {
  return std::vector<ptrdiff_t>(a.shape(), a.shape() + a.ndim());
}
std::vector<ptrdiff_t> strides_of(const py::array& a) {
  return std::vector<ptrdiff_t>(a.strides(), a.strides() + a.ndim());
}

enum class Kind { F32, F16, BF16, F64 };

Kind parse_kind(const std::string& s) {
  if (s == "float32") return Kind::F32;
  if (s == "float16") return Kind::F16;
  if (s == "bfloat16") return Kind::BF16;
  if (s == "float64") return Kind::F64;
  throw std::invalid_argument("unknown input kind " + s);
}

// First flat index in [first, first + n) of a non-finite element of a run (error path only).
template <class In>
size_t find_bad(const char* in, ptrdiff_t is, size_t n, size_t first) {
  for (size_t i = 0; i < n; ++i) {
    uint32_t bad = 0;
    In::key(in + static_cast<ptrdiff_t>(i) * is, bad);
    if (bad) return first + i;
  }
  return first;
}

constexpr size_t kNone = std::numeric_limits<size_t>::max();
constexpr size_t kMinPerThread = size_t{1} << 15;

template <class In, class Out, class TableT, int K>
void quantize_runs(const RunLayout& L, const char* xb, char* ob, const Plan<TableT>& plan,
                   int threads, std::vector<size_t>& first_bad) {
  parallel_for(L.size, threads, kMinPerThread, [&](size_t lo, size_t hi, size_t part) {
    L.for_runs(lo, hi, [&](ptrdiff_t ao, ptrdiff_t bo, size_t cnt, size_t flat, size_t c0,
                           size_t cstep) {
      const ptrdiff_t is = L.a_str.back(), os = L.b_str.back();
      if (run_table<In, Out, TableT, K>(xb + ao, is, ob + bo, os, cnt, plan, c0, cstep) &&
          first_bad[part] == kNone)
        first_bad[part] = find_bad<In>(xb + ao, is, cnt, flat);
    });
  });
}

template <class In, class Out, class TableT>
void quantize_dispatch_k(const RunLayout& L, const char* xb, char* ob,
                         const Plan<TableT>& plan, int threads,
                         std::vector<size_t>& first_bad) {
  switch (plan.K) {
    case 0: return quantize_runs<In, Out, TableT, 0>(L, xb, ob, plan, threads, first_bad);
    case 1: return quantize_runs<In, Out, TableT, 1>(L, xb, ob, plan, threads, first_bad);
    case 2: return quantize_runs<In, Out, TableT, 2>(L, xb, ob, plan, threads, first_bad);
    case 3: return quantize_runs<In, Out, TableT, 3>(L, xb, ob, plan, threads, first_bad);
    case 4: return quantize_runs<In, Out, TableT, 4>(L, xb, ob, plan, threads, first_bad);
    default: return quantize_runs<In, Out, TableT, -1>(L, xb, ob, plan, threads, first_bad);
  }
}

uint32_t ilog2_floor(size_t v) {
  uint32_t r = 0;
  while (v > 1) {
    v >>= 1;
    ++r;
  }
  return r;
}

// Table bits: 16 for large inputs; fewer when the table would cost more to build than the
// lookups it saves, or when per-channel tables would exceed ~8 MB in all.
uint32_t choose_bits(size_t n, size_t C, size_t entry_bytes) {
  const size_t per_channel = n / (C ? C : 1);
  uint32_t b = ilog2_floor(per_channel ? per_channel : 1);
  const uint32_t cap = ilog2_floor((size_t{8} << 20) / (C * entry_bytes));
  if (b > cap) b = cap;
  if (b > 16) b = 16;
  if (b < 6) b = 6;
  return b;
}

template <class Out>
size_t quantize_impl(const py::array& x, Kind kind, const float* thr, uint32_t C, uint32_t T,
                     py::array& out, int channel_axis, int threads) {
  const RunLayout L(shape_of(x), strides_of(x), strides_of(out), channel_axis);
  const char* xb = static_cast<const char*>(x.data());
  char* ob = static_cast<char*>(out.mutable_data());
  const int parts = threads < 1 ? 1 : threads;
  std::vector<size_t> first_bad(static_cast<size_t>(parts), kNone);
  if (L.size == 0) return kNone;
  {
    py::gil_scoped_release nogil;
    const bool is16 = kind == Kind::F16 || kind == Kind::BF16;
    if (is16 && C == 1 && L.size >= (size_t{1} << 18)) {
      // Complete table: index for each of the 65536 bit patterns.
      Plan<Out> plan(thr, 1, T, 16, 1);
      std::vector<Out> lut(65536);
      for (uint32_t h = 0; h < 65536; ++h) {
        const uint32_t u = kind == Kind::BF16 ? qm::bf16_to_f32_bits(static_cast<uint16_t>(h))
                                              : qm::f16_to_f32_bits(static_cast<uint16_t>(h));
        const uint32_t k = qm::f32_key(u);
        lut[h] = static_cast<Out>(plan.table[k >> plan.shift] +
                                  qm::count_le(plan.keys.data() + plan.table[k >> plan.shift],
                                               plan.K, k));
      }
      parallel_for(L.size, threads, kMinPerThread, [&](size_t lo, size_t hi, size_t part) {
        L.for_runs(lo, hi, [&](ptrdiff_t ao, ptrdiff_t bo, size_t cnt, size_t flat, size_t,
                               size_t) {
          const ptrdiff_t is = L.a_str.back(), os = L.b_str.back();
          if (run_lut16<Out>(xb + ao, is, ob + bo, os, cnt, lut.data(), kind == Kind::BF16) &&
              first_bad[part] == kNone)
            first_bad[part] = kind == Kind::BF16 ? find_bad<InBF16>(xb + ao, is, cnt, flat)
                                                 : find_bad<InF16>(xb + ao, is, cnt, flat);
        });
      });
    } else {
      const Plan<Out> plan(thr, C, T, choose_bits(L.size, C, sizeof(Out)), threads);
      switch (kind) {
        case Kind::F32:
          quantize_dispatch_k<InF32, Out, Out>(L, xb, ob, plan, threads, first_bad);
          break;
        case Kind::F16:
          quantize_dispatch_k<InF16, Out, Out>(L, xb, ob, plan, threads, first_bad);
          break;
        case Kind::BF16:
          quantize_dispatch_k<InBF16, Out, Out>(L, xb, ob, plan, threads, first_bad);
          break;
        case Kind::F64:
          quantize_dispatch_k<InF64, Out, Out>(L, xb, ob, plan, threads, first_bad);
          break;
      }
    }
  }
  size_t first = kNone;
  for (size_t b : first_bad) first = b < first ? b : first;
  return first;
}

// quantize_into(x, kind, thresholds (C,T) float32 C-contiguous, out, channel_axis, threads)
// -> flat C-order index of the first non-finite element, or -1. The Python layer validates
// shapes and dtypes; the checks here only guard memory safety.
long long py_quantize_into(const py::array& x, const std::string& kind_s,
                           const py::array& thresholds, py::array out, int channel_axis,
                           int threads) {
  const Kind kind = parse_kind(kind_s);
  const size_t want = kind == Kind::F64 ? 8 : kind == Kind::F32 ? 4 : 2;
  if (static_cast<size_t>(x.itemsize()) != want) throw std::invalid_argument("x itemsize");
  if (thresholds.ndim() != 2 || thresholds.itemsize() != 4 ||
      !(thresholds.flags() & py::array::c_style))
    throw std::invalid_argument("thresholds must be a C-contiguous (C, T) float32 array");
  const uint32_t C = static_cast<uint32_t>(thresholds.shape(0));
  const uint32_t T = static_cast<uint32_t>(thresholds.shape(1));
  if (out.ndim() != x.ndim()) throw std::invalid_argument("out ndim");
  for (py::ssize_t d = 0; d < x.ndim(); ++d)
    if (out.shape(d) != x.shape(d)) throw std::invalid_argument("out shape");
  if (channel_axis >= 0) {
    if (channel_axis >= x.ndim() || x.shape(channel_axis) != static_cast<py::ssize_t>(C))
      throw std::invalid_argument("channel axis length differs from thresholds rows");
  } else if (C != 1) {
    throw std::invalid_argument("several threshold rows need a channel axis");
  }
  const float* thr = static_cast<const float*>(thresholds.data());
  size_t r;
  if (out.itemsize() == 1) {
    if (T > 255) throw std::invalid_argument("uint8 output holds at most 255 thresholds");
    r = quantize_impl<uint8_t>(x, kind, thr, C, T, out, channel_axis, threads);
  } else if (out.itemsize() == 2) {
    if (T > 65535) throw std::invalid_argument("uint16 output holds at most 65535 thresholds");
    r = quantize_impl<uint16_t>(x, kind, thr, C, T, out, channel_axis, threads);
  } else {
    throw std::invalid_argument("out must be uint8 or uint16");
  }
  return r == kNone ? -1 : static_cast<long long>(r);
}

// ---------------------------------------------------------------------------------------
// Inverse lookup: out = levels[channel][idx], with a bounds check on every index.

template <class Idx, class V>
size_t dequantize_impl(const py::array& idx, const V* lv, uint32_t C, uint32_t Lw,
                       py::array& out, int channel_axis, int threads) {
  const RunLayout L(shape_of(idx), strides_of(idx), strides_of(out), channel_axis);
  const char* ib = static_cast<const char*>(idx.data());
  char* ob = static_cast<char*>(out.mutable_data());
  std::vector<size_t> first_bad(static_cast<size_t>(threads < 1 ? 1 : threads), kNone);
  (void)C;
  {
    py::gil_scoped_release nogil;
    parallel_for(L.size, threads, kMinPerThread, [&](size_t lo, size_t hi, size_t part) {
      L.for_runs(lo, hi, [&](ptrdiff_t ao, ptrdiff_t bo, size_t n, size_t flat, size_t c0,
                             size_t cstep) {
        const ptrdiff_t is = L.a_str.back(), os = L.b_str.back();
        const char* in = ib + ao;
        char* o = ob + bo;
        uint32_t bad = 0;
        if (cstep == 0) {
          const V* t = lv + c0 * Lw;
          if (is == static_cast<ptrdiff_t>(sizeof(Idx)) &&
              os == static_cast<ptrdiff_t>(sizeof(V))) {
            const Idx* x = reinterpret_cast<const Idx*>(in);
            V* y = reinterpret_cast<V*>(o);
            for (size_t i = 0; i < n; ++i) {
              const uint64_t j = static_cast<uint64_t>(x[i]);
              const bool ok = j < Lw;
              bad |= static_cast<uint32_t>(!ok);
              y[i] = t[ok ? j : 0];
            }
          } else {
            for (size_t i = 0; i < n; ++i) {
              Idx xi;
              std::memcpy(&xi, in + static_cast<ptrdiff_t>(i) * is, sizeof(Idx));
              const uint64_t j = static_cast<uint64_t>(xi);
              const bool ok = j < Lw;
              bad |= static_cast<uint32_t>(!ok);
              std::memcpy(o + static_cast<ptrdiff_t>(i) * os, &t[ok ? j : 0], sizeof(V));
            }
          }
        } else {
          for (size_t i = 0; i < n; ++i) {
            Idx xi;
            std::memcpy(&xi, in + static_cast<ptrdiff_t>(i) * is, sizeof(Idx));
            const uint64_t j = static_cast<uint64_t>(xi);
            const bool ok = j < Lw;
            bad |= static_cast<uint32_t>(!ok);
            std::memcpy(o + static_cast<ptrdiff_t>(i) * os, &lv[(c0 + i) * Lw + (ok ? j : 0)],
                        sizeof(V));
          }
        }
        if (bad && first_bad[part] == kNone) {
          for (size_t i = 0; i < n; ++i) {
            Idx xi;
            std::memcpy(&xi, in + static_cast<ptrdiff_t>(i) * is, sizeof(Idx));
            if (static_cast<uint64_t>(xi) >= Lw) {
              first_bad[part] = flat + i;
              break;
            }
          }
        }
      });
    });
  }
  size_t first = kNone;
  for (size_t b : first_bad) first = b < first ? b : first;
  return first;
}

template <class V>
size_t dequantize_by_index(const py::array& idx, const V* lv, uint32_t C, uint32_t Lw,
                           py::array& out, int channel_axis, int threads) {
  const char k = idx.dtype().kind();
  const auto sz = idx.itemsize();
  if (k == 'u' && sz == 1)
    return dequantize_impl<uint8_t, V>(idx, lv, C, Lw, out, channel_axis, threads);
  if (k == 'u' && sz == 2)
    return dequantize_impl<uint16_t, V>(idx, lv, C, Lw, out, channel_axis, threads);
  if (k == 'u' && sz == 4)
    return dequantize_impl<uint32_t, V>(idx, lv, C, Lw, out, channel_axis, threads);
  // Signed indices: negative values become huge as uint64 and fail the bounds check.
  if (k == 'i' && sz == 4)
    return dequantize_impl<int32_t, V>(idx, lv, C, Lw, out, channel_axis, threads);
  if (k == 'i' && sz == 8)
    return dequantize_impl<int64_t, V>(idx, lv, C, Lw, out, channel_axis, threads);
  throw std::invalid_argument("indices must be uint8, uint16, uint32, int32 or int64");
}

// dequantize_into(idx, levels (C, L) as 16/32-bit patterns C-contiguous, out, channel_axis,
// threads) -> flat index of the first index >= L (or negative), or -1.
long long py_dequantize_into(const py::array& idx, const py::array& levels, py::array out,
                             int channel_axis, int threads) {
  if (levels.ndim() != 2 || !(levels.flags() & py::array::c_style))
    throw std::invalid_argument("levels must be a C-contiguous (C, L) array");
  const uint32_t C = static_cast<uint32_t>(levels.shape(0));
  const uint32_t Lw = static_cast<uint32_t>(levels.shape(1));
  if (out.ndim() != idx.ndim() || out.itemsize() != levels.itemsize())
    throw std::invalid_argument("out must match idx's shape and the levels' item size");
  for (py::ssize_t d = 0; d < idx.ndim(); ++d)
    if (out.shape(d) != idx.shape(d)) throw std::invalid_argument("out shape");
  if (channel_axis >= 0) {
    if (channel_axis >= idx.ndim() || idx.shape(channel_axis) != static_cast<py::ssize_t>(C))
      throw std::invalid_argument("channel axis length differs from levels rows");
  } else if (C != 1) {
    throw std::invalid_argument("several level rows need a channel axis");
  }
  if (Lw == 0) throw std::invalid_argument("levels must not be empty");
  size_t r;
  if (levels.itemsize() == 4)
    r = dequantize_by_index<uint32_t>(idx, static_cast<const uint32_t*>(levels.data()), C, Lw,
                                      out, channel_axis, threads);
  else if (levels.itemsize() == 2)
    r = dequantize_by_index<uint16_t>(idx, static_cast<const uint16_t*>(levels.data()), C, Lw,
                                      out, channel_axis, threads);
  else
    throw std::invalid_argument("levels must hold 16- or 32-bit values");
  return r == kNone ? -1 : static_cast<long long>(r);
}

}  // namespace

void register_quantize(py::module_& m) {
  m.def("quantize_into", &py_quantize_into, py::arg("x"), py::arg("kind"),
        py::arg("thresholds"), py::arg("out"), py::arg("channel_axis"), py::arg("threads"),
        "Write np.searchsorted(thresholds[c], x, side='right') into out (uint8/uint16). "
        "Returns the flat index of the first NaN/Inf element, or -1. Use "
        "featcodec.kernels.quantize, which validates its arguments.");
  m.def("dequantize_into", &py_dequantize_into, py::arg("idx"), py::arg("levels"),
        py::arg("out"), py::arg("channel_axis"), py::arg("threads"),
        "Write levels[c][idx] into out. Returns the flat index of the first out-of-range "
        "index, or -1. Use featcodec.kernels.dequantize.");
}

}  // namespace featcodec
