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

// Register block: acc[R][NV vectors of V] += A[R rows, K] · B[K, NV·lanes]. GCC vector types make the
// accumulators explicit registers (auto-vectorising a float acc[R][W] array spilled it to the stack).
template <typename V, int R, int NV, bool TA>
static inline __attribute__((always_inline)) void vblock(float* QGS_RESTRICT C, int64_t ldc, const float* QGS_RESTRICT A,
                                                         int64_t lda, const float* QGS_RESTRICT B, int64_t ldb, int64_t K,
                                                         bool accumulate) {
  constexpr int kLanes = sizeof(V) / sizeof(float);
  V acc[R][NV];
  for (int r = 0; r < R; ++r)
    for (int v = 0; v < NV; ++v) {
      if (accumulate) __builtin_memcpy(&acc[r][v], C + r * ldc + v * kLanes, sizeof(V));
      else acc[r][v] = V{};
    }
  for (int64_t p = 0; p < K; ++p) {
    V b[NV];
    for (int v = 0; v < NV; ++v) __builtin_memcpy(&b[v], B + p * ldb + v * kLanes, sizeof(V));
    for (int r = 0; r < R; ++r) {
      const float a = TA ? A[p * lda + r] : A[r * lda + p];
      for (int v = 0; v < NV; ++v) acc[r][v] += a * b[v];
    }
  }
  for (int r = 0; r < R; ++r)
    for (int v = 0; v < NV; ++v) __builtin_memcpy(C + r * ldc + v * kLanes, &acc[r][v], sizeof(V));
}

typedef float v4f __attribute__((vector_size(16)));
typedef float v8f __attribute__((vector_size(32)));
typedef float v16f __attribute__((vector_size(64)));

// One row block over all N columns: strips of WIDE floats, then 16-float strips.
template <typename V, int R, int WIDE, bool TA>
static inline __attribute__((always_inline)) void rows(float* C, int64_t ldc, const float* A, int64_t lda, const float* B,
                                                       int64_t ldb, int64_t K, int64_t N, bool accumulate) {
  constexpr int kLanes = sizeof(V) / sizeof(float);
  int64_t j = 0;
  if (WIDE > 16)
    for (; j + WIDE <= N; j += WIDE) vblock<V, R, WIDE / kLanes, TA>(C + j, ldc, A, lda, B + j, ldb, K, accumulate);
  for (; j < N; j += 16) vblock<V, R, 16 / kLanes, TA>(C + j, ldc, A, lda, B + j, ldb, K, accumulate);
}

// Which part of the product a row block needs, for triangular (causal) tiles:
//  Full       all of A·B;
//  LowerCols  C[i, j] only for j ≤ i (columns past the diagonal strip are left unwritten);
//  LowerK     A[i, p] = 0 for p > i (the sum stops at the diagonal);
//  UpperK     A[i, p] = 0 for p < i (the sum starts at the diagonal).
enum class Tri { Full, LowerCols, LowerK, UpperK };

template <typename V, int R, int WIDE, bool TA>
static inline __attribute__((always_inline)) void row_block(float* C, int64_t ldc, const float* A, int64_t lda,
                                                            const float* B, int64_t ldb, int64_t i0, int64_t K, int64_t N,
                                                            bool accumulate, Tri tri) {
  int64_t n_i = N, k0 = 0, k1 = K;
  if (tri == Tri::LowerCols) n_i = std::min(N, r16(i0 + R));
  if (tri == Tri::LowerK) k1 = std::min(K, i0 + R);
  if (tri == Tri::UpperK) k0 = std::min(K, i0);
  const float* a0 = TA ? A + k0 * lda + i0 : A + i0 * lda + k0;
  rows<V, R, WIDE, TA>(C + i0 * ldc, ldc, a0, lda, B + k0 * ldb, ldb, k1 - k0, n_i, accumulate);
}

template <typename V, int R, int WIDE, bool TA>
static inline __attribute__((always_inline)) void mm_rows(float* C, int64_t ldc, const float* A, int64_t lda,
                                                          const float* B, int64_t ldb, int64_t m, int64_t K, int64_t N,
                                                          bool accumulate, Tri tri) {
  int64_t i = 0;
  for (; i + R <= m; i += R) row_block<V, R, WIDE, TA>(C, ldc, A, lda, B, ldb, i, K, N, accumulate, tri);
  for (; i < m; ++i) row_block<V, 1, WIDE, TA>(C, ldc, A, lda, B, ldb, i, K, N, accumulate, tri);
}

