// Elementwise / reduce / movement kernels against naive double-precision references: random
// broadcast shapes (odd sizes, size-1 and empty dims), poisoned outputs, thread-count independence,
// bad arguments throw.
#include <algorithm>
#include <array>
#include <utility>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <tuple>
#include <vector>

#include "qgs/elementwise.h"
#include "qgs/parallel.h"
#include "test_util.h"

using namespace qgs_test;
using qgs::BinaryOp;
using qgs::ReduceOp;
using qgs::Strided;
using qgs::UnaryOp;

namespace {

using Shape = std::vector<int64_t>;

int64_t numel(const Shape& s) {
  int64_t n = 1;
  for (auto d : s) n *= d;
  return n;
}

// Broadcast strides of `in` over `out` (right-aligned, 0 on size-1 dims).
std::vector<int64_t> bstrides(const Shape& in, const Shape& out) {
  std::vector<int64_t> s(out.size(), 0);
  int64_t acc = 1;
  size_t off = out.size() - in.size();
  for (size_t i = in.size(); i-- > 0;) {
    s[i + off] = in[i] == 1 ? 0 : acc;
    acc *= in[i];
  }
  return s;
}

Strided make(const Shape& out, std::initializer_list<Shape> ins) {
  Strided s;
  s.ndim = static_cast<int>(out.size());
  for (int d = 0; d < s.ndim; ++d) s.shape[d] = out[d];
  int k = 0;
  for (const Shape& in : ins) {
    auto st = bstrides(in, out);
    for (int d = 0; d < s.ndim; ++d) s.stride[k][d] = st[d];
    ++k;
  }
  return s;
}

// Offset of input k at flat output index i (naive).
int64_t off_of(const Strided& s, int k, int64_t i) {
  int64_t o = 0;
  for (int d = s.ndim - 1; d >= 0; --d) {
    o += (i % s.shape[d]) * s.stride[k][d];
    i /= s.shape[d];
  }
  return o;
}

// A random broadcast-compatible pair of shapes with odd sizes, size-1 and occasionally empty dims.
void random_pair(Rng& rng, Shape& a, Shape& b, Shape& out) {
  const int64_t sizes[] = {1, 3, 7, 65, 2, 5};
  int nd = static_cast<int>(rng.integer(0, 4));
  out.assign(nd, 1);
  for (auto& d : out) d = sizes[rng.integer(0, 5)];
  if (nd > 0 && rng.integer(0, 15) == 0) out[rng.integer(0, nd - 1)] = 0;
  auto derive = [&](Shape& x) {
    int drop = static_cast<int>(rng.integer(0, nd));
    x.assign(out.begin() + drop, out.end());
    for (auto& d : x)
      if (rng.integer(0, 2) == 0) d = 1;
  };
  derive(a);
  derive(b);
}

double ref_bin(BinaryOp op, double x, double y) {
  switch (op) {
    case BinaryOp::Add: return x + y;
    case BinaryOp::Sub: return x - y;
    case BinaryOp::Mul: return x * y;
    case BinaryOp::Div: return x / y;
    case BinaryOp::Max: return std::max(x, y);
    case BinaryOp::Min: return std::min(x, y);
    case BinaryOp::Greater: return x > y;
    case BinaryOp::Less: return x < y;
    case BinaryOp::Equal: return x == y;
  }
  return 0;
}

std::vector<float> away_from_zero(Rng& rng, int64_t n) {
  std::vector<float> v(static_cast<size_t>(n));
  for (auto& x : v) {
    float r = rng.normal();
    x = (r < 0 ? -1.f : 1.f) * (0.5f + std::fabs(r));
  }
  return v;
}

void test_binary(Rng& rng) {
  for (int rep = 0; rep < 200; ++rep) {
    Shape a, b, out;
    random_pair(rng, a, b, out);
    auto op = static_cast<BinaryOp>(rng.integer(0, 8));
    Strided s = make(out, {a, b});
    auto x = away_from_zero(rng, numel(a)), y = away_from_zero(rng, numel(b));
    if (op == BinaryOp::Equal && !y.empty())
      for (size_t i = 0; i < x.size(); i += 2) x[i] = y[i % y.size()];  // some ties
    auto o = poisoned(static_cast<size_t>(numel(out)));
    qgs::cpu::binary_f32(op, o.data(), x.data(), y.data(), s);
    std::vector<double> ref(o.size());
    for (size_t i = 0; i < o.size(); ++i)
      ref[i] = ref_bin(op, x[static_cast<size_t>(off_of(s, 0, i))], y[static_cast<size_t>(off_of(s, 1, i))]);
    // Comparisons may be all zero: compare exactly instead of relatively.
    if (op >= BinaryOp::Greater) {
      bool ok = true;
      for (size_t i = 0; i < o.size(); ++i) ok = ok && o[i] == ref[i];
      check(ok, "comparison op " + std::to_string(static_cast<int>(op)));
    } else {
      check_close("binary op " + std::to_string(static_cast<int>(op)), o, ref, 1e-6);
    }
  }
  // Large shapes: the parallel row-walking path (chunks start mid-row).
  for (auto [as, bs] : std::vector<std::pair<Shape, Shape>>{{{257, 129}, {129}}, {{257, 129}, {257, 1}}, {{3, 1, 40001}, {5, 1}},
                                                             {{70001}, {}}}) {
    Shape out = as.size() >= bs.size() ? as : bs;
    for (size_t i = 0; i < out.size(); ++i) {
      size_t ia = i + as.size() - out.size(), ib = i + bs.size() - out.size();
      int64_t da = i + as.size() >= out.size() ? as[ia] : 1, db = i + bs.size() >= out.size() ? bs[ib] : 1;
      out[i] = std::max(da, db);
    }
    Strided s = make(out, {as, bs});
    auto x = rng.normals(static_cast<size_t>(numel(as))), y = rng.normals(static_cast<size_t>(numel(bs)));
    auto o = poisoned(static_cast<size_t>(numel(out)));
    qgs::cpu::binary_f32(BinaryOp::Sub, o.data(), x.data(), y.data(), s);
    std::vector<double> ref(o.size());
    for (size_t i = 0; i < o.size(); ++i)
      ref[i] = double(x[static_cast<size_t>(off_of(s, 0, i))]) - y[static_cast<size_t>(off_of(s, 1, i))];
    check_close("binary large", o, ref, 1e-7);
  }
}

void test_binary_i32_and_backward(Rng& rng) {
  std::vector<int32_t> a = {1, -2, std::numeric_limits<int32_t>::max(), 7}, b = {3};
  std::vector<int32_t> o(4, 12345);
  Strided s = make({4}, {{4}, {1}});
  qgs::cpu::binary_i32(BinaryOp::Add, o.data(), a.data(), b.data(), s);
  check(o[0] == 4 && o[1] == 1 && o[2] == std::numeric_limits<int32_t>::min() + 2 && o[3] == 10, "i32 add wraps");
  qgs::cpu::binary_i32(BinaryOp::Mul, o.data(), a.data(), b.data(), s);
  check(o[0] == 3 && o[1] == -6 && o[3] == 21, "i32 mul");
  check_throws("i32 div rejected", [&] { qgs::cpu::binary_i32(BinaryOp::Div, o.data(), a.data(), b.data(), s); });

  for (BinaryOp op : {BinaryOp::Mul, BinaryOp::Div, BinaryOp::Max, BinaryOp::Min}) {
    Shape as = {3, 1, 5}, bs = {4, 1}, out = {3, 4, 5};
    Strided st = make(out, {as, bs});
    auto x = away_from_zero(rng, numel(as)), y = away_from_zero(rng, numel(bs));
    auto g = rng.normals(static_cast<size_t>(numel(out)));
    auto da = poisoned(g.size()), db = poisoned(g.size());
    qgs::cpu::binary_backward_f32(op, da.data(), db.data(), g.data(), x.data(), y.data(), st);
    std::vector<double> ra(g.size()), rb(g.size());
    for (size_t i = 0; i < g.size(); ++i) {
      double xv = x[static_cast<size_t>(off_of(st, 0, i))], yv = y[static_cast<size_t>(off_of(st, 1, i))], gv = g[i];
      switch (op) {
        case BinaryOp::Mul: ra[i] = gv * yv; rb[i] = gv * xv; break;
        case BinaryOp::Div: ra[i] = gv / yv; rb[i] = -gv * xv / (yv * yv); break;
        case BinaryOp::Max: ra[i] = xv > yv ? gv : 0; rb[i] = xv > yv ? 0 : gv; break;
        default: ra[i] = xv < yv ? gv : 0; rb[i] = xv < yv ? 0 : gv; break;
      }
    }
    check_close("binary backward da", da, ra, 1e-6);
    check_close("binary backward db", db, rb, 1e-6);
  }
}

void test_where(Rng& rng) {
  Shape cs = {3, 1}, as = {1, 65}, bs = {}, out = {3, 65};
  Strided s = make(out, {cs, as, bs});
  std::vector<float> c = {1, 0, 1};
  auto a = rng.normals(65), b = rng.normals(1);
  auto o = poisoned(3 * 65);
  qgs::cpu::where_f32(o.data(), c.data(), a.data(), b.data(), s);
  std::vector<double> ref(o.size());
  for (size_t i = 0; i < o.size(); ++i) ref[i] = c[i / 65] != 0 ? a[i % 65] : b[0];
  check_close("where", o, ref, 1e-7);
}

double d_sig(double v) { return 1 / (1 + std::exp(-v)); }

// GELU deep in the negative tail, one value at a time (a whole-vector relative error would hide a
// bad tail behind the large values): 1 + erf(x / sqrt 2) cancels there, erfc does not.
void test_gelu_tail() {
  for (float v : {-2.f, -3.f, -4.f, -5.f, -6.5f, -8.f, -9.f}) {
    float y = -1.f;
    qgs::cpu::unary_f32(UnaryOp::Gelu, &y, &v, 1, 0.f, 0.f);
    const double ref = 0.5 * v * std::erfc(-v / std::sqrt(2.0));
    check(std::fabs(y - ref) <= 8e-6 * std::fabs(ref), "gelu tail x=" + std::to_string(v) + " got " + std::to_string(double(y) / ref));
  }
}

// SiLU's forward clamps its exp argument (elementwise.cpp, exp8_clamped): across and past the clamp
// edges it must match float64 to 2e-6 relative (or be within 6e-37 of it where SiLU is set to -0 below
// v = -88), and keep the infinities and NaN.
void test_silu_range() {
  std::vector<float> xs = {-1000.f, -104.f, -89.f, -88.5f, -88.f, -87.9f, -87.5f, -87.f, -86.9f, -60.f, -20.f, -1e-3f, 0.f,
                           1e-3f,   20.f,   60.f,  86.9f,  87.f,  87.5f,  88.f,   88.5f, 89.f,   104.f, 1000.f};
  for (int i = 0; i < 64; ++i) xs.push_back(-90.f + 180.f * float(i) / 63.f);
  std::vector<float> y(xs.size(), std::nanf(""));
  qgs::cpu::unary_f32(UnaryOp::Silu, y.data(), xs.data(), int64_t(xs.size()), 0.f, 0.f);
  for (size_t i = 0; i < xs.size(); ++i) {
    const double v = xs[i], ref = v / (1.0 + std::exp(-v));
    const bool ok = std::fabs(y[i] - ref) <= 2e-6 * std::fabs(ref) || (v < -88.0 && std::fabs(y[i] - ref) <= 6e-37);
    char msg[128];
    std::snprintf(msg, sizeof msg, "silu x=%.9g got %.9g want %.9g", v, double(y[i]), ref);
    check(ok, msg);
  }
  const float inf = std::numeric_limits<float>::infinity();
  std::vector<float> sx = {inf, -inf, std::nanf("")}, sy(3, 0.f);
  qgs::cpu::unary_f32(UnaryOp::Silu, sy.data(), sx.data(), 3, 0.f, 0.f);
  check(sy[0] == inf, "silu(+inf) = +inf");
  check(std::isnan(sy[1]), "silu(-inf) is NaN (-inf · 0, as x · sigmoid(x))");
  check(std::isnan(sy[2]), "silu(NaN) is NaN");
}

void test_unary(Rng& rng) {
  const double p1 = 0.7, p2 = 1.3;
  for (int op = 0; op <= 13; ++op) {
    auto u = static_cast<UnaryOp>(op);
    for (int64_t n : {1, 7, 65, 40001}) {
      std::vector<float> x(static_cast<size_t>(n));
      for (auto& v : x) {
        v = rng.normal();
        bool pos = u == UnaryOp::Log || u == UnaryOp::Sqrt || u == UnaryOp::Pow;
        if (pos) v = 0.2f + std::fabs(v);
      }
      auto y = poisoned(x.size()), dx = poisoned(x.size());
      auto g = rng.normals(x.size());
      qgs::cpu::unary_f32(u, y.data(), x.data(), n, float(p1), float(p2));
      qgs::cpu::unary_backward_f32(u, dx.data(), g.data(), x.data(), y.data(), n, float(p1), float(p2));
      std::vector<double> ry(x.size()), rd(x.size());
      for (size_t i = 0; i < x.size(); ++i) {
        double v = x[i], f = 0, d = 0;
        switch (u) {
          case UnaryOp::Neg: f = -v; d = -1; break;
          case UnaryOp::Exp: f = std::exp(v); d = f; break;
          case UnaryOp::Log: f = std::log(v); d = 1 / v; break;
          case UnaryOp::Sqrt: f = std::sqrt(v); d = 0.5 / f; break;
          case UnaryOp::Tanh: f = std::tanh(v); d = 1 - f * f; break;
          case UnaryOp::Sigmoid: f = d_sig(v); d = f * (1 - f); break;
          case UnaryOp::Silu: f = v * d_sig(v); d = d_sig(v) * (1 + v * (1 - d_sig(v))); break;
          case UnaryOp::Relu: f = v > 0 ? v : 0; d = v > 0; break;
          case UnaryOp::Gelu:
            f = 0.5 * v * std::erfc(-v / std::sqrt(2.0));
            d = 0.5 * std::erfc(-v / std::sqrt(2.0)) + v * std::exp(-0.5 * v * v) / std::sqrt(2 * M_PI);
            break;
          case UnaryOp::Abs: f = std::fabs(v); d = v > 0 ? 1 : (v < 0 ? -1 : 0); break;  // sign(0) = 0, as the kernel
          case UnaryOp::Square: f = v * v; d = 2 * v; break;
          case UnaryOp::Affine: f = v * float(p1) + float(p2); d = float(p1); break;
          case UnaryOp::Pow: f = std::pow(v, double(float(p1))); d = float(p1) * std::pow(v, double(float(p1)) - 1); break;
          case UnaryOp::Clamp: f = std::min(std::max(v, double(float(p1))), double(float(p2))); d = v >= float(p1) && v <= float(p2); break;
        }
        ry[i] = f;
        rd[i] = d * g[i];
      }
      check_close("unary " + std::to_string(op) + " n=" + std::to_string(n), y, ry, 2e-6);
      check_close("unary backward " + std::to_string(op) + " n=" + std::to_string(n), dx, rd, 2e-5);
    }
  }
}

void test_reduce(Rng& rng) {
  for (auto [outer, r, inner] : std::vector<std::array<int64_t, 3>>{
           {1, 1, 1}, {3, 7, 1}, {1, 65, 3}, {7, 257, 5}, {1, 1 << 20, 1}, {2, 40000, 3}, {5, 3, 20000}, {4, 0, 3}}) {
    std::vector<float> x(static_cast<size_t>(outer * r * inner));
    for (auto& v : x) v = 1.f + 0.01f * rng.normal();  // large common mean: float accumulation would drift
    for (int op = 0; op < 3; ++op) {
      if (op > 0 && r == 0) continue;
      auto o = poisoned(static_cast<size_t>(outer * inner));
      double scale = r > 0 ? 1.0 / double(r) : 1.0;
      qgs::cpu::reduce_f32(static_cast<ReduceOp>(op), o.data(), x.data(), outer, r, inner, op == 0 ? scale : 1.0);
      std::vector<double> ref(o.size());
      for (int64_t a = 0; a < outer; ++a)
        for (int64_t i = 0; i < inner; ++i) {
          double acc = op == 0 ? 0 : (op == 1 ? -INFINITY : INFINITY);
          for (int64_t k = 0; k < r; ++k) {
            double v = x[static_cast<size_t>((a * r + k) * inner + i)];
            acc = op == 0 ? acc + v : (op == 1 ? std::max(acc, v) : std::min(acc, v));
          }
          ref[static_cast<size_t>(a * inner + i)] = op == 0 ? acc * scale : acc;
        }
      check_close("reduce op " + std::to_string(op) + " r=" + std::to_string(r), o, ref, op == 0 ? 1e-7 : 1e-9);
    }
  }
  // Thread-count independence (bit-identical).
  std::vector<float> x = rng.normals(1 << 20);
  float s1 = 0, s2 = 0;
  qgs::set_num_threads(1);
  qgs::cpu::reduce_f32(ReduceOp::Sum, &s1, x.data(), 1, int64_t(x.size()), 1, 1.0);
  qgs::set_num_threads(4);
  qgs::cpu::reduce_f32(ReduceOp::Sum, &s2, x.data(), 1, int64_t(x.size()), 1, 1.0);
  qgs::set_num_threads(0);
  check(std::memcmp(&s1, &s2, 4) == 0, "sum is identical for 1 and 4 threads");
  // NaN propagates through max.
  std::vector<float> nanx = {1, std::numeric_limits<float>::quiet_NaN(), 3};
  float m = 0;
  qgs::cpu::reduce_f32(ReduceOp::Max, &m, nanx.data(), 1, 3, 1, 1.0);
  check(std::isnan(m), "max propagates NaN");
  check_throws("max over r = 0", [&] { qgs::cpu::reduce_f32(ReduceOp::Max, &m, nanx.data(), 1, 0, 1, 1.0); });
}

void test_movement(Rng& rng) {
  // Transpose [5, 65, 3] -> perm (2, 0, 1).
  const int64_t A = 5, B = 65, C = 3;
  auto x = rng.normals(A * B * C);
  std::vector<uint32_t> xi(x.size()), out(x.size(), 0xFFFFFFFFu);
  std::memcpy(xi.data(), x.data(), x.size() * 4);
  int64_t shape[] = {C, A, B}, dst[] = {A * B, B, 1}, src[] = {1, B * C, C};
  qgs::cpu::strided_copy(out.data(), dst, xi.data(), src, shape, 3);
  bool ok = true;
  for (int64_t c = 0; c < C; ++c)
    for (int64_t a = 0; a < A; ++a)
      for (int64_t b = 0; b < B; ++b) ok = ok && out[(c * A + a) * B + b] == xi[(a * B + b) * C + c];
  check(ok, "strided_copy transpose");
  // Large transpose (parallel path).
  const int64_t R = 300, K = 257;
  std::vector<uint32_t> big(R * K), bt(R * K, 0xFFFFFFFFu);
  for (size_t i = 0; i < big.size(); ++i) big[i] = uint32_t(i * 2654435761u);
  int64_t s2[] = {K, R}, d2[] = {R, 1}, r2[] = {1, K};
  qgs::cpu::strided_copy(bt.data(), d2, big.data(), r2, s2, 2);
  ok = true;
  for (int64_t i = 0; i < R; ++i)
    for (int64_t j = 0; j < K; ++j) ok = ok && bt[j * R + i] == big[i * K + j];
  check(ok, "strided_copy large transpose");

  // gather along the middle axis, with repeats, and its backward.
  const int64_t outer = 3, n = 9, inner = 5, m = 11;
  auto g = rng.normals(outer * n * inner);
  std::vector<uint32_t> gw(g.size());
  std::memcpy(gw.data(), g.data(), g.size() * 4);
  std::vector<int32_t> idx(m);
  for (auto& v : idx) v = int32_t(rng.integer(0, n - 1));
  idx[1] = idx[0];
  std::vector<uint32_t> go(outer * m * inner, 0xFFFFFFFFu);
  qgs::cpu::gather(go.data(), gw.data(), idx.data(), outer, n, inner, m);
  ok = true;
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t j = 0; j < m; ++j)
      for (int64_t i = 0; i < inner; ++i) ok = ok && go[(o * m + j) * inner + i] == gw[(o * n + idx[j]) * inner + i];
  check(ok, "gather");
  auto dy = rng.normals(outer * m * inner);
  auto dx = poisoned(outer * n * inner);
  qgs::cpu::gather_backward_f32(dx.data(), dy.data(), idx.data(), outer, n, inner, m);
  std::vector<double> rdx(dx.size(), 0.0);
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t j = 0; j < m; ++j)
      for (int64_t i = 0; i < inner; ++i) rdx[(o * n + idx[j]) * inner + i] += dy[(o * m + j) * inner + i];
  check_close("gather backward", dx, rdx, 1e-6);
  std::vector<int32_t> bad = {0, 9};
  check_throws("gather index out of range", [&] { qgs::cpu::gather_check_indices(bad.data(), 2, 9); });
  bad[1] = -1;
  check_throws("gather negative index", [&] { qgs::cpu::gather_check_indices(bad.data(), 2, 9); });
}

