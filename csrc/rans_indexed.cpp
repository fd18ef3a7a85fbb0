// Indexed-CDF model: symbol i is coded with the quantized CDF table indexes[i], with
// CompressAI's semantics (precision 16; table r codes values offsets[r] ..
// offsets[r] + lengths[r] - 3 directly, its last entry is an escape after which the
// out-of-range value follows in 4-bit groups, so no value is ever rejected).
//
// Stream layout: byte 0x20 | log2 lanes; then (when n > 0) the lanes' 64-bit final states
// and 32-bit words, little-endian. The decoder is told n by the caller (len(indexes)).
#include <algorithm>

#include "rans.h"

namespace featcodec {
namespace rans {
namespace {

constexpr uint8_t kIndexedTag = 0x20;
constexpr uint32_t kPrec = 16;
constexpr uint32_t kBypassBits = 4;
constexpr uint32_t kBypassMax = (1u << kBypassBits) - 1;
constexpr int kMaxBypass = 9;  // 36 bits cover every int32 value minus any offset

// One coding step: a (start, freq) interval at `bits` precision.
struct Op {
  uint32_t start;
  uint32_t freq;
  uint32_t bits;
};

inline void enc_op(uint64_t& x, uint8_t*& p, uint32_t start, uint32_t freq, uint32_t bits) {
  const uint64_t x_max = ((kL >> bits) << 32) * freq;
  if (x >= x_max) {
    p -= 4;
    store_le32(p, uint32_t(x));
    x >>= 32;
  }
  x = ((x / freq) << bits) + (x % freq) + start;
}

// The escape payload of a value outside a table: (raw value, number of 4-bit groups).
inline void escape_of(int64_t value, int32_t max_value, uint64_t& raw, int& groups) {
  raw = value < 0 ? uint64_t(-2 * value - 1) : uint64_t(2 * (value - max_value));
  groups = 0;
  while (groups < 16 && (raw >> (groups * kBypassBits)) != 0) ++groups;
}

// Decoder state of one lane with bounds-checked reads.
struct LaneReader {
  const uint8_t*& p;
  const uint8_t* end;
  void renorm(uint64_t& x) {
    if (x < kL) {
      if (end - p < 4)
        throw TruncatedError("rANS stream truncated: it ends before its symbols do");
      x = (x << 32) | load_le32(p);
      p += 4;
    }
  }
  uint32_t bits(uint64_t& x) {  // one 4-bit bypass group
    const uint32_t v = uint32_t(x & kBypassMax);
    x >>= kBypassBits;
    renorm(x);
    return v;
  }
};

}  // namespace

void validate_tables(const CdfTables& t) {
  if (t.num_tables < 1) throw InputError("indexed rANS needs at least one CDF table");
  for (int64_t r = 0; r < t.num_tables; ++r) {
    const int32_t len = t.lengths[r];
    const std::string name = "CDF table " + std::to_string(r);
    if (len < 2 || len > t.stride)
      throw InputError(name + " has length " + std::to_string(len) + "; lengths must be in [2, " +
                       std::to_string(t.stride) + "] (the table width)");
    const int32_t* c = t.cdfs + r * t.stride;
    if (c[0] != 0 || c[len - 1] != (1 << kPrec))
      throw InputError(name + " must start at 0 and end at 65536 (precision 16)");
    for (int32_t i = 1; i < len; ++i)
      if (c[i] < c[i - 1]) throw InputError(name + " is not non-decreasing");
  }
}

Encoded encode_indexed(const int32_t* symbols, const int32_t* indexes, uint64_t n,
                       const CdfTables& t) {
  validate_tables(t);
  const int lanes_log2 = lanes_log2_for(n);
  Encoded enc;
  enc.head.push_back(uint8_t(kIndexedTag | lanes_log2));
  if (n == 0) return enc;
  // First pass: check every symbol and count the coding steps (bounds the output).
  uint64_t steps = 0;
  for (uint64_t i = 0; i < n; ++i) {
    const int32_t r = indexes[i];
    if (r < 0 || r >= t.num_tables)
      throw InputError("index " + std::to_string(r) + " at position " + std::to_string(i) +
                       " names no CDF table (there are " + std::to_string(t.num_tables) + ")");
    const int32_t* c = t.cdfs + int64_t(r) * t.stride;
    const int32_t max_value = t.lengths[r] - 2;
    const int64_t value = int64_t(symbols[i]) - t.offsets[r];
    const int64_t v = (value < 0 || value >= max_value) ? max_value : value;
    if (c[v + 1] == c[v])
      throw InputError("symbol " + std::to_string(symbols[i]) + " at position " +
                       std::to_string(i) + " has zero probability in CDF table " +
                       std::to_string(r) +
                       (v == max_value ? " (its escape entry is empty)" : ""));
    steps += 1;
    if (v == max_value) {
      uint64_t raw;
      int groups;
      escape_of(value, max_value, raw, groups);
      steps += uint64_t(groups / kBypassMax + 1 + groups);
    }
  }
  const int K = 1 << lanes_log2;
  const size_t cap = size_t(4 * steps + 8 * K);
  enc.bufs.push_back(pool::buffer(cap));
  uint8_t* const end = enc.bufs[0].get() + cap;
  uint8_t* p = end;
  uint64_t st[1 << kMaxLanesLog2];
  for (int j = 0; j < K; ++j) st[j] = kL;
  for (uint64_t i = n; i-- > 0;) {
    uint64_t& x = st[i & uint64_t(K - 1)];
    const int32_t r = indexes[i];
    const int32_t* c = t.cdfs + int64_t(r) * t.stride;
    const int32_t max_value = t.lengths[r] - 2;
    const int64_t value = int64_t(symbols[i]) - t.offsets[r];
    if (value >= 0 && value < max_value) {
      enc_op(x, p, uint32_t(c[value]), uint32_t(c[value + 1] - c[value]), kPrec);
      continue;
    }
    // Escape: the decoder reads the escape symbol, the group count in 4-bit pieces
    // (15 means "more follows"), then the groups; the encoder writes them in reverse.
    uint64_t raw;
    int groups;
    escape_of(value, max_value, raw, groups);
    for (int g = groups - 1; g >= 0; --g)
      enc_op(x, p, uint32_t((raw >> (g * kBypassBits)) & kBypassMax), 1, kBypassBits);
    enc_op(x, p, uint32_t(groups % int(kBypassMax)), 1, kBypassBits);
    for (int g = groups / int(kBypassMax); g > 0; --g) enc_op(x, p, kBypassMax, 1, kBypassBits);
    enc_op(x, p, uint32_t(c[max_value]), uint32_t(c[max_value + 1] - c[max_value]), kPrec);
  }
  for (int j = K - 1; j >= 0; --j) {
    p -= 8;
    store_le64(p, st[j]);
  }
  enc.spans.push_back({0, cap - size_t(end - p), size_t(end - p)});
  return enc;
}

IndexedDecoder::IndexedDecoder(const uint8_t* data, size_t size) : data_(data), size_(size) {
  Reader hr(data, size);
  const uint8_t tag = hr.byte("the rANS header");
  if ((tag & 0xf8) != kIndexedTag || (tag & 7) > kMaxLanesLog2)
    throw FormatError("not a featcodec indexed rANS stream (unknown tag byte " +
                      std::to_string(tag) + ")");
  lanes_ = 1 << (tag & 7);
  pos_ = 1;
  if (size == 1) return;  // an empty stream: no states
  if (size - 1 < 8 * size_t(lanes_))
    throw TruncatedError("rANS stream truncated: shorter than its coder states");
  if ((size - 1 - 8 * lanes_) % 4)
    throw FormatError("rANS stream size is not a whole number of 32-bit words");
  for (int j = 0; j < lanes_; ++j) {
    st_[j] = load_le64(data + pos_);
    pos_ += 8;
    if (st_[j] < kL || st_[j] >= kStateEnd)
      throw FormatError("rANS stream starts with an invalid coder state (corrupt stream)");
  }
  has_states_ = true;
}

void IndexedDecoder::decode(const int32_t* indexes, uint64_t n, const CdfTables& t,
                            int32_t* out) {
  validate_tables(t);
  if (n == 0) return;
  if (!has_states_) throw FormatError("rANS stream holds no symbols, some were asked for");
  const uint8_t* p = data_ + pos_;
  const uint8_t* const end = data_ + size_;
  LaneReader rd{p, end};
  const uint64_t lane_mask = uint64_t(lanes_ - 1);
  constexpr uint64_t mask = (1u << kPrec) - 1;
  // For long calls, a coarse index per table: bucket[r][b] = the last value whose CDF
  // entry is <= b * 256, so a slot in bucket b lies in [bucket[b], bucket[b + 1]] and the
  // search covers a few values instead of the whole table.
  constexpr int kBuckets = 256, kBucketShift = kPrec - 8;
  std::vector<int32_t> bucket;
  if (n >= uint64_t(8 * kBuckets) * uint64_t(t.num_tables)) {
    bucket.resize(size_t(t.num_tables) * (kBuckets + 1));
    for (int64_t r = 0; r < t.num_tables; ++r) {
      const int32_t* c = t.cdfs + r * t.stride;
      const int32_t max_value = t.lengths[r] - 2;
      int32_t* bk = bucket.data() + r * (kBuckets + 1);
      int32_t lo = 0;
      for (int b = 0; b <= kBuckets; ++b) {
        const int32_t edge = std::min(b << kBucketShift, (1 << kPrec) - 1);
        while (lo < max_value && c[lo + 1] <= edge) ++lo;
        bk[b] = lo;
      }
    }
  }
  for (uint64_t i = 0; i < n; ++i) {
    uint64_t& x = st_[(done_ + i) & lane_mask];
    const int32_t r = indexes[i];
    if (r < 0 || r >= t.num_tables)
      throw InputError("index " + std::to_string(r) + " at position " + std::to_string(i) +
                       " names no CDF table (there are " + std::to_string(t.num_tables) + ")");
    const int32_t* c = t.cdfs + int64_t(r) * t.stride;
    const int32_t max_value = t.lengths[r] - 2;
    const uint32_t slot = uint32_t(x & mask);
    // Branch-free search of the last lo in [0, max_value] with c[lo] <= slot; since
    // c[0] = 0 <= slot < 65536 = c[max_value + 1], the interval found is never empty.
    int32_t lo = 0, len = max_value + 1;
    if (!bucket.empty()) {
      const int32_t* bk = bucket.data() + int64_t(r) * (kBuckets + 1) + (slot >> kBucketShift);
      lo = bk[0];
      len = bk[1] - bk[0] + 1;
    }
    for (; len > 1;) {
      const int32_t half = len >> 1;
      lo = uint32_t(c[lo + half]) <= slot ? lo + half : lo;
      len -= half;
    }
    x = uint64_t(c[lo + 1] - c[lo]) * (x >> kPrec) + slot - uint32_t(c[lo]);
    if (end - p >= 4) {  // branch-free renormalisation while a word is left to read
      const uint64_t w = load_le32(p);
      const uint64_t rn = uint64_t(x < kL);
      const uint64_t m = 0 - rn;
      x = (x & ~m) | (((x << 32) | w) & m);
      p += rn << 2;
    } else {
      rd.renorm(x);
    }
    int64_t value = lo;
    if (lo == max_value) {
      uint32_t v = rd.bits(x);
      int groups = int(v);
      while (v == kBypassMax && groups <= kMaxBypass) {
        v = rd.bits(x);
        groups += int(v);
      }
      if (groups > kMaxBypass)
        throw FormatError("rANS escape longer than any int32 value (corrupt stream)");
      uint64_t raw = 0;
      for (int g = 0; g < groups; ++g) raw |= uint64_t(rd.bits(x)) << (g * kBypassBits);
      value = int64_t(raw >> 1);
      value = (raw & 1) ? -value - 1 : value + max_value;
    }
    const int64_t sym = value + t.offsets[r];
    if (sym < INT32_MIN || sym > INT32_MAX)
      throw FormatError("rANS stream decodes a value outside int32 (corrupt stream)");
    out[i] = int32_t(sym);
  }
  pos_ = size_t(p - data_);
  done_ += n;
}

void IndexedDecoder::finish() const {
  if (pos_ != size_)
    throw FormatError("rANS stream has " + std::to_string(size_ - pos_) +
                      " bytes left after its last symbol (corrupt stream or wrong indexes)");
  if (has_states_ && done_ == 0)
    throw FormatError("rANS stream holds symbols, none were asked for");
  for (int j = 0; has_states_ && j < lanes_; ++j)
    if (st_[j] != kL)
      throw FormatError("rANS stream ends in the wrong coder state (corrupt stream)");
}

void decode_indexed(const uint8_t* data, size_t size, const int32_t* indexes, uint64_t n,
                    const CdfTables& t, int32_t* out) {
  IndexedDecoder d(data, size);
  d.decode(indexes, n, t, out);
  d.finish();
}

}  // namespace rans
}  // namespace featcodec