template <typename V, int R, int WIDE>
static inline __attribute__((always_inline)) void mm_impl(float* C, int64_t ldc, const float* A, int64_t lda,
                                                          const float* B, int64_t ldb, int64_t m, int64_t K, int64_t N,
                                                          bool accumulate, Tri tri, bool ta) {
  if (ta) mm_rows<V, R, WIDE, true>(C, ldc, A, lda, B, ldb, m, K, N, accumulate, tri);
  else mm_rows<V, R, WIDE, false>(C, ldc, A, lda, B, ldb, m, K, N, accumulate, tri);
}

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
// AVX-512: 4 rows × 64 columns = 16 zmm accumulators (of 32).
__attribute__((target("arch=x86-64-v4"))) static void mm_v4(float* C, int64_t ldc, const float* A, int64_t lda,
                                                            const float* B, int64_t ldb, int64_t m, int64_t K, int64_t N,
                                                            bool acc, Tri tri, bool ta) {
  mm_impl<v16f, 4, 64>(C, ldc, A, lda, B, ldb, m, K, N, acc, tri, ta);
}
// AVX2: 4 rows × 16 columns = 8 ymm accumulators (of 16).
__attribute__((target("arch=x86-64-v3"))) static void mm_v3(float* C, int64_t ldc, const float* A, int64_t lda,
                                                            const float* B, int64_t ldb, int64_t m, int64_t K, int64_t N,
                                                            bool acc, Tri tri, bool ta) {
  mm_impl<v8f, 4, 16>(C, ldc, A, lda, B, ldb, m, K, N, acc, tri, ta);
}
#endif
// Baseline SSE2: 2 rows × 16 columns = 8 xmm accumulators.
static void mm_base(float* C, int64_t ldc, const float* A, int64_t lda, const float* B, int64_t ldb, int64_t m,
                    int64_t K, int64_t N, bool acc, Tri tri, bool ta) {
  mm_impl<v4f, 2, 16>(C, ldc, A, lda, B, ldb, m, K, N, acc, tri, ta);
}

using MmFn = void (*)(float*, int64_t, const float*, int64_t, const float*, int64_t, int64_t, int64_t, int64_t, bool, Tri, bool);

// Picked once from the running CPU (register budgets differ: 32 zmm vs 16 ymm), never -march=native.
static MmFn pick_mm() {
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
      __builtin_cpu_supports("avx512dq"))
    return mm_v4;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return mm_v3;
#endif
  return mm_base;
}

// C[m, N] = (accumulate ? C : 0) + op(A)[m, K] · B[K, N]; row-major with leading dimensions; N must be
// a multiple of 16 and the N columns of B readable (padded buffers). `tri` skips the zero triangle of
// op(A) (or of C for LowerCols). transA: A is stored [K, m] (lda = its row stride) and used
// transposed, which saves an explicit transpose of Pᵀ·G style products.
[[maybe_unused]] static void mm(float* C, int64_t ldc, const float* A, int64_t lda, const float* B, int64_t ldb,
                                int64_t m, int64_t K, int64_t N, bool accumulate, Tri tri = Tri::Full,
                                bool transA = false) {
  static const MmFn fn = pick_mm();
  if (K == 0 || (tri == Tri::Full && m == 0)) {
    if (!accumulate)
      for (int64_t i = 0; i < m; ++i) std::memset(C + i * ldc, 0, sizeof(float) * N);
    return;
  }
  fn(C, ldc, A, lda, B, ldb, m, K, N, accumulate, tri, transA);
}

// dst[c, r] = src[r, c] for r < rows, c < cols; dst columns rows..ld_dst are zeroed.
[[maybe_unused]] static inline void transpose(float* dst, int64_t ld_dst, const float* src, int64_t ld_src, int64_t rows, int64_t cols) {
  for (int64_t c = 0; c < cols; ++c) {
    float* d = dst + c * ld_dst;
    for (int64_t r = 0; r < rows; ++r) d[r] = src[r * ld_src + c];
    for (int64_t r = rows; r < ld_dst; ++r) d[r] = 0.f;
  }
}

QGS_SIMD_CLONES
[[maybe_unused]] static float dot(const float* a, const float* b, int64_t n) {
  float s = 0.f;
#pragma omp simd reduction(+ : s)
  for (int64_t i = 0; i < n; ++i) s += a[i] * b[i];
  return s;
}

}  // namespace qgs::cpu::tile
