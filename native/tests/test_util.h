// Minimal test harness for the native kernel tests (ctest): fresh random inputs every run (seed
// printed for reproduction), double-precision references, poisoned outputs, relative-error checks.
#pragma once
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <limits>
#include <random>
#include <string>
#include <vector>

namespace qgs_test {

// Atomic: some tests check from inside parallel_for bodies (ThreadSanitizer flagged the plain ints).
inline std::atomic<int>& failures() {
  static std::atomic<int> f{0};
  return f;
}
inline std::atomic<int>& checks() {
  static std::atomic<int> c{0};
  return c;
}

inline uint64_t fresh_seed() {
  const char* s = std::getenv("QGS_TEST_SEED");
  if (s) return std::strtoull(s, nullptr, 10);
  return static_cast<uint64_t>(std::chrono::high_resolution_clock::now().time_since_epoch().count());
}

struct Rng {
  std::mt19937_64 gen;
  explicit Rng(uint64_t seed) : gen(seed) {}
  float normal(float sd = 1.f) { return std::normal_distribution<float>(0.f, sd)(gen); }
  float uniform(float lo, float hi) { return std::uniform_real_distribution<float>(lo, hi)(gen); }
  int64_t integer(int64_t lo, int64_t hi) { return std::uniform_int_distribution<int64_t>(lo, hi)(gen); }
  std::vector<float> normals(size_t n, float sd = 1.f) {
    std::vector<float> v(n);
    for (auto& x : v) x = normal(sd);
    return v;
  }
};

// NaN-filled buffer: any element a kernel forgets to write fails the comparison.
inline std::vector<float> poisoned(size_t n) { return std::vector<float>(n, std::numeric_limits<float>::quiet_NaN()); }

// ||out - ref|| / max(||ref||, tiny) < tol, and every element finite.
inline bool check_close(const std::string& what, const float* out, const double* ref, size_t n, double tol) {
  checks()++;
  double num = 0, den = 0;
  for (size_t i = 0; i < n; ++i) {
    if (!std::isfinite(out[i]) || !std::isfinite(ref[i])) {
      std::printf("FAIL %s: non-finite at %zu (out=%g ref=%g)\n", what.c_str(), i, out[i], ref[i]);
      failures()++;
      return false;
    }
    double d = out[i] - ref[i];
    num += d * d;
    den += ref[i] * ref[i];
  }
  double rel = std::sqrt(num) / std::max(std::sqrt(den), 1e-30);
  if (den == 0 && num == 0) rel = 0;
  if (!(rel < tol)) {
    std::printf("FAIL %s: relative error %.3e >= %.1e\n", what.c_str(), rel, tol);
    failures()++;
    return false;
  }
  return true;
}

inline bool check_close(const std::string& what, const std::vector<float>& out, const std::vector<double>& ref, double tol) {
  if (out.size() != ref.size()) {
    std::printf("FAIL %s: size %zu vs %zu\n", what.c_str(), out.size(), ref.size());
    failures()++;
    return false;
  }
  return check_close(what, out.data(), ref.data(), out.size(), tol);
}

// max_i |out_i − ref_i| / scale_i < tol, and every element finite: for values that are sums or
// differences of larger terms (scale_i = the terms' magnitude), where a relative error of the
// possibly cancelling result says nothing about the kernel (a size-1 case can land near 0).
inline bool check_close_scaled(const std::string& what, const std::vector<float>& out, const std::vector<double>& ref,
                               const std::vector<double>& scale, double tol) {
  checks()++;
  double worst = 0;
  size_t at = 0;
  for (size_t i = 0; i < out.size(); ++i) {
    if (!std::isfinite(out[i])) {
      std::printf("FAIL %s: non-finite at %zu (out=%g ref=%g)\n", what.c_str(), i, out[i], ref[i]);
      failures()++;
      return false;
    }
    const double e = std::fabs(out[i] - ref[i]) / std::max(scale[i], 1e-30);
    if (e > worst) worst = e, at = i;
  }
  if (!(worst < tol)) {
    std::printf("FAIL %s: error / scale %.3e >= %.1e at %zu (out=%g ref=%g)\n", what.c_str(), worst, tol, at, out[at], ref[at]);
    failures()++;
    return false;
  }
  return true;
}

// Reference LayerNorm of one row in float64 (w, b may be null: 1, 0).
inline std::vector<double> layer_norm(const std::vector<double>& x, const float* w, const float* b, double eps) {
  const size_t n = x.size();
  double mu = 0, var = 0;
  for (double v : x) mu += v;
  mu /= double(n);
  for (double v : x) var += (v - mu) * (v - mu);
  var /= double(n);
  std::vector<double> y(n);
  for (size_t i = 0; i < n; ++i) y[i] = (x[i] - mu) / std::sqrt(var + eps) * (w ? w[i] : 1.0) + (b ? b[i] : 0.0);
  return y;
}

inline void check(bool cond, const std::string& what) {
  checks()++;
  if (!cond) {
    std::printf("FAIL %s\n", what.c_str());
    failures()++;
  }
}

// Expects fn to throw (a qgs::KernelError for bad arguments).
template <typename F>
void check_throws(const std::string& what, F&& fn) {
  checks()++;
  try {
    fn();
  } catch (const std::exception&) {
    return;
  }
  std::printf("FAIL %s: expected an exception\n", what.c_str());
  failures()++;
}

inline int finish(const char* name, uint64_t seed) {
  std::printf("%s: %d checks, %d failed (seed %llu)\n", name, checks().load(), failures().load(), static_cast<unsigned long long>(seed));
  return failures() == 0 ? 0 : 1;
}

}  // namespace qgs_test