// Bags against a float64 reference: sum with and without weights, mean, a padding id (skipped and
// not counted; a bag of padding only is 0), odd sizes, rows around the 64-row grain, zero weights
// (skipped even over a non-finite row), bad ids and arguments.
void test_embedding_bag(Rng& rng) {
  struct Case {
    int64_t V, D, N, m;
    bool weighted, mean;
    int64_t pad;
  };
  for (const Case& c : std::vector<Case>{{50, 32, 130, 4, true, false, -1},
                                         {7, 5, 63, 1, true, false, 0},
                                         {3, 9, 65, 7, false, false, -1},
                                         {50, 32, 130, 4, false, true, 0},
                                         {6, 3, 17, 5, false, true, 5},
                                         {1, 1, 1, 3, true, false, -1},
                                         {4, 3, 0, 2, false, true, 0}}) {
    auto table = rng.normals(size_t(c.V * c.D));
    std::vector<int32_t> ids(size_t(c.N * c.m));
    for (auto& v : ids) v = int32_t(rng.integer(0, c.V - 1));
    if (c.pad >= 0 && c.N > 0)
      for (int64_t j = 0; j < c.m; ++j) ids[size_t(j)] = int32_t(c.pad);  // bag 0: padding only
    std::vector<float> w;
    if (c.weighted) {
      w = rng.normals(size_t(c.N * c.m));
      for (int64_t i = 0; i < c.N * c.m; i += 3) w[size_t(i)] = 0.f;  // zero-weight slots
    }
    std::vector<double> ref(size_t(c.N * c.D), 0.0);
    for (int64_t i = 0; i < c.N; ++i) {
      int64_t used = 0;
      for (int64_t j = 0; j < c.m; ++j) {
        const int32_t id = ids[size_t(i * c.m + j)];
        const double wj = c.weighted ? w[size_t(i * c.m + j)] : 1.0;
        if (id == c.pad || wj == 0.0) continue;
        ++used;
        for (int64_t d = 0; d < c.D; ++d) ref[size_t(i * c.D + d)] += wj * table[size_t(id * c.D + d)];
      }
      if (c.mean && used > 0)
        for (int64_t d = 0; d < c.D; ++d) ref[size_t(i * c.D + d)] /= double(used);
    }
    auto out = poisoned(size_t(c.N * c.D));
    qgs::cpu::embedding_bag_f32(out.data(), table.data(), c.V, c.D, ids.data(), c.weighted ? w.data() : nullptr, c.N, c.m, c.mean,
                                c.pad);
    const std::string tag = "embedding_bag V=" + std::to_string(c.V) + " D=" + std::to_string(c.D) + " N=" + std::to_string(c.N) +
                            " m=" + std::to_string(c.m) + (c.weighted ? " weighted" : "") + (c.mean ? " mean" : " sum") +
                            " pad=" + std::to_string(c.pad);
    check_close(tag, out, ref, 1e-6);
    if (c.pad >= 0 && c.N > 0) check(std::all_of(out.begin(), out.begin() + c.D, [](float v) { return v == 0.f; }), tag + ": padding-only bag is 0");
  }
  // A weight-0 slot is not read: a NaN row there does not reach the output.
  std::vector<float> table = {1.f, 2.f, std::numeric_limits<float>::quiet_NaN(), 0.f};
  std::vector<int32_t> ids = {0, 1};
  std::vector<float> w = {0.5f, 0.f}, out(2);
  qgs::cpu::embedding_bag_f32(out.data(), table.data(), 2, 2, ids.data(), w.data(), 1, 2, false, -1);
  check(out[0] == 0.5f && out[1] == 1.f, "embedding_bag skips weight-0 slots");
  std::vector<int32_t> bad = {0, 2};
  auto call = [&](const int32_t* i, const float* ww, int64_t m, bool mean, int64_t pad) {
    qgs::cpu::embedding_bag_f32(out.data(), table.data(), 2, 2, i, ww, 1, m, mean, pad);
  };
  check_throws("embedding_bag id out of range", [&] { call(bad.data(), nullptr, 2, false, -1); });
  call(bad.data(), nullptr, 2, true, 2);  // the same id as padding is skipped, not an error
  check(out[0] == 1.f && out[1] == 2.f, "embedding_bag: an out-of-table padding id is skipped");
  bad[1] = -1;
  check_throws("embedding_bag negative id", [&] { call(bad.data(), nullptr, 2, false, 5); });
  check_throws("embedding_bag m = 0", [&] { call(ids.data(), nullptr, 0, false, -1); });
  check_throws("embedding_bag weights with mean", [&] { call(ids.data(), w.data(), 2, true, -1); });
}

