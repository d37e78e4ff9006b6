// CPU movement kernels: one strided copy (transpose, broadcastTo, slice and its backward, concat and
// split pieces) and index_select-style gather with its scatter-add backward. All copy 4-byte words,
// so they serve f32 and i32 alike.
#include <algorithm>
#include <cstring>
#include <string>

#include "qgs/elementwise.h"
#include "qgs/parallel.h"

namespace qgs::cpu {

void strided_copy(uint32_t* dst, const int64_t* dst_stride, const uint32_t* src, const int64_t* src_stride,
                  const int64_t* shape, int ndim) {
  // Reuse the broadcasting machinery: "input 0" is the destination, "input 1" the source. collapse()
  // treats the output index space as contiguous, which holds for the index space itself.
  Strided s;
  s.ndim = ndim;
  for (int d = 0; d < ndim; ++d) {
    s.shape[d] = shape[d];
    s.stride[0][d] = dst_stride[d];
    s.stride[1][d] = src_stride[d];
  }
  int64_t total = collapse(s, 2);
  if (total == 0) return;
  const int nd = s.ndim;
  const int64_t L = s.shape[nd - 1];
  const int64_t rows = total / L;
  const int64_t sd = s.stride[0][nd - 1], ss = s.stride[1][nd - 1];
  auto work = [&](int64_t lo, int64_t hi) {
    // Row r's offsets from its multi-index over the outer dims.
    for (int64_t r = lo; r < hi; ++r) {
      int64_t rem = r, od = 0, os = 0;
      for (int d = nd - 2; d >= 0; --d) {
        int64_t i = rem % s.shape[d];
        rem /= s.shape[d];
        od += i * s.stride[0][d];
        os += i * s.stride[1][d];
      }
      uint32_t* o = dst + od;
      const uint32_t* x = src + os;
      if (sd == 1 && ss == 1) {
        std::memcpy(o, x, static_cast<size_t>(L) * 4);
      } else if (ss == 0 && sd == 1) {
        std::fill(o, o + L, x[0]);  // broadcast of one value along the row
      } else {
        for (int64_t i = 0; i < L; ++i) o[i * sd] = x[i * ss];
      }
    }
  };
  if (total < (1 << 15)) {
    work(0, rows);
  } else {
    parallel_for(rows, std::max<int64_t>(1, (1 << 14) / L), work);
  }
}

void gather_check_indices(const int32_t* idx, int64_t m, int64_t n) {
  for (int64_t j = 0; j < m; ++j) {
    if (idx[j] < 0 || idx[j] >= n) {
      throw KernelError("gather: indices[" + std::to_string(j) + "] = " + std::to_string(idx[j]) +
                        " is out of range for an axis of size " + std::to_string(n) + " (expected 0 <= index < " +
                        std::to_string(n) + ")");
    }
  }
}

void embedding_bag_f32(float* out, const float* table, int64_t V, int64_t D, const int32_t* ids, const float* w, int64_t N,
                       int64_t m, bool mean, int64_t padding_idx) {
  QGS_REQUIRE(V >= 0 && D >= 1 && N >= 0 && m >= 1, "embeddingBag: sizes must be V >= 0, D >= 1, N >= 0, m >= 1, got V = " +
                                                        std::to_string(V) + ", D = " + std::to_string(D) + ", N = " +
                                                        std::to_string(N) + ", m = " + std::to_string(m));
  QGS_REQUIRE(!(mean && w), "embeddingBag: per-slot weights are for sum bags only (mean divides by the slot count)");
  for (int64_t j = 0; j < N * m; ++j) {
    if (ids[j] == padding_idx) continue;
    if (ids[j] < 0 || ids[j] >= V) {
      throw KernelError("embeddingBag: ids[" + std::to_string(j / m) + ", " + std::to_string(j % m) + "] = " + std::to_string(ids[j]) +
                        " is out of range for a table of " + std::to_string(V) + " rows");
    }
  }
  // ~m·D multiply-adds a row: split across the pool only in blocks of 64 rows.
  parallel_for(N, 64, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) {
      float* QGS_RESTRICT o = out + i * D;
      for (int64_t d = 0; d < D; ++d) o[d] = 0.f;
      int64_t used = 0;
      for (int64_t j = 0; j < m; ++j) {
        const int32_t id = ids[i * m + j];
        const float wj = w ? w[i * m + j] : 1.f;
        if (id == padding_idx || wj == 0.f) continue;
        ++used;
        const float* QGS_RESTRICT row = table + int64_t(id) * D;
#pragma omp simd
        for (int64_t d = 0; d < D; ++d) o[d] += wj * row[d];
      }
      if (mean && used > 1) {
        const float inv = 1.f / static_cast<float>(used);
        for (int64_t d = 0; d < D; ++d) o[d] *= inv;
      }
    }
  });
}

void gather(uint32_t* out, const uint32_t* x, const int32_t* idx, int64_t outer, int64_t n, int64_t inner, int64_t m) {
  QGS_REQUIRE(outer >= 0 && n >= 0 && inner >= 0 && m >= 0, "gather: sizes must be >= 0");
  const int64_t rows = outer * m;
  if (rows == 0 || inner == 0) return;
  auto work = [&](int64_t lo, int64_t hi) {
    for (int64_t t = lo; t < hi; ++t) {
      const int64_t o = t / m, j = t % m;
      std::memcpy(out + t * inner, x + (o * n + idx[j]) * inner, static_cast<size_t>(inner) * 4);
    }
  };
  if (rows * inner < (1 << 15)) work(0, rows);
  else parallel_for(rows, std::max<int64_t>(1, (1 << 14) / inner), work);
}

void gather_backward_f32(float* dx, const float* dy, const int32_t* idx, int64_t outer, int64_t n, int64_t inner,
                         int64_t m) {
  QGS_REQUIRE(outer >= 0 && n >= 0 && inner >= 0 && m >= 0, "gather_backward: sizes must be >= 0");
  if (outer == 0 || inner == 0) return;
  // A task owns dx[o, :, i0:i1] (all n rows of one column block), so repeated indices never race and
  // the accumulation order (j ascending) is fixed.
  constexpr int64_t kBlock = 1024;
  const int64_t nb = (inner + kBlock - 1) / kBlock;
  auto work = [&](int64_t lo, int64_t hi) {
    for (int64_t t = lo; t < hi; ++t) {
      const int64_t o = t / nb, i0 = (t % nb) * kBlock, i1 = std::min(inner, i0 + kBlock);
      float* d = dx + o * n * inner;
      for (int64_t k = 0; k < n; ++k) std::fill(d + k * inner + i0, d + k * inner + i1, 0.f);
      const float* g = dy + o * m * inner;
      for (int64_t j = 0; j < m; ++j) {
        float* dr = d + static_cast<int64_t>(idx[j]) * inner;
        const float* gr = g + j * inner;
        for (int64_t i = i0; i < i1; ++i) dr[i] += gr[i];
      }
    }
  };
  const int64_t tasks = outer * nb;
  if (outer * (n + m) * inner < (1 << 15)) work(0, tasks);
  else parallel_for(tasks, 1, work);
}

}  // namespace qgs::cpu
