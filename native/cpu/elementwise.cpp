// CPU elementwise kernels: broadcasting binary ops (+ backward), where, unary ops (+ backward),
// dropout. Work is split over flat output ranges by qgs::parallel_for above a size threshold; each
// range is walked row by row (the innermost collapsed dimension) so the hot loops are unit-stride
// or scalar-broadcast and vectorise (QGS_SIMD_CLONES picks AVX-512/AVX2/baseline at run time).
#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>

#include "qgs/elementwise.h"
#include "qgs/parallel.h"

// The 32-byte vector helpers below are always inlined into their (cloned) callers, so GCC's note
// that passing such vectors without AVX changes the ABI never applies.
#pragma GCC diagnostic ignored "-Wpsabi"

namespace qgs {

int64_t collapse(Strided& s, int nin) {
  QGS_REQUIRE(s.ndim >= 0 && s.ndim <= kMaxDims, "strided: ndim must be in [0, " + std::to_string(kMaxDims) + "], got " +
                                                      std::to_string(s.ndim));
  int64_t total = 1;
  for (int d = 0; d < s.ndim; ++d) {
    QGS_REQUIRE(s.shape[d] >= 0, "strided: negative dimension");
    total *= s.shape[d];
  }
  // Drop size-1 dims (their stride never matters).
  Strided t;
  for (int d = 0; d < s.ndim; ++d) {
    if (s.shape[d] == 1) continue;
    t.shape[t.ndim] = s.shape[d];
    for (int k = 0; k < nin; ++k) t.stride[k][t.ndim] = s.stride[k][d];
    t.ndim++;
  }
  // Merge dim d into d+1 when every input (and the contiguous output) walks them as one.
  Strided m;
  for (int d = 0; d < t.ndim; ++d) {
    if (m.ndim > 0) {
      int p = m.ndim - 1;
      bool ok = true;
      for (int k = 0; k < nin; ++k) ok = ok && m.stride[k][p] == t.stride[k][d] * t.shape[d];
      if (ok) {
        m.shape[p] *= t.shape[d];
        for (int k = 0; k < nin; ++k) m.stride[k][p] = t.stride[k][d];
        continue;
      }
    }
    m.shape[m.ndim] = t.shape[d];
    for (int k = 0; k < nin; ++k) m.stride[k][m.ndim] = t.stride[k][d];
    m.ndim++;
  }
  if (m.ndim == 0) {  // a scalar (or all-ones shape): one element
    m.ndim = 1;
    m.shape[0] = total == 0 ? 0 : 1;
    for (int k = 0; k < nin; ++k) m.stride[k][0] = 0;
  }
  if (total == 0) {
    m.ndim = 1;
    m.shape[0] = 0;
  }
  s = m;
  return total;
}

}  // namespace qgs

namespace qgs::cpu {
namespace {

constexpr int64_t kParallelMin = 1 << 15;  // below this, threading costs more than it saves
constexpr int64_t kGrain = 1 << 14;

// Calls row(out_off, in_off[], len) for every contiguous run of the innermost dimension that falls
// in the flat output range [begin, end). in_off are element offsets of each input.
template <int NIN, typename Row>
inline void for_each_row(const Strided& s, int64_t begin, int64_t end, Row&& row) {
  const int nd = s.ndim;
  const int64_t L = s.shape[nd - 1];
  int64_t idx[kMaxDims];
  int64_t rem = begin / L;
  int64_t col = begin % L;
  int64_t off[NIN > 0 ? NIN : 1];
  for (int k = 0; k < NIN; ++k) off[k] = col * s.stride[k][nd - 1];
  for (int d = nd - 2; d >= 0; --d) {
    idx[d] = rem % s.shape[d];
    rem /= s.shape[d];
    for (int k = 0; k < NIN; ++k) off[k] += idx[d] * s.stride[k][d];
  }
  int64_t pos = begin;
  while (pos < end) {
    int64_t len = std::min(L - col, end - pos);
    row(pos, off, len);
    pos += len;
    if (pos >= end) break;
    // Next row: undo the column offset, advance the odometer over the outer dims.
    for (int k = 0; k < NIN; ++k) off[k] -= col * s.stride[k][nd - 1];
    col = 0;
    for (int d = nd - 2; d >= 0; --d) {
      idx[d]++;
      for (int k = 0; k < NIN; ++k) off[k] += s.stride[k][d];
      if (idx[d] < s.shape[d]) break;
      for (int k = 0; k < NIN; ++k) off[k] -= idx[d] * s.stride[k][d];
      idx[d] = 0;
    }
  }
}

template <typename F>
inline void run(int64_t total, F&& f) {
  if (total <= 0) return;
  if (total < kParallelMin) {
    f(0, total);
  } else {
    parallel_for(total, kGrain, f);
  }
}

// One row of a binary op: the unit-stride and broadcast-scalar patterns get their own loops so the
// compiler vectorises them.
template <typename T, typename O, typename F>
inline void row2(F f, O* QGS_RESTRICT o, const T* QGS_RESTRICT a, int64_t sa, const T* QGS_RESTRICT b, int64_t sb,
                 int64_t n) {
  if (sa == 1 && sb == 1) {
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) o[i] = f(a[i], b[i]);
  } else if (sa == 1 && sb == 0) {
    const T bv = *b;
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) o[i] = f(a[i], bv);
  } else if (sa == 0 && sb == 1) {
    const T av = *a;
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) o[i] = f(av, b[i]);
  } else {
    for (int64_t i = 0; i < n; ++i) o[i] = f(a[i * sa], b[i * sb]);
  }
}