void test_dropout() {
  const int64_t n = 100003;
  std::vector<float> x(n, 1.f), a(n), b(n);
  qgs::set_num_threads(1);
  qgs::cpu::dropout_f32(a.data(), x.data(), n, 0.25f, 42);
  qgs::set_num_threads(3);
  qgs::cpu::dropout_f32(b.data(), x.data(), n, 0.25f, 42);
  qgs::set_num_threads(0);
  check(std::memcmp(a.data(), b.data(), n * 4) == 0, "dropout mask independent of threads");
  int64_t zeros = std::count(a.begin(), a.end(), 0.f);
  check(std::fabs(double(zeros) - 0.25 * n) < 6 * std::sqrt(n * 0.25 * 0.75), "dropout keep probability");
  check_throws("dropout p = 1", [&] { qgs::cpu::dropout_f32(a.data(), x.data(), n, 1.f, 1); });
}

void test_collapse() {
  Strided s = make({2, 3, 4}, {{2, 3, 4}, {}});
  int64_t n = qgs::collapse(s, 2);
  check(n == 24 && s.ndim == 1 && s.stride[0][0] == 1 && s.stride[1][0] == 0, "collapse same-shape + scalar to 1-d");
  Strided r = make({5, 7}, {{5, 7}, {7}});
  qgs::collapse(r, 2);
  check(r.ndim == 2, "row broadcast stays 2-d");
  Strided e = make({3, 0, 2}, {{3, 0, 2}, {2}});
  check(qgs::collapse(e, 2) == 0, "empty shape has 0 elements");
}

}  // namespace

int main() {
  uint64_t seed = fresh_seed();
  Rng rng(seed);
  test_collapse();
  test_binary(rng);
  test_binary_i32_and_backward(rng);
  test_where(rng);
  test_unary(rng);
  test_gelu_tail();
  test_silu_range();
  test_reduce(rng);
  test_movement(rng);
  test_embedding_bag(rng);
  test_dropout();
  return finish("test_elementwise", seed);
}
