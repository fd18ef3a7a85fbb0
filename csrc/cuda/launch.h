// Host-side entry points of the CUDA kernels (implemented in kernels.cu, bound to Python in
// module.cpp). All pointers are device pointers owned by the caller (torch tensors); every
// launch goes on the caller's stream, and nothing here synchronises.
#pragma once
#include <cstdint>
#include <string>

namespace featcodec {
namespace cuda {

constexpr int kMaxDims = 8;

// Logical shape and element strides of an n-d array (C order).
struct Shape {
  int ndim = 0;
  long long size[kMaxDims] = {};
  long long stride[kMaxDims] = {};
};

enum class InKind { F32 = 0, F16 = 1, BF16 = 2, F64 = 3 };
enum class IdxKind { U8 = 0, U16 = 1, I32 = 2, I64 = 3 };

// Returns "" on success, else the CUDA error text. device < 0 runs the same per-element code
// on the CPU over host pointers (the "host twin", for tests without a GPU; bad then gets
// the least bad index directly).
std::string threshold_keys(const void* thr_f32, void* keys_u32, long long n, int device,
                           std::uintptr_t stream);

// out[i] = number of keys[c] <= key(x[i]) for the i-th element in C order (uint8/uint16
// out, contiguous); bad (uint64, preset to a huge value) gets the least i with NaN/Inf.
std::string quantize(const void* x, InKind kind, const Shape& shape, long long n,
                     const void* keys, unsigned C, unsigned T, long long chan_div, void* out,
                     int out_bytes, void* bad, int device, std::uintptr_t stream);

// out[i] = levels[c][idx[i]] (16- or 32-bit patterns, contiguous out); bad gets the least i
// whose index is outside [0, L).
std::string dequantize(const void* idx, IdxKind kind, const Shape& shape, long long n,
                       const void* levels, int value_bytes, unsigned C, unsigned L,
                       long long chan_div, void* out, void* bad, int device,
                       std::uintptr_t stream);

}  // namespace cuda
}  // namespace featcodec
