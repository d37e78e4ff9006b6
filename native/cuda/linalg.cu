// CUDA GEMM: cuBLAS (loaded at run time) when present, else a tiled shared-memory kernel so the
// CUDA build still works without it. Row-major C = op(A) op(B) is computed as the column-major
// product Cᵀ = op(B)ᵀ op(A)ᵀ, which is cuBLAS's native layout with the operands swapped.
#include <cuda_runtime.h>

#include <algorithm>
#include <string>

#include "cublas_loader.h"
#include "qgs/common.h"
#include "qgs/cuda_runtime.h"
#include "qgs/linalg.h"

namespace qgs::cuda {

namespace {
constexpr int kTile = 16;

// One 16x16 tile of C per block; blockIdx.z walks the batch (grid-stride for > 65535 items).
__global__ void gemm_tiled(float* c, const float* a, const float* b, int64_t batch, int64_t m, int64_t n, int64_t k, bool ta,
                           bool tb, int64_t sa, int64_t sb, int64_t sc, float alpha, float beta) {
  __shared__ float As[kTile][kTile + 1];
  __shared__ float Bs[kTile][kTile + 1];
  int64_t row = int64_t(blockIdx.y) * kTile + threadIdx.y;
  int64_t col = int64_t(blockIdx.x) * kTile + threadIdx.x;
  for (int64_t z = blockIdx.z; z < batch; z += gridDim.z) {
    const float* A = a + z * sa;
    const float* B = b + z * sb;
    float acc = 0.f;
    for (int64_t t0 = 0; t0 < k; t0 += kTile) {
      int64_t ak = t0 + threadIdx.x, bk = t0 + threadIdx.y;
      As[threadIdx.y][threadIdx.x] = (row < m && ak < k) ? (ta ? A[ak * m + row] : A[row * k + ak]) : 0.f;
      Bs[threadIdx.y][threadIdx.x] = (bk < k && col < n) ? (tb ? B[col * k + bk] : B[bk * n + col]) : 0.f;
      __syncthreads();
#pragma unroll
      for (int q = 0; q < kTile; ++q) acc += As[threadIdx.y][q] * Bs[q][threadIdx.x];
      __syncthreads();
    }
    if (row < m && col < n) {
      float* C = c + z * sc + row * n + col;
      *C = beta == 0.f ? alpha * acc : alpha * acc + beta * *C;
    }
  }
}

void gemm_fallback(float* c, const float* a, const float* b, int64_t batch, int64_t m, int64_t n, int64_t k, bool ta, bool tb,
                   int64_t sa, int64_t sb, int64_t sc, float alpha, float beta) {
  dim3 block(kTile, kTile);
  dim3 grid(static_cast<unsigned>((n + kTile - 1) / kTile), static_cast<unsigned>((m + kTile - 1) / kTile),
            static_cast<unsigned>(std::min<int64_t>(batch, 65535)));
  QGS_REQUIRE(grid.x <= 2147483647u && grid.y <= 65535u, "matmul (CUDA fallback kernel): m too large for the grid; install cuBLAS");
  gemm_tiled<<<grid, block>>>(c, a, b, batch, m, n, k, ta, tb, sa, sb, sc, alpha, beta);
  check_last("gemm_tiled");
}

// One (possibly strided-batched) row-major GEMM on cuBLAS.
void gemm_cublas(cublas::Handle h, float* c, const float* a, const float* b, int64_t batch, int64_t m, int64_t n, int64_t k,
                 bool ta, bool tb, int64_t sa, int64_t sb, int64_t sc, float alpha, float beta) {
  const auto& t = cublas::table();
  int lda = static_cast<int>(ta ? m : k), ldb = static_cast<int>(tb ? k : n);
  auto opA = ta ? cublas::kOpT : cublas::kOpN, opB = tb ? cublas::kOpT : cublas::kOpN;
  if (batch == 1) {
    cublas::check(t.sgemm(h, opB, opA, static_cast<int>(n), static_cast<int>(m), static_cast<int>(k), &alpha, b, ldb, a, lda, &beta,
                          c, static_cast<int>(n)),
                  "cublasSgemm");
  } else {
    cublas::check(t.sgemm_strided_batched(h, opB, opA, static_cast<int>(n), static_cast<int>(m), static_cast<int>(k), &alpha, b,
                                          ldb, sb, a, lda, sa, &beta, c, static_cast<int>(n), sc, static_cast<int>(batch)),
                  "cublasSgemmStridedBatched");
  }
}

__global__ void broadcast_rows_kernel(float* y, const float* bias, int64_t rows, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < rows * n; i += int64_t(gridDim.x) * blockDim.x)
    y[i] = bias[i % n];
}

// One thread per column, rows in order: deterministic and coalesced across the columns of a row.
__global__ void sum_rows_kernel(float* out, const float* src, int64_t rows, int64_t n) {
  for (int64_t j = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; j < n; j += int64_t(gridDim.x) * blockDim.x) {
    double s = 0;
    for (int64_t r = 0; r < rows; ++r) s += src[r * n + j];
    out[j] = static_cast<float>(s);
  }
}

unsigned blocks_for(int64_t n, int threads = 256) {
  return static_cast<unsigned>(std::max<int64_t>(1, std::min<int64_t>((n + threads - 1) / threads, 65535)));
}
}  // namespace

