// Dense linear algebra: GEMM through a well-kept BLAS (OpenBLAS on CPU, cuBLAS on CUDA; DESIGN.md §2)
// plus the small helpers a fused Linear needs. Row-major throughout. Outputs first, then inputs,
// then sizes. Same signatures in qgs::cpu and qgs::cuda (CUDA pointers are device pointers).
#pragma once
#include <cstdint>

namespace qgs::cpu {

// For b in [0, batch): C_b = alpha * op(A_b) op(B_b) + beta * C_b, with op(X) = X or Xᵀ.
// op(A_b) is [m, k], op(B_b) is [k, n], C_b is [m, n]; A_b = a + b * stride_a (stride 0 broadcasts
// one matrix across the batch), likewise B and C. stride_c == 0 accumulates every batch item into
// one C (beta applies once, then the items add up): the weight gradient of a broadcast operand.
// Must be called outside parallel_for (BLAS runs its own threads, sized to the pool).
void gemm(float* c, const float* a, const float* b, int64_t batch, int64_t m, int64_t n, int64_t k, bool trans_a,
          bool trans_b, int64_t stride_a, int64_t stride_b, int64_t stride_c, float alpha, float beta);

// y[r, :] = bias for r < rows (so a following gemm with beta = 1 adds x Wᵀ: the fused Linear).
void broadcast_rows(float* y, const float* bias, int64_t rows, int64_t n);

// dbias[j] = sum_r dy[r, j] (deterministic: fixed blocking, float64 partial sums).
void sum_rows(float* dbias, const float* dy, int64_t rows, int64_t n);

// Times n x n x n cblas_sgemm directly (median of `reps` after one warm-up) and returns GFLOP/s:
// the machine's own BLAS limit for the benchmarks. CPU only.
double blas_sgemm_rate(int64_t n, int reps);

}  // namespace qgs::cpu

namespace qgs::cuda {

void gemm(float* c, const float* a, const float* b, int64_t batch, int64_t m, int64_t n, int64_t k, bool trans_a,
          bool trans_b, int64_t stride_a, int64_t stride_b, int64_t stride_c, float alpha, float beta);
void broadcast_rows(float* y, const float* bias, int64_t rows, int64_t n);
void sum_rows(float* dbias, const float* dy, int64_t rows, int64_t n);
// Which GEMM the CUDA build uses: "cublas (libcublas.so.N)" or "fallback tiled kernel (<why>)".
const char* gemm_backend();

}  // namespace qgs::cuda
