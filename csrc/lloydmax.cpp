// Optimal 1-D k-means (scalar quantizer design) by dynamic programming over weighted
// atoms, for featcodec.lloydmax.
//
// D[k][j] = min_{k-1 <= i < j} D[k-1][i] + cost(i, j), where cost(i, j) is the squared
// error of atoms [i, j) around their weighted mean, computed in O(1) from prefix sums of
// weight, value and value^2. The optimal split point is monotone in j (the cost obeys the
// quadrangle inequality), so each layer is solved by divide and conquer in
// O(M log M); the whole problem in O(K M log M). Ties go to the smallest split, so the
// result is deterministic. Single-threaded, GIL released.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <limits>
#include <stdexcept>
#include <vector>

#include "module.h"

namespace py = pybind11;

namespace featcodec {
namespace {

struct Cost {
  const double* W;
  const double* S;
  const double* S2;
  inline double operator()(int64_t i, int64_t j) const {
    const double w = W[j] - W[i];
    if (w <= 0.0) return 0.0;
    const double s = S[j] - S[i];
    const double c = (S2[j] - S2[i]) - s * s / w;
    return c > 0.0 ? c : 0.0;
  }
};

struct Layer {
  const Cost& cost;
  const double* prev;  // D[k-1][.]
  double* cur;         // D[k][.]
  int32_t* opt;        // argmin for D[k][.]
  int64_t first_i;     // k - 1

  void solve(int64_t jlo, int64_t jhi, int64_t ilo, int64_t ihi) {
    while (jlo <= jhi) {
      const int64_t mid = jlo + (jhi - jlo) / 2;
      const int64_t lo = ilo > first_i ? ilo : first_i;
      const int64_t hi = ihi < mid - 1 ? ihi : mid - 1;
      double best = std::numeric_limits<double>::infinity();
      int64_t arg = lo;
      for (int64_t i = lo; i <= hi; ++i) {
        const double v = prev[i] + cost(i, mid);
        if (v < best) {
          best = v;
          arg = i;
        }
      }
      cur[mid] = best;
      opt[mid] = static_cast<int32_t>(arg);
      // left half recursively (smaller range), right half by looping
      solve(jlo, mid - 1, ilo, arg);
      jlo = mid + 1;
      ilo = arg;
    }
  }
};

py::array_t<int64_t> lloyd_dp(py::array_t<double, py::array::c_style | py::array::forcecast> W,
                              py::array_t<double, py::array::c_style | py::array::forcecast> S,
                              py::array_t<double, py::array::c_style | py::array::forcecast> S2,
                              int64_t k) {
  if (W.ndim() != 1 || S.ndim() != 1 || S2.ndim() != 1 || W.shape(0) != S.shape(0) ||
      W.shape(0) != S2.shape(0))
    throw std::invalid_argument("lloyd_dp: W, S, S2 must be 1-D prefix sums of equal length");
  const int64_t M = W.shape(0) - 1;
  if (k < 1 || k > M) throw std::invalid_argument("lloyd_dp: need 1 <= k <= number of atoms");
  if (M > (int64_t{1} << 30) || k * (M + 1) > (int64_t{1} << 31))
    throw std::invalid_argument("lloyd_dp: problem too large");
  py::array_t<int64_t> out(k + 1);
  int64_t* bounds = out.mutable_data();
  const Cost cost{W.data(), S.data(), S2.data()};
  {
    py::gil_scoped_release release;
    std::vector<double> prev(M + 1), cur(M + 1);
    std::vector<int32_t> opt(static_cast<size_t>(k) * (M + 1), 0);
    for (int64_t j = 0; j <= M; ++j) prev[j] = cost(0, j);
    for (int64_t layer = 2; layer <= k; ++layer) {
      std::fill(cur.begin(), cur.end(), std::numeric_limits<double>::infinity());
      Layer L{cost, prev.data(), cur.data(), opt.data() + (layer - 1) * (M + 1), layer - 1};
      L.solve(layer, M, layer - 1, M - 1);
      prev.swap(cur);
    }
    bounds[k] = M;
    for (int64_t layer = k; layer >= 2; --layer)
      bounds[layer - 1] = opt[(layer - 1) * (M + 1) + bounds[layer]];
    bounds[0] = 0;
  }
  return out;
}

}  // namespace

void register_lloydmax(py::module_& m) {
  m.def("lloyd_dp", &lloyd_dp, py::arg("W"), py::arg("S"), py::arg("S2"), py::arg("k"),
        "Optimal partition of M weighted atoms (prefix sums W, S, S2 of length M+1) into k "
        "contiguous cells minimising the squared error; returns k+1 atom bounds.");
}

}  // namespace featcodec