const char* gemm_backend() {
  return cublas::table().ok ? cublas::table().description.c_str()
                            : "fallback tiled CUDA kernel (cuBLAS not loaded)";
}

void gemm(float* c, const float* a, const float* b, int64_t batch, int64_t m, int64_t n, int64_t k, bool trans_a, bool trans_b,
          int64_t stride_a, int64_t stride_b, int64_t stride_c, float alpha, float beta) {
  QGS_REQUIRE(batch >= 0 && m >= 0 && n >= 0 && k >= 0, "gemm: sizes must be non-negative");
  QGS_REQUIRE(m <= 0x7fffffff && n <= 0x7fffffff && k <= 0x7fffffff && batch <= 0x7fffffff, "gemm: dimensions must fit in int32");
  if (batch == 0 || m == 0 || n == 0) return;
  // The same stacking rewrites as the CPU path (see cpu/linalg.cpp).
  if (batch > 1 && stride_b == 0 && !trans_a && stride_a == m * k && stride_c == m * n) {
    m *= batch;
    batch = 1;
  } else if (batch > 1 && stride_c == 0 && trans_a && !trans_b && stride_a == k * m && stride_b == k * n) {
    k *= batch;
    batch = 1;
  }
  cublas::Handle h = cublas::thread_handle();
  if (stride_c == 0 && batch > 1) {
    // Accumulate every item into one C: beta once, then += (sequential launches on one stream).
    for (int64_t i = 0; i < batch; ++i) {
      float be = i == 0 ? beta : 1.f;
      if (h) gemm_cublas(h, c, a + i * stride_a, b + i * stride_b, 1, m, n, k, trans_a, trans_b, 0, 0, 0, alpha, be);
      else gemm_fallback(c, a + i * stride_a, b + i * stride_b, 1, m, n, k, trans_a, trans_b, 0, 0, 0, alpha, be);
    }
    return;
  }
  if (h) gemm_cublas(h, c, a, b, batch, m, n, k, trans_a, trans_b, stride_a, stride_b, stride_c, alpha, beta);
  else gemm_fallback(c, a, b, batch, m, n, k, trans_a, trans_b, stride_a, stride_b, stride_c, alpha, beta);
}

void broadcast_rows(float* y, const float* bias, int64_t rows, int64_t n) {
  if (rows * n <= 0) return;
  broadcast_rows_kernel<<<blocks_for(rows * n), 256>>>(y, bias, rows, n);
  check_last("broadcast_rows");
}

void sum_rows(float* out, const float* src, int64_t rows, int64_t n) {
  if (n <= 0) return;
  sum_rows_kernel<<<blocks_for(n), 256>>>(out, src, rows, n);
  check_last("sum_rows");
}

}  // namespace qgs::cuda
