// CPU reductions over an [outer, r, inner] layout (any axis set reduces to this after the caller
// merges adjacent axes). The reduced axis is cut into fixed chunks of kChunk rows; every
// (outer, chunk) piece is one task writing a double partial, and partials are combined in chunk
// order. So long sums are accurate (double accumulation), there is parallelism even for a single
// output (sum over 1M elements), and the result is identical for any thread count.
#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "qgs/elementwise.h"
#include "qgs/parallel.h"

namespace qgs::cpu {
namespace {

constexpr int64_t kChunk = 1 << 14;  // rows of the reduced axis per task (times inner elements)

inline double combine(ReduceOp op, double acc, double v) {
  switch (op) {
    case ReduceOp::Sum: return acc + v;
    // NaN is sticky: once acc is NaN, neither comparison is true and it stays.
    case ReduceOp::Max: return (v > acc || v != v) && acc == acc ? v : acc;
    case ReduceOp::Min: return (v < acc || v != v) && acc == acc ? v : acc;
  }
  return acc;
}

inline double identity(ReduceOp op) {
  return op == ReduceOp::Sum ? 0.0
         : op == ReduceOp::Max ? -std::numeric_limits<double>::infinity()
                               : std::numeric_limits<double>::infinity();
}

// Sum of a contiguous run in double; four accumulators to break the dependency chain.
QGS_SIMD_CLONES double sum_row(const float* x, int64_t n) {
  double acc = 0.0;
#pragma omp simd reduction(+ : acc)
  for (int64_t i = 0; i < n; ++i) acc += static_cast<double>(x[i]);
  return acc;
}

// acc[i] += x[i] for i < n (column sums of a chunk, inner > 1).
QGS_SIMD_CLONES void add_row(double* QGS_RESTRICT acc, const float* QGS_RESTRICT x, int64_t n) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) acc[i] += static_cast<double>(x[i]);
}

}  // namespace

void reduce_f32(ReduceOp op, float* out, const float* x, int64_t outer, int64_t r, int64_t inner, double scale) {
  QGS_REQUIRE(outer >= 0 && r >= 0 && inner >= 0, "reduce: sizes must be >= 0");
  if (outer == 0 || inner == 0) return;
  QGS_REQUIRE(op == ReduceOp::Sum || r > 0, "reduce: max/min over an empty axis (r = 0) has no value");
  const int64_t nch = std::max<int64_t>(1, (r + kChunk - 1) / kChunk);
  const int64_t tasks = outer * nch;
  // partial[(o * nch + c) * inner + i]
  std::vector<double> partial(static_cast<size_t>(tasks * inner));
  auto work = [&](int64_t lo, int64_t hi) {
    for (int64_t t = lo; t < hi; ++t) {
      const int64_t o = t / nch, c = t % nch;
      const int64_t r0 = c * kChunk, r1 = std::min(r, r0 + kChunk);
      double* acc = partial.data() + t * inner;
      const float* base = x + o * r * inner;
      if (op == ReduceOp::Sum) {
        if (inner == 1) {
          acc[0] = sum_row(base + r0, r1 - r0);
        } else {
          std::fill(acc, acc + inner, 0.0);
          for (int64_t k = r0; k < r1; ++k) add_row(acc, base + k * inner, inner);
        }
      } else {
        std::fill(acc, acc + inner, identity(op));
        for (int64_t k = r0; k < r1; ++k) {
          const float* row = base + k * inner;
          for (int64_t i = 0; i < inner; ++i) acc[i] = combine(op, acc[i], row[i]);
        }
      }
    }
  };
  const int64_t total = outer * r * inner;
  if (total < (1 << 15) || tasks == 1) {
    work(0, tasks);
  } else {
    // Aim for tasks of roughly 16K elements each.
    int64_t per_task = std::max<int64_t>(1, std::min(r, kChunk) * inner);
    parallel_for(tasks, std::max<int64_t>(1, (1 << 14) / per_task), work);
  }
  auto finish = [&](int64_t lo, int64_t hi) {
    for (int64_t o = lo; o < hi; ++o) {
      for (int64_t i = 0; i < inner; ++i) {
        double acc = partial[static_cast<size_t>((o * nch) * inner + i)];
        for (int64_t c = 1; c < nch; ++c) acc = combine(op, acc, partial[static_cast<size_t>((o * nch + c) * inner + i)]);
        out[o * inner + i] = static_cast<float>(op == ReduceOp::Sum ? acc * scale : acc);
      }
    }
  };
  if (outer * inner * nch < (1 << 15)) {
    finish(0, outer);
  } else {
    parallel_for(outer, std::max<int64_t>(1, (1 << 14) / (inner * nch)), finish);
  }
}

}  // namespace qgs::cpu
