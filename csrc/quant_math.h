// Per-element arithmetic of featcodec's interval quantizer, shared by the CPU kernels
// (quantize.cpp) and the CUDA kernels (cuda/*.cu). Everything here is exact integer bit
// manipulation: results do not depend on the compiler, the FPU mode (FTZ/DAZ) or the device.
//
// The central idea is a *monotone key*: a uint32 computed from the bits of a float32 such
// that, for finite a and b, a <= b  <=>  key(a) <= key(b), with key(-0.0) == key(+0.0).
// "Number of thresholds <= x" (np.searchsorted(..., side="right")) then becomes an integer
// count on keys, which the kernels answer with a table indexed by the key's top bits.
#pragma once
#include <cstdint>
#include <cstring>

#if defined(__CUDACC__)
#define FC_HOSTDEV __host__ __device__ __forceinline__
#else
#define FC_HOSTDEV inline
#endif

namespace featcodec {
namespace qm {

// Magnitude bits (sign cleared) at or above this value mean Inf or NaN.
constexpr uint32_t kF32ExpMask = 0x7F800000u;
// Greater than the key of every finite float32: used as a padding sentinel after thresholds.
constexpr uint32_t kKeySentinel = 0xFFFFFFFFu;

FC_HOSTDEV bool f32_bits_nonfinite(uint32_t u) { return (u & 0x7FFFFFFFu) >= kF32ExpMask; }
FC_HOSTDEV bool f16_bits_nonfinite(uint16_t h) { return (h & 0x7C00u) == 0x7C00u; }
FC_HOSTDEV bool bf16_bits_nonfinite(uint16_t b) { return (b & 0x7F80u) == 0x7F80u; }

// Monotone key of float32 bits: 0x80000000 + (sign ? -magnitude : +magnitude).
// -0.0 and +0.0 both map to 0x80000000; -Inf -> 0x00800000; +Inf -> 0xFF800000.
FC_HOSTDEV uint32_t f32_key(uint32_t u) {
  const uint32_t s = static_cast<uint32_t>(static_cast<int32_t>(u) >> 31);  // 0 or ~0
  const uint32_t mag = u & 0x7FFFFFFFu;
  return ((mag ^ s) - s) + 0x80000000u;
}

// Exact float16 (IEEE binary16) bits -> float32 bits, subnormals, Inf and NaN included.
// Branch-free. Zero and subnormals are em * 2^-24 with em < 2^10: the int -> float
// conversion and the power-of-two scaling are exact and the result is 0 or a normal float32,
// so flush-to-zero modes cannot change it.
FC_HOSTDEV uint32_t f16_to_f32_bits(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t em = h & 0x7FFFu;
  uint32_t normal = (em << 13) + ((127u - 15u) << 23);
  normal += em >= 0x7C00u ? ((128u - 16u) << 23) : 0u;  // Inf / NaN: exponent all ones
  const float sub_f = static_cast<float>(static_cast<int32_t>(em)) * 5.9604644775390625e-08f;
#if defined(__CUDA_ARCH__)
  const uint32_t sub = __float_as_uint(sub_f);
#else
  uint32_t sub;
  std::memcpy(&sub, &sub_f, 4);
#endif
  return sign | (em < 0x400u ? sub : normal);
}

// Exact bfloat16 bits -> float32 bits (bfloat16 is the top half of a float32).
FC_HOSTDEV uint32_t bf16_to_f32_bits(uint16_t b) { return static_cast<uint32_t>(b) << 16; }

// float32 bits -> bfloat16 bits, round to nearest even (as torch does); NaN stays NaN.
FC_HOSTDEV uint16_t f32_to_bf16_bits(uint32_t u) {
  if ((u & 0x7FFFFFFFu) > kF32ExpMask) return static_cast<uint16_t>((u >> 16) | 0x40u);
  const uint32_t rounding = 0x7FFFu + ((u >> 16) & 1u);
  return static_cast<uint16_t>((u + rounding) >> 16);
}

// float32 bits -> float16 bits, round to nearest even (as numpy/torch do), overflow -> Inf.
FC_HOSTDEV uint16_t f32_to_f16_bits(uint32_t u) {
  const uint16_t sign = static_cast<uint16_t>((u >> 16) & 0x8000u);
  const uint32_t mag = u & 0x7FFFFFFFu;
  if (mag >= kF32ExpMask) return sign | (mag > kF32ExpMask ? 0x7E00u : 0x7C00u);
  if (mag >= 0x477FF000u) return sign | 0x7C00u;  // rounds to >= 65520 -> Inf
  if (mag >= 0x38800000u) {                       // normal float16 range (>= 2^-14)
    const uint32_t r = mag + 0xFFFu + ((mag >> 13) & 1u) - ((127u - 15u) << 23);
    return sign | static_cast<uint16_t>(r >> 13);
  }
  if (mag < 0x33000000u) return sign;  // < 2^-25: rounds to zero (2^-25 exactly ties to 0)
  // Subnormal float16: value = m * 2^-24, m = round(mag_value * 2^24).
  const uint32_t exp = mag >> 23;
  const uint32_t man = (mag & 0x7FFFFFu) | 0x800000u;
  const uint32_t shift = 126u - exp;  // 14..24 bits to drop from a 24-bit mantissa
  const uint32_t half = 1u << (shift - 1);
  const uint32_t rest = man & ((1u << shift) - 1u);
  uint32_t m = man >> shift;
  if (rest > half || (rest == half && (m & 1u))) ++m;
  return sign | static_cast<uint16_t>(m);
}

// Largest float32 <= x (round toward -Inf), as bits; the key of the result counts
// float32 thresholds <= x exactly. Integer-only, so FTZ/DAZ do not change it.
FC_HOSTDEV uint32_t f64_floor_to_f32_bits(uint64_t d) {
  const uint32_t sign = static_cast<uint32_t>(d >> 63) << 31;
  const uint64_t mag = d & 0x7FFFFFFFFFFFFFFFull;
  const int exp = static_cast<int>(mag >> 52);  // biased, 0..2047
  const uint64_t man = mag & 0xFFFFFFFFFFFFFull;
  const bool neg = sign != 0;
  // Fast path: |d| in float32's normal range [2^-126, 2^128). Re-bias the exponent, keep
  // the top 23 mantissa bits; a negative inexact value rounds down one more ulp.
  if (mag - 0x3810000000000000ull < 0x47F0000000000000ull - 0x3810000000000000ull) {
    const uint32_t t = static_cast<uint32_t>((mag - 0x3800000000000000ull) >> 29);
    const uint32_t inexact = static_cast<uint32_t>((mag & 0x1FFFFFFFull) != 0);
    return sign | (t + (inexact & (sign >> 31)));  // no branch on the sign
  }
  if (exp == 0x7FF) {  // Inf / NaN: keep non-finite
    return sign | 0x7F800000u | (man ? 0x400000u : 0u);
  }
  if (mag == 0) return 0u;  // +-0 -> +0 (same key)
  const int e = exp - 1023;  // unbiased (for subnormal doubles, way below float range)
  uint32_t fmag;             // truncated (toward zero) float32 magnitude
  bool inexact;
  if (e > 127) {  // beyond FLT_MAX: truncation gives FLT_MAX
    fmag = 0x7F7FFFFFu;
    inexact = true;
  } else if (e >= -126) {  // normal float32 range
    fmag = (static_cast<uint32_t>(e + 127) << 23) | static_cast<uint32_t>(man >> 29);
    inexact = (man & ((1ull << 29) - 1)) != 0;
  } else if (e >= -149) {  // float32 subnormal: value = m * 2^-149
    const uint64_t full = man | (1ull << 52);
    const int shift = 52 - (e + 149);  // 30..52
    fmag = static_cast<uint32_t>(full >> shift);
    inexact = (full & ((1ull << shift) - 1)) != 0;
  } else {  // below the smallest float32 subnormal
    fmag = 0;
    inexact = true;
  }
  if (!neg) return fmag;  // truncation toward zero == floor for positives
  // For negatives floor = -(ceil of magnitude): bump the magnitude if inexact.
  if (inexact) fmag += 1;  // FLT_MAX + 1 ulp -> Inf bits: key of -Inf, below every threshold
  return sign | fmag;
}

// Element types by their raw bits: non-finite test and monotone key, for the kernels'
// templates (CPU: csrc/quantize.cpp, CUDA: csrc/cuda/kernels.cu).
struct KeyF32 {
  using Raw = uint32_t;
  static FC_HOSTDEV bool nonfinite(Raw u) { return f32_bits_nonfinite(u); }
  static FC_HOSTDEV uint32_t key(Raw u) { return f32_key(u); }
};
struct KeyF16 {
  using Raw = uint16_t;
  static FC_HOSTDEV bool nonfinite(Raw h) { return f16_bits_nonfinite(h); }
  static FC_HOSTDEV uint32_t key(Raw h) { return f32_key(f16_to_f32_bits(h)); }
};
struct KeyBF16 {
  using Raw = uint16_t;
  static FC_HOSTDEV bool nonfinite(Raw b) { return bf16_bits_nonfinite(b); }
  static FC_HOSTDEV uint32_t key(Raw b) { return f32_key(bf16_to_f32_bits(b)); }
};
struct KeyF64 {
  using Raw = uint64_t;
  static FC_HOSTDEV bool nonfinite(Raw d) {
    return (d & 0x7FF0000000000000ull) == 0x7FF0000000000000ull;
  }
  static FC_HOSTDEV uint32_t key(Raw d) { return f32_key(f64_floor_to_f32_bits(d)); }
};

// Number of keys in sorted keys[0..n) that are <= k. Branchless: a fixed sequence of
// halvings, the same number of steps for every k.
FC_HOSTDEV uint32_t count_le(const uint32_t* keys, uint32_t n, uint32_t k) {
  const uint32_t* base = keys;
  while (n > 1) {
    const uint32_t half = n >> 1;
    base = (base[half - 1] <= k) ? base + half : base;
    n -= half;
  }
  return static_cast<uint32_t>(base - keys) + ((n == 1 && base[0] <= k) ? 1u : 0u);
}

}  // namespace qm
}  // namespace featcodec
