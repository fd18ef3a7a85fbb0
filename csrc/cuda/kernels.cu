// CUDA kernels of featcodec: interval quantization and inverse lookup on device memory.
// The per-element arithmetic is quant_math.h, the same code the CPU kernels run, so a value
// gets the same index on either device.
#include <cuda_runtime.h>

#include "../quant_math.h"
#include "launch.h"

namespace featcodec {
namespace cuda {
namespace {

constexpr int kBlock = 256;
constexpr unsigned kSharedKeys = 8192;  // 32 KB of shared memory per block

FC_HOSTDEV long long element_offset(long long i, const Shape& s) {
  long long off = 0;
  for (int d = s.ndim - 1; d >= 0; --d) {
    const long long q = i / s.size[d];
    off += (i - q * s.size[d]) * s.stride[d];
    i = q;
  }
  return off;
}

// The work of one element, shared by the device kernels and their host twins (which let
// the index arithmetic be tested on machines without a GPU). Returns false for a bad
// element (NaN/Inf input, index out of range).
template <class KeyT, class Out>
FC_HOSTDEV bool quantize_one(long long i, const typename KeyT::Raw* x, const Shape& shape,
                             bool contiguous, const uint32_t* keys, unsigned C, unsigned T,
                             long long chan_div, Out* out) {
  const typename KeyT::Raw r = x[contiguous ? i : element_offset(i, shape)];
  const long long c = C == 1 ? 0 : (i / chan_div) % C;
  out[i] = static_cast<Out>(qm::count_le(keys + c * T, T, KeyT::key(r)));
  return !KeyT::nonfinite(r);
}

template <class Idx, class V>
FC_HOSTDEV bool dequantize_one(long long i, const Idx* idx, const Shape& shape, bool contiguous,
                               const V* levels, unsigned C, unsigned L, long long chan_div,
                               V* out) {
  // Signed indices: a negative one becomes huge and fails the bounds check.
  const unsigned long long j = static_cast<unsigned long long>(
      static_cast<long long>(idx[contiguous ? i : element_offset(i, shape)]));
  const bool ok = j < L;
  const long long c = C == 1 ? 0 : (i / chan_div) % C;
  out[i] = levels[c * L + (ok ? j : 0)];
  return ok;
}

__global__ void keys_kernel(const uint32_t* thr, uint32_t* keys, long long n) {
  for (long long i = blockIdx.x * static_cast<long long>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<long long>(gridDim.x) * blockDim.x)
    keys[i] = qm::f32_key(thr[i]);
}

template <class KeyT, class Out>
__global__ void quantize_kernel(const typename KeyT::Raw* __restrict__ x, Shape shape,
                                bool contiguous, long long n,
                                const uint32_t* __restrict__ keys, unsigned C, unsigned T,
                                long long chan_div, Out* __restrict__ out,
                                unsigned long long* bad) {
  extern __shared__ uint32_t shared_keys[];
  const bool use_shared = C == 1 && T <= kSharedKeys;
  if (use_shared) {
    for (unsigned j = threadIdx.x; j < T; j += blockDim.x) shared_keys[j] = keys[j];
    __syncthreads();
  }
  const uint32_t* k0 = use_shared ? shared_keys : keys;
  for (long long i = blockIdx.x * static_cast<long long>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<long long>(gridDim.x) * blockDim.x) {
    if (!quantize_one<KeyT, Out>(i, x, shape, contiguous, k0, C, T, chan_div, out))
      atomicMin(bad, static_cast<unsigned long long>(i));
  }
}

template <class Idx, class V>
__global__ void dequantize_kernel(const Idx* __restrict__ idx, Shape shape, bool contiguous,
                                  long long n, const V* __restrict__ levels, unsigned C,
                                  unsigned L, long long chan_div, V* __restrict__ out,
                                  unsigned long long* bad) {
  for (long long i = blockIdx.x * static_cast<long long>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<long long>(gridDim.x) * blockDim.x) {
    if (!dequantize_one<Idx, V>(i, idx, shape, contiguous, levels, C, L, chan_div, out))
      atomicMin(bad, static_cast<unsigned long long>(i));
  }
}

bool is_contiguous(const Shape& s) {
  long long expect = 1;
  for (int d = s.ndim - 1; d >= 0; --d) {
    if (s.size[d] != 1 && s.stride[d] != expect) return false;
    expect *= s.size[d];
  }
  return true;
}

unsigned grid_for(long long n) {
  const long long blocks = (n + kBlock - 1) / kBlock;
  return static_cast<unsigned>(blocks < 65536 ? (blocks > 0 ? blocks : 1) : 65536);
}

std::string status() {
  const cudaError_t e = cudaGetLastError();
  return e == cudaSuccess ? std::string() : std::string(cudaGetErrorString(e));
}

std::string set_device(int device) {
  const cudaError_t e = cudaSetDevice(device);
  return e == cudaSuccess ? std::string() : std::string(cudaGetErrorString(e));
}

template <class KeyT>
void launch_quantize(const void* x, const Shape& shape, long long n, const void* keys,
                     unsigned C, unsigned T, long long chan_div, void* out, int out_bytes,
                     void* bad, cudaStream_t st, bool host) {
  const bool contig = is_contiguous(shape);
  const size_t smem = (C == 1 && T <= kSharedKeys) ? T * sizeof(uint32_t) : 0;
  const auto* xr = static_cast<const typename KeyT::Raw*>(x);
  const auto* k = static_cast<const uint32_t*>(keys);
  auto* b = static_cast<unsigned long long*>(bad);
  if (host) {  // the same element function, run by the CPU on host memory
    for (long long i = n - 1; i >= 0; --i) {
      const bool ok = out_bytes == 1
          ? quantize_one<KeyT, uint8_t>(i, xr, shape, contig, k, C, T, chan_div, static_cast<uint8_t*>(out))
          : quantize_one<KeyT, uint16_t>(i, xr, shape, contig, k, C, T, chan_div, static_cast<uint16_t*>(out));
      if (!ok) *b = static_cast<unsigned long long>(i);
    }
  } else if (out_bytes == 1) {
    quantize_kernel<KeyT, uint8_t><<<grid_for(n), kBlock, smem, st>>>(
        xr, shape, contig, n, k, C, T, chan_div, static_cast<uint8_t*>(out), b);
  } else {
    quantize_kernel<KeyT, uint16_t><<<grid_for(n), kBlock, smem, st>>>(
        xr, shape, contig, n, k, C, T, chan_div, static_cast<uint16_t*>(out), b);
  }
}

template <class Idx>
void launch_dequantize(const void* idx, const Shape& shape, long long n, const void* levels,
                       int value_bytes, unsigned C, unsigned L, long long chan_div, void* out,
                       void* bad, cudaStream_t st, bool host) {
  const bool contig = is_contiguous(shape);
  const auto* ix = static_cast<const Idx*>(idx);
  auto* b = static_cast<unsigned long long*>(bad);
  if (host) {
    for (long long i = n - 1; i >= 0; --i) {
      const bool ok = value_bytes == 4
          ? dequantize_one<Idx, uint32_t>(i, ix, shape, contig, static_cast<const uint32_t*>(levels), C, L, chan_div, static_cast<uint32_t*>(out))
          : dequantize_one<Idx, uint16_t>(i, ix, shape, contig, static_cast<const uint16_t*>(levels), C, L, chan_div, static_cast<uint16_t*>(out));
      if (!ok) *b = static_cast<unsigned long long>(i);
    }
  } else if (value_bytes == 4) {
    dequantize_kernel<Idx, uint32_t><<<grid_for(n), kBlock, 0, st>>>(
        ix, shape, contig, n, static_cast<const uint32_t*>(levels), C, L, chan_div,
        static_cast<uint32_t*>(out), b);
  } else {
    dequantize_kernel<Idx, uint16_t><<<grid_for(n), kBlock, 0, st>>>(
        ix, shape, contig, n, static_cast<const uint16_t*>(levels), C, L, chan_div,
        static_cast<uint16_t*>(out), b);
  }
}

}  // namespace

std::string threshold_keys(const void* thr_f32, void* keys_u32, long long n, int device,
                           std::uintptr_t stream) {
  if (n == 0) return "";
  if (device < 0) {
    for (long long i = 0; i < n; ++i)
      static_cast<uint32_t*>(keys_u32)[i] = qm::f32_key(static_cast<const uint32_t*>(thr_f32)[i]);
    return "";
  }
  std::string err = set_device(device);
  if (!err.empty()) return err;
  keys_kernel<<<grid_for(n), kBlock, 0, reinterpret_cast<cudaStream_t>(stream)>>>(
      static_cast<const uint32_t*>(thr_f32), static_cast<uint32_t*>(keys_u32), n);
  return status();
}

std::string quantize(const void* x, InKind kind, const Shape& shape, long long n,
                     const void* keys, unsigned C, unsigned T, long long chan_div, void* out,
                     int out_bytes, void* bad, int device, std::uintptr_t stream) {
  if (n == 0) return "";
  const bool host = device < 0;
  if (!host) {
    const std::string err = set_device(device);
    if (!err.empty()) return err;
  }
  const auto st = reinterpret_cast<cudaStream_t>(stream);
  switch (kind) {
    case InKind::F32:
      launch_quantize<qm::KeyF32>(x, shape, n, keys, C, T, chan_div, out, out_bytes, bad, st, host);
      break;
    case InKind::F16:
      launch_quantize<qm::KeyF16>(x, shape, n, keys, C, T, chan_div, out, out_bytes, bad, st, host);
      break;
    case InKind::BF16:
      launch_quantize<qm::KeyBF16>(x, shape, n, keys, C, T, chan_div, out, out_bytes, bad, st, host);
      break;
    case InKind::F64:
      launch_quantize<qm::KeyF64>(x, shape, n, keys, C, T, chan_div, out, out_bytes, bad, st, host);
      break;
  }
  return host ? std::string() : status();
}

std::string dequantize(const void* idx, IdxKind kind, const Shape& shape, long long n,
                       const void* levels, int value_bytes, unsigned C, unsigned L,
                       long long chan_div, void* out, void* bad, int device,
                       std::uintptr_t stream) {
  if (n == 0) return "";
  const bool host = device < 0;
  if (!host) {
    const std::string err = set_device(device);
    if (!err.empty()) return err;
  }
  const auto st = reinterpret_cast<cudaStream_t>(stream);
  switch (kind) {
    case IdxKind::U8:
      launch_dequantize<uint8_t>(idx, shape, n, levels, value_bytes, C, L, chan_div, out, bad, st, host);
      break;
    case IdxKind::U16:
      launch_dequantize<uint16_t>(idx, shape, n, levels, value_bytes, C, L, chan_div, out, bad, st, host);
      break;
    case IdxKind::I32:
      launch_dequantize<int32_t>(idx, shape, n, levels, value_bytes, C, L, chan_div, out, bad, st, host);
      break;
    case IdxKind::I64:
      launch_dequantize<int64_t>(idx, shape, n, levels, value_bytes, C, L, chan_div, out, bad, st, host);
      break;
  }
  return host ? std::string() : status();
}

}  // namespace cuda
}  // namespace featcodec
