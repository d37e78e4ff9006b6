// nn kernels (softmax, LayerNorm, embedding, losses, InfoNCE helpers) against double-precision
// references on fresh random inputs; outputs poisoned before every call; bad arguments throw.
#include <array>
#include <cmath>
#include <string>
#include <vector>

#include "qgs/nn.h"
#include "test_util.h"

using namespace qgs_test;
using V = std::vector<double>;

static std::string S(int64_t x) { return std::to_string(x); }

int main() {
  uint64_t seed = fresh_seed();
  Rng rng(seed);
  // ---- softmax / log-softmax, contiguous and strided, forward + backward ----
  for (auto [outer, dim, inner] : std::vector<std::array<int64_t, 3>>{{1, 1, 1}, {7, 3, 1}, {3, 65, 1}, {2, 7, 5}, {1, 257, 3}}) {
    for (bool lg : {false, true}) {
      int64_t n = outer * dim * inner;
      auto x = rng.normals(n, 3.f), dy = rng.normals(n);
      auto y = poisoned(n), dx = poisoned(n);
      V yr(n), dxr(n);
      for (int64_t o = 0; o < outer; ++o)
        for (int64_t i = 0; i < inner; ++i) {
          auto idx = [&](int64_t d) { return o * dim * inner + d * inner + i; };
          double m = -1e300, s = 0, sdy = 0, sdyy = 0;
          for (int64_t d = 0; d < dim; ++d) m = std::max(m, double(x[idx(d)]));
          for (int64_t d = 0; d < dim; ++d) s += std::exp(x[idx(d)] - m);
          for (int64_t d = 0; d < dim; ++d) {
            double p = std::exp(x[idx(d)] - m) / s;
            yr[idx(d)] = lg ? x[idx(d)] - m - std::log(s) : p;
            sdy += dy[idx(d)];
            sdyy += dy[idx(d)] * p;
          }
          for (int64_t d = 0; d < dim; ++d) {
            double p = std::exp(x[idx(d)] - m) / s;
            dxr[idx(d)] = lg ? dy[idx(d)] - p * sdy : p * (dy[idx(d)] - sdyy);
          }
        }
      qgs::cpu::softmax_forward(y.data(), x.data(), outer, dim, inner, lg);
      check_close("softmax fwd " + S(outer) + "x" + S(dim) + "x" + S(inner) + (lg ? " log" : ""), y, yr, 1e-5);
      qgs::cpu::softmax_backward(dx.data(), y.data(), dy.data(), outer, dim, inner, lg);
      check_close("softmax bwd " + S(outer) + "x" + S(dim) + "x" + S(inner) + (lg ? " log" : ""), dx, dxr, 1e-5);
    }
  }
  // ---- LayerNorm ----
  for (auto [rows, cols] : std::vector<std::array<int64_t, 2>>{{1, 1}, {7, 3}, {65, 7}, {3, 257}, {300, 64}}) {
    int64_t n = rows * cols;
    auto x = rng.normals(n, 2.f), w = rng.normals(cols), b = rng.normals(cols), dy = rng.normals(n);
    for (auto& v : x) v += 5.f;
    auto y = poisoned(n), mean = poisoned(rows), rstd = poisoned(rows), dx = poisoned(n), dw = poisoned(cols), db = poisoned(cols);
    V yr(n), dxr(n), dwr(cols, 0.0), dbr(cols, 0.0);
    for (int64_t r = 0; r < rows; ++r) {
      double mu = 0, var = 0;
      for (int64_t j = 0; j < cols; ++j) mu += x[r * cols + j];
      mu /= cols;
      for (int64_t j = 0; j < cols; ++j) var += (x[r * cols + j] - mu) * (x[r * cols + j] - mu);
      var /= cols;
      double rs = 1 / std::sqrt(var + 1e-5), a = 0, c = 0;
      for (int64_t j = 0; j < cols; ++j) {
        double h = (x[r * cols + j] - mu) * rs;
        yr[r * cols + j] = h * w[j] + b[j];
        double g = double(dy[r * cols + j]) * w[j];
        a += g;
        c += g * h;
        dwr[j] += dy[r * cols + j] * h;
        dbr[j] += dy[r * cols + j];
      }
      a /= cols;
      c /= cols;
      for (int64_t j = 0; j < cols; ++j) {
        double h = (x[r * cols + j] - mu) * rs;
        dxr[r * cols + j] = rs * (double(dy[r * cols + j]) * w[j] - a - h * c);
      }
    }
    qgs::cpu::layer_norm_forward(y.data(), mean.data(), rstd.data(), x.data(), w.data(), b.data(), rows, cols, 1e-5f);
    check_close("layernorm fwd " + S(rows) + "x" + S(cols), y, yr, 1e-5);
    qgs::cpu::layer_norm_backward(dx.data(), dw.data(), db.data(), dy.data(), x.data(), mean.data(), rstd.data(), w.data(), rows, cols);
    if (cols > 1) check_close("layernorm dx " + S(rows) + "x" + S(cols), dx, dxr, 1e-4);
    check_close("layernorm dw " + S(rows) + "x" + S(cols), dw, dwr, 1e-5);
    check_close("layernorm db " + S(rows) + "x" + S(cols), db, dbr, 1e-5);
  }
  check_throws("layernorm eps 0", [] {
    float x = 0;
    qgs::cpu::layer_norm_forward(&x, &x, &x, &x, nullptr, nullptr, 1, 1, 0.f);
  });
  // ---- embedding + index_add_rows ----
  for (auto [vocab, dim, n] : std::vector<std::array<int64_t, 3>>{{1, 1, 3}, {7, 3, 65}, {257, 65, 7}, {65, 100, 1000}}) {
    auto w = rng.normals(vocab * dim);
    std::vector<int32_t> idx(n);
    for (auto& i : idx) i = static_cast<int32_t>(rng.integer(0, vocab - 1));
    auto out = poisoned(n * dim);
    qgs::cpu::embedding_forward(out.data(), w.data(), idx.data(), n, vocab, dim);
    V ref(n * dim);
    for (int64_t i = 0; i < n; ++i)
      for (int64_t d = 0; d < dim; ++d) ref[i * dim + d] = w[idx[i] * dim + d];
    check_close("embedding fwd", out, ref, 1e-7);
    auto src = rng.normals(n * dim);
    auto acc = poisoned(vocab * dim);
    V aref(vocab * dim, 0.0), mag(vocab * dim, 0.0);
    for (int64_t i = 0; i < n; ++i)
      for (int64_t d = 0; d < dim; ++d) {
        aref[idx[i] * dim + d] += src[i * dim + d];
        mag[idx[i] * dim + d] += std::fabs(src[i * dim + d]);
      }
    qgs::cpu::index_add_rows(acc.data(), src.data(), idx.data(), n, vocab, dim);
    // A float sum of k terms is off by up to ~k·2^-24·Σ|terms|: judged against the terms' magnitude,
    // not the (possibly cancelling) sum — vocab 1 with 3 terms summing to ~0.01 failed a relative check.
    check_close_scaled("index_add_rows vocab=" + std::to_string(vocab) + " n=" + std::to_string(n), acc, aref, mag, 1e-6 * double(n));
  }
  {
    std::vector<float> w(6, 1.f), out = poisoned(4);
    std::vector<int32_t> bad = {0, 3};
    check_throws("embedding out of range", [&] { qgs::cpu::embedding_forward(out.data(), w.data(), bad.data(), 2, 3, 2); });
    check(std::isnan(out[0]), "embedding writes nothing when an index is bad");
  }
  // ---- l2 normalise ----
  for (auto [outer, dim, inner] : std::vector<std::array<int64_t, 3>>{{1, 1, 1}, {7, 3, 1}, {3, 65, 5}}) {
    int64_t n = outer * dim * inner;
    auto x = rng.normals(n), dy = rng.normals(n);
    auto y = poisoned(n), nr = poisoned(outer * inner), dx = poisoned(n);
    V yr(n), dxr(n);
    for (int64_t o = 0; o < outer; ++o)
      for (int64_t i = 0; i < inner; ++i) {
        auto idx = [&](int64_t d) { return o * dim * inner + d * inner + i; };
        double s = 0, dot = 0;
        for (int64_t d = 0; d < dim; ++d) s += double(x[idx(d)]) * x[idx(d)];
        double nn = std::sqrt(s);
        for (int64_t d = 0; d < dim; ++d) {
          yr[idx(d)] = x[idx(d)] / nn;
          dot += dy[idx(d)] * yr[idx(d)];
        }
        for (int64_t d = 0; d < dim; ++d) dxr[idx(d)] = (dy[idx(d)] - yr[idx(d)] * dot) / nn;
      }
    qgs::cpu::l2_normalize_forward(y.data(), nr.data(), x.data(), outer, dim, inner, 1e-12f);
    check_close("l2 fwd", y, yr, 1e-6);
    qgs::cpu::l2_normalize_backward(dx.data(), dy.data(), y.data(), nr.data(), outer, dim, inner, 1e-12f);
    if (dim > 1) check_close("l2 bwd", dx, dxr, 1e-5);
  }
  // ---- BCE ----
  for (int64_t n : {1, 7, 65, 100003}) {
    auto x = rng.normals(n, 5.f), t = std::vector<float>(n), w = rng.normals(7);
    for (auto& v : t) v = rng.uniform(0.f, 1.f);
    auto loss = poisoned(n), dx = poisoned(n);
    V lr(n), dr(n), lscale(n), gscale(n);
    double sr = 0;
    for (int64_t i = 0; i < n; ++i) {
      double xi = x[i], wi = w[i % 7];
      lr[i] = wi * (std::max(xi, 0.0) - xi * t[i] + std::log1p(std::exp(-std::fabs(xi))));
      dr[i] = wi * (1 / (1 + std::exp(-xi)) - t[i]);
      // Both are differences of larger terms (σ(x) − t cancels when σ(x) ≈ t; x − x·t when t ≈ 1):
      // judged against the terms' magnitude (a single-element case once failed a relative check).
      lscale[i] = std::fabs(wi) * (std::fabs(xi) + std::log1p(std::exp(-std::fabs(xi))));
      gscale[i] = std::fabs(wi) * (1 / (1 + std::exp(-xi)) + t[i]);
      sr += lr[i];
    }
    double s = qgs::cpu::bce_with_logits(loss.data(), dx.data(), x.data(), t.data(), w.data(), 7, n);
    check_close_scaled("bce loss n=" + std::to_string(n), loss, lr, lscale, 1e-6);
    check_close_scaled("bce grad n=" + std::to_string(n), dx, dr, gscale, 1e-6);
    check(std::fabs(s - sr) <= 1e-5 * std::max(1.0, std::fabs(sr)), "bce sum n=" + S(n));
  }
  // ---- cross-entropy ----
  for (auto [n, c] : std::vector<std::array<int64_t, 2>>{{1, 1}, {7, 3}, {65, 257}, {300, 7}}) {
    auto x = rng.normals(n * c, 4.f);
    std::vector<int32_t> t(n);
    for (auto& v : t) v = rng.integer(0, 4) == 0 ? -100 : static_cast<int32_t>(rng.integer(0, c - 1));
    auto loss = poisoned(n), dx = poisoned(n * c);
    V lr(n), dr(n * c);
    int64_t cnt = 0;
    for (int64_t i = 0; i < n; ++i) {
      if (t[i] == -100) continue;
      ++cnt;
      double m = -1e300, s = 0;
      for (int64_t j = 0; j < c; ++j) m = std::max(m, double(x[i * c + j]));
      for (int64_t j = 0; j < c; ++j) s += std::exp(x[i * c + j] - m);
      lr[i] = m + std::log(s) - x[i * c + t[i]];
      for (int64_t j = 0; j < c; ++j) dr[i * c + j] = std::exp(x[i * c + j] - m) / s - (j == t[i] ? 1 : 0);
    }
    double sum = 0;
    int64_t got = qgs::cpu::cross_entropy_forward(loss.data(), dx.data(), &sum, x.data(), t.data(), n, c, -100, true);
    check(got == cnt, "CE count");
    check_close("CE loss " + S(n) + "x" + S(c), loss, lr, 1e-5);
    check_close("CE grad " + S(n) + "x" + S(c), dx, dr, 1e-5);
  }
  {
    std::vector<float> x(6, 0.f), l(2), d(6);
    std::vector<int32_t> t = {0, 3};
    double s;
    check_throws("CE target out of range", [&] { qgs::cpu::cross_entropy_forward(l.data(), d.data(), &s, x.data(), t.data(), 2, 3, 0, false); });
  }
  // ---- InfoNCE helpers ----
  {
    int64_t n = 7, k = 5, d = 3;
    auto q = rng.normals(n * d), p = rng.normals(n * d), ng = rng.normals(n * k * d), g0 = rng.normals(n), gn = rng.normals(n * k);
    auto pos = poisoned(n), neg = poisoned(n * k), logits = poisoned(n * (k + 1));
    V pr(n), nr(n * k), lr(n * (k + 1)), dqr(n * d), dpr(n * d), dnr(n * k * d);
    for (int64_t i = 0; i < n; ++i) {
      double s = 0;
      for (int64_t e = 0; e < d; ++e) s += double(q[i * d + e]) * p[i * d + e];
      pr[i] = 2 * s;
      lr[i * (k + 1)] = pr[i];
      for (int64_t j = 0; j < k; ++j) {
        double t = 0;
        for (int64_t e = 0; e < d; ++e) t += double(q[i * d + e]) * ng[(i * k + j) * d + e];
        nr[i * k + j] = 2 * t;
        lr[i * (k + 1) + 1 + j] = 2 * t;
      }
      for (int64_t e = 0; e < d; ++e) {
        double a = g0[i] * p[i * d + e];
        for (int64_t j = 0; j < k; ++j) a += gn[i * k + j] * ng[(i * k + j) * d + e];
        dqr[i * d + e] = a;
        dpr[i * d + e] = g0[i] * q[i * d + e];
        for (int64_t j = 0; j < k; ++j) dnr[(i * k + j) * d + e] = gn[i * k + j] * q[i * d + e];
      }
    }
    qgs::cpu::row_dot(pos.data(), q.data(), p.data(), n, d, 2.f);
    qgs::cpu::row_dots_many(neg.data(), q.data(), ng.data(), n, k, d, 2.f);
    qgs::cpu::concat_pos_neg(logits.data(), pos.data(), neg.data(), n, k);
    check_close("row_dot", pos, pr, 1e-6);
    check_close("row_dots_many", neg, nr, 1e-6);
    check_close("concat_pos_neg", logits, lr, 1e-6);
    auto s0 = poisoned(n), sn = poisoned(n * k);
    qgs::cpu::split_pos_neg(s0.data(), sn.data(), logits.data(), n, k);
    check_close("split pos", s0, pr, 1e-6);
    check_close("split neg", sn, nr, 1e-6);
    auto dq = poisoned(n * d), dp = poisoned(n * d), dn = poisoned(n * k * d);
    qgs::cpu::infonce_rows_backward(dq.data(), dp.data(), dn.data(), g0.data(), gn.data(), q.data(), p.data(), ng.data(), n, k, d);
    check_close("infonce dq", dq, dqr, 1e-5);
    check_close("infonce dp", dp, dpr, 1e-6);
    check_close("infonce dneg", dn, dnr, 1e-6);
  }
  return finish("test_nn", seed);
}
