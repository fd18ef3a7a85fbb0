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

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
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
  const int32_t* lower = nullptr;  // optional: argmin for D[k-1][.], a lower bound on opt

  void solve(int64_t jlo, int64_t jhi, int64_t ilo, int64_t ihi) {
    while (jlo <= jhi) {
      const int64_t mid = jlo + (jhi - jlo) / 2;
      int64_t lo = ilo > first_i ? ilo : first_i;
      const int64_t hi = ihi < mid - 1 ? ihi : mid - 1;
      if (lower != nullptr && lower[mid] > lo && lower[mid] <= hi) lo = lower[mid];
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

// The optimal k-cell partition of atoms 0..M (prefix sums in `cost`) into `bounds`
// (k + 1 entries). With `knuth`, each layer's search starts at the previous layer's
// argmin (opt[k-1][j] <= opt[k][j] for this cost): the same optimum up to ties, in less
// time.
void optimal_bounds(const Cost& cost, int64_t M, int64_t k, bool knuth, int64_t* bounds) {
  std::vector<double> prev(M + 1), cur(M + 1);
  std::vector<int32_t> opt(static_cast<size_t>(k) * (M + 1), 0);
  for (int64_t j = 0; j <= M; ++j) prev[j] = cost(0, j);
  for (int64_t layer = 2; layer <= k; ++layer) {
    std::fill(cur.begin(), cur.end(), std::numeric_limits<double>::infinity());
    int32_t* row = opt.data() + (layer - 1) * (M + 1);
    Layer L{cost, prev.data(), cur.data(), row, layer - 1, knuth ? row - (M + 1) : nullptr};
    L.solve(layer, M, layer - 1, M - 1);
    prev.swap(cur);
  }
  bounds[k] = M;
  for (int64_t layer = k; layer >= 2; --layer)
    bounds[layer - 1] = opt[(layer - 1) * (M + 1) + bounds[layer]];
  bounds[0] = 0;
}

// Local refinement of a k-cell partition `b` of atoms 0..M (k + 1 bounds): the optimal
// partition whose bound l lies within `width` atoms of b[l] (a DP over those windows,
// O(k width log width)), repeated from its own result until it no longer moves or
// `passes` are done. Each pass can only lower the squared error. Returns how many bounds
// the first pass moved as far as their windows allow (a start far from the optimum), and
// whether the last pass moved none.
struct Refined {
  int64_t far = 0;
  bool settled = false;
};
Refined banded_bounds(const Cost& cost, int64_t M, int64_t k, int64_t width, int64_t passes, int64_t* b) {
  const int64_t span = 2 * width + 1;
  std::vector<double> prev(span), cur(span);
  std::vector<int64_t> prev_j(span), cur_j(span);
  std::vector<int32_t> arg(static_cast<size_t>(k + 1) * span);
  std::vector<int64_t> lo(k + 1), cnt(k + 1);
  Refined out;
  for (int64_t pass = 0; pass < passes; ++pass) {
    for (int64_t l = 0; l <= k; ++l) {
      if (l == 0 || l == k) {
        lo[l] = b[l];
        cnt[l] = 1;
        continue;
      }
      const int64_t a = std::max(b[l] - width, l), z = std::min(b[l] + width, M - (k - l));
      lo[l] = a;
      cnt[l] = z - a + 1;
    }
    prev[0] = 0.0;
    prev_j[0] = 0;
    int64_t np = 1;
    for (int64_t l = 1; l <= k; ++l) {
      // the argmin is monotone in j (the cost is Monge): divide and conquer over the
      // window, O(w log w) instead of O(w^2)
      int32_t* row = arg.data() + l * span;
      const int64_t base = lo[l];
      auto solve = [&](auto&& self, int64_t clo, int64_t chi, int64_t qlo, int64_t qhi) -> void {
        if (clo > chi) return;
        const int64_t c = clo + (chi - clo) / 2, j = base + c;
        double best = std::numeric_limits<double>::infinity();
        int64_t bi = qlo;
        for (int64_t q = qlo; q <= qhi && prev_j[q] < j; ++q) {
          const double v = prev[q] + cost(prev_j[q], j);
          if (v < best) {
            best = v;
            bi = q;
          }
        }
        cur[c] = best;
        cur_j[c] = j;
        row[c] = static_cast<int32_t>(bi);
        self(self, clo, c - 1, qlo, bi);
        self(self, c + 1, chi, bi, qhi);
      };
      solve(solve, 0, cnt[l] - 1, 0, np - 1);
      np = cnt[l];
      prev.swap(cur);
      prev_j.swap(cur_j);
    }
    // backtrack (the windows are feasible: b itself is a partition inside them)
    int64_t edge = 0, moved = 0;
    int64_t c = 0;
    for (int64_t l = k; l >= 1; --l) {
      const int64_t j = lo[l] + c;
      edge += j - b[l] == width || b[l] - j == width;
      moved += j != b[l];
      b[l] = j;
      c = arg[l * span + c];
    }
    if (pass == 0) out.far = edge;
    out.settled = moved == 0;
    if (out.settled) break;
  }
  return out;
}

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
    optimal_bounds(cost, M, k, false, bounds);
  }
  return out;
}

// ---------------------------------------------------------------------------------------
// The fast fit (fit_levels_fast): the whole Lloyd-Max design of one channel in one call.

