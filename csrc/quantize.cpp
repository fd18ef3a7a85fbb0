// Interval quantization (value -> index of its interval among sorted thresholds) and its
// inverse lookup (index -> level), for featcodec.kernels.
//
// Forward: every input element becomes a monotone uint32 key (quant_math.h). A table
// indexed by the key's top B bits gives the number of thresholds in lower buckets; a short
// fixed-length finish counts the thresholds of the element's own bucket that are <= key.
// The finish length K is the largest bucket occupancy, known when the table is built, so
// there is no data-dependent branch, and the result is exactly np.searchsorted(side="right")
// for every input. Tables are built only where they pay (large inputs, K <= 4, one channel
// per run); evenly spaced thresholds (uniform transforms) without a table take a guess
// from the value's position on the grid and a three-key window (Affine); elsewhere a
// 16-ary search tree with SSE2 compares (Tree) does the count.
// 16-bit inputs (float16/bfloat16) on large arrays use a complete 65536-entry bits -> index
// table instead.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cmath>
#include <cstring>
#if defined(_MSC_VER)
#include <intrin.h>
#endif
#if defined(__SSE2__)
#include <emmintrin.h>
#endif
#include <algorithm>
#include <limits>
#include <memory>
#include <mutex>
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

// Typed fast paths need naturally aligned pointers (numpy allows unaligned arrays, e.g.
// np.frombuffer at an odd offset); unaligned runs take the memcpy path.
template <class T>
inline bool aligned(const void* p) {
  return reinterpret_cast<std::uintptr_t>(p) % alignof(T) == 0;
}

template <class KeyT>
struct In {
  static constexpr size_t size = sizeof(typename KeyT::Raw);
  static inline uint32_t key(const char* p, uint32_t& bad) {
    typename KeyT::Raw r;
    std::memcpy(&r, p, size);
    bad |= static_cast<uint32_t>(KeyT::nonfinite(r));
    return KeyT::key(r);
  }
};
using InF32 = In<qm::KeyF32>;
using InF16 = In<qm::KeyF16>;
using InBF16 = In<qm::KeyBF16>;
using InF64 = In<qm::KeyF64>;

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
  // The table gets the fewest bits in [min(16, max_bits), max_bits] that leave at most one
  // threshold per bucket (else max_bits): small tables stay in L1, the finish stays short.
  Plan(const float* thr, uint32_t C_, uint32_t T_, uint32_t max_bits, int threads)
      : C(C_), T(T_) {
    bits = max_bits < 16 ? max_bits : 16;
    while (bits < max_bits && max_occupancy(thr, bits) > 1) ++bits;
    shift = 32 - bits;
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

  uint32_t max_occupancy(const float* thr, uint32_t b) const { return occupancy(thr, C, T, b); }

  // Largest number of thresholds of one channel sharing a bucket of a b-bit table.
  static uint32_t occupancy(const float* thr, uint32_t C, uint32_t T, uint32_t b) {
    uint32_t occ = 0;
    for (size_t c = 0; c < C; ++c) {
      uint32_t run = 0, prev = 0;
      for (uint32_t j = 0; j < T; ++j) {
        uint32_t u;
        std::memcpy(&u, thr + c * T + j, 4);
        const uint32_t h = qm::f32_key(u) >> (32 - b);
        run = (j > 0 && h == prev) ? run + 1 : 1;
        prev = h;
        occ = run > occ ? run : occ;
      }
    }
    return occ;
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
                               uint32_t k) {
    const uint32_t b = tab[k >> shift];
    uint32_t r = b;
    for (int j = 0; j < K; ++j) r += static_cast<uint32_t>(keys[b + j] <= k);
    return r;
  }
};
// Per-channel 16-ary search tree, for runs whose channel changes from element to element
// and for inputs too small to pay for a table. Keys are signed (f32_key ^ 0x80000000) so
// SSE2's signed compare applies. Per channel: the keys padded to Tp = 16^L entries with
// INT32_MAX, preceded by L-1 fence levels, level l holding every (16^(L-1-l))-th key.
// A search reads 16 consecutive keys per level: count those <= k, descend into that block.
struct Tree {
  uint32_t C = 1, T = 0, L = 1;
  size_t Tp = 16, stride = 0;
  size_t off[4] = {0, 0, 0, 0};  // start of each level within a channel, top level first
  std::vector<int32_t> data;