QGS_SIMD_CLONES void binary_row_f32(BinaryOp op, float* o, const float* a, int64_t sa, const float* b, int64_t sb,
                                    int64_t n) {
  switch (op) {
    case BinaryOp::Add: return row2<float>([](float x, float y) { return x + y; }, o, a, sa, b, sb, n);
    case BinaryOp::Sub: return row2<float>([](float x, float y) { return x - y; }, o, a, sa, b, sb, n);
    case BinaryOp::Mul: return row2<float>([](float x, float y) { return x * y; }, o, a, sa, b, sb, n);
    case BinaryOp::Div: return row2<float>([](float x, float y) { return x / y; }, o, a, sa, b, sb, n);
    // NaN-propagating like torch.maximum / numpy.maximum.
    case BinaryOp::Max:
      return row2<float>([](float x, float y) { return (x > y || x != x) ? x : y; }, o, a, sa, b, sb, n);
    case BinaryOp::Min:
      return row2<float>([](float x, float y) { return (x < y || x != x) ? x : y; }, o, a, sa, b, sb, n);
    case BinaryOp::Greater: return row2<float>([](float x, float y) { return x > y ? 1.f : 0.f; }, o, a, sa, b, sb, n);
    case BinaryOp::Less: return row2<float>([](float x, float y) { return x < y ? 1.f : 0.f; }, o, a, sa, b, sb, n);
    case BinaryOp::Equal: return row2<float>([](float x, float y) { return x == y ? 1.f : 0.f; }, o, a, sa, b, sb, n);
  }
}

// Signed overflow is undefined in C++: do the arithmetic in uint32 (two's-complement wrap).
inline int32_t wrap(uint32_t v) {
  int32_t r;
  std::memcpy(&r, &v, 4);
  return r;
}

QGS_SIMD_CLONES void binary_row_i32(BinaryOp op, int32_t* o, const int32_t* a, int64_t sa, const int32_t* b, int64_t sb,
                                    int64_t n) {
  switch (op) {
    case BinaryOp::Add:
      return row2<int32_t>([](int32_t x, int32_t y) { return wrap(uint32_t(x) + uint32_t(y)); }, o, a, sa, b, sb, n);
    case BinaryOp::Sub:
      return row2<int32_t>([](int32_t x, int32_t y) { return wrap(uint32_t(x) - uint32_t(y)); }, o, a, sa, b, sb, n);
    case BinaryOp::Mul:
      return row2<int32_t>([](int32_t x, int32_t y) { return wrap(uint32_t(x) * uint32_t(y)); }, o, a, sa, b, sb, n);
    case BinaryOp::Max: return row2<int32_t>([](int32_t x, int32_t y) { return x > y ? x : y; }, o, a, sa, b, sb, n);
    case BinaryOp::Min: return row2<int32_t>([](int32_t x, int32_t y) { return x < y ? x : y; }, o, a, sa, b, sb, n);
    default: break;
  }
}

}  // namespace