// the float32 number of a key of lloydmax.key32
inline float key_value(uint32_t k) {
  const uint32_t u = (k & 0x80000000u) ? (k & 0x7FFFFFFFu) : ~k;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// Per-thread scratch of the fast fit, kept between calls up to a size (fresh pages cost
// more here than the fit's arithmetic on them).
struct Scratch {
  std::vector<double> v, W, S, S2;
  std::vector<uint32_t> keys, exact, tmp;
  static constexpr size_t kKeep = size_t{1} << 20;
  void reserve(size_t n) {
    for (auto* a : {&v, &W, &S, &S2})
      if (a->size() < n + 1) a->resize(n + 1);
  }
  void release() {
    for (auto* a : {&v, &W, &S, &S2})
      if (a->size() > kKeep) std::vector<double>().swap(*a);
    for (auto* a : {&keys, &exact, &tmp})
      if (a->size() > kKeep) std::vector<uint32_t>().swap(*a);
  }
};

// The key (lloydmax.key32) of the float32 value of bits u, -0.0 on the key of +0.0 (the
// same order as the values; NaN and +-Inf get keys too: callers test them apart). Branch
// free, so that loops over values vectorise.
inline uint32_t float_key(uint32_t u) {
  const uint32_t key = u ^ (static_cast<uint32_t>(static_cast<int32_t>(u) >> 31) | 0x80000000u);
  return key + (key == 0x7FFFFFFFu);  // -0.0 as +0.0
}

// 1 if the float32 of bits u is NaN or +-Inf, else 0
inline uint32_t not_finite(uint32_t u) { return static_cast<uint32_t>((u & 0x7F800000u) == 0x7F800000u); }

// Sorts the n keys in a ascending: an LSD radix sort in three passes of 11, 11 and 10
// bits through b (room for n); the result ends in a.
void radix_sort(uint32_t* a, uint32_t* b, size_t n) {
  if (n == 0) return;
  uint32_t* const out = a;
  uint32_t count[3][2048] = {};
  for (size_t i = 0; i < n; ++i) {
    const uint32_t u = a[i];
    ++count[0][u & 2047];
    ++count[1][(u >> 11) & 2047];
    ++count[2][u >> 22];
  }
  for (int pass = 0; pass < 3; ++pass) {
    const int shift = 11 * pass;
    uint32_t* c = count[pass];
    if (c[(a[0] >> shift) & 2047] == n) continue;  // one digit everywhere: already in order
    uint32_t sum = 0;
    for (int d = 0; d < 2048; ++d) {
      const uint32_t t = c[d];
      c[d] = sum;
      sum += t;
    }
    for (size_t i = 0; i < n; ++i) b[c[(a[i] >> shift) & 2047]++] = a[i];
    std::swap(a, b);
  }
  if (a != out) std::memcpy(out, a, n * 4);
}

// out = the ascending keys (value_key) of n values, the i-th at x[i * stride] (tmp: the
// sort's other buffer). Returns false when a value is not finite. Where zeros are at least
// an eighth of the values (ReLU maps: often more than half), they are taken out before the
// sort and put back as one block: in the sort, a run of equal keys makes every count update
// wait on the one before (a CNN map's keys sorted at 3.5 ns each, other features' at 2.4).
bool sorted_keys(const float* x, int64_t n, std::vector<uint32_t>& out, std::vector<uint32_t>& tmp,
                 int64_t stride = 1) {
  const size_t N = static_cast<size_t>(n);
  if (out.size() < N + 1) out.resize(N + 1);
  if (tmp.size() < N + 1) tmp.resize(N + 1);
  const uint32_t zero = float_key(0u);
  uint32_t bad = 0;
  size_t zeros = 0;
  for (size_t i = 0; i < N; ++i) {
    uint32_t u;
    std::memcpy(&u, x + i * stride, 4);
    bad |= not_finite(u);
    out[i] = float_key(u);
    zeros += out[i] == zero;
  }
  if (bad) return false;
  uint32_t* const o = out.data();
  if (zeros < N / 8) {
    radix_sort(o, tmp.data(), N);
    return true;
  }
  size_t m = 0;
  for (size_t i = 0; i < N; ++i) {
    const uint32_t key = o[i];
    o[m] = key;
    m += key != zero;
  }
  radix_sort(o, tmp.data(), m);
  const size_t at = static_cast<size_t>(std::lower_bound(o, o + m, zero) - o);
  std::memmove(o + at + zeros, o + at, (m - at) * 4);
  std::fill(o + at, o + at + zeros, zero);
  return true;
}

// The summary of n > `sample` values that the fast fit sees (lloydmax.FAST_SAMPLE): the
// stride sample x[::ceil(n / sample)] (s values), its keys sorted; with t = s / tail_div,
// lo and hi its t-th smallest and t-th largest; the bulk = the sample's values in [lo, hi]
// (a run of the sorted keys), each of weight (n - tails) / bulk; the tails = every value of
// x below lo or above hi, exactly, each of weight 1. Deterministic, O(n) on x.
struct Summary {
  const uint32_t* bulk = nullptr;
  int64_t nbulk = 0, ntails = 0;
  double weight = 1.0;
  bool finite = true;

  Summary(const float* x, int64_t n, int64_t sample, int64_t tail_div, Scratch& sc) {
    const int64_t stride = (n + sample - 1) / sample, s = (n + stride - 1) / stride, t = s / tail_div;
    finite = sorted_keys(x, s, sc.keys, sc.tmp, stride);
    if (!finite) return;
    const uint32_t* keys = sc.keys.data();
    const uint32_t lo = keys[t], hi = keys[s - 1 - t];
    const int64_t first = std::lower_bound(keys, keys + s, lo) - keys;
    const int64_t last = std::upper_bound(keys, keys + s, hi) - keys;
    bulk = keys + first;
    nbulk = last - first;
    std::vector<uint32_t>& tails = sc.exact;
    if (tails.size() < 1024) tails.resize(1024);
    // blocks of 16 tested branch-free first (vectorised): most hold no tail value; in the
    // others each key is stored and kept by advancing the count, without a branch
    constexpr int64_t kBlock = 16;
    const uint32_t span = hi - lo;
    auto key_of = [](const float* v) {
      uint32_t u;
      std::memcpy(&u, v, 4);
      return float_key(u);
    };
    uint32_t bad = 0;
    for (int64_t start = 0; start < n; start += kBlock) {
      const int64_t end = std::min(start + kBlock, n);
      uint32_t any = 0;
      for (int64_t i = start; i < end; ++i) any |= static_cast<uint32_t>(key_of(x + i) - lo > span);
      if (!any) continue;
      if (tails.size() < static_cast<size_t>(ntails + kBlock)) tails.resize(2 * tails.size());
      for (int64_t i = start; i < end; ++i) {
        const uint32_t key = key_of(x + i);
        const uint32_t out = key - lo > span;
        bad |= out & static_cast<uint32_t>(key >= 0xFF800000u || key <= 0x007FFFFFu);  // NaN, +-Inf
        tails[ntails] = key;
        ntails += out;
      }
    }
    if (bad) {
      finite = false;
      return;
    }
    weight = static_cast<double>(n - ntails) / static_cast<double>(nbulk);
    if (sc.tmp.size() < static_cast<size_t>(ntails)) sc.tmp.resize(ntails);
    radix_sort(tails.data(), sc.tmp.data(), static_cast<size_t>(ntails));
  }
};

// Sorted distinct values and prefix sums of their counts, and of value and value^2
// relative to the weighted median, summed outward from it (as lloydmax._Prefix does).
struct Points {
  const double *v = nullptr, *W = nullptr, *S = nullptr, *S2 = nullptr;  // M distinct values; M + 1 prefix sums
  int64_t M = 0;
  double mu = 0.0;
  int64_t size() const { return M; }

  Points() = default;
  // a (na keys, each of weight wa) and b (nb keys, each of weight 1): lloydmax.key32 of the
  // values, -0.0 on the key of +0.0, each sorted; equal keys of both make one point
  Points(const uint32_t* a, int64_t na, double wa, const uint32_t* b, int64_t nb, Scratch& sc) {
    sc.reserve(static_cast<size_t>(na + nb));
    double* vv = sc.v.data();
    double* WW = sc.W.data();
    double* SS = sc.S.data();
    double* SS2 = sc.S2.data();
    WW[0] = 0.0;
    if (nb == 0 && wa == 1.0) {
      // every key of weight 1 (the whole tensor, not a summary): the points and their
      // counts without a branch or a floating-point chain, the same sums exactly
      int64_t m = 0;
      uint32_t prev = a[0];
      for (int64_t i = 0; i < na; ++i) {
        m += a[i] != prev;
        prev = a[i];
        vv[m] = static_cast<double>(key_value(a[i]));
        WW[m + 1] = static_cast<double>(i + 1);
      }
      M = na > 0 ? m + 1 : 0;
    } else {
      int64_t i = 0, j = 0;
      while (i < na || j < nb) {
        const uint32_t key = j >= nb || (i < na && a[i] <= b[j]) ? a[i] : b[j];
        int64_t ia = i, jb = j;
        while (i < na && a[i] == key) ++i;
        while (j < nb && b[j] == key) ++j;
        vv[M] = static_cast<double>(key_value(key));
        WW[M + 1] = WW[M] + static_cast<double>(i - ia) * wa + static_cast<double>(j - jb);
        ++M;
      }
    }
    // the median point: the first whose cumulative weight reaches half the total
    const int64_t m = std::min<int64_t>(std::lower_bound(WW + 1, WW + M + 1, WW[M] * 0.5) - (WW + 1), M - 1);
    mu = vv[m];
    SS[m] = SS2[m] = 0.0;
    // the sums up from the median and down from it, each in its order, the two chains
    // interleaved (each waits on its own last addition, not on the other's)
    auto up = [&](int64_t i) {
      const double d = vv[i] - mu, wd = (WW[i + 1] - WW[i]) * d;
      SS[i + 1] = SS[i] + wd;
      SS2[i + 1] = SS2[i] + wd * d;
    };
    auto down = [&](int64_t i) {
      const double d = vv[i] - mu, wd = (WW[i + 1] - WW[i]) * d;
      SS[i] = SS[i + 1] - wd;
      SS2[i] = SS2[i + 1] - wd * d;
    };
    int64_t u = m, l = m - 1;
    for (; u < M && l >= 0; ++u, --l) {
      up(u);
      down(l);
    }
    for (; u < M; ++u) up(u);
    for (; l >= 0; --l) down(l);
    v = vv;
    W = WW;
    S = SS;
    S2 = SS2;
  }
  // centroid of points [a, b) (b > a with weight)
  double centroid(int64_t a, int64_t b) const { return (S[b] - S[a]) / (W[b] - W[a]) + mu; }
};

// The first index in [from, end) whose v is >= t (v ascending, v[from - 1] < t if from > 0):
// galloping from `from`, so nearby answers cost a few cache lines, not log2(end) misses.
inline int64_t lower_bound_from(const double* v, int64_t from, int64_t end, double t) {
  int64_t step = 1, lo = from;
  while (lo + step <= end && v[lo + step - 1] < t) {
    lo += step;
    step *= 2;
  }
  return std::lower_bound(v + lo, v + std::min(lo + step, end), t) - v;
}

// The compander of high-resolution quantization theory: level density proportional to
// the cube root of the data's density, estimated on `groups` groups of equal weight.
// A group's share of the levels is capped at its number of distinct points (isolated
// outliers of a heavy tail get a point each, not a stretch of empty range), the excess
// going to the other groups in proportion. position(q) is the point index at fraction
// q of the levels: inside a capped group point by point, else by value.
struct Compander {
  const Points& p;
  std::vector<int64_t> edges{0};
  std::vector<double> lo, hi, cum;
  std::vector<char> capped;

  Compander(const Points& pts, int64_t groups, double levels) : p(pts) {
    const int64_t M = p.size();
    const double total = p.W[M];
    int64_t e = 0;  // the targets ascend: one forward scan instead of a search each
    for (int64_t g = 1; g < groups; ++g) {
      const double target = total * g / groups;
      while (e <= M && p.W[e] < target) ++e;
      if (e > edges.back() && e < M) edges.push_back(e);
    }
    edges.push_back(M);
    const size_t G = edges.size() - 1;
    lo.resize(G);
    hi.resize(G);
    capped.assign(G, 0);
    std::vector<double> mass(G), share(G);
    for (size_t g = 0; g < G; ++g) {
      const int64_t a = edges[g], b = edges[g + 1];
      lo[g] = a == 0 ? p.v[0] : 0.5 * (p.v[a - 1] + p.v[a]);
      hi[g] = b == M ? p.v[M - 1] : 0.5 * (p.v[b - 1] + p.v[b]);
      mass[g] = std::cbrt((p.W[b] - p.W[a]) * (hi[g] - lo[g]) * (hi[g] - lo[g]));
    }
    for (int round = 0; round < 16; ++round) {  // water-filling of the caps
      double free = levels, open = 0.0;
      for (size_t g = 0; g < G; ++g)
        if (capped[g]) free -= static_cast<double>(edges[g + 1] - edges[g]);
        else open += mass[g];
      bool changed = false;
      for (size_t g = 0; g < G; ++g) {
        const double cap = static_cast<double>(edges[g + 1] - edges[g]);
        if (capped[g]) {
          share[g] = cap;
          continue;
        }
        share[g] = open > 0.0 && free > 0.0 ? mass[g] / open * free : 0.0;
        if (share[g] > cap) {
          capped[g] = 1;
          changed = true;
        }
      }
      if (!changed) break;
    }
    cum.assign(G + 1, 0.0);
    for (size_t g = 0; g < G; ++g) cum[g + 1] = cum[g] + share[g];
  }

  // `from`: a point index at or below the answer (atoms() passes the previous one)
  int64_t position(double q, int64_t from = 0) const {
    const size_t G = lo.size();
    const double c = cum[G] * q;
    size_t g = std::upper_bound(cum.begin(), cum.end(), c) - cum.begin();
    g = g == 0 ? 0 : std::min(g - 1, G - 1);
    const double span = cum[g + 1] - cum[g];
    const double f = span > 0.0 ? std::min((c - cum[g]) / span, 1.0) : 0.0;
    if (capped[g])
      return edges[g] + static_cast<int64_t>(f * static_cast<double>(edges[g + 1] - edges[g]));
    const double t = lo[g] + f * (hi[g] - lo[g]);
    return lower_bound_from(p.v, from, p.size(), t);
  }

  // atom bounds (point indices, strictly ascending, 0 .. M) at `atoms` equal steps
  // Then every atom is split where two of its neighbouring points lie further apart than
  // its group's atom spacing (the group's range over its atoms): a group whose share of
  // the levels is below its number of points places its atoms by value, and a few isolated
  // tail values (two massive activations, say) could otherwise share an atom, which no
  // grouping and no Lloyd iteration can split (at most doubles the atoms). `placed`: how
  // many atoms the compander placed before the splits.
  std::vector<int64_t> atoms(int64_t count, int64_t& placed) const {
    std::vector<int64_t> out{0};
    for (int64_t j = 1; j < count; ++j) {
      const int64_t pos = position(static_cast<double>(j) / static_cast<double>(count), out.back());
      if (pos > out.back() && pos < p.size()) out.push_back(pos);
    }
    out.push_back(p.size());
    placed = static_cast<int64_t>(out.size()) - 1;
    const size_t G = lo.size();
    std::vector<double> spacing(G);
    for (size_t g = 0; g < G; ++g) {
      const double in_group = (cum[g + 1] - cum[g]) / cum[G] * static_cast<double>(count);
      spacing[g] = (hi[g] - lo[g]) / std::max(1.0, in_group);
    }
    std::vector<int64_t> split{0};
    size_t g = 0;
    for (size_t t = 1; t < out.size(); ++t) {
      for (int64_t i = out[t - 1] + 1; i < out[t]; ++i) {
        while (edges[g + 1] <= i) ++g;  // the group of point i
        if (p.v[i] - p.v[i - 1] > spacing[g]) split.push_back(i);
      }
      split.push_back(out[t]);
    }
    return split;
  }
};

// The first point index in [lo, M) whose value is >= t, searched outward from `hint`
// (thresholds move little between Lloyd iterations: a few cache lines, not log2 M
// scattered reads).
inline int64_t lower_bound_near(const Points& p, int64_t lo, int64_t hint, double t) {
  const int64_t M = p.size();
  hint = std::min(std::max(hint, lo), M);
  int64_t a, b;  // the answer lies in [a, b]
  if (hint < M && p.v[hint] < t) {
    int64_t step = 1;
    a = hint + 1;
    while (a + step <= M && p.v[a + step - 1] < t) {
      a += step;
      step *= 2;
    }
    b = std::min(a + step - 1, M);
  } else {
    int64_t step = 1;
    b = hint;
    while (b - step >= lo && p.v[b - step] >= t) {
      b -= step;
      step *= 2;
    }
    a = std::max(b - step + 1, lo);
  }
  return std::lower_bound(p.v + a, p.v + b, t) - p.v;
}

// Cell bounds (k + 1 point indices) of the float32 midpoint thresholds of `levels`; `b`
// holds a guess of them on entry (any bounds of k cells)
void cell_bounds(const Points& p, const std::vector<double>& levels, std::vector<int64_t>& b) {
  const int64_t k = static_cast<int64_t>(levels.size());
  b[0] = 0;
  b[k] = p.size();
  for (int64_t j = 1; j < k; ++j) {
    const double t = static_cast<double>(static_cast<float>((levels[j - 1] + levels[j]) * 0.5));
    b[j] = lower_bound_near(p, b[j - 1], b[j], t);
  }
}

// Over-relaxed Lloyd iterations from `bounds` until the partition is stable (as
// lloydmax._lloyd for one channel). `levels` becomes the centroids of the last partition
// if their own thresholds leave no cell empty, else the last levels that did (an empty
// cell wastes a level); returns false when there were none (`levels` are then the last
// centroids, for reseat_empty).
bool lloyd(const Points& p, std::vector<int64_t>& bounds, int64_t max_iter, std::vector<double>& levels) {
  const int64_t k = static_cast<int64_t>(levels.size());
  auto centroids = [&](std::vector<double>& out) {
    for (int64_t j = 0; j < k; ++j)
      if (p.W[bounds[j + 1]] > p.W[bounds[j]]) out[j] = p.centroid(bounds[j], bounds[j + 1]);
  };
  auto full = [&](const std::vector<int64_t>& b) {
    for (int64_t j = 0; j < k; ++j)
      if (p.W[b[j + 1]] <= p.W[b[j]]) return false;
    return true;
  };
  centroids(levels);
  std::vector<double> cen(levels), next(k), kept;
  std::vector<int64_t> nb(k + 1);
  const double omega = 1.8;
  for (int64_t it = 0; it < max_iter; ++it) {
    bool ordered = true;
    for (int64_t j = 0; j < k; ++j) {
      next[j] = levels[j] + omega * (cen[j] - levels[j]);
      if (j && next[j] <= next[j - 1]) ordered = false;
    }
    levels = ordered ? next : cen;
    cell_bounds(p, levels, nb);
    if (full(nb)) kept = levels;
    const bool moved = nb != bounds;
    bounds.swap(nb);
    cen = levels;
    centroids(cen);
    if (!moved) break;
  }
  cell_bounds(p, cen, nb);
  if (full(nb)) {
    levels = cen;
    return true;
  }
  if (kept.empty()) {
    levels = cen;
    return false;
  }
  levels = kept;
  return true;
}

// Re-seats the levels of empty cells (as lloydmax._repair_channel): each one goes to
// the cell with the largest squared error, split where the split lowers it most. Returns
// the new partition's bounds, or an empty vector when no cell was empty.
std::vector<int64_t> reseat_empty(const Points& p, const std::vector<double>& levels) {
  const int64_t k = static_cast<int64_t>(levels.size());
  std::vector<int64_t> b(k + 1);
  cell_bounds(p, levels, b);
  std::vector<std::pair<int64_t, int64_t>> cells;
  for (int64_t j = 0; j < k; ++j)
    if (p.W[b[j + 1]] > p.W[b[j]]) cells.emplace_back(b[j], b[j + 1]);
  if (static_cast<int64_t>(cells.size()) == k) return {};
  const Cost cost{p.W, p.S, p.S2};
  while (static_cast<int64_t>(cells.size()) < k) {
    size_t worst = 0;
    double gain = 0.0;
    int64_t at = -1;
    for (size_t c = 0; c < cells.size(); ++c) {  // the split that lowers the error most
      const auto [a0, b0] = cells[c];
      const double whole = cost(a0, b0);
      if (whole <= gain) continue;
      for (int64_t s = a0 + 1; s < b0; ++s) {
        const double g = whole - cost(a0, s) - cost(s, b0);
        if (g > gain) {
          gain = g;
          worst = c;
          at = s;
        }
      }
    }
    if (at < 0) return {};  // no cell can be split (fewer points than levels)
    const int64_t hi = cells[worst].second;
    cells[worst].second = at;
    cells.insert(cells.begin() + static_cast<std::ptrdiff_t>(worst) + 1, {at, hi});
  }
  std::vector<int64_t> out;
  for (const auto& c : cells) out.push_back(c.first);
  out.push_back(p.size());
  return out;
}

// Points per compander group (its density estimate), and the coarse grid of the first
// windowed passes (every COARSE-th atom: twice as long a move per pass).
constexpr int64_t GROUP_POINTS = 16;
constexpr int64_t COARSE = 2;

// Bounds b[1..k-1] made strictly ascending inside (0, M), b[0] = 0, b[k] = M (M >= k).
void pull_apart(std::vector<int64_t>& b, int64_t M) {
  const int64_t k = static_cast<int64_t>(b.size()) - 1;
  b[0] = 0;
  b[k] = M;
  for (int64_t j = 1; j < k; ++j) b[j] = std::max(b[j], b[j - 1] + 1);
  for (int64_t j = k - 1; j >= 1; --j) b[j] = std::min(b[j], b[j + 1] - 1);
}

// Prefix sums of weight, value and value^2 at the given point indices.
struct AtomSums {
  std::vector<double> W, S, S2;
  AtomSums(const Points& p, const std::vector<int64_t>& at) : W(at.size()), S(at.size()), S2(at.size()) {
    for (size_t i = 0; i < at.size(); ++i) {
      W[i] = p.W[at[i]];
      S[i] = p.S[at[i]];
      S2[i] = p.S2[at[i]];
    }
  }
  Cost cost() const { return Cost{W.data(), S.data(), S2.data()}; }
};

// A k-cell grouping of atoms 0..A (prefix sums in `cost`) by greedy merging: from one cell
// per atom, the two neighbouring cells whose union adds the least squared error are merged
// until k remain (Ward's rule; O(A log A), ties to the leftmost pair). Near the optimum
// where the cells hold few atoms. The pairs live in a tournament tree over the cells' first
// atoms (each cell's pair with the next; infinity where there is none), whose root is the
// least pair, ties to the smaller atom: a merge rewrites three leaves, with no stale
// entries to skip (a binary heap of pairs took twice as long).
std::vector<int64_t> merged_bounds(const Cost& cost, int64_t A, int64_t k) {
  // cells by their first atom: next[a] starts the cell after a's, err[a] is a's squared error
  std::vector<int32_t> next(A + 1), prev(A + 1);
  std::vector<double> err(A + 1, 0.0);
  for (int64_t i = 0; i <= A; ++i) {
    next[i] = static_cast<int32_t>(i + 1);
    prev[i] = static_cast<int32_t>(i - 1);
    if (i < A) err[i] = cost(i, i + 1);
  }
  constexpr double kNone = std::numeric_limits<double>::infinity();
  int64_t size = 1;
  while (size < A) size *= 2;
  // node i: the least (delta, atom) below it; leaves at size + a
  std::vector<double> delta(2 * size, kNone);
  std::vector<int32_t> at(2 * size, 0);
  const auto pair = [&](int32_t a) {  // the error cell a's union with the next one adds
    const int32_t b = next[a];
    return b < A ? cost(a, next[b]) - err[a] - err[b] : kNone;
  };
  const auto pull = [&](int64_t i) {  // node i from its children (ties: the left one)
    const int64_t l = 2 * i, r = l + 1, w = delta[r] < delta[l] ? r : l;
    delta[i] = delta[w];
    at[i] = at[w];
  };
  for (int64_t a = 0; a < size; ++a) at[size + a] = static_cast<int32_t>(a);
  for (int32_t a = 0; a + 1 < A; ++a) delta[size + a] = pair(a);
  for (int64_t i = size - 1; i >= 1; --i) pull(i);
  const auto set = [&](int32_t a, double d) {
    int64_t i = size + a;
    delta[i] = d;
    for (i >>= 1; i >= 1; i >>= 1) pull(i);
  };
  for (int64_t cells = A; cells > k && delta[1] < kNone; --cells) {
    const int32_t a = at[1], b = next[a];
    next[a] = next[b];  // cell b joins cell a
    prev[next[b]] = a;
    err[a] = cost(a, next[a]);
    set(b, kNone);
    set(a, pair(a));
    if (prev[a] >= 0) set(prev[a], pair(prev[a]));
  }
  std::vector<int64_t> bounds;
  for (int64_t a = 0; a < A; a = next[a]) bounds.push_back(a);
  bounds.push_back(A);
  return bounds;
}

// The k-cell grouping of the atoms: the full DP (band == 0), else windowed passes from
// the compander's partition, first on the coarse grid, then on every atom. Where the
// first pass finds the compander's partition far from the optimum (bounds moved as far
// as their windows allow: heavy tails, a spike of zeros, few values per level), the
// passes start again from the greedy merge of the atoms (merged_bounds), which is near
// it: SmolLM2's 64 KB hidden state took 8 passes from the compander, 2 from the merge.
std::vector<int64_t> group_atoms(const Points& p, const Compander& comp, const std::vector<int64_t>& atoms,
                                 int64_t k, int64_t band, int64_t passes, bool few) {
  const int64_t A = static_cast<int64_t>(atoms.size()) - 1;
  const AtomSums sums(p, atoms);
  std::vector<int64_t> ab(k + 1);
  if (band == 0) {
    optimal_bounds(sums.cost(), A, k, true, ab.data());
    return ab;
  }
  if (few) {  // every point an atom: the compander's partition means little
    ab = merged_bounds(sums.cost(), A, k);
    banded_bounds(sums.cost(), A, k, band, passes, ab.data());
    return ab;
  }
  const int64_t far = std::max<int64_t>(1, k / 32);  // bounds at their window's edge
  for (int64_t j = 0; j <= k; ++j) {
    const int64_t pos = comp.position(static_cast<double>(j) / static_cast<double>(k));
    ab[j] = std::lower_bound(atoms.begin(), atoms.end(), pos) - atoms.begin();
  }
  pull_apart(ab, A);
  // one pass from there tells whether the compander's partition is near the optimum
  const int64_t Ac = A / COARSE;
  if (Ac >= 2 * k) {
    std::vector<int64_t> coarse(Ac + 1), cb(k + 1);
    for (int64_t i = 0; i <= Ac; ++i) coarse[i] = atoms[i == Ac ? A : i * COARSE];
    for (int64_t j = 0; j <= k; ++j) cb[j] = (ab[j] + COARSE / 2) / COARSE;
    pull_apart(cb, Ac);
    const AtomSums csums(p, coarse);
    const Refined probe = banded_bounds(csums.cost(), Ac, k, band, 1, cb.data());
    if (probe.far < far) {
      if (!probe.settled) banded_bounds(csums.cost(), Ac, k, band, passes - 1, cb.data());
      for (int64_t j = 1; j < k; ++j) ab[j] = cb[j] * COARSE;
      banded_bounds(sums.cost(), A, k, band, passes, ab.data());
      return ab;
    }
  } else {
    const Refined probe = banded_bounds(sums.cost(), A, k, band, 1, ab.data());
    if (probe.far < far) {
      if (!probe.settled) banded_bounds(sums.cost(), A, k, band, passes - 1, ab.data());
      return ab;
    }
  }
  ab = merged_bounds(sums.cost(), A, k);
  banded_bounds(sums.cost(), A, k, band, passes, ab.data());
  return ab;
}

// (status, values): status 0: `values` are the k fitted levels (float64, ascending);
// 1: x has at most k distinct values, `values` are they (for lloydmax.fill_levels);
// 2: not served (the atoms merged below 2 k, or cells stayed empty): use the exact fit.
// Above `sample` values (0: never) the fit sees their Summary.
py::tuple fit_levels_fast(py::array_t<float, py::array::c_style> values, int64_t k, int64_t atoms_per_level,
                          int64_t max_iter, int64_t band, int64_t passes, int64_t sample, int64_t tail_div,
                          int64_t few_points) {
  if (values.ndim() != 1 || values.shape(0) < 1)
    throw std::invalid_argument("fit_levels_fast: values must be 1-D, not empty");
  if (k < 2 || k > 4096 || atoms_per_level < 1 || atoms_per_level > 64 || max_iter < 0 || band < 0 ||
      band > 1024 || passes < 0 || sample < 0 || (sample > 0 && sample < 1024) || tail_div < 4)
    throw std::invalid_argument(
        "fit_levels_fast: need 2 <= k <= 4096, 1 <= atoms_per_level <= 64, 0 <= band <= 1024, "
        "max_iter >= 0, passes >= 0, sample 0 or >= 1024, tail_div >= 4");
  const float* vals = values.data();
  const int64_t n = values.shape(0);
  int status = 0;
  bool finite = true;
  std::vector<double> levels;
  {
    py::gil_scoped_release release;
    thread_local Scratch scratch;
    const uint32_t *a = scratch.keys.data(), *b = nullptr;
    int64_t na = n, nb = 0;
    double wa = 1.0;
    if (sample > 0 && n > sample) {
      const Summary sum(vals, n, sample, tail_div, scratch);
      finite = sum.finite;
      a = sum.bulk;
      na = sum.nbulk;
      wa = sum.weight;
      b = scratch.exact.data();
      nb = sum.ntails;
    } else {
      finite = sorted_keys(vals, n, scratch.keys, scratch.tmp);
      a = scratch.keys.data();
    }
    const Points p = finite ? Points(a, na, wa, b, nb, scratch) : Points();
    const int64_t M = p.size();
    if (!finite) {
    } else if (M <= k) {
      status = 1;
      levels.assign(p.v, p.v + M);
    } else {
      const Compander comp(p, std::min(16 * k, std::max(k, M / GROUP_POINTS)),
                           static_cast<double>(atoms_per_level * k));
      // few points (a token or two): each point is an atom; else the compander places them
      const bool few = M <= (few_points < 0 ? 2 * atoms_per_level * k : few_points);
      int64_t placed = M;
      std::vector<int64_t> atoms;
      if (few) {
        atoms.resize(M + 1);
        for (int64_t i = 0; i <= M; ++i) atoms[i] = i;
      } else {  // (not sized first: a fill of M + 1 entries for nothing on large tensors)
        atoms = comp.atoms(atoms_per_level * k, placed);
      }
      // the compander's atoms collapsing below 2 k (onto a few isolated massive values)
      // marks a tail the fast fit does not serve well even once they are split (a 4M-value
      // tensor with a dozen massive values: 1.2x the exact fit's MSE at 8 bits)
      if (!few && placed < 2 * k) {
        status = 2;
      } else {
        const std::vector<int64_t> ab = group_atoms(p, comp, atoms, k, band, passes, few);
        std::vector<int64_t> bounds(k + 1);
        for (int64_t j = 0; j <= k; ++j) bounds[j] = atoms[ab[j]];
        levels.assign(k, 0.0);
        bool ok = lloyd(p, bounds, max_iter, levels);
        for (int round = 0; round < 3 && !ok; ++round) {
          std::vector<int64_t> fixed = reseat_empty(p, levels);
          if (fixed.empty()) break;
          bounds = fixed;
          ok = lloyd(p, bounds, max_iter, levels);
        }
        // still a cell without values (isolated massive values can leave one between
        // them): its level is wasted, not wrong; ascending levels still make a transform
        if (!ok && !std::is_sorted(levels.begin(), levels.end(), std::less_equal<double>())) status = 2;
      }
    }
    scratch.release();
  }
  if (!finite) throw std::invalid_argument("fit_levels_fast: values must be finite");
  py::array_t<double> out(static_cast<py::ssize_t>(levels.size()));
  std::copy(levels.begin(), levels.end(), out.mutable_data());
  return py::make_tuple(status, out);
}

// merged_bounds for prefix sums given from Python (for tests)
py::array_t<int64_t> greedy_merge(py::array_t<double, py::array::c_style | py::array::forcecast> W,
                                  py::array_t<double, py::array::c_style | py::array::forcecast> S,
                                  py::array_t<double, py::array::c_style | py::array::forcecast> S2, int64_t k) {
  if (W.ndim() != 1 || S.ndim() != 1 || S2.ndim() != 1 || W.shape(0) != S.shape(0) ||
      W.shape(0) != S2.shape(0) || W.shape(0) < 2 || W.shape(0) > (int64_t{1} << 24))
    throw std::invalid_argument("greedy_merge: W, S, S2 must be 1-D prefix sums of equal length, 2 to 2**24");
  const int64_t A = W.shape(0) - 1;
  if (k < 1 || k > A) throw std::invalid_argument("greedy_merge: need 1 <= k <= number of atoms");
  const std::vector<int64_t> b = merged_bounds(Cost{W.data(), S.data(), S2.data()}, A, k);
  py::array_t<int64_t> out(static_cast<py::ssize_t>(b.size()));
  std::copy(b.begin(), b.end(), out.mutable_data());
  return out;
}

// (bulk, tails, weight) of the Summary, each sorted (float32; -0.0 as +0.0): what the fast
// fit sees of n > sample values (for tests).
py::tuple fast_fit_summary(py::array_t<float, py::array::c_style> values, int64_t sample, int64_t tail_div) {
  if (values.ndim() != 1 || sample < 1024 || tail_div < 4 || values.shape(0) <= sample)
    throw std::invalid_argument("fast_fit_summary: need 1-D values, more than sample >= 1024; tail_div >= 4");
  Scratch scratch;
  const Summary sum(values.data(), values.shape(0), sample, tail_div, scratch);
  if (!sum.finite) throw std::invalid_argument("fast_fit_summary: values must be finite");
  auto floats = [](const uint32_t* keys, int64_t n) {
    py::array_t<float> out(static_cast<py::ssize_t>(n));
    float* o = out.mutable_data();
    for (int64_t i = 0; i < n; ++i) o[i] = key_value(keys[i]);
    return out;
  };
  return py::make_tuple(floats(sum.bulk, sum.nbulk), floats(scratch.exact.data(), sum.ntails), sum.weight);
}

}  // namespace

