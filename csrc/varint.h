// One unsigned LEB128 varint (7 bits a byte, low first, the high bit on every byte but the
// last), at most 5 bytes (values below 2**35), read back only in its minimal form: the
// encoding of csrc/varints.cpp (featcodec.stream.varints) and csrc/packed_levels.cpp.
#pragma once
#include <cstdint>
#include <string>

namespace featcodec {
namespace varint {

constexpr int kMaxBytes = 5;
constexpr int64_t kLimit = int64_t{1} << (7 * kMaxBytes);

// Appends x (0 <= x < kLimit; the caller checks).
inline void put(std::string& out, int64_t x) {
  while (x >= 0x80) {
    out.push_back(static_cast<char>((x & 0x7F) | 0x80));
    x >>= 7;
  }
  out.push_back(static_cast<char>(x));
}

// Reads one varint of b[pos..size) into x; false when it is cut off, longer than 5
// bytes or not minimal.
inline bool get(const uint8_t* b, int64_t size, int64_t& pos, int64_t& x) {
  x = 0;
  for (int len = 0; len < kMaxBytes; ++len) {
    if (pos >= size) return false;
    const uint8_t c = b[pos++];
    x |= static_cast<int64_t>(c & 0x7F) << (7 * len);
    if (c < 0x80) return !(c == 0 && len > 0);
  }
  return false;
}

}  // namespace varint
}  // namespace featcodec