void binary_f32(BinaryOp op, float* out, const float* a, const float* b, const Strided& s0) {
  Strided s = s0;
  int64_t total = collapse(s, 2);
  run(total, [&](int64_t lo, int64_t hi) {
    const int64_t sa = s.stride[0][s.ndim - 1], sb = s.stride[1][s.ndim - 1];
    for_each_row<2>(s, lo, hi, [&](int64_t o, const int64_t* off, int64_t len) {
      binary_row_f32(op, out + o, a + off[0], sa, b + off[1], sb, len);
    });
  });
}

void binary_i32(BinaryOp op, int32_t* out, const int32_t* a, const int32_t* b, const Strided& s0) {
  QGS_REQUIRE(op == BinaryOp::Add || op == BinaryOp::Sub || op == BinaryOp::Mul || op == BinaryOp::Max || op == BinaryOp::Min,
              "binary_i32: op " + std::to_string(static_cast<int>(op)) + " is not supported for i32");
  Strided s = s0;
  int64_t total = collapse(s, 2);
  run(total, [&](int64_t lo, int64_t hi) {
    const int64_t sa = s.stride[0][s.ndim - 1], sb = s.stride[1][s.ndim - 1];
    for_each_row<2>(s, lo, hi, [&](int64_t o, const int64_t* off, int64_t len) {
      binary_row_i32(op, out + o, a + off[0], sa, b + off[1], sb, len);
    });
  });
}

namespace {
QGS_SIMD_CLONES void binary_backward_row(BinaryOp op, float* da, float* db, const float* dy, const float* a, int64_t sa,
                                         const float* b, int64_t sb, int64_t n) {
  switch (op) {
    case BinaryOp::Mul:
      if (da) for (int64_t i = 0; i < n; ++i) da[i] = dy[i] * b[i * sb];
      if (db) for (int64_t i = 0; i < n; ++i) db[i] = dy[i] * a[i * sa];
      return;
    case BinaryOp::Div:
      if (da) for (int64_t i = 0; i < n; ++i) da[i] = dy[i] / b[i * sb];
      if (db)
        for (int64_t i = 0; i < n; ++i) {
          float bv = b[i * sb];
          db[i] = -dy[i] * a[i * sa] / (bv * bv);
        }
      return;
    case BinaryOp::Max:
    case BinaryOp::Min: {
      const bool mx = op == BinaryOp::Max;
      for (int64_t i = 0; i < n; ++i) {
        float x = a[i * sa], y = b[i * sb], g = dy[i];
        float wa = x == y ? 0.5f : ((mx ? x > y : x < y) ? 1.f : 0.f);
        if (da) da[i] = g * wa;
        if (db) db[i] = g * (1.f - wa);
      }
      return;
    }
    default: return;
  }
}
}  // namespace

void binary_backward_f32(BinaryOp op, float* da, float* db, const float* dy, const float* a, const float* b,
                         const Strided& s0) {
  QGS_REQUIRE(op == BinaryOp::Mul || op == BinaryOp::Div || op == BinaryOp::Max || op == BinaryOp::Min,
              "binary_backward: op " + std::to_string(static_cast<int>(op)) + " has no backward kernel");
  Strided s = s0;
  int64_t total = collapse(s, 2);
  run(total, [&](int64_t lo, int64_t hi) {
    const int64_t sa = s.stride[0][s.ndim - 1], sb = s.stride[1][s.ndim - 1];
    for_each_row<2>(s, lo, hi, [&](int64_t o, const int64_t* off, int64_t len) {
      binary_backward_row(op, da ? da + o : nullptr, db ? db + o : nullptr, dy + o, a + off[0], sa, b + off[1], sb, len);
    });
  });
}

