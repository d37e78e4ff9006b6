// Optimiser kernels against double-precision reference steps; sparse updates leave other rows
// bit-identical; bad row lists throw.
#include <cmath>
#include <vector>

#include "qgs/optim.h"
#include "test_util.h"

using namespace qgs_test;

int main() {
  uint64_t seed = fresh_seed();
  Rng rng(seed);
  const float lr = 0.01f, b1 = 0.9f, b2 = 0.99f, eps = 1e-8f, wd = 0.1f;
  for (int64_t n : {1, 3, 7, 65, 257, 100003}) {
    auto p = rng.normals(n), m = std::vector<float>(n, 0.f), v = std::vector<float>(n, 0.f);
    std::vector<double> pr(p.begin(), p.end()), mr(n, 0.0), vr(n, 0.0);
    for (int t = 1; t <= 4; ++t) {
      auto g = rng.normals(n);
      double bc1 = 1 - std::pow(double(b1), t), bc2 = 1 - std::pow(double(b2), t);
      for (int64_t i = 0; i < n; ++i) {
        pr[i] *= 1 - double(lr) * wd;
        mr[i] = b1 * mr[i] + (1 - double(b1)) * g[i];
        vr[i] = b2 * vr[i] + (1 - double(b2)) * double(g[i]) * g[i];
        pr[i] -= lr * (mr[i] / bc1) / (std::sqrt(vr[i] / bc2) + eps);
      }
      qgs::cpu::adamw_step(p.data(), m.data(), v.data(), g.data(), n, lr, b1, b2, eps, wd, float(bc1), float(bc2));
    }
    check_close("adamw p n=" + std::to_string(n), p, pr, 1e-5);
    check_close("adamw m n=" + std::to_string(n), m, mr, 1e-5);
    check_close("adamw v n=" + std::to_string(n), v, vr, 1e-5);
  }
  // sparse Adam / Adagrad: only listed rows change
  {
    const int64_t V = 257, D = 7;
    auto p = rng.normals(V * D), p0 = p;
    std::vector<float> m(V * D, 0.f), v(V * D, 0.f), acc(V * D, 0.f);
    std::vector<int32_t> rows = {0, 200, 17, 256};
    auto g = rng.normals(rows.size() * D);
    qgs::cpu::sparse_adam_step(p.data(), m.data(), v.data(), rows.data(), g.data(), 4, V, D, lr, b1, b2, eps, 0.f, 1 - b1, 1 - b2);
    std::vector<double> ref(p0.begin(), p0.end());
    for (size_t r = 0; r < rows.size(); ++r)
      for (int64_t j = 0; j < D; ++j) {
        double gi = g[r * D + j];
        double mh = (1 - double(b1)) * gi / (1 - double(b1)), vh = (1 - double(b2)) * gi * gi / (1 - double(b2));
        ref[rows[r] * D + j] -= lr * mh / (std::sqrt(vh) + eps);
      }
    check_close("sparse adam", p, ref, 1e-6);
    int untouched_changed = 0;
    for (int64_t r = 0; r < V; ++r) {
      bool listed = false;
      for (int32_t x : rows) listed = listed || x == r;
      if (!listed)
        for (int64_t j = 0; j < D; ++j) untouched_changed += p[r * D + j] != p0[r * D + j];
    }
    check(untouched_changed == 0, "sparse adam leaves other rows untouched");
    auto q = p0;
    qgs::cpu::sparse_adagrad_step(q.data(), acc.data(), rows.data(), g.data(), 4, V, D, 0.1f, 1e-10f, 0.f);
    std::vector<double> qref(p0.begin(), p0.end());
    for (size_t r = 0; r < rows.size(); ++r)
      for (int64_t j = 0; j < D; ++j) {
        double gi = g[r * D + j];
        qref[rows[r] * D + j] -= 0.1 * gi / (std::sqrt(gi * gi) + 1e-10);
      }
    check_close("sparse adagrad", q, qref, 1e-6);
    std::vector<int32_t> dup = {3, 3};
    check_throws("duplicate rows", [&] {
      qgs::cpu::sparse_adam_step(p.data(), m.data(), v.data(), dup.data(), g.data(), 2, V, D, lr, b1, b2, eps, 0.f, 0.1f, 0.01f);
    });
    std::vector<int32_t> oob = {257};
    check_throws("out-of-range row", [&] {
      qgs::cpu::sparse_adagrad_step(p.data(), acc.data(), oob.data(), g.data(), 1, V, D, lr, eps, 0.f);
    });
  }
  {
    auto x = rng.normals(100001);
    double ref = 0;
    for (float f : x) ref += double(f) * f;
    double got = qgs::cpu::sum_squares(x.data(), 100001);
    check(std::fabs(got - ref) / ref < 1e-12, "sum_squares");
    auto y = x;
    qgs::cpu::scale_inplace(y.data(), 100001, 0.5f);
    std::vector<double> yr(x.begin(), x.end());
    for (auto& f : yr) f *= 0.5;
    check_close("scale_inplace", y, yr, 1e-7);
  }
  check_throws("adamw bad eps", [] {
    float x = 0;
    qgs::cpu::adamw_step(&x, &x, &x, &x, 1, 0.1f, 0.9f, 0.9f, 0.f, 0.f, 0.1f, 0.1f);
  });
  return finish("test_optim", seed);
}