  Tree(const float* thr, uint32_t C_, uint32_t T_, int threads) : C(C_), T(T_) {
    while (Tp < static_cast<size_t>(T) + 1) {
      Tp *= 16;
      ++L;
    }
    size_t total = 0;
    for (uint32_t l = 0; l < L; ++l) {
      off[l] = total;
      size_t S = 1;
      for (uint32_t i = l + 1; i < L; ++i) S *= 16;
      total += Tp / S;
    }
    stride = (total + 15) / 16 * 16;
    data.assign(static_cast<size_t>(C) * stride, std::numeric_limits<int32_t>::max());
    parallel_for(C, threads, 64, [&](size_t lo, size_t hi, size_t) {
      for (size_t c = lo; c < hi; ++c) build_channel(thr + c * T, data.data() + c * stride);
    });
  }

  void build_channel(const float* t, int32_t* ch) const {
    int32_t* keys = ch + off[L - 1];
    for (uint32_t j = 0; j < T; ++j) {
      uint32_t u;
      std::memcpy(&u, t + j, 4);
      keys[j] = static_cast<int32_t>(qm::f32_key(u) ^ 0x80000000u);
    }
    for (uint32_t l = 0; l + 1 < L; ++l) {
      size_t S = 1;
      for (uint32_t i = l + 1; i < L; ++i) S *= 16;
      for (size_t m = 0; m < Tp / S; ++m) ch[off[l] + m] = keys[S * m + S - 1];
    }
  }

  static inline uint32_t first_set_bit(uint32_t m) {  // m != 0
#if defined(_MSC_VER) && !defined(__clang__)
    unsigned long i;
    _BitScanForward(&i, m);
    return static_cast<uint32_t>(i);
#else
    return static_cast<uint32_t>(__builtin_ctz(m));
#endif
  }

  static inline uint32_t count16(const int32_t* a, int32_t k) {
#if defined(__SSE2__)
    // Keys are sorted, so the lanes with key > k form a suffix: the count of keys <= k is
    // the position of the first set bit of the 16-lane mask.
    const __m128i kv = _mm_set1_epi32(k);
    const __m128i* v = reinterpret_cast<const __m128i*>(a);
    const __m128i gt = _mm_packs_epi16(
        _mm_packs_epi32(_mm_cmpgt_epi32(_mm_loadu_si128(v), kv),
                        _mm_cmpgt_epi32(_mm_loadu_si128(v + 1), kv)),
        _mm_packs_epi32(_mm_cmpgt_epi32(_mm_loadu_si128(v + 2), kv),
                        _mm_cmpgt_epi32(_mm_loadu_si128(v + 3), kv)));
    return first_set_bit(static_cast<uint32_t>(_mm_movemask_epi8(gt)) | 0x10000u);
#else
    uint32_t c = 0;
    for (int j = 0; j < 16; ++j) c += static_cast<uint32_t>(a[j] <= k);
    return c;
#endif
  }

  // Number of channel thresholds whose key is <= key (unsigned f32_key); L levels.
  template <int L>
  inline uint32_t count_l(size_t c, uint32_t key) const {
    const int32_t* ch = data.data() + c * stride;
    const int32_t k = static_cast<int32_t>(key ^ 0x80000000u);
    size_t pos = 0;
    for (int l = 0; l + 1 < L; ++l) pos = (pos + count16(ch + off[l] + pos, k)) * 16;
    return static_cast<uint32_t>(pos + count16(ch + off[L - 1] + pos, k));
  }
  inline uint32_t count(size_t c, uint32_t key) const {
    switch (L) {
      case 1: return count_l<1>(c, key);
      case 2: return count_l<2>(c, key);
      case 3: return count_l<3>(c, key);
      default: return count_l<4>(c, key);
    }
  }
};

template <class In, class Out, int L>
uint32_t run_tree_l(const char* in, ptrdiff_t is, char* out, ptrdiff_t os, size_t n,
                    const Tree& p, size_t c0, size_t cstep) {
  uint32_t bad = 0;
  for (size_t i = 0; i < n; ++i) {
    const uint32_t k = In::key(in + static_cast<ptrdiff_t>(i) * is, bad);
    const Out v = static_cast<Out>(p.count_l<L>(c0 + i * cstep, k));
    std::memcpy(out + static_cast<ptrdiff_t>(i) * os, &v, sizeof(Out));
  }
  return bad;
}

template <class In, class Out>
uint32_t run_plan(const char* in, ptrdiff_t is, char* out, ptrdiff_t os, size_t n,
                  const Tree& p, size_t c0, size_t cstep) {
  switch (p.L) {
    case 1: return run_tree_l<In, Out, 1>(in, is, out, os, n, p, c0, cstep);
    case 2: return run_tree_l<In, Out, 2>(in, is, out, os, n, p, c0, cstep);
    case 3: return run_tree_l<In, Out, 3>(in, is, out, os, n, p, c0, cstep);
    default: return run_tree_l<In, Out, 4>(in, is, out, os, n, p, c0, cstep);
  }
}