void where_f32(float* out, const float* cond, const float* a, const float* b, const Strided& s0) {
  Strided s = s0;
  int64_t total = collapse(s, 3);
  run(total, [&](int64_t lo, int64_t hi) {
    const int nd = s.ndim;
    const int64_t sc = s.stride[0][nd - 1], sa = s.stride[1][nd - 1], sb = s.stride[2][nd - 1];
    for_each_row<3>(s, lo, hi, [&](int64_t o, const int64_t* off, int64_t len) {
      const float* c = cond + off[0];
      const float* x = a + off[1];
      const float* y = b + off[2];
      float* r = out + o;
      for (int64_t i = 0; i < len; ++i) r[i] = c[i * sc] != 0.f ? x[i * sa] : y[i * sb];
    });
  });
}

namespace {

// ---- vectorised exp (GCC vector extensions) ----
// glibc's expf is scalar here (its SIMD variants need -ffast-math), and the compiler cannot
// if-convert a clamped polynomial under the default trapping-math rules, so exp-heavy ops (exp,
// sigmoid, SiLU: the HSTU activations) use an explicit 8-lane version of the Cephes expf
// polynomial (max relative error ~1e-7, i.e. 1-2 ulp). Inside a target clone the 32-byte vectors
// become AVX2/AVX-512 code, in the baseline clone pairs of SSE registers. The tail of a range is
// padded into a full vector so every element takes the same code path: results never depend on
// where a thread's range starts.
typedef float v8f __attribute__((vector_size(32)));
typedef int32_t v8i __attribute__((vector_size(32)));

__attribute__((always_inline)) inline v8f splat(float v) { return v8f{v, v, v, v, v, v, v, v}; }

// e^x = 2^n · p(r) for x already clamped to the range the caller's scaling handles: n = round(x / ln 2)
// (returned in ni), r = x - n ln 2 in two parts (Cody-Waite) for accuracy, p a degree-6 polynomial.
__attribute__((always_inline)) inline v8f exp8_poly(v8f x, v8i& ni) {
  // n = round(x / ln 2) by the 1.5·2^23 shifter: adding it leaves the rounded integer in the low
  // mantissa bits (|x / ln 2| < 2^22 here), so no float <-> int conversions are needed.
  const v8f shifter = splat(12582912.f);
  const v8f t = x * splat(1.44269504088896341f) + shifter;
  v8i tb;
  std::memcpy(&tb, &t, sizeof tb);
  ni = tb - 0x4B400000;  // the shifter's bit pattern
  const v8f n = t - shifter;
  v8f r = x - n * splat(0.693359375f);
  r = r - n * splat(-2.12194440e-4f);
  v8f p = splat(1.9875691500e-4f);
  p = p * r + splat(1.3981999507e-3f);
  p = p * r + splat(8.3334519073e-3f);
  p = p * r + splat(4.1665795894e-2f);
  p = p * r + splat(1.6666665459e-1f);
  p = p * r + splat(5.0000001201e-1f);
  return p * r * r + r + splat(1.f);
}

// 2^n for n in [-126, 127] (a normal float), from its exponent bits.
__attribute__((always_inline)) inline v8f pow2_normal(v8i n) {
  v8i b = (n + 127) << 23;
  v8f s;
  std::memcpy(&s, &b, sizeof s);
  return s;
}

__attribute__((always_inline)) inline v8f exp8(v8f x0) {
  // Clamp so 2^n stays a normal float; the true overflow / underflow results are restored below.
  v8f x = x0 < splat(-104.f) ? splat(-104.f) : x0;
  x = x > splat(88.72283935546875f) ? splat(88.72283935546875f) : x;
  v8i ni;
  const v8f p = exp8_poly(x, ni);
  // 2^n as 2^n1 * 2^n2 with both halves normal floats: n spans [-150, 128] after the clamp, where
  // 2^n alone would be denormal or infinite, but the products round correctly (denormal results
  // included).
  v8i n1 = ni >> 1;
  v8f r2 = (p * pow2_normal(n1)) * pow2_normal(ni - n1);
  // exp overflows past ln(FLT_MAX); below -104 it is 0 in float.
  r2 = x0 > splat(88.72283935546875f) ? splat(__builtin_inff()) : r2;
  return x0 < splat(-104.f) ? splat(0.f) : r2;
}

// e^x for SiLU's forward, where the argument is clamped to [-87, 88] first: one 2^n factor (n in
// [-126, 127] stays a normal float) and no overflow / underflow fix-ups, ~30% faster than exp8. The
// clamp is exact for SiLU: below -87, e^x only adds 1 + e^x ≈ 1; past 88 the caller selects 0.
__attribute__((always_inline)) inline v8f exp8_clamped(v8f x) {
  x = x < splat(-87.f) ? splat(-87.f) : x;
  x = x > splat(88.f) ? splat(88.f) : x;
  v8i ni;
  const v8f p = exp8_poly(x, ni);
  return p * pow2_normal(ni);
}

enum class ExpKind { Exp, Sigmoid, Silu, SiluGrad };

// out[i] = f(x[i]) (or g[i] * silu'(x[i]) for SiluGrad) through exp8, 8 elements at a time.
template <ExpKind K>
__attribute__((always_inline)) inline v8f exp_block(v8f v, v8f gv) {
  if (K == ExpKind::Exp) return exp8(v);
  if (K == ExpKind::Silu) {
    // σ(v) = 0 below v = -88 (true |SiLU| < 6e-37 there), so -inf · 0 stays NaN as before.
    const v8f s = splat(1.f) / (splat(1.f) + exp8_clamped(-v));
    return v * (v < splat(-88.f) ? splat(0.f) : s);
  }
  v8f s = splat(1.f) / (splat(1.f) + exp8(-v));
  if (K == ExpKind::Sigmoid) return s;
  return gv * s * (splat(1.f) + v * (splat(1.f) - s));
}

template <ExpKind K>
__attribute__((always_inline)) inline void exp_family(float* o, const float* x, const float* g, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    v8f v, gv = splat(0.f);
    std::memcpy(&v, x + i, sizeof v);
    if (g) std::memcpy(&gv, g + i, sizeof gv);
    v8f r = exp_block<K>(v, gv);
    std::memcpy(o + i, &r, sizeof r);
  }
  if (i < n) {
    const int64_t m = n - i;
    v8f v = splat(0.f), gv = splat(0.f);
    std::memcpy(&v, x + i, static_cast<size_t>(m) * 4);
    if (g) std::memcpy(&gv, g + i, static_cast<size_t>(m) * 4);
    v8f r = exp_block<K>(v, gv);
    std::memcpy(o + i, &r, static_cast<size_t>(m) * 4);
  }
}

