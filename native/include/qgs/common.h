// Shared definitions for the qgs native kernels. Kernels are plain functions over raw pointers and
// sizes: no N-API, no globals (DESIGN.md §1). Argument errors are thrown as qgs::KernelError and
// turned into JS Errors by the N-API layer; a kernel never aborts the process.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string>

namespace qgs {

struct KernelError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// A whole number in [lo, hi] read from the environment variable `name`; `fallback` when it is unset
// or empty, and also (with a one-line warning on stderr) when it is malformed or out of range: a
// bad environment variable must not crash the addon.
inline int64_t env_int(const char* name, int64_t lo, int64_t hi, int64_t fallback) {
  const char* s = std::getenv(name);
  if (s == nullptr || *s == 0) return fallback;
  char* end = nullptr;
  const long long v = std::strtoll(s, &end, 10);
  if (*end != 0 || v < lo || v > hi) {
    std::fprintf(stderr, "qgs-engine: %s: expected a whole number in [%lld, %lld], got '%s'; using %lld\n", name,
                 static_cast<long long>(lo), static_cast<long long>(hi), s, static_cast<long long>(fallback));
    return fallback;
  }
  return v;
}

}  // namespace qgs

// Throws qgs::KernelError(message) when cond is false; the message should name the argument and the
// expectation. A macro so that the message is only built when the check fails: checks run inside
// loops and on every call, and formatting messages eagerly (std::to_string of every decay value)
// was ~4% of a QGS encode in perf.
#define QGS_REQUIRE(cond, ...)                          \
  do {                                                  \
    if (!(cond)) throw ::qgs::KernelError(__VA_ARGS__); \
  } while (0)

// Compile a hot function for AVX-512, AVX2+FMA and baseline x86-64; the loader (ifunc) picks the
// best one for the running CPU, so the shipped binary never needs -march=native.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(QGS_NO_CLONES) && \
    !defined(__SANITIZE_ADDRESS__)
#define QGS_SIMD_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define QGS_SIMD_CLONES
#endif

#if defined(__GNUC__)
#define QGS_RESTRICT __restrict__
#else
#define QGS_RESTRICT
#endif