template <class In, class Out, class TableT, int K>
uint32_t run_table(const char* in, ptrdiff_t is, char* out, ptrdiff_t os, size_t n,
                   const Plan<TableT>& p, size_t c0) {
  uint32_t bad = 0;
  const uint32_t shift = p.shift;
  const TableT* tab = p.table.data() + c0 * p.tsize;
  const uint32_t* keys = p.keys.data() + c0 * p.kstride;
  if (is == static_cast<ptrdiff_t>(In::size) && os == static_cast<ptrdiff_t>(sizeof(Out)) &&
      aligned<Out>(out)) {
    // Two passes per block: keys and the NaN/Inf test (straight-line integer code the
    // compiler vectorises), then the table lookups (scalar loads).
    Out* o = reinterpret_cast<Out*>(out);
    constexpr size_t kBlockElems = 256;
    uint32_t kb[kBlockElems];
    for (size_t i0 = 0; i0 < n; i0 += kBlockElems) {
      const size_t m = n - i0 < kBlockElems ? n - i0 : kBlockElems;
      const char* src = in + i0 * In::size;
      for (size_t j = 0; j < m; ++j) kb[j] = In::key(src + j * In::size, bad);
      for (size_t j = 0; j < m; ++j)
        o[i0 + j] = static_cast<Out>(Finish<TableT, K>::count(tab, keys, shift, kb[j]));
    }
  } else {
    for (size_t i = 0; i < n; ++i) {
      const uint32_t k = In::key(in + static_cast<ptrdiff_t>(i) * is, bad);
      const Out v = static_cast<Out>(Finish<TableT, K>::count(tab, keys, shift, k));
      std::memcpy(out + static_cast<ptrdiff_t>(i) * os, &v, sizeof(Out));
    }
  }
  return bad;
}

// Evenly spaced thresholds (uniform transforms: CAUFC's min-max levels, error-bounded
// coding): the value's position on the grid guesses the count, and three key compares in
// a window around the guess give it exactly, as long as the count lies inside the window.
// Two more compares check that; a block with a miss is redone by binary search, so the
// result is exact whatever the guess, with keys compared exactly as in the other plans.
// With every threshold within half a step of its grid point (the condition for choosing
// this plan) the count is always inside the window. No table to build: it pays from the
// first element.
struct Affine {
  static constexpr uint32_t kWindow = 3;
  uint32_t C = 1, T = 0;
  size_t stride = 0;
  bool ok = true;
  // per channel: a 0 key (below every key), the T threshold keys, kWindow + 1 sentinels
  std::vector<uint32_t> keys;
  std::vector<float> start, inv;  // per channel: first threshold, 1 / spacing

  Affine(const float* thr, uint32_t C_, uint32_t T_) : C(C_), T(T_) {
    ok = T >= 16;  // (below that a one-level tree is as fast)
    for (size_t c = 0; c < C && ok; ++c) {  // check every channel before allocating
      const float* t = thr + c * T;
      const double step = (double(t[T - 1]) - double(t[0])) / (T - 1);
      ok = step > 0 && std::isfinite(step) && std::isfinite(float(1.0 / step));
      for (uint32_t j = 0; j < T && ok; ++j)
        ok = std::fabs(double(t[j]) - (double(t[0]) + j * step)) <= 0.5 * step;
    }
    if (!ok) return;
    stride = static_cast<size_t>(T) + kWindow + 2;
    keys.assign(static_cast<size_t>(C) * stride, qm::kKeySentinel);
    start.resize(C);
    inv.resize(C);
    for (size_t c = 0; c < C; ++c) {
      const float* t = thr + c * T;
      uint32_t* kc = keys.data() + c * stride;
      kc[0] = 0;
      for (uint32_t j = 0; j < T; ++j) {
        uint32_t u;
        std::memcpy(&u, t + j, 4);
        kc[j + 1] = qm::f32_key(u);
      }
      start[c] = t[0];
      inv[c] = static_cast<float>((T - 1) / (double(t[T - 1]) - double(t[0])));
    }
  }

  const uint32_t* channel(size_t c) const { return keys.data() + c * stride + 1; }

  // float32 value of a key (the inverse of qm::f32_key), without a branch on the sign
  static inline float value(uint32_t k) {
    const uint32_t neg = 0u - ((k >> 31) ^ 1u);  // all ones below the key of +0.0
    const uint32_t u = (((k - 0x80000000u) ^ neg) - neg) | (neg & 0x80000000u);
    float v;
    std::memcpy(&v, &u, 4);
    return v;
  }