template <typename F>
inline void map1(F f, float* QGS_RESTRICT o, const float* QGS_RESTRICT x, int64_t n) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) o[i] = f(x[i]);
}

QGS_SIMD_CLONES void unary_chunk(UnaryOp op, float* o, const float* x, int64_t n, float p1, float p2) {
  switch (op) {
    case UnaryOp::Neg: return map1([](float v) { return -v; }, o, x, n);
    case UnaryOp::Exp: return exp_family<ExpKind::Exp>(o, x, nullptr, n);
    case UnaryOp::Log: return map1([](float v) { return std::log(v); }, o, x, n);
    case UnaryOp::Sqrt: return map1([](float v) { return std::sqrt(v); }, o, x, n);
    case UnaryOp::Tanh: return map1([](float v) { return std::tanh(v); }, o, x, n);
    case UnaryOp::Sigmoid: return exp_family<ExpKind::Sigmoid>(o, x, nullptr, n);
    case UnaryOp::Silu: return exp_family<ExpKind::Silu>(o, x, nullptr, n);
    case UnaryOp::Relu: return map1([](float v) { return v > 0.f ? v : 0.f; }, o, x, n);
    case UnaryOp::Gelu:
      // erfc, not 1 + erf: 1 + erf(x/sqrt 2) cancels for x << 0 (relative error ~1e-5 at x = -4).
      return map1([](float v) { return 0.5f * v * std::erfc(-v * 0.70710678118654752f); }, o, x, n);
    case UnaryOp::Abs: return map1([](float v) { return std::fabs(v); }, o, x, n);
    case UnaryOp::Square: return map1([](float v) { return v * v; }, o, x, n);
    case UnaryOp::Affine: return map1([p1, p2](float v) { return v * p1 + p2; }, o, x, n);
    case UnaryOp::Pow: return map1([p1](float v) { return std::pow(v, p1); }, o, x, n);
    case UnaryOp::Clamp: return map1([p1, p2](float v) { return v < p1 ? p1 : (v > p2 ? p2 : v); }, o, x, n);
  }
}

