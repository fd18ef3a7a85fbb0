// rANS entropy coding: shared primitives of the static-frequency and indexed-CDF models.
//
// Both models use 64-bit rANS states normalised to [kL, kL << 32) with 32-bit
// renormalisation (F. Giesen's rans64 construction), several states interleaved over one
// word stream (symbol i is coded by state i % lanes), and a fixed little-endian byte
// order, so the bytes are identical on every platform, in every process and for every
// thread count. Every decoder reads only inside the buffer it is given, bounds every loop
// by the symbol count the caller asks for and checks the final states, so bad bytes raise
// FormatError / TruncatedError instead of crashing or silently corrupting.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <exception>
#include <memory>
#include <thread>
#include <atomic>
#include <utility>
#include <stdexcept>
#include <string>
#include <vector>

#include "pool.h"

namespace featcodec {
namespace rans {

// Errors, translated to featcodec.FormatError / TruncatedError / InputError in Python.
struct FormatError : std::runtime_error {
  using std::runtime_error::runtime_error;
};
struct TruncatedError : FormatError {
  using FormatError::FormatError;
};
struct InputError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

constexpr uint64_t kL = 1ull << 31;         // lower bound of a normalised state
constexpr uint64_t kStateEnd = kL << 32;    // states stay below 2**63
constexpr int kMaxLanesLog2 = 3;            // at most 8 interleaved states

inline uint32_t load_le32(const uint8_t* p) {
  return uint32_t(p[0]) | (uint32_t(p[1]) << 8) | (uint32_t(p[2]) << 16) |
         (uint32_t(p[3]) << 24);
}
inline void store_le32(uint8_t* p, uint32_t v) {
  p[0] = uint8_t(v);
  p[1] = uint8_t(v >> 8);
  p[2] = uint8_t(v >> 16);
  p[3] = uint8_t(v >> 24);
}
inline uint64_t load_le64(const uint8_t* p) {
  return uint64_t(load_le32(p)) | (uint64_t(load_le32(p + 4)) << 32);
}
inline void store_le64(uint8_t* p, uint64_t v) {
  store_le32(p, uint32_t(v));
  store_le32(p + 4, uint32_t(v >> 32));
}

inline uint64_t mulhi64(uint64_t a, uint64_t b) {
#if defined(__SIZEOF_INT128__)
  return uint64_t((unsigned __int128)a * b >> 64);
#else
  const uint64_t a0 = uint32_t(a), a1 = a >> 32, b0 = uint32_t(b), b1 = b >> 32;
  const uint64_t p00 = a0 * b0, p01 = a0 * b1, p10 = a1 * b0, p11 = a1 * b1;
  const uint64_t mid = (p00 >> 32) + uint32_t(p01) + uint32_t(p10);
  return p11 + (p01 >> 32) + (p10 >> 32) + (mid >> 32);
#endif
}

// Number of interleaved states (log2) for a stream of n symbols: one state for short
// streams (each state costs 8 bytes to flush), eight for long ones (speed).
inline int lanes_log2_for(uint64_t n) {
  if (n >= (1u << 16)) return 3;
  if (n >= (1u << 14)) return 2;
  if (n >= (1u << 12)) return 1;
  return 0;
}

// An encoder symbol (stored field by field in an EncTable): division by freq replaced by
// a multiplication with its reciprocal (exact for states below 2**63), as in rans64.h.
struct EncSym {
  uint64_t rcp = 0;
  uint64_t x_max = 0;
  uint32_t bias = 0;
  uint32_t cmpl = 0;
  uint32_t shift = 0;
};

inline EncSym make_enc_sym(uint32_t start, uint32_t freq, uint32_t bits) {
  EncSym s;
  s.x_max = ((kL >> bits) << 32) * freq;
  s.cmpl = (1u << bits) - freq;
  if (freq < 2) {
    s.rcp = ~0ull;
    s.shift = 0;
    s.bias = start + (1u << bits) - 1;
  } else {
    uint32_t shift = 0;
    while (freq > (1u << shift)) shift++;
    // ceil(2**(shift + 63) / freq) by long division in 32-bit halves.
    uint64_t x0 = freq - 1;
    const uint64_t x1 = 1ull << (shift + 31);
    const uint64_t t1 = x1 / freq;
    x0 += (x1 % freq) << 32;
    const uint64_t t0 = x0 / freq;
    s.rcp = t0 + (t1 << 32);
    s.shift = shift - 1;
    s.bias = start;
  }
  return s;
}

// Makes the compiler compute v here, unconditionally. GCC otherwise sinks the work that
// only one side of a select needs into a branch, and the renormalisation branches are
// taken at random (about one symbol in six at 5 bits per symbol), so they mispredict; with
// v already computed the select compiles to a conditional move.
template <class T>
inline void compute_now(T& v) {
#if defined(__GNUC__)
  asm("" : "+r"(v));
#else
  (void)v;
#endif
}

// Decoder renormalisation: pull the next 32-bit word, number w of the words at base, into
// x when x fell below kL. Reads that word unconditionally: the caller guarantees it is
// inside the buffer. w is an index, not a pointer, so that `w += r` compiles to one
// add-with-carry of the comparison.
inline void dec_renorm(uint64_t& x, const uint8_t* base, size_t& w) {
  uint64_t y = (x << 32) | load_le32(base + 4 * w);
  compute_now(y);
  // r as a full-width integer: with a `bool`, GCC wrote `setb` into the register of the
  // word load, a false dependency that put the load latency on the chain of position
  // updates (decode ~25% slower than with masks).
  const uint64_t r = x < kL;
  x = r ? y : x;
  w += r;
}

// Encode one symbol into state x, writing at most one 32-bit word downwards: the words
// written so far start at base + 4 * w. Branch-free: the low word of x is always stored
// just below them (the caller keeps room for it), and w moves only when the state really
// overflows, the state update being a conditional move (see compute_now). w is an index,
// not a pointer, so that `w - 1 + keep` compiles to one add-with-carry of the comparison.
// T holds the EncSym fields of symbol s as T::field[s] (see EncTable).
template <class T>
inline void enc_put(uint64_t& x, uint8_t* base, size_t& w, const T& t, size_t s) {
  uint64_t y = x >> 32;
  compute_now(y);
  const uint64_t keep = x < t.x_max[s];  // 64-bit: see dec_renorm
  store_le32(base + 4 * w - 4, uint32_t(x));
  x = keep ? x : y;  // before the add-with-carry: GCC then compares only once for both
  w = w - 1 + keep;
  const uint64_t q = mulhi64(x, t.rcp[s]) >> t.shift[s];
  x = x + t.bias[s] + q * t.cmpl[s];
}

// The EncSym of each symbol of an alphabet of A, field by field (structure of arrays), all
// 64-bit and in one block: field f of symbol s is at this + offset of f + 8 * s, an address
// x86 forms from the symbol alone (scaled index), where an array of 32-byte EncSym needs a
// shift and an add per symbol; one register holds the whole table.
template <size_t A>
struct EncTable {
  uint64_t rcp[A];
  uint64_t x_max[A];
  uint64_t bias[A];
  uint64_t cmpl[A];
  uint64_t shift[A];
  void set(size_t s, const EncSym& e) {
    rcp[s] = e.rcp;
    x_max[s] = e.x_max;
    bias[s] = e.bias;
    cmpl[s] = e.cmpl;
    shift[s] = e.shift;
  }
};

// Unsigned LEB128 varints for headers and tables.
inline void put_varint(std::vector<uint8_t>& out, uint64_t v) {
  while (v >= 0x80) {
    out.push_back(uint8_t(v | 0x80));
    v >>= 7;
  }
  out.push_back(uint8_t(v));
}

// Reads a header or table from untrusted bytes; every read is bounds-checked.
class Reader {
 public:
  Reader(const uint8_t* p, size_t n) : p_(p), end_(p + n) {}
  size_t remaining() const { return size_t(end_ - p_); }
  const uint8_t* pos() const { return p_; }
  void skip(size_t n) {
    if (remaining() < n) throw TruncatedError("rANS stream truncated: " + std::to_string(n) +
                                              " bytes expected, " +
                                              std::to_string(remaining()) + " left");
    p_ += n;
  }
  uint8_t byte(const char* what) {
    if (p_ >= end_) throw TruncatedError(std::string("rANS stream truncated in ") + what);
    return *p_++;
  }
  uint64_t varint(const char* what) {
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      const uint8_t b = byte(what);
      if (shift == 63 && b > 1) break;
      v |= uint64_t(b & 0x7f) << shift;
      if (!(b & 0x80)) return v;
    }
    throw FormatError(std::string("rANS stream has a malformed varint in ") + what);
  }