  // The start of the window: about (count - 1) on the grid, clamped (NaN to 0).
  static inline uint32_t guess(float start, float inv, float top, uint32_t k) {
    float d = (value(k) - start) * inv;
    d = d > 0.f ? d : 0.f;
    d = d < top ? d : top;
    return static_cast<uint32_t>(static_cast<int32_t>(d));
  }

  // Count of keys <= k in kc (a channel) from the window at s; miss != 0 when the count
  // may lie outside it.
  static inline uint32_t window(const uint32_t* kc, uint32_t T, uint32_t s, uint32_t k,
                                uint32_t& miss) {
    const uint32_t* w = kc + s;
    uint32_t r = s;
    for (uint32_t j = 0; j < kWindow; ++j) r += static_cast<uint32_t>(w[j] <= k);
    miss |= static_cast<uint32_t>(w[-1] > k) | static_cast<uint32_t>(w[kWindow] <= k);
    return r < T ? r : T;  // (a NaN key can pass the sentinels; it is reported as an error)
  }
};

template <class In, class Out>
uint32_t run_plan(const char* in, ptrdiff_t is, char* out, ptrdiff_t os, size_t n,
                  const Affine& p, size_t c0, size_t cstep) {
  uint32_t bad = 0;
  const uint32_t T = p.T;
  const float top = float(T - 1);
  constexpr size_t kBlockElems = 256;
  uint32_t kb[kBlockElems], rb[kBlockElems];
  for (size_t i0 = 0; i0 < n; i0 += kBlockElems) {
    const size_t m = n - i0 < kBlockElems ? n - i0 : kBlockElems;
    const char* src = in + static_cast<ptrdiff_t>(i0) * is;
    uint32_t miss = 0;
    if (cstep == 0) {  // one channel for the run: two straight-line passes
      const uint32_t* kc = p.channel(c0);
      const float st = p.start[c0], inv = p.inv[c0];
      for (size_t j = 0; j < m; ++j) {
        kb[j] = In::key(src + static_cast<ptrdiff_t>(j) * is, bad);
        rb[j] = Affine::guess(st, inv, top, kb[j]);
      }
      for (size_t j = 0; j < m; ++j) rb[j] = Affine::window(kc, T, rb[j], kb[j], miss);
    } else {
      for (size_t j = 0; j < m; ++j) {
        const size_t c = c0 + (i0 + j) * cstep;
        kb[j] = In::key(src + static_cast<ptrdiff_t>(j) * is, bad);
        rb[j] = Affine::window(p.channel(c), T, Affine::guess(p.start[c], p.inv[c], top, kb[j]),
                               kb[j], miss);
      }
    }
    if (miss)  // a guess outside the window (not expected): exact binary search
      for (size_t j = 0; j < m; ++j) rb[j] = qm::count_le(p.channel(c0 + (i0 + j) * cstep), T, kb[j]);
    if (os == static_cast<ptrdiff_t>(sizeof(Out)) && aligned<Out>(out)) {
      Out* o = reinterpret_cast<Out*>(out) + i0;
      for (size_t j = 0; j < m; ++j) o[j] = static_cast<Out>(rb[j]);
    } else {
      for (size_t j = 0; j < m; ++j) {
        const Out v = static_cast<Out>(rb[j]);
        std::memcpy(out + static_cast<ptrdiff_t>(i0 + j) * os, &v, sizeof(Out));
      }
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
  if (is == 2 && os == static_cast<ptrdiff_t>(sizeof(Out)) && aligned<uint16_t>(in) &&
      aligned<Out>(out)) {
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
// Values per thread before a call uses another one. Threads start per call, and a thread
// that has to wait for a busy core can cost milliseconds. Informal timings (docs/kernels.md):
// on an idle machine two threads paid for quantising from about 2**17 values each; the
// inverse, one load per index, gained nothing measurable below 2**20.
constexpr size_t kMinPerThread = size_t{1} << 17;
constexpr size_t kMinPerThreadInverse = size_t{1} << 20;

// Apply run(in, in_stride, out, out_stride, count, channel0, channel_step) -> bad-flag to
// every run of the layout, in parallel; record the first non-finite element per part.
template <class In, class RunFn>
void for_all_runs(const RunLayout& L, const char* xb, char* ob, int threads,
                  std::vector<size_t>& first_bad, RunFn&& run) {
  const ptrdiff_t is = L.a_str.back(), os = L.b_str.back();
  parallel_for(L.size, threads, kMinPerThread, [&](size_t lo, size_t hi, size_t part) {
    L.for_runs(lo, hi, [&](ptrdiff_t ao, ptrdiff_t bo, size_t cnt, size_t flat, size_t c0,
                           size_t cstep) {
      if (run(xb + ao, is, ob + bo, os, cnt, c0, cstep) && first_bad[part] == kNone)
        first_bad[part] = find_bad<In>(xb + ao, is, cnt, flat);
    });
  });
}

template <class In, class Out, class TableT, int K>
void quantize_table_k(const RunLayout& L, const char* xb, char* ob, const Plan<TableT>& plan,
                      int threads, std::vector<size_t>& first_bad) {
  for_all_runs<In>(L, xb, ob, threads, first_bad,
                   [&](const char* in, ptrdiff_t is, char* out, ptrdiff_t os, size_t n,
                       size_t c0, size_t) {
                     return run_table<In, Out, TableT, K>(in, is, out, os, n, plan, c0);
                   });
}

template <class In, class Out>
void quantize_table(const RunLayout& L, const char* xb, char* ob, const Plan<Out>& plan,
                    int threads, std::vector<size_t>& first_bad) {
  switch (plan.K) {
    case 0: return quantize_table_k<In, Out, Out, 0>(L, xb, ob, plan, threads, first_bad);
    case 1: return quantize_table_k<In, Out, Out, 1>(L, xb, ob, plan, threads, first_bad);
    case 2: return quantize_table_k<In, Out, Out, 2>(L, xb, ob, plan, threads, first_bad);
    case 3: return quantize_table_k<In, Out, Out, 3>(L, xb, ob, plan, threads, first_bad);
    case 4: return quantize_table_k<In, Out, Out, 4>(L, xb, ob, plan, threads, first_bad);
    default: throw std::logic_error("table plan with more than 4 thresholds per bucket");
  }
}

// Quantise every run with a per-element plan (Tree or Affine: run_plan overloads).
template <class In, class Out, class P>
void quantize_with(const RunLayout& L, const char* xb, char* ob, const P& plan, int threads,
                   std::vector<size_t>& first_bad) {
  for_all_runs<In>(L, xb, ob, threads, first_bad,
                   [&](const char* in, ptrdiff_t is, char* out, ptrdiff_t os, size_t n,
                       size_t c0, size_t cstep) {
                     return run_plan<In, Out>(in, is, out, os, n, plan, c0, cstep);
                   });
}

uint32_t ilog2_floor(size_t v) {
  uint32_t r = 0;
  while (v > 1) {
    v >>= 1;
    ++r;
  }
  return r;
}

// The most table bits worth building (Plan then picks the fewest that suffice): up to 20,
// fewer when the table would cost more to build than the lookups it saves or when the
// per-channel tables would exceed ~8 MB in all; 0 means "no table": use the search tree.
// A table whose buckets would hold more than 4 thresholds loses to the tree (measured:
// 200 channels x 20000 values, 13-bit tables: 69 vs 110 M values/s), so it is not built.
template <class TableT>
uint32_t choose_bits(size_t n, size_t C, size_t entry_bytes, const float* thr, uint32_t T) {
  const size_t per_channel = n / (C ? C : 1);
  if (per_channel < (C == 1 ? size_t{1} << 12 : size_t{1} << 14)) return 0;
  uint32_t b = ilog2_floor(per_channel) - 1;
  const uint32_t cap = ilog2_floor((size_t{8} << 20) / (C * entry_bytes));
  if (b > cap) b = cap;
  if (b > 20) b = 20;
  if (b < 8 || Plan<TableT>::occupancy(thr, static_cast<uint32_t>(C), T, b) > 4) return 0;
  return b;
}

// Table plans remembered across calls for thresholds that come back (a registered
// transform coding tensor after tensor): a call's table is otherwise built for that call
// only, and below about 4096 values a channel none is built (the tree's search is cheaper
// than a table used once). The second call with the same thresholds builds the plan (with
// tables of up to 2**16 entries) and keeps it; later calls use it at any size. Keyed by
// the thresholds' bytes (a hash, then an exact comparison); a few plans of at most
// kMaxBytes each, the least recently used dropped. Inputs large enough for a finer table
// than kBits build their own, as before. The plan only changes the route: every
// route gives np.searchsorted's answer, so results do not depend on what is remembered.
template <class Out>
class PlanCache {
 public:
  static constexpr size_t kEntries = 8, kSeen = 32, kMaxBytes = size_t{1} << 21;
  static constexpr uint32_t kBits = 16;  // the remembered tables' bits

  // the remembered plan for thr, building it if these thresholds were seen before; null
  // when there is none to use (first sight, or a table that would not pay)
  std::shared_ptr<const Plan<Out>> get(const float* thr, uint32_t C, uint32_t T, int threads) {
    // too many channels for a kept table: not worth hashing their thresholds on every call
    if (size_t(C) * (size_t{1} << kBits) * sizeof(Out) > kMaxBytes) return nullptr;
    const size_t bytes = size_t(C) * T * 4;
    const uint64_t h = hash(thr, bytes) ^ (uint64_t(C) << 32) ^ T;
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (size_t i = 0; i < entries_.size(); ++i)
        if (entries_[i].hash == h && entries_[i].thr.size() * 4 == bytes &&
            std::memcmp(entries_[i].thr.data(), thr, bytes) == 0) {
          std::rotate(entries_.begin(), entries_.begin() + i, entries_.begin() + i + 1);
          return entries_[0].plan;
        }
      if (std::find(seen_.begin(), seen_.end(), h) == seen_.end()) {
        seen_.insert(seen_.begin(), h);
        if (seen_.size() > kSeen) seen_.pop_back();
        return nullptr;
      }
    }
    // built outside the lock; a table with more than 4 thresholds in a bucket loses to the tree
    if (Plan<Out>::occupancy(thr, C, T, kBits) > 4) return nullptr;
    auto plan = std::make_shared<const Plan<Out>>(thr, C, T, kBits, threads);
    std::lock_guard<std::mutex> lock(mu_);
    entries_.insert(entries_.begin(), Entry{h, std::vector<float>(thr, thr + size_t(C) * T), plan});
    if (entries_.size() > kEntries) entries_.pop_back();
    seen_.erase(std::remove(seen_.begin(), seen_.end(), h), seen_.end());
    return plan;
  }

 private:
  struct Entry {
    uint64_t hash;
    std::vector<float> thr;
    std::shared_ptr<const Plan<Out>> plan;
  };
  static uint64_t hash(const float* thr, size_t bytes) {
    const auto* p = reinterpret_cast<const unsigned char*>(thr);
    uint64_t h = 1469598103934665603ull;  // FNV-1a
    for (size_t i = 0; i < bytes; ++i) h = (h ^ p[i]) * 1099511628211ull;
    return h;
  }
  std::mutex mu_;
  std::vector<Entry> entries_;
  std::vector<uint64_t> seen_;
};

template <class Out>
PlanCache<Out>& plan_cache() {
  static PlanCache<Out> cache;
  return cache;
}

template <class Out>
void quantize_by_table(const RunLayout& L, const char* xb, char* ob, Kind kind, const Plan<Out>& plan,
                       int threads, std::vector<size_t>& first_bad) {
  switch (kind) {
    case Kind::F32: quantize_table<InF32, Out>(L, xb, ob, plan, threads, first_bad); break;
    case Kind::F16: quantize_table<InF16, Out>(L, xb, ob, plan, threads, first_bad); break;
    case Kind::BF16: quantize_table<InBF16, Out>(L, xb, ob, plan, threads, first_bad); break;
    case Kind::F64: quantize_table<InF64, Out>(L, xb, ob, plan, threads, first_bad); break;
  }
}

template <class Out>
size_t quantize_impl(const py::array& x, Kind kind, const float* thr, uint32_t C, uint32_t T,
                     py::array& out, int channel_axis, int threads) {
  const RunLayout L(shape_of(x), strides_of(x), strides_of(out), channel_axis);
  const char* xb = static_cast<const char*>(x.data());
  char* ob = static_cast<char*>(out.mutable_data());
  std::vector<size_t> first_bad(static_cast<size_t>(threads < 1 ? 1 : threads), kNone);
  if (L.size == 0) return kNone;
  py::gil_scoped_release nogil;
  const bool chan_varies = L.chan >= 0 && L.chan == static_cast<int>(L.shape.size()) - 1;
  const bool is16 = kind == Kind::F16 || kind == Kind::BF16;
  if (is16 && C == 1 && L.size >= (size_t{1} << 18)) {
    // Complete table: the index of each of the 65536 bit patterns.
    const Tree tree(thr, 1, T, 1);
    std::vector<Out> lut(65536);
    for (uint32_t h = 0; h < 65536; ++h) {
      const uint16_t b = static_cast<uint16_t>(h);
      const uint32_t u = kind == Kind::BF16 ? qm::bf16_to_f32_bits(b) : qm::f16_to_f32_bits(b);
      lut[h] = static_cast<Out>(tree.count(0, qm::f32_key(u)));
    }
    auto run = [&](const char* in, ptrdiff_t is, char* o, ptrdiff_t os, size_t n, size_t,
                   size_t) { return run_lut16<Out>(in, is, o, os, n, lut.data(), kind == Kind::BF16); };
    if (kind == Kind::BF16)
      for_all_runs<InBF16>(L, xb, ob, threads, first_bad, run);
    else
      for_all_runs<InF16>(L, xb, ob, threads, first_bad, run);
  } else if (const uint32_t bits = chan_varies ? 0 : choose_bits<Out>(L.size, C, sizeof(Out), thr, T);
             bits > PlanCache<Out>::kBits) {  // large inputs: a finer table of their own pays
    quantize_by_table<Out>(L, xb, ob, kind, Plan<Out>(thr, C, T, bits, threads), threads, first_bad);
  } else if (const auto kept = chan_varies ? nullptr : plan_cache<Out>().get(thr, C, T, threads)) {
    quantize_by_table<Out>(L, xb, ob, kind, *kept, threads, first_bad);
  } else if (bits) {
    quantize_by_table<Out>(L, xb, ob, kind, Plan<Out>(thr, C, T, bits, threads), threads, first_bad);
  } else if (const Affine aff(thr, C, T); aff.ok) {
    switch (kind) {
      case Kind::F32: quantize_with<InF32, Out>(L, xb, ob, aff, threads, first_bad); break;
      case Kind::F16: quantize_with<InF16, Out>(L, xb, ob, aff, threads, first_bad); break;
      case Kind::BF16: quantize_with<InBF16, Out>(L, xb, ob, aff, threads, first_bad); break;
      case Kind::F64: quantize_with<InF64, Out>(L, xb, ob, aff, threads, first_bad); break;
    }
  } else {
    const Tree tree(thr, C, T, threads);
    switch (kind) {
      case Kind::F32: quantize_with<InF32, Out>(L, xb, ob, tree, threads, first_bad); break;
      case Kind::F16: quantize_with<InF16, Out>(L, xb, ob, tree, threads, first_bad); break;
      case Kind::BF16: quantize_with<InBF16, Out>(L, xb, ob, tree, threads, first_bad); break;
      case Kind::F64: quantize_with<InF64, Out>(L, xb, ob, tree, threads, first_bad); break;
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
    parallel_for(L.size, threads, kMinPerThreadInverse, [&](size_t lo, size_t hi, size_t part) {
      L.for_runs(lo, hi, [&](ptrdiff_t ao, ptrdiff_t bo, size_t n, size_t flat, size_t c0,
                             size_t cstep) {
        const ptrdiff_t is = L.a_str.back(), os = L.b_str.back();
        const char* in = ib + ao;
        char* o = ob + bo;
        uint32_t bad = 0;
        if (cstep == 0) {
          const V* t = lv + c0 * Lw;
          if (is == static_cast<ptrdiff_t>(sizeof(Idx)) &&
              os == static_cast<ptrdiff_t>(sizeof(V)) && aligned<Idx>(in) && aligned<V>(o)) {
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

// check_rows(a (C, N) float32 C-contiguous, ascending) -> flat index of the first NaN/Inf
// value, or (if ascending) of the first value below its predecessor in its row; else -1.
long long py_check_rows(const py::array& a, bool ascending) {
  if (a.ndim() != 2 || a.itemsize() != 4 || a.dtype().kind() != 'f' ||
      !(a.flags() & py::array::c_style))
    throw std::invalid_argument("check_rows takes a C-contiguous (C, N) float32 array");
  const float* v = static_cast<const float*>(a.data());
  const size_t C = static_cast<size_t>(a.shape(0)), N = static_cast<size_t>(a.shape(1));
  for (size_t c = 0; c < C; ++c) {
    const float* r = v + c * N;
    for (size_t j = 0; j < N; ++j) {
      uint32_t u;
      std::memcpy(&u, r + j, 4);
      if (qm::f32_bits_nonfinite(u) || (ascending && j > 0 && r[j] < r[j - 1]))
        return static_cast<long long>(c * N + j);
    }
  }
  return -1;
}

}  // namespace

// max |a[i] - b[i]| over two C-contiguous arrays of one float dtype and size, each
// difference exact in double (a float32 pair's always is); NaN if any difference is.
template <class T>
double max_abs_diff(const py::array_t<T, py::array::c_style>& a, const py::array_t<T, py::array::c_style>& b) {
  if (a.size() != b.size()) throw std::invalid_argument("max_abs_diff: arrays of different sizes");
  const T* pa = a.data();
  const T* pb = b.data();
  const size_t n = size_t(a.size());
  py::gil_scoped_release release;
  double hi = 0.0;
  bool nan = false;
  for (size_t i = 0; i < n; ++i) {
    const double d = std::fabs(double(pa[i]) - double(pb[i]));
    nan |= d != d;
    hi = d > hi ? d : hi;
  }
  return nan ? std::numeric_limits<double>::quiet_NaN() : hi;
}

// The (n - 1) / 2-th and n / 2-th smallest of n float32 values (np.partition's two median
// ranks), exactly, by a radix select on the order-preserving keys of their bits: a count of
// the high 16 bits, then of the low 16 bits inside the bucket of each rank. -0.0 ranks
// below +0.0 (equal values either way).
py::tuple median_pair(const py::array_t<float, py::array::c_style>& x) {
  const size_t n = size_t(x.size());
  if (n == 0) throw std::invalid_argument("median_pair: no values");
  const float* p = x.data();
  const auto key = [](float v) {
    uint32_t u;
    std::memcpy(&u, &v, 4);
    return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
  };
  uint32_t out[2];
  {
    py::gil_scoped_release release;
    // four interleaved counts: runs of one value (a ReLU map's zeros) would otherwise wait
    // on each increment's store
    std::vector<uint32_t> hi4(4 * 65536, 0), hi(65536);
    size_t i = 0;
    for (; i + 4 <= n; i += 4)
      for (size_t j = 0; j < 4; ++j) ++hi4[j * 65536 + (key(p[i + j]) >> 16)];
    for (; i < n; ++i) ++hi4[key(p[i]) >> 16];
    for (size_t b = 0; b < 65536; ++b) hi[b] = hi4[b] + hi4[65536 + b] + hi4[131072 + b] + hi4[196608 + b];
    const size_t rank[2] = {(n - 1) / 2, n / 2};
    uint32_t bucket[2];
    size_t below[2];  // values in lower buckets
    for (int r = 0; r < 2; ++r) {
      size_t seen = 0;
      uint32_t b = 0;
      while (seen + hi[b] <= rank[r]) seen += hi[b++];
      bucket[r] = b;
      below[r] = seen;
    }
    std::vector<uint32_t> lo0(65536, 0), lo1(bucket[1] != bucket[0] ? 65536 : 0, 0);
    for (i = 0; i < n; ++i) {
      const uint32_t k = key(p[i]);
      if ((k >> 16) == bucket[0]) ++lo0[k & 0xFFFF];
      else if (!lo1.empty() && (k >> 16) == bucket[1]) ++lo1[k & 0xFFFF];
    }
    for (int r = 0; r < 2; ++r) {
      const std::vector<uint32_t>& lo = (r == 1 && !lo1.empty()) ? lo1 : lo0;
      size_t seen = below[r];
      uint32_t v = 0;
      while (seen + lo[v] <= rank[r]) seen += lo[v++];
      out[r] = (bucket[r] << 16) | v;
    }
  }
  float vals[2];
  for (int r = 0; r < 2; ++r) {
    const uint32_t u = (out[r] & 0x80000000u) ? (out[r] & 0x7FFFFFFFu) : ~out[r];
    std::memcpy(&vals[r], &u, 4);
  }
  return py::make_tuple(double(vals[0]), double(vals[1]));
}

void register_quantize(py::module_& m) {
  m.def("median_pair", &median_pair, py::arg("x"),
        "(a, b): the (n-1)//2-th and n//2-th smallest of the float32 values x (C-contiguous, "
        "finite), exactly (np.partition's median ranks), by a two-pass radix select.");
  m.def("max_abs_diff", &max_abs_diff<float>, py::arg("a"), py::arg("b"));
  m.def("max_abs_diff", &max_abs_diff<double>, py::arg("a"), py::arg("b"),
        "max |a - b| in float64 over two C-contiguous float32 (or float64) arrays of one "
        "size, without a float64 copy of either (NaN if a difference is NaN).");
  m.def("quantize_into", &py_quantize_into, py::arg("x"), py::arg("kind"),
        py::arg("thresholds"), py::arg("out"), py::arg("channel_axis"), py::arg("threads"),
        "Write np.searchsorted(thresholds[c], x, side='right') into out (uint8/uint16). "
        "Returns the flat index of the first NaN/Inf element, or -1. Use "
        "featcodec.kernels.quantize, which validates its arguments.");
  m.def("check_rows", &py_check_rows, py::arg("a"), py::arg("ascending"),
        "Flat index of the first NaN/Inf (or, if ascending, out-of-order) value of a "
        "(C, N) float32 array, or -1.");
  m.def("dequantize_into", &py_dequantize_into, py::arg("idx"), py::arg("levels"),
        py::arg("out"), py::arg("channel_axis"), py::arg("threads"),
        "Write levels[c][idx] into out. Returns the flat index of the first out-of-range "
        "index, or -1. Use featcodec.kernels.dequantize.");
}

}  // namespace featcodec