template <typename F>
inline void map2(F f, float* QGS_RESTRICT o, const float* QGS_RESTRICT g, const float* QGS_RESTRICT x, int64_t n) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) o[i] = f(g[i], x[i]);
}

// dx = dy * f'(.) where "." is x (input) or y (output), whichever gives the cheaper exact form.
QGS_SIMD_CLONES void unary_backward_chunk(UnaryOp op, float* dx, const float* dy, const float* x, const float* y,
                                          int64_t n, float p1, float p2) {
  switch (op) {
    case UnaryOp::Neg: return map2([](float g, float) { return -g; }, dx, dy, dy, n);
    case UnaryOp::Exp: return map2([](float g, float v) { return g * v; }, dx, dy, y, n);
    case UnaryOp::Log: return map2([](float g, float v) { return g / v; }, dx, dy, x, n);
    case UnaryOp::Sqrt: return map2([](float g, float v) { return 0.5f * g / v; }, dx, dy, y, n);
    case UnaryOp::Tanh: return map2([](float g, float v) { return g * (1.f - v * v); }, dx, dy, y, n);
    case UnaryOp::Sigmoid: return map2([](float g, float v) { return g * v * (1.f - v); }, dx, dy, y, n);
    case UnaryOp::Silu: return exp_family<ExpKind::SiluGrad>(dx, x, dy, n);
    case UnaryOp::Relu: return map2([](float g, float v) { return v > 0.f ? g : 0.f; }, dx, dy, x, n);
    case UnaryOp::Gelu:
      return map2([](float g, float v) {
        // d/dx x Phi(x) = Phi(x) + x phi(x)
        float cdf = 0.5f * std::erfc(-v * 0.70710678118654752f);
        float pdf = 0.3989422804014327f * std::exp(-0.5f * v * v);
        return g * (cdf + v * pdf);
      }, dx, dy, x, n);
    case UnaryOp::Abs:
      return map2([](float g, float v) { return v > 0.f ? g : (v < 0.f ? -g : 0.f); }, dx, dy, x, n);
    case UnaryOp::Square: return map2([](float g, float v) { return 2.f * g * v; }, dx, dy, x, n);
    case UnaryOp::Affine: return map2([p1](float g, float) { return g * p1; }, dx, dy, dy, n);
    case UnaryOp::Pow:
      // p == 0 has derivative 0 everywhere (also at x = 0, where p x^(p-1) would be 0 * inf).
      return map2([p1](float g, float v) { return p1 == 0.f ? 0.f : g * p1 * std::pow(v, p1 - 1.f); }, dx, dy, x, n);
    case UnaryOp::Clamp:
      // Gradient passes where the input was inside [lo, hi] (inclusive, like torch.clamp).
      return map2([p1, p2](float g, float v) { return (v >= p1 && v <= p2) ? g : 0.f; }, dx, dy, x, n);
  }
}

}  // namespace


void unary_f32(UnaryOp op, float* out, const float* x, int64_t n, float p1, float p2) {
  QGS_REQUIRE(n >= 0, "unary: n must be >= 0");
  run(n, [&](int64_t lo, int64_t hi) { unary_chunk(op, out + lo, x + lo, hi - lo, p1, p2); });
}

void unary_backward_f32(UnaryOp op, float* dx, const float* dy, const float* x, const float* y, int64_t n, float p1,
                        float p2) {
  QGS_REQUIRE(n >= 0, "unary_backward: n must be >= 0");
  run(n, [&](int64_t lo, int64_t hi) {
    unary_backward_chunk(op, dx + lo, dy + lo, x ? x + lo : nullptr, y ? y + lo : nullptr, hi - lo, p1, p2);
  });
}

void dropout_f32(float* out, const float* x, int64_t n, float p, uint64_t seed) {
  QGS_REQUIRE(p >= 0.f && p < 1.f, "dropout: p must be in [0, 1), got " + std::to_string(p));
  const float scale = 1.f / (1.f - p);
  run(n, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) out[i] = dropout_uniform(seed, static_cast<uint64_t>(i)) >= p ? x[i] * scale : 0.f;
  });
}

}  // namespace qgs::cpu