void register_lloydmax(py::module_& m) {
  m.def("lloyd_dp", &lloyd_dp, py::arg("W"), py::arg("S"), py::arg("S2"), py::arg("k"),
        "Optimal partition of M weighted atoms (prefix sums W, S, S2 of length M+1) into k "
        "contiguous cells minimising the squared error; returns k+1 atom bounds.");
  m.def("fit_levels_fast", &fit_levels_fast, py::arg("values"), py::arg("k"), py::arg("atoms_per_level"),
        py::arg("max_iter"), py::arg("band") = 0, py::arg("passes") = 30, py::arg("sample") = 0,
        py::arg("tail_div") = 256, py::arg("few_points") = -1,
        "Lloyd-Max levels of finite float32 values (1-D) in one call: their keys (lloydmax.key32, "
        "-0.0 as +0.0) radix-sorted (above `sample` values: a stride sample of about `sample` "
        "values inside its 1/tail_div quantiles, weighted, and every value outside them exactly), "
        "atoms at equal steps of the cube-root-density compander (every distinct value when "
        "there are at most few_points of them; -1: twice the atoms), their optimal "
        "grouping (the full DP with band=0, else passes of a DP in windows of +-band atoms), "
        "bounded Lloyd iterations, empty cells re-seated. Returns (status, values): 0 levels; "
        "1 the <= k distinct values; 2 not served (use the exact fit).");
  m.def("greedy_merge", &greedy_merge, py::arg("W"), py::arg("S"), py::arg("S2"), py::arg("k"),
        "The fast fit's greedy start: from one cell per atom (prefix sums W, S, S2 of length M+1), "
        "merge the two neighbouring cells whose union adds the least squared error (ties: the "
        "leftmost pair) until k remain; returns the k+1 atom bounds.");
  m.def("fast_fit_summary", &fast_fit_summary, py::arg("values"), py::arg("sample"), py::arg("tail_div") = 256,
        "(bulk, tails, weight): what fit_levels_fast sees of more than `sample` values, each sorted.");
}

}  // namespace featcodec