 private:
  const uint8_t* p_;
  const uint8_t* end_;
};

// An encoded stream held as pieces (a header, then payload spans inside buffers the
// encoder wrote backwards), so the caller copies it once into its final home.
struct Encoded {
  std::vector<uint8_t> head;
  std::vector<pool::Buffer> bufs;  // not zero-filled
  struct Span {
    size_t buf, offset, size;  // bytes [offset, offset + size) of bufs[buf]
  };
  std::vector<Span> spans;
  size_t size() const {
    size_t s = head.size();
    for (const auto& sp : spans) s += sp.size;
    return s;
  }
  void write_to(uint8_t* dst) const {
    std::memcpy(dst, head.data(), head.size());
    dst += head.size();
    for (const auto& sp : spans) {
      std::memcpy(dst, bufs[sp.buf].get() + sp.offset, sp.size);
      dst += sp.size;
    }
  }
};

// Run f(i) for i in [0, n) on up to `threads` threads; rethrows the exception of the
// lowest failing i, so errors do not depend on the thread count either.
template <class F>
void parallel_for(uint64_t n, int threads, F f) {
  if (threads < 1) threads = 1;
  if (uint64_t(threads) > n) threads = int(n);
  std::vector<std::exception_ptr> errors(n);
  std::atomic<uint64_t> next{0};
  auto work = [&]() {
    for (uint64_t i; (i = next.fetch_add(1)) < n;) {
      try {
        f(i);
      } catch (...) {
        errors[i] = std::current_exception();
      }
    }
  };
  if (threads <= 1) {
    work();
  } else {
    std::vector<std::thread> pool;
    for (int t = 1; t < threads; ++t) pool.emplace_back(work);
    work();
    for (auto& th : pool) th.join();
  }
  for (auto& e : errors)
    if (e) std::rethrow_exception(e);
}

// ----- static frequency model (table stored in the stream) -----
// Encode n symbols of an 8-bit or 16-bit alphabet. The thread count does not change the
// bytes.
Encoded encode_static8(const uint8_t* data, uint64_t n, int threads);
Encoded encode_static16(const uint16_t* data, uint64_t n, int threads);
// encode_static8/16 of several arrays, the same bytes each (short ones coded in lockstep).
std::vector<Encoded> encode_static_many8(const std::vector<const uint8_t*>& data, const std::vector<uint64_t>& n,
                                         int threads);
std::vector<Encoded> encode_static_many16(const std::vector<const uint16_t*>& data,
                                          const std::vector<uint64_t>& n, int threads);
// A lower bound on the bytes encode_static8/16 writes for n symbols with `distinct`
// distinct values and empirical information `info` (bits: the sum of -log2 of each
// symbol's frequency), without coding them: what lets a caller skip a candidate that
// cannot be the smallest.
int64_t static_size_bound(double info, uint64_t distinct, uint64_t n);

// Parsed header of a static stream (the decode entry points need the alphabet first).
int static_alphabet_bits(const uint8_t* data, size_t size, uint64_t* count);
void decode_static8(const uint8_t* data, size_t size, uint8_t* out, uint64_t n, int threads);
void decode_static16(const uint8_t* data, size_t size, uint16_t* out, uint64_t n,
                     int threads);

// ----- indexed-CDF model (CompressAI semantics, precision 16) -----
struct CdfTables {
  const int32_t* cdfs;     // (num_tables, stride), row-major
  int64_t num_tables;
  int64_t stride;
  const int32_t* lengths;  // (num_tables,)
  const int32_t* offsets;  // (num_tables,)
};
// Throws InputError naming the first bad table.
void validate_tables(const CdfTables& t);
Encoded encode_indexed(const int32_t* symbols, const int32_t* indexes,
                                    uint64_t n, const CdfTables& t);
// Decodes an indexed stream piece by piece (CompressAI's set_stream / decode_stream):
// decode() may be called repeatedly, finish() checks the stream was consumed exactly.
// `data` must outlive the decoder.
class IndexedDecoder {
 public:
  IndexedDecoder(const uint8_t* data, size_t size);
  void decode(const int32_t* indexes, uint64_t n, const CdfTables& t, int32_t* out);
  void finish() const;

 private:
  const uint8_t* data_;
  size_t size_;
  size_t pos_ = 0;
  int lanes_ = 1;
  bool has_states_ = false;
  uint64_t done_ = 0;
  uint64_t st_[1 << kMaxLanesLog2] = {};
};
void decode_indexed(const uint8_t* data, size_t size, const int32_t* indexes, uint64_t n,
                    const CdfTables& t, int32_t* out);

}  // namespace rans
}  // namespace featcodec
