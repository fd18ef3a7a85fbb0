// Static frequency model: one table of symbol frequencies, normalised to 2**bits and
// stored compactly in the stream, codes every symbol of an 8- or 16-bit alphabet.
//
// Stream layout (all integers little-endian; varints are unsigned LEB128):
//   byte     0x10 | (alphabet is 16-bit) | (log2 lanes << 1)
//   varint   symbol count n                       (skip to the hash when n == 0)
//   byte     bits: table precision, M = 2**bits
//   varint   k - 1: number of distinct symbols present
//   varint   first symbol, then k - 1 varints (gap to the previous symbol) - 1
//   k varint frequency - 1                        (frequencies sum to M exactly)
//                                                 (skip to the hash when k == 1)
//   varint   symbols per chunk
//   per chunk: varint payload size
//   u32      FNV-1a hash of every byte above: a flipped table bit would otherwise decode
//            other symbols silently (the payload is checked by the final states)
//   the chunk payloads, in order
// A chunk payload is `lanes` 64-bit final states followed by 32-bit words; its symbols
// are coded independently of the other chunks, so threads can share the work while
// the bytes stay the same for any thread count.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <queue>
#include <tuple>
#include <type_traits>
#include <utility>

#include "rans.h"

namespace featcodec {
namespace rans {
namespace {

constexpr uint8_t kStaticTag = 0x10;
constexpr int kMaxBits8 = 16;    // table precision cap, 8-bit alphabets
constexpr int kMinBits8 = 12;    // lowest precision the 8-bit rule tries (see pick_bits8)
constexpr uint64_t kCostShare = 1000;  // ... accepting a quantisation cost <= 1/1000
constexpr int kMaxBits16 = 20;   // 16-bit alphabets: decode tables <= 10 MiB
constexpr uint64_t kChunk = 1ull << 20;  // symbols per independently coded chunk
constexpr uint64_t kMaxCount = 1ull << 40;

uint32_t fnv1a(const uint8_t* p, size_t n) {
  uint32_t h = 2166136261u;
  for (size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 16777619u;
  return h;
}

void put_hash(std::vector<uint8_t>& head) {
  const uint32_t h = fnv1a(head.data(), head.size());
  for (int i = 0; i < 4; ++i) head.push_back(uint8_t(h >> (8 * i)));
}

void check_hash(Reader& r, const uint8_t* data) {
  const uint32_t h = fnv1a(data, size_t(r.pos() - data));
  uint32_t stored = 0;
  for (int i = 0; i < 4; ++i) stored |= uint32_t(r.byte("the table checksum")) << (8 * i);
  if (h != stored) throw FormatError("rANS table checksum mismatch (corrupt stream)");
}

int ceil_log2(uint64_t v) {
  int b = 0;
  while ((1ull << b) < v) b++;
  return b;
}

// Integer-only normalisation of counts to frequencies >= 1 summing to 2**bits: round,
// then move the remaining units one at a time where they cost the fewest bits
// (first-order cost c_i / q_i, compared exactly by cross-multiplication).
std::vector<uint32_t> normalize(const std::vector<uint64_t>& c, uint64_t n, int bits) {
  const uint64_t M = 1ull << bits;
  const size_t k = c.size();
  std::vector<uint32_t> q(k);
  uint64_t sum = 0;
  for (size_t i = 0; i < k; ++i) {
    uint64_t v = (c[i] * M + n / 2) / n;
    q[i] = uint32_t(std::max<uint64_t>(1, std::min<uint64_t>(v, M)));
    sum += q[i];
  }
  if (sum < M) {  // give units to the symbols gaining most: max c / (2q + 1)
    auto lower = [&](size_t a, size_t b) {
      const uint64_t lhs = c[a] * (2ull * q[b] + 1), rhs = c[b] * (2ull * q[a] + 1);
      return lhs != rhs ? lhs < rhs : a > b;
    };
    std::priority_queue<size_t, std::vector<size_t>, decltype(lower)> heap(lower);
    for (size_t i = 0; i < k; ++i) heap.push(i);
    for (; sum < M; ++sum) {
      const size_t i = heap.top();
      heap.pop();
      q[i]++;
      heap.push(i);
    }
  } else if (sum > M) {  // take units from the symbols losing least: min c / (2q - 1)
    auto lower = [&](size_t a, size_t b) {
      const uint64_t lhs = c[a] * (2ull * q[b] - 1), rhs = c[b] * (2ull * q[a] - 1);
      return lhs != rhs ? lhs > rhs : a > b;
    };
    std::priority_queue<size_t, std::vector<size_t>, decltype(lower)> heap(lower);
    for (size_t i = 0; i < k; ++i)
      if (q[i] > 1) heap.push(i);
    for (; sum > M; --sum) {
      const size_t i = heap.top();
      heap.pop();
      q[i]--;
      if (q[i] > 1) heap.push(i);
    }
  }
  return q;
}

// floor(log2(v) * 2**32) for v >= 1, approximately (truncating squarings): integer
// arithmetic only, so the same on every platform.
uint64_t log2_fx_computed(uint64_t v) {
  int e = 63;
  while (!(v >> e)) --e;
  uint64_t m = v << (63 - e);  // v / 2**e in [1, 2), with 63 fraction bits
  uint64_t r = uint64_t(e) << 32;
  for (int i = 31; i >= 0; --i) {  // squaring doubles the log: its next bit is m**2 >= 2
    const uint64_t hi = mulhi64(m, m), lo = m * m;  // m**2 with 126 fraction bits
    if (hi >> 63) {
      m = hi;
      r |= 1ull << i;
    } else {
      m = (hi << 1) | (lo >> 63);
    }
  }
  return r;
}

// log2_fx, remembered for v <= 2**16 (every frequency, and the counts of short streams):
// the 32 dependent squarings cost about 60 ns, and choosing the precision of one table
// takes two logs per symbol (half of a 16k-symbol encode before). Entries are written
// once with the one value they can hold, so concurrent callers need only relaxed atomics.
constexpr uint64_t kLogMemo = 1u << 16;
std::atomic<uint64_t> log_memo[kLogMemo + 1];  // 0: not yet computed (log2_fx(1) is 0 too)

uint64_t log2_fx(uint64_t v) {
  if (v > kLogMemo || v == 1) return log2_fx_computed(v);
  uint64_t r = log_memo[v].load(std::memory_order_relaxed);
  if (r == 0) {
    r = log2_fx_computed(v);
    log_memo[v].store(r, std::memory_order_relaxed);
  }
  return r;
}

// Unsigned 128-bit sums of products (portable: no __int128 needed).
struct U128 {
  uint64_t hi = 0, lo = 0;
  void add_mul(uint64_t a, uint64_t b) {
    const uint64_t l = a * b;
    hi += mulhi64(a, b);
    lo += l;
    hi += lo < l;
  }
  U128 times(uint64_t k) const {
    U128 r;
    r.lo = lo * k;
    r.hi = hi * k + mulhi64(lo, k);
    return r;
  }
  U128 plus(const U128& o) const {
    U128 r;
    r.lo = lo + o.lo;
    r.hi = hi + o.hi + (r.lo < lo);
    return r;
  }
  bool operator<=(const U128& o) const { return hi != o.hi ? hi < o.hi : lo <= o.lo; }
};

// Table precision for an 8-bit alphabet (k >= 2 symbols, counts c of n symbols): the
// lowest in [max(ceil log2 k, 12), top) whose quantisation cost, the bits that coding
// with the normalised frequencies q costs over the empirical entropy,
//   D = sum c_i log2(c_i M / (n q_i)),  M = 2**bits,
// is at most 1/1000 of the entropy itself, H = sum c_i log2(n / c_i); else top, the
// precision of the rule before (min(16, ceil log2 n)). Lower precisions make the decode
// tables small enough for the L1 cache (about 1.4x faster decoding at 12-13 bits than at
// 16, docs/entropy.md). Logs are fixed-point with 32 fraction bits and the comparison
// 1000 D <= H is done exactly on 128-bit integers, so every platform picks the same
// precision (the bytes depend on it). Returns the chosen precision and its frequencies.
std::pair<int, std::vector<uint32_t>> pick_bits8(const std::vector<uint64_t>& c, uint64_t n,
                                                 int top) {
  const int lo = std::max(ceil_log2(c.size()), kMinBits8);
  if (lo < top) {
    const uint64_t ln = log2_fx(n);
    std::vector<uint64_t> lc(c.size());
    U128 cl;  // sum c_i log2 c_i
    for (size_t i = 0; i < c.size(); ++i) {
      lc[i] = log2_fx(c[i]);
      cl.add_mul(c[i], lc[i]);
    }
    U128 nln;
    nln.add_mul(n, ln);
    for (int b = lo; b < top; ++b) {
      std::vector<uint32_t> q = normalize(c, n, b);
      // D = P - Q and H = n log2 n - sum c_i log2 c_i, so 1000 D <= H is
      // 1000 P + sum c_i log2 c_i <= 1000 Q + n log2 n, all terms non-negative.
      U128 p = cl, qs = nln;
      p.add_mul(n, uint64_t(b) << 32);  // sum c_i log2 M
      for (size_t i = 0; i < c.size(); ++i) qs.add_mul(c[i], log2_fx(q[i]));
      if (p.times(kCostShare).plus(cl) <= qs.times(kCostShare).plus(nln))
        return {b, std::move(q)};
    }
  }
  return {top, normalize(c, n, top)};
}

template <class Sym>
std::vector<uint64_t> histogram(const Sym* s, uint64_t n, int threads) {
  constexpr size_t A = size_t(1) << (8 * sizeof(Sym));
  const uint64_t parts = (n + kChunk - 1) / kChunk;
  std::vector<std::vector<uint64_t>> partial(parts);
  parallel_for(parts, threads, [&](uint64_t c) {
    const uint64_t b = c * kChunk, e = std::min(n, b + kChunk);
    std::vector<uint32_t> h(4 * A, 0);  // four tables hide store-to-load stalls
    uint64_t i = b;
    for (; i + 4 <= e; i += 4) {
      h[s[i]]++;
      h[A + s[i + 1]]++;
      h[2 * A + s[i + 2]]++;
      h[3 * A + s[i + 3]]++;
    }
    for (; i < e; ++i) h[s[i]]++;
    auto& out = partial[c];
    out.assign(A, 0);
    for (size_t a = 0; a < A; ++a) out[a] = uint64_t(h[a]) + h[A + a] + h[2 * A + a] + h[3 * A + a];
  });
  std::vector<uint64_t> total(A, 0);
  for (const auto& p : partial)
    for (size_t a = 0; a < A; ++a) total[a] += p[a];
  return total;
}

// Below this many symbols of a 16-bit alphabet, the histogram is one table filled by the
// symbols and read back only where they fell: the four-table histogram above zeroes,
// sums and scans 2**16 entries several times (about 0.2 ms a call, whatever n).
constexpr uint64_t kSparseBelow = 1ull << 16;

template <class Sym>
void sparse_histogram(const Sym* s, uint64_t n, std::vector<uint32_t>& present,
                      std::vector<uint64_t>& counts) {
  std::vector<uint32_t> h(size_t(1) << (8 * sizeof(Sym)), 0);
  present.reserve(std::min<uint64_t>(n, h.size()));
  for (uint64_t i = 0; i < n; ++i)
    if (h[s[i]]++ == 0) present.push_back(s[i]);
  std::sort(present.begin(), present.end());
  counts.reserve(present.size());
  for (uint32_t a : present) counts.push_back(h[a]);
}

// Calls f(lane) for lane = K - 1 down to 0, each lane a compile-time constant: arrays
// indexed by it (the K coder states) are then split into registers from the start.
// (With loops over j, GCC kept the states in memory and moved them in and out of
// registers around every iteration: ~12% more instructions in the encoder.)
template <int K, class F, int... J>
inline void lanes_down(F&& f, std::integer_sequence<int, J...>) {
  (f(std::integral_constant<int, K - 1 - J>{}), ...);
}
template <int K, class F>
inline void lanes_down(F&& f) {
  lanes_down<K>(f, std::make_integer_sequence<int, K>{});
}

template <int K, class Sym, class Tab>
size_t encode_chunk(const Sym* s, uint64_t len, const Tab& tab, uint8_t* buf_end) {
  uint64_t st[K];
  lanes_down<K>([&](auto j) { st[j] = kL; });
  // At most one word per symbol: with w = len + 1 words of room above base, the word
  // enc_put always stores below the written ones stays at or above base.
  size_t w = size_t(len) + 1;
  uint8_t* const base = buf_end - 4 * w;
  // Backwards, symbol i on lane i % K: first the symbols past the last multiple of K.
  uint64_t i = len - len % K;
  lanes_down<K>([&](auto j) {
    if (uint64_t(j) < len % K) enc_put(st[j], base, w, tab, s[i + j]);
  });
  while (i) {
    i -= K;
    lanes_down<K>([&](auto j) { enc_put(st[j], base, w, tab, s[i + j]); });
  }
  uint8_t* p = base + 4 * w;
  lanes_down<K>([&](auto j) {
    p -= 8;
    store_le64(p, st[j]);
  });
  return size_t(buf_end - p);
}

// The model half of encode_static: the stream's header up to the chunk length, and the
// encoder table. Without a table (no symbol, or one distinct symbol) the header is the
// whole stream, its hash included.
template <class Sym>
struct StaticPlan {
  using Tab = EncTable<size_t(1) << (8 * sizeof(Sym))>;
  Encoded enc;
  std::unique_ptr<Tab> tab;
  int lanes_log2 = 0;
};

template <class Sym>
StaticPlan<Sym> plan_static(const Sym* s, uint64_t n, int threads) {
  constexpr bool wide = sizeof(Sym) == 2;
  if (n >= kMaxCount) throw InputError("rANS: at most 2**40 symbols per call");
  StaticPlan<Sym> P;
  Encoded& enc = P.enc;
  P.lanes_log2 = lanes_log2_for(n);
  enc.head.push_back(uint8_t(kStaticTag | (wide ? 1 : 0) | (P.lanes_log2 << 1)));
  put_varint(enc.head, n);
  if (n == 0) {
    put_hash(enc.head);
    return P;
  }

  std::vector<uint32_t> present;  // the symbols that occur, ascending, and their counts
  std::vector<uint64_t> counts;
  if (wide && n < kSparseBelow) {
    sparse_histogram(s, n, present, counts);
  } else {
    const std::vector<uint64_t> hist = histogram(s, n, threads);
    for (size_t a = 0; a < hist.size(); ++a)
      if (hist[a]) {
        present.push_back(uint32_t(a));
        counts.push_back(hist[a]);
      }
  }
  const size_t k = present.size();
  int bits = 0;
  std::vector<uint32_t> freq;
  if (k > 1)
    bits = std::max(ceil_log2(k), std::min(wide ? kMaxBits16 : kMaxBits8, ceil_log2(n)));
  if (k > 1 && !wide)
    std::tie(bits, freq) = pick_bits8(counts, n, bits);
  else
    freq = normalize(counts, n, bits);

  enc.head.push_back(uint8_t(bits));
  put_varint(enc.head, k - 1);
  put_varint(enc.head, present[0]);
  for (size_t i = 1; i < k; ++i) put_varint(enc.head, present[i] - present[i - 1] - 1);
  for (size_t i = 0; i < k; ++i) put_varint(enc.head, freq[i] - 1);
  if (k == 1) {
    put_hash(enc.head);
    return P;
  }

  // Not zero-filled (2.6 MB for 16-bit alphabets): only the symbols present are looked up.
  P.tab.reset(new typename StaticPlan<Sym>::Tab);
  uint32_t start = 0;
  for (size_t i = 0; i < k; ++i) {
    P.tab->set(present[i], make_enc_sym(start, freq[i], uint32_t(bits)));
    start += freq[i];
  }
  put_varint(enc.head, kChunk);
  return P;
}

// The room a chunk of len symbols needs: at most one 32-bit word per symbol, the word
// stored past them, the flushed states.
inline size_t chunk_room(uint64_t len) { return size_t(4 * (len + 1) + 8 * (1 << kMaxLanesLog2)); }

// The rest of the stream once its chunks are coded: their sizes and the header's hash.
void close_stream(Encoded& enc) {
  for (const auto& sp : enc.spans) put_varint(enc.head, sp.size);
  put_hash(enc.head);
}

// The symbol half of encode_static: the chunks of a plan with a table, then close_stream.
template <class Sym>
void run_static(StaticPlan<Sym>& P, const Sym* s, uint64_t n, int threads) {
  Encoded& enc = P.enc;
  const uint64_t chunks = (n + kChunk - 1) / kChunk;
  enc.bufs.resize(chunks);
  enc.spans.resize(chunks, Encoded::Span{0, 0, 0});
  parallel_for(chunks, threads, [&](uint64_t c) {
    const uint64_t b = c * kChunk, len = std::min(n, b + kChunk) - b;
    const size_t cap = chunk_room(len);
    enc.bufs[c] = pool::buffer(cap);
    uint8_t* end = enc.bufs[c].get() + cap;
    size_t used = 0;
    switch (P.lanes_log2) {
      case 0: used = encode_chunk<1>(s + b, len, *P.tab, end); break;
      case 1: used = encode_chunk<2>(s + b, len, *P.tab, end); break;
      case 2: used = encode_chunk<4>(s + b, len, *P.tab, end); break;
      default: used = encode_chunk<8>(s + b, len, *P.tab, end); break;
    }
    enc.spans[c] = Encoded::Span{c, cap - used, used};
  });
  close_stream(enc);
}

template <class Sym>
Encoded encode_static(const Sym* s, uint64_t n, int threads) {
  StaticPlan<Sym> P = plan_static(s, n, threads);
  if (P.tab) run_static(P, s, n, threads);
  return std::move(P.enc);
}

// R one-lane streams (each one chunk, as encode_chunk<1> codes it) coded in lockstep: a
// lone one-lane stream waits on its state's multiply at every symbol, R of them overlap
// those waits. The bytes of each are those of encode_chunk<1>.
template <int R, class Sym, class Tab>
void encode_one_lane_lockstep(const Sym* const* s, const uint64_t* len, const Tab* const* tab, uint8_t* const* end,
                              size_t* used) {
  uint64_t st[R], i[R];
  size_t w[R];
  uint8_t* base[R];
  lanes_down<R>([&](auto r) {
    st[r] = kL;
    i[r] = len[r];
    w[r] = size_t(len[r]) + 1;
    base[r] = end[r] - 4 * w[r];
  });
  uint64_t common = len[0];
  for (int r = 1; r < R; ++r) common = std::min(common, len[r]);
  for (uint64_t t = 0; t < common; ++t)
    lanes_down<R>([&](auto r) {
      --i[r];
      enc_put(st[r], base[r], w[r], *tab[r], s[r][i[r]]);
    });
  lanes_down<R>([&](auto r) {
    while (i[r]) {
      --i[r];
      enc_put(st[r], base[r], w[r], *tab[r], s[r][i[r]]);
    }
    uint8_t* p = base[r] + 4 * w[r] - 8;
    store_le64(p, st[r]);
    used[r] = size_t(end[r] - p);
  });
}

// encode_static of each of several symbol arrays (rans_grouped_payload): the same bytes, but
// the one-lane streams (fewer than 2**12 symbols: most groups of a small plane) are coded
// four at a time in lockstep.
template <class Sym>
std::vector<Encoded> encode_static_many(const std::vector<const Sym*>& s, const std::vector<uint64_t>& n,
                                        int threads) {
  constexpr int R = 4;
  std::vector<StaticPlan<Sym>> plans;
  plans.reserve(s.size());
  std::vector<size_t> lone;  // the one-lane plans with a table
  for (size_t g = 0; g < s.size(); ++g) {
    plans.push_back(plan_static(s[g], n[g], threads));
    if (!plans[g].tab) continue;
    if (plans[g].lanes_log2 == 0)
      lone.push_back(g);
    else
      run_static(plans[g], s[g], n[g], threads);
  }
  using Tab = typename StaticPlan<Sym>::Tab;
  for (size_t at = 0; at < lone.size(); at += R) {
    const size_t count = std::min<size_t>(R, lone.size() - at);  // fewer than R: each alone
    const Sym* src[R];
    uint64_t len[R];
    const Tab* tab[R];
    uint8_t* end[R];
    size_t used[R];
    for (size_t r = 0; r < count; ++r) {
      const size_t g = lone[at + r];
      Encoded& enc = plans[g].enc;
      enc.bufs.resize(1);
      enc.bufs[0] = pool::buffer(chunk_room(n[g]));
      src[r] = s[g];
      len[r] = n[g];
      tab[r] = plans[g].tab.get();
      end[r] = enc.bufs[0].get() + chunk_room(n[g]);
      if (count < R) used[r] = encode_chunk<1>(src[r], len[r], *tab[r], end[r]);
    }
    if (count == R) encode_one_lane_lockstep<R>(src, len, tab, end, used);
    for (size_t r = 0; r < count; ++r) {
      Encoded& enc = plans[lone[at + r]].enc;
      enc.spans.assign(1, Encoded::Span{0, chunk_room(len[r]) - used[r], used[r]});
      close_stream(enc);
    }
  }
  std::vector<Encoded> out;
  out.reserve(plans.size());
  for (auto& P : plans) out.push_back(std::move(P.enc));
  return out;
}

// ----- decoding -----

// Two table layouts, both indexed by the slot x mod 2**bits. The state update
// x' = freq * (x >> bits) + (slot - start) has the table lookup on its dependency chain,
// so what matters is which cache level the lookup hits:
//  * DecTables (any alphabet): the symbol, and the frequency packed with (slot - start)
//    in one word E, so the update needs a single lookup that does not wait for the
//    symbol. 5 bytes per slot (8-bit): 20 KiB at precision 12, 40 KiB at 13, fastest
//    while it (mostly) fits the 32 KiB L1 cache; 320 KiB at 16, an L2 access per symbol.
//  * SymTables (8-bit alphabets): the symbol byte per slot, then (freq, start) per symbol
//    from a 4 KiB table. Two dependent lookups, but from 16 + 4 KiB at precision 14, and
//    at 16 the 64 KiB byte table stays in L2 far better than 320 KiB: measured 1.2-1.25x
//    faster than DecTables at precision 16, about even at 14, slower at 12-13
//    (docs/entropy.md, session 4).
template <class Sym, class E>
struct DecTables {
  static constexpr int kShift = int(sizeof(E)) * 4;
  int bits = 0;
  std::vector<Sym> lut;
  std::vector<E> slots;

  DecTables(int b, const std::vector<uint32_t>& present, const std::vector<uint32_t>& freq)
      : bits(b), lut(size_t(1) << b), slots(size_t(1) << b) {
    uint32_t start = 0;
    for (size_t i = 0; i < present.size(); ++i) {
      for (uint32_t s = start; s < start + freq[i]; ++s) {
        lut[s] = Sym(present[i]);
        slots[s] = E(freq[i]) | (E(s - start) << kShift);
      }
      start += freq[i];
    }
  }
};

// Decodes one symbol from DecTables (without renormalising). Bits: the precision when
// known at compile time (0: d.bits), so the hot loop's shifts and masks are immediates
// and leave registers to the K states.
template <int Bits, class Sym, class E>
struct SlotLookup {
  static constexpr int kShift = DecTables<Sym, E>::kShift;
  static constexpr E kLow = (E(1) << kShift) - 1;
  const Sym* lut;
  const E* slots;
  uint32_t bits;
  explicit SlotLookup(const DecTables<Sym, E>& d)
      : lut(d.lut.data()), slots(d.slots.data()), bits(Bits ? uint32_t(Bits) : uint32_t(d.bits)) {}
  uint64_t step(uint64_t x, Sym& o) const {
    const uint32_t b = Bits ? uint32_t(Bits) : bits;
    const size_t slot = size_t(x & ((1ull << b) - 1));
    o = lut[slot];
    const E e = slots[slot];
    return uint64_t(e & kLow) * (x >> b) + uint64_t(e >> kShift);
  }
};

struct SymTables {
  std::vector<uint8_t> lut;              // slot -> symbol
  std::unique_ptr<uint64_t[]> fs;        // freq[256], then start[256]: one register, and
                                         // each field a scaled-index memory operand
  SymTables(int bits, const std::vector<uint32_t>& present, const std::vector<uint32_t>& freq)
      : lut(size_t(1) << bits), fs(new uint64_t[512]()) {
    uint32_t start = 0;
    for (size_t i = 0; i < present.size(); ++i) {
      std::fill(lut.begin() + start, lut.begin() + start + freq[i], uint8_t(present[i]));
      fs[present[i]] = freq[i];
      fs[256 + present[i]] = start;
      start += freq[i];
    }
  }
};

template <int Bits>
struct SymLookup {
  const uint8_t* lut;
  const uint64_t* fs;
  explicit SymLookup(const SymTables& d) : lut(d.lut.data()), fs(d.fs.get()) {}
  uint64_t step(uint64_t x, uint8_t& o) const {
    const size_t slot = size_t(x & ((1ull << Bits) - 1));
    const size_t s = lut[slot];
    o = uint8_t(s);
    return fs[s] * (x >> Bits) + slot - fs[256 + s];
  }
};

// 16-bit alphabets: per slot the rank of its symbol among the k present (2 bytes), then
// that rank's frequency, start and symbol from arrays of k entries. At the precision the
// encoder picks for long wide streams (up to 20 bits) the lookup on the state's chain
// reads 2 MiB instead of DecTables' 8 MiB of packed words (informal timing on 11-14-bit
// indices: docs/entropy.md).
struct WideSymTables {
  std::vector<uint16_t> lut;  // slot -> rank
  std::vector<uint64_t> fs;   // freq[k], then start[k]
  std::vector<uint16_t> sym;  // rank -> symbol
  WideSymTables(int bits, const std::vector<uint32_t>& present, const std::vector<uint32_t>& freq)
      : lut(size_t(1) << bits), fs(2 * present.size()), sym(present.size()) {
    const size_t k = present.size();
    uint32_t start = 0;
    for (size_t i = 0; i < k; ++i) {
      std::fill(lut.begin() + start, lut.begin() + start + freq[i], uint16_t(i));
      fs[i] = freq[i];
      fs[k + i] = start;
      sym[i] = uint16_t(present[i]);
      start += freq[i];
    }
  }
};

template <int Bits>
struct WideSymLookup {
  const uint16_t* lut;
  const uint64_t* freq;
  const uint64_t* start;
  const uint16_t* sym;
  explicit WideSymLookup(const WideSymTables& d)
      : lut(d.lut.data()), freq(d.fs.data()), start(d.fs.data() + d.sym.size()), sym(d.sym.data()) {}
  uint64_t step(uint64_t x, uint16_t& o) const {
    const size_t slot = size_t(x & ((1ull << Bits) - 1));
    const size_t i = lut[slot];
    o = sym[i];
    return freq[i] * (x >> Bits) + slot - start[i];
  }
};

// Decodes one chunk with lookup lk (SlotLookup, SymLookup or WideSymLookup).
template <int K, class Sym, class Lookup>
void decode_chunk(const uint8_t* p, size_t size, Sym* out, uint64_t len, const Lookup& lk) {
  const uint8_t* const end = p + size;
  if (size < 8 * size_t(K))
    throw TruncatedError("rANS chunk truncated: shorter than its " + std::to_string(K) +
                         " states");
  if ((size - 8 * K) % 4)
    throw FormatError("rANS chunk size is not a whole number of 32-bit words");
  uint64_t st[K];
  for (int j = 0; j < K; ++j) {
    st[j] = load_le64(p);
    p += 8;
    if (st[j] < kL || st[j] >= kStateEnd)
      throw FormatError("rANS chunk starts with an invalid coder state (corrupt stream)");
  }
  const uint8_t* const words = p;  // the 32-bit words, read in order: w so far
  const size_t nwords = size_t(end - words) / 4;
  size_t w = 0;
  auto checked = [&](uint64_t& x, Sym& o) {
    x = lk.step(x, o);
    if (x < kL) {
      if (w == nwords)
        throw TruncatedError("rANS chunk truncated: the stream ends before its symbols do");
      x = (x << 32) | load_le32(words + 4 * w);
      ++w;
    }
  };
  uint64_t i = 0;
  while (i + K <= len) {
    // A group of K symbols reads at most K words, so this many groups need no bounds
    // check: the hot loop has a single counter (the output position) and no test of w.
    const uint64_t groups = std::min((len - i) / K, uint64_t((nwords - w) / K));
    if (groups == 0) {
      for (int j = 0; j < K; ++j) checked(st[j], out[i + j]);
      i += K;
      continue;
    }
    Sym* o = out + i;
    Sym* const o_end = o + groups * K;
    for (; o != o_end; o += K) {
      // Decode all lanes first (independent chains), then renormalise them in order.
      for (int j = 0; j < K; ++j) st[j] = lk.step(st[j], o[j]);
      for (int j = 0; j < K; ++j) dec_renorm(st[j], words, w);
    }
    i += groups * K;
  }
  for (; i < len; ++i) checked(st[i % K], out[i]);
  if (w != nwords)
    throw FormatError("rANS chunk has " + std::to_string(4 * (nwords - w)) +
                      " bytes left after its last symbol (corrupt stream or wrong count)");
  for (int j = 0; j < K; ++j)
    if (st[j] != kL)
      throw FormatError("rANS chunk ends in the wrong coder state (corrupt stream)");
}

struct StaticHeader {
  bool wide = false;
  int lanes_log2 = 0;
  uint64_t n = 0;
};

StaticHeader read_static_header(Reader& r) {
  StaticHeader h;
  const uint8_t tag = r.byte("the rANS header");
  if ((tag & 0xf0) != kStaticTag || ((tag >> 1) & 7) > kMaxLanesLog2)
    throw FormatError("not a featcodec static rANS stream (unknown tag byte " +
                      std::to_string(tag) + ")");
  h.wide = tag & 1;
  h.lanes_log2 = (tag >> 1) & 7;
  h.n = r.varint("the symbol count");
  return h;
}

template <class Sym, class E>
void decode_chunks(const StaticHeader& h, int bits, const std::vector<uint32_t>& present,
                   const std::vector<uint32_t>& freq, uint64_t chunk,
                   const std::vector<std::pair<const uint8_t*, size_t>>& spans, Sym* out,
                   uint64_t n, int threads) {
  // f(p, size, out, len) decodes each chunk, on the threads.
  auto each_chunk = [&](auto&& f) {
    parallel_for(spans.size(), threads, [&](uint64_t c) {
      const uint64_t b = c * chunk;
      f(spans[c].first, spans[c].second, out + b, std::min(n, b + chunk) - b);
    });
  };
  // Long streams (8 lanes) have the precision as a compile-time constant: 12 to 16 for
  // 8-bit alphabets (what the encoder picks for >= 2**16 symbols), 16 to 20 for 16-bit ones.
  if (h.lanes_log2 == 3) {
    if constexpr (sizeof(Sym) == 1) {
      if (bits >= 14 && bits <= 16) {
        const SymTables d(bits, present, freq);
        each_chunk([&](const uint8_t* p, size_t sz, Sym* o, uint64_t len) {
          if (bits == 14) decode_chunk<8>(p, sz, o, len, SymLookup<14>(d));
          else if (bits == 15) decode_chunk<8>(p, sz, o, len, SymLookup<15>(d));
          else decode_chunk<8>(p, sz, o, len, SymLookup<16>(d));
        });
        return;
      }
    }
    if constexpr (sizeof(Sym) == 2) {
      if (bits >= 16 && bits <= 20) {
        const WideSymTables d(bits, present, freq);
        each_chunk([&](const uint8_t* p, size_t sz, Sym* o, uint64_t len) {
          switch (bits) {
            case 16: decode_chunk<8>(p, sz, o, len, WideSymLookup<16>(d)); break;
            case 17: decode_chunk<8>(p, sz, o, len, WideSymLookup<17>(d)); break;
            case 18: decode_chunk<8>(p, sz, o, len, WideSymLookup<18>(d)); break;
            case 19: decode_chunk<8>(p, sz, o, len, WideSymLookup<19>(d)); break;
            default: decode_chunk<8>(p, sz, o, len, WideSymLookup<20>(d)); break;
          }
        });
        return;
      }
    }
    const DecTables<Sym, E> d(bits, present, freq);
    each_chunk([&](const uint8_t* p, size_t sz, Sym* o, uint64_t len) {
      if (sizeof(Sym) == 1 && bits == 12) decode_chunk<8>(p, sz, o, len, SlotLookup<12, Sym, E>(d));
      else if (sizeof(Sym) == 1 && bits == 13) decode_chunk<8>(p, sz, o, len, SlotLookup<13, Sym, E>(d));
      else if (bits == 16) decode_chunk<8>(p, sz, o, len, SlotLookup<16, Sym, E>(d));
      else decode_chunk<8>(p, sz, o, len, SlotLookup<0, Sym, E>(d));
    });
    return;
  }
  const DecTables<Sym, E> d(bits, present, freq);
  const SlotLookup<0, Sym, E> lk(d);
  each_chunk([&](const uint8_t* p, size_t sz, Sym* o, uint64_t len) {
    switch (h.lanes_log2) {
      case 0: decode_chunk<1>(p, sz, o, len, lk); break;
      case 1: decode_chunk<2>(p, sz, o, len, lk); break;
      default: decode_chunk<4>(p, sz, o, len, lk); break;
    }
  });
}

template <class Sym>
void decode_static(const uint8_t* data, size_t size, Sym* out, uint64_t n, int threads) {
  constexpr bool wide = sizeof(Sym) == 2;
  Reader r(data, size);
  const StaticHeader h = read_static_header(r);
  if (h.wide != wide) throw FormatError("rANS stream alphabet does not match the output");
  if (h.n != n)
    throw FormatError("rANS stream holds " + std::to_string(h.n) + " symbols, " +
                      std::to_string(n) + " were asked for");
  if (n == 0) {
    check_hash(r, data);
    if (r.remaining()) throw FormatError("rANS stream has trailing bytes");
    return;
  }
  const int bits = r.byte("the table precision");
  if (bits > (wide ? kMaxBits16 : kMaxBits8))
    throw FormatError("rANS table precision " + std::to_string(bits) + " is out of range");
  const uint64_t M = 1ull << bits;
  const uint64_t A = wide ? 65536 : 256;
  const uint64_t k = r.varint("the table size") + 1;
  if (k > A || k > M) throw FormatError("rANS table lists more symbols than fit");
  std::vector<uint32_t> present(k);
  uint64_t sym = r.varint("the table symbols");
  for (uint64_t i = 0; i < k; ++i) {
    if (i) sym += r.varint("the table symbols") + 1;
    if (sym >= A) throw FormatError("rANS table names a symbol outside the alphabet");
    present[i] = uint32_t(sym);
  }
  std::vector<uint32_t> freq(k);
  uint64_t total = 0;
  for (uint64_t i = 0; i < k; ++i) {
    const uint64_t f = r.varint("the table frequencies") + 1;
    if (f > M || (total += f) > M)
      throw FormatError("rANS table frequencies exceed the precision");
    freq[i] = uint32_t(f);
  }
  if (total != M)
    throw FormatError("rANS table frequencies do not sum to the precision (corrupt table)");
  if (k == 1) {
    check_hash(r, data);
    if (r.remaining()) throw FormatError("rANS stream has trailing bytes");
    std::fill(out, out + n, Sym(present[0]));
    return;
  }
  const uint64_t chunk = r.varint("the chunk size");
  if (chunk == 0) throw FormatError("rANS chunk size is zero");
  const uint64_t chunks = (n + chunk - 1) / chunk;
  if (chunks > r.remaining()) throw TruncatedError("rANS stream truncated in the chunk list");
  std::vector<std::pair<const uint8_t*, size_t>> spans(chunks);
  std::vector<uint64_t> sizes(chunks);
  uint64_t payload = 0;
  for (uint64_t c = 0; c < chunks; ++c) {
    sizes[c] = r.varint("the chunk sizes");
    if (sizes[c] > size) throw TruncatedError("rANS chunk larger than the stream");
    payload += sizes[c];
  }
  check_hash(r, data);
  if (payload > r.remaining())
    throw TruncatedError("rANS stream truncated: " + std::to_string(payload) +
                         " payload bytes expected, " + std::to_string(r.remaining()) +
                         " present");
  if (payload < r.remaining()) throw FormatError("rANS stream has trailing bytes");
  for (uint64_t c = 0; c < chunks; ++c) {
    spans[c] = {r.pos(), size_t(sizes[c])};
    r.skip(size_t(sizes[c]));
  }

  if (bits <= 16) {
    decode_chunks<Sym, uint32_t>(h, bits, present, freq, chunk, spans, out, n, threads);
  } else {
    decode_chunks<Sym, uint64_t>(h, bits, present, freq, chunk, spans, out, n, threads);
  }
}

}  // namespace

Encoded encode_static8(const uint8_t* data, uint64_t n, int threads) {
  return encode_static(data, n, threads);
}
Encoded encode_static16(const uint16_t* data, uint64_t n, int threads) {
  return encode_static(data, n, threads);
}
std::vector<Encoded> encode_static_many8(const std::vector<const uint8_t*>& data, const std::vector<uint64_t>& n,
                                         int threads) {
  return encode_static_many(data, n, threads);
}
std::vector<Encoded> encode_static_many16(const std::vector<const uint16_t*>& data, const std::vector<uint64_t>& n,
                                          int threads) {
  return encode_static_many(data, n, threads);
}
// The header (layout above) holds at least one byte for each of the tag, the count, the
// precision, the number of symbols and each symbol, one for each frequency, three for the
// chunk length (2**20), one for each chunk's size and four for the hash; one symbol stops
// after the symbols, none after the count. The words hold at least the information less
// the floors' loss: coding with the table's frequencies costs at least the empirical
// entropy, and each step loses at most 2**-10 bit to its floors (states of at least 2**31
// over tables of at most 2**20 slots: counted as n / 4096 bytes); the final states (8
// bytes a lane) more than pay for the initial ones (4 bytes of information a lane). Two
// bytes more are left for the rounding of the information's floating-point sum.
int64_t static_size_bound(double info, uint64_t distinct, uint64_t n) {
  if (n == 0) return 6;
  if (distinct <= 1) return 9;
  const int64_t chunks = int64_t((n + kChunk - 1) / kChunk), loss = int64_t((n + 4095) / 4096);
  return int64_t(std::floor(info / 8.0)) + 2 * int64_t(distinct) + 11 + chunks - loss - 2;
}

int static_alphabet_bits(const uint8_t* data, size_t size, uint64_t* count) {
  Reader r(data, size);
  const StaticHeader h = read_static_header(r);
  *count = h.n;
  return h.wide ? 16 : 8;
}
void decode_static8(const uint8_t* data, size_t size, uint8_t* out, uint64_t n, int threads) {
  decode_static(data, size, out, n, threads);
}
void decode_static16(const uint8_t* data, size_t size, uint16_t* out, uint64_t n,
                     int threads) {
  decode_static(data, size, out, n, threads);
}

}  // namespace rans
}  // namespace featcodec
