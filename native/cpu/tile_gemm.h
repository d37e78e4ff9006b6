// Small register-blocked matrix products for the chunked recurrence and the blocked HSTU attention.
// These are the intra-tile products of our special kernels (tiles of at most a few hundred rows, L1/L2
// resident, called from inside parallel_for where BLAS must not be used), not a general GEMM.
// Private to native/cpu (linrec.cpp, hstu.cpp).
#pragma once
#include <algorithm>
#include <cstdint>
#include <cstring>

#include "qgs/common.h"

namespace qgs::cpu::tile {

// Rounds up to a multiple of 16 floats (one AVX-512 register): every tile buffer is padded so the
// vector loops need no tails; padding columns are kept at zero.
inline int64_t r16(int64_t n) { return (n + 15) / 16 * 16; }

// acc[R][W] += A[R rows, K] * B[K, W]; W is a compile-time width so the accumulators stay in registers.
template <int R, int W>
static inline __attribute__((always_inline)) void block(float* QGS_RESTRICT C, int64_t ldc, const float* QGS_RESTRICT A,
                                                        int64_t lda, const float* QGS_RESTRICT B, int64_t ldb, int64_t K,
                                                        bool accumulate) {
  float acc[R][W];
  for (int r = 0; r < R; ++r)
    for (int j = 0; j < W; ++j) acc[r][j] = accumulate ? C[r * ldc + j] : 0.f;
  for (int64_t p = 0; p < K; ++p) {
    const float* b = B + p * ldb;
    for (int r = 0; r < R; ++r) {
      const float a = A[r * lda + p];
#pragma omp simd
      for (int j = 0; j < W; ++j) acc[r][j] += a * b[j];
    }
  }
  for (int r = 0; r < R; ++r)
    for (int j = 0; j < W; ++j) C[r * ldc + j] = acc[r][j];
}

template <int R>
static inline __attribute__((always_inline)) void rows(float* C, int64_t ldc, const float* A, int64_t lda, const float* B,
                                                       int64_t ldb, int64_t K, int64_t N, bool accumulate) {
  int64_t j = 0;
  for (; j + 64 <= N; j += 64) block<R, 64>(C + j, ldc, A, lda, B + j, ldb, K, accumulate);
  for (; j < N; j += 16) block<R, 16>(C + j, ldc, A, lda, B + j, ldb, K, accumulate);
}

// C[m, N] = (accumulate ? C : 0) + A[m, K] · B[K, N]; row-major with leading dimensions; N must be a
// multiple of 16 and the N columns of B readable (padded buffers).
QGS_SIMD_CLONES
static void mm(float* C, int64_t ldc, const float* A, int64_t lda, const float* B, int64_t ldb, int64_t m, int64_t K,
               int64_t N, bool accumulate) {
  if (K == 0) {
    if (!accumulate)
      for (int64_t i = 0; i < m; ++i) std::memset(C + i * ldc, 0, sizeof(float) * N);
    return;
  }
  int64_t i = 0;
  for (; i + 4 <= m; i += 4) rows<4>(C + i * ldc, ldc, A + i * lda, lda, B, ldb, K, N, accumulate);
  for (; i < m; ++i) rows<1>(C + i * ldc, ldc, A + i * lda, lda, B, ldb, K, N, accumulate);
}

// dst[c, r] = src[r, c] for r < rows, c < cols; dst columns rows..ld_dst are zeroed.
static inline void transpose(float* dst, int64_t ld_dst, const float* src, int64_t ld_src, int64_t rows, int64_t cols) {
  for (int64_t c = 0; c < cols; ++c) {
    float* d = dst + c * ld_dst;
    for (int64_t r = 0; r < rows; ++r) d[r] = src[r * ld_src + c];
    for (int64_t r = rows; r < ld_dst; ++r) d[r] = 0.f;
  }
}

QGS_SIMD_CLONES
static float dot(const float* a, const float* b, int64_t n) {
  float s = 0.f;
#pragma omp simd reduction(+ : s)
  for (int64_t i = 0; i < n; ++i) s += a[i] * b[i];
  return s;
}

}  // namespace qgs::cpu::tile
