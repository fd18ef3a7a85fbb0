// The randomised Hadamard rotation of the "rotation" stage (featcodec/stages/rotation.py):
// each row of a C-contiguous (n, d) float32/float64 array is cut into d / b blocks of b
// values (b a power of two dividing d), and every block is rotated by the orthogonal
// matrix H_b D / sqrt(b): first each value times its sign (D = diag(signs), one sign per
// column of the row, +1 or -1), then the fast Walsh-Hadamard transform (Sylvester order,
// H_b[i][j] = (-1)^popcount(i & j)), then times 1 / sqrt(b). The inverse is D H_b / sqrt(b):
// the same transform, the signs after. O(d log b) per row, in the array's own precision,
// a fixed sequence of additions per row: rows are independent, so the result never
// depends on the thread count. The signs come from a seed by splitmix64
// (hadamard_signs), so a stream stores only the seed.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <type_traits>
#include <vector>

#include "module.h"
#include "parallel.h"

namespace py = pybind11;

namespace featcodec {
namespace {

// Sign i of seed s: bit 63 of splitmix64's (i + 1)-th output from state s (1: -1, 0: +1).
std::vector<int8_t> signs_of(uint64_t seed, size_t d) {
  std::vector<int8_t> out(d);
  for (size_t i = 0; i < d; ++i) {
    uint64_t z = seed + uint64_t(i + 1) * 0x9E3779B97F4A7C15ULL;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    z ^= z >> 31;
    out[i] = (z >> 63) ? int8_t(-1) : int8_t(1);
  }
  return out;
}

// In place on one block of b values: the unnormalised fast Walsh-Hadamard transform.
template <class T>
void fwht(T* v, size_t b) {
  for (size_t h = 1; h < b; h <<= 1)
    for (size_t i = 0; i < b; i += h << 1)
      for (size_t j = i; j < i + h; ++j) {
        const T a = v[j], c = v[j + h];
        v[j] = a + c;
        v[j + h] = a - c;
      }
}

template <class T>
py::array_t<T> rotate(const py::array_t<T, py::array::c_style | py::array::forcecast>& x, uint64_t seed,
                      int64_t block, bool inverse, int threads) {
  if (x.ndim() != 2) throw std::invalid_argument("x must be a 2-D (rows, d) array");
  const size_t n = size_t(x.shape(0)), d = size_t(x.shape(1));
  if (block < 1 || (block & (block - 1)) != 0 || d % size_t(block) != 0)
    throw std::invalid_argument("block must be a power of two that divides the row length");
  const size_t b = size_t(block);
  const std::vector<int8_t> sg = signs_of(seed, d);
  const T norm = T(1.0 / std::sqrt(double(b)));
  py::array_t<T> out({py::ssize_t(n), py::ssize_t(d)});
  const T* src = x.data();
  T* dst = out.mutable_data();
  {
    py::gil_scoped_release release;
    parallel_for(n, threads, std::max<size_t>(1, (size_t(1) << 15) / std::max<size_t>(d, 1)),
                 [&](size_t r0, size_t r1, size_t) {
                   for (size_t r = r0; r < r1; ++r) {
                     const T* in = src + r * d;
                     T* o = dst + r * d;
                     for (size_t j = 0; j < d; ++j) o[j] = inverse ? in[j] : (sg[j] < 0 ? -in[j] : in[j]);
                     for (size_t k = 0; k < d; k += b) fwht(o + k, b);
                     for (size_t j = 0; j < d; ++j) {
                       const T v = o[j] * norm;
                       o[j] = inverse && sg[j] < 0 ? -v : v;
                     }
                   }
                 });
  }
  return out;
}

// The "spatial" stage's transform (featcodec/stages/spatial.py) in one pass: every b x b
// block of every channel of a C-contiguous (N, C, H, W) array, each of its rows through
// fwht then times 1 / sqrt(b), then each of its columns the same (the operations, in order,
// of the rotation's transform without signs along the rows and then along the columns),
// written frequency-major: coefficient (u, v) of block (i, j) of channel c at
// [n, (c b + u) b + v, i, j] of an (N, C b^2, H / b, W / b) array. With inverse, the
// layouts swap: the input is the frequency-major array (its shape given as N, C, H, W) and
// the output the map. Blocks are independent: the same bytes for any thread count.
// (A block at a time, column fwht per block, ran at about 1 GB/s of float32 with 4x4 and
// larger blocks on one thread: the column butterflies over whole block-rows vectorise.)

// One channel, block-row by block-row through `buf` (B rows of the map, W values each):
// each row's blocks through fwht, every value times norm, then the column butterflies of
// every block at once (rows u and u + h combined elementwise over the whole width: the
// same operations, in the same order, as each block's column fwht), times norm again.
template <class T, size_t B, bool Inverse>
void spatial_channel(const T* in, T* out, T* buf, size_t H, size_t W, T norm) {
  const size_t hb = H / B, wb = W / B, nb = hb * wb;
  for (size_t i = 0; i < hb; ++i) {
    for (size_t u = 0; u < B; ++u) {
      T* row = buf + u * W;
      if (Inverse) {
        for (size_t v = 0; v < B; ++v) {
          const T* plane = in + (u * B + v) * nb + i * wb;
          for (size_t j = 0; j < wb; ++j) row[j * B + v] = plane[j];
        }
      } else {
        const T* src = in + (i * B + u) * W;
        for (size_t x = 0; x < W; ++x) row[x] = src[x];
      }
      for (size_t j = 0; j < wb; ++j) fwht(row + j * B, B);
      for (size_t x = 0; x < W; ++x) row[x] = row[x] * norm;
    }
    for (size_t h = 1; h < B; h <<= 1)
      for (size_t u0 = 0; u0 < B; u0 += h << 1)
        for (size_t u = u0; u < u0 + h; ++u) {
          T* a = buf + u * W;
          T* c = buf + (u + h) * W;
          for (size_t x = 0; x < W; ++x) {
            const T p = a[x], q = c[x];
            a[x] = p + q;
            c[x] = p - q;
          }
        }
    for (size_t u = 0; u < B; ++u) {
      T* row = buf + u * W;
      for (size_t x = 0; x < W; ++x) row[x] = row[x] * norm;
      if (Inverse) {
        T* dst = out + (i * B + u) * W;
        for (size_t x = 0; x < W; ++x) dst[x] = row[x];
      } else {
        for (size_t v = 0; v < B; ++v) {
          T* plane = out + (u * B + v) * nb + i * wb;
          for (size_t j = 0; j < wb; ++j) plane[j] = row[j * B + v];
        }
      }
    }
  }
}

template <class T>
py::array_t<T> spatial(const py::array_t<T, py::array::c_style | py::array::forcecast>& x, int64_t block,
                       bool inverse, const std::vector<int64_t>& shape, int threads) {
  if (shape.size() != 4 || std::any_of(shape.begin(), shape.end(), [](int64_t v) { return v < 1; }))
    throw std::invalid_argument("shape must be (N, C, H, W), each at least 1");
  const size_t N = size_t(shape[0]), C = size_t(shape[1]), H = size_t(shape[2]), W = size_t(shape[3]);
  const size_t b = size_t(block);
  if (block < 2 || (block & (block - 1)) != 0 || block > 64 || H % b || W % b)
    throw std::invalid_argument("block must be a power of two from 2 to 64 dividing H and W");
  if (size_t(x.size()) != N * C * H * W) throw std::invalid_argument("x does not hold N * C * H * W values");
  std::vector<py::ssize_t> out_shape = inverse
      ? std::vector<py::ssize_t>{py::ssize_t(N), py::ssize_t(C), py::ssize_t(H), py::ssize_t(W)}
      : std::vector<py::ssize_t>{py::ssize_t(N), py::ssize_t(C * b * b), py::ssize_t(H / b), py::ssize_t(W / b)};
  py::array_t<T> out(out_shape);
  const T* src = x.data();
  T* dst = out.mutable_data();
  const T norm = T(1.0 / std::sqrt(double(b)));
  {
    py::gil_scoped_release release;
    parallel_for(N * C, threads, 1, [&](size_t p0, size_t p1, size_t) {
      std::vector<T> buf(b * W);
      for (size_t p = p0; p < p1; ++p) {
        const T* in = src + p * H * W;  // this channel's (H, W) map, or its b*b planes
        T* o = dst + p * H * W;
        const auto run = [&](auto inv) {
          constexpr bool I = decltype(inv)::value;
          switch (b) {
            case 2: spatial_channel<T, 2, I>(in, o, buf.data(), H, W, norm); break;
            case 4: spatial_channel<T, 4, I>(in, o, buf.data(), H, W, norm); break;
            case 8: spatial_channel<T, 8, I>(in, o, buf.data(), H, W, norm); break;
            case 16: spatial_channel<T, 16, I>(in, o, buf.data(), H, W, norm); break;
            case 32: spatial_channel<T, 32, I>(in, o, buf.data(), H, W, norm); break;
            default: spatial_channel<T, 64, I>(in, o, buf.data(), H, W, norm); break;
          }
        };
        if (inverse) run(std::true_type{});
        else run(std::false_type{});
      }
    });
  }
  return out;
}

py::array_t<int8_t> signs(uint64_t seed, int64_t d) {
  if (d < 0) throw std::invalid_argument("d must be non-negative");
  const std::vector<int8_t> s = signs_of(seed, size_t(d));
  py::array_t<int8_t> out{py::ssize_t(d)};
  std::copy(s.begin(), s.end(), out.mutable_data());
  return out;
}

}  // namespace

void register_hadamard(py::module_& m) {
  m.def("hadamard_rotate", &rotate<float>, py::arg("x").noconvert(), py::arg("seed"), py::arg("block"),
        py::arg("inverse"), py::arg("threads"));
  m.def("hadamard_rotate", &rotate<double>, py::arg("x").noconvert(), py::arg("seed"), py::arg("block"),
        py::arg("inverse"), py::arg("threads"),
        "A new (n, d) array: each row of the C-contiguous float32/float64 (n, d) array x, in blocks of "
        "`block` values (a power of two dividing d), times H D / sqrt(block) (forward: signs, then the "
        "fast Walsh-Hadamard transform) or D H / sqrt(block) (inverse), D the signs of `seed` "
        "(hadamard_signs). Use featcodec.stages.rotation, which validates its arguments.");
  m.def("spatial_hadamard", &spatial<float>, py::arg("x").noconvert(), py::arg("block"), py::arg("inverse"),
        py::arg("shape"), py::arg("threads"));
  m.def("spatial_hadamard", &spatial<double>, py::arg("x").noconvert(), py::arg("block"), py::arg("inverse"),
        py::arg("shape"), py::arg("threads"),
        "The spatial stage's blockwise 2-D Walsh-Hadamard of a C-contiguous float32/float64 map of "
        "shape (N, C, H, W) into the frequency-major (N, C*b*b, H/b, W/b) array (inverse: back). "
        "Use featcodec.stages.spatial, which validates its arguments.");
  m.def("hadamard_signs", &signs, py::arg("seed"), py::arg("d"),
        "The d signs (+1/-1, int8) of the rotation with this seed: sign i is -1 when bit 63 of "
        "splitmix64's output i + 1 from state seed is set.");
}

}  // namespace featcodec
