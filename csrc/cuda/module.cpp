// featcodec._cuda: the CUDA kernels, bound for featcodec/transform/cuda.py. It takes raw device
// pointers (torch's tensor.data_ptr()) and a stream handle (torch.cuda.current_stream()
// .cuda_stream), so it needs no libtorch; the CUDA runtime is linked statically.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <stdexcept>
#include <vector>

#include "launch.h"

namespace py = pybind11;
using namespace featcodec::cuda;

namespace {

Shape make_shape(const std::vector<long long>& sizes, const std::vector<long long>& strides) {
  if (sizes.size() != strides.size() || sizes.size() > static_cast<size_t>(kMaxDims))
    throw std::invalid_argument("sizes/strides: at most 8 dimensions, equal lengths");
  Shape s;
  s.ndim = static_cast<int>(sizes.size());
  for (int d = 0; d < s.ndim; ++d) {
    if (sizes[d] < 0) throw std::invalid_argument("negative size");
    s.size[d] = sizes[d];
    s.stride[d] = strides[d];
  }
  return s;
}

long long count_of(const Shape& s) {
  long long n = 1;
  for (int d = 0; d < s.ndim; ++d) n *= s.size[d];
  return n;
}

void check(const std::string& err) {
  if (!err.empty()) throw std::runtime_error("CUDA error in featcodec._cuda: " + err);
}

const void* ptr(std::uintptr_t p) { return reinterpret_cast<const void*>(p); }
void* mptr(std::uintptr_t p) { return reinterpret_cast<void*>(p); }

}  // namespace

PYBIND11_MODULE(_cuda, m) {
  m.doc() = "featcodec CUDA kernels (raw device pointers; use featcodec.kernels).";
  m.def(
      "threshold_keys",
      [](std::uintptr_t thr, std::uintptr_t keys, long long n, int device,
         std::uintptr_t stream) {
        std::string err;
        {
          py::gil_scoped_release nogil;
          err = threshold_keys(ptr(thr), mptr(keys), n, device, stream);
        }
        check(err);
      },
      py::arg("thresholds"), py::arg("keys"), py::arg("n"), py::arg("device"),
      py::arg("stream"));
  m.def(
      "quantize",
      [](std::uintptr_t x, int kind, const std::vector<long long>& sizes,
         const std::vector<long long>& strides, std::uintptr_t keys, unsigned C, unsigned T,
         long long chan_div, std::uintptr_t out, int out_bytes, std::uintptr_t bad, int device,
         std::uintptr_t stream) {
        if (kind < 0 || kind > 3) throw std::invalid_argument("kind");
        if (out_bytes != 1 && out_bytes != 2) throw std::invalid_argument("out_bytes");
        if (C == 0 || chan_div <= 0) throw std::invalid_argument("C / chan_div");
        const Shape s = make_shape(sizes, strides);
        std::string err;
        {
          py::gil_scoped_release nogil;
          err = quantize(ptr(x), static_cast<InKind>(kind), s, count_of(s), ptr(keys), C, T,
                         chan_div, mptr(out), out_bytes, mptr(bad), device, stream);
        }
        check(err);
      },
      py::arg("x"), py::arg("kind"), py::arg("sizes"), py::arg("strides"), py::arg("keys"),
      py::arg("C"), py::arg("T"), py::arg("chan_div"), py::arg("out"), py::arg("out_bytes"),
      py::arg("bad"), py::arg("device"), py::arg("stream"));
  m.def(
      "dequantize",
      [](std::uintptr_t idx, int kind, const std::vector<long long>& sizes,
         const std::vector<long long>& strides, std::uintptr_t levels, int value_bytes,
         unsigned C, unsigned L, long long chan_div, std::uintptr_t out, std::uintptr_t bad,
         int device, std::uintptr_t stream) {
        if (kind < 0 || kind > 3) throw std::invalid_argument("kind");
        if (value_bytes != 2 && value_bytes != 4) throw std::invalid_argument("value_bytes");
        if (C == 0 || L == 0 || chan_div <= 0) throw std::invalid_argument("C / L / chan_div");
        const Shape s = make_shape(sizes, strides);
        std::string err;
        {
          py::gil_scoped_release nogil;
          err = dequantize(ptr(idx), static_cast<IdxKind>(kind), s, count_of(s), ptr(levels),
                           value_bytes, C, L, chan_div, mptr(out), mptr(bad), device, stream);
        }
        check(err);
      },
      py::arg("idx"), py::arg("kind"), py::arg("sizes"), py::arg("strides"), py::arg("levels"),
      py::arg("value_bytes"), py::arg("C"), py::arg("L"), py::arg("chan_div"), py::arg("out"),
      py::arg("bad"), py::arg("device"), py::arg("stream"));
}
