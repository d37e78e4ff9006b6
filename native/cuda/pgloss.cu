// CUDA kernels of the pgloss family, same contracts as native/cpu/pgloss.cpp and
// fused_linear_pg.cpp (see native/include/qgs/pgloss.h). Status: compiled, not yet run on a GPU.
//
// pg_loss: (1) per-row mask counts, (2) one block computes the normalizer and the row weights on
// the device, (3) one block per row (grid-stride over rows, block-stride over tokens: no launch
// limit on N or T) computes loss terms, gradient and statistics and writes per-row partial sums,
// (4) one block reduces the rows in a fixed order (deterministic) and writes the loss; the
// statistics come back to the host with one small copy.
// fused_linear_pg: the same two-pass chunked algorithm as the CPU kernel. This build has no cuBLAS
// headers, so the three chunk products use a shared-memory tiled SGEMM kernel (strided operands);
// swapping in cublasSgemm later changes only `gemm`.
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "qgs/cuda_runtime.h"
#include "qgs/pgloss.h"

namespace qgs::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int kRowStats = 12;  // per-row partial sums: cnt low high dual rsum rmin rmax akl rkl lpg lkl bad

// RAII device allocation (checked malloc, freed on every exit path including exceptions).
struct DeviceBuffer {
  void* p = nullptr;
  explicit DeviceBuffer(size_t bytes) { p = malloc_device(bytes); }
  ~DeviceBuffer() { free_device(p); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  template <typename T>
  T* as() const { return static_cast<T*>(p); }
};

unsigned grid_for(int64_t n) { return static_cast<unsigned>(std::max<int64_t>(1, std::min<int64_t>(n, 65535))); }

// Block-wide reduction of K doubles (sum) with min/max on selected slots. All threads get the result.
template <int K>
__device__ void block_reduce(double (&v)[K], const bool (&is_min)[K], const bool (&is_max)[K]) {
  __shared__ double sh[K][kThreads / 32];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  for (int k = 0; k < K; ++k) {
    double x = v[k];
    for (int o = 16; o > 0; o >>= 1) {
      double y = __shfl_down_sync(0xffffffffu, x, o);
      x = is_min[k] ? fmin(x, y) : is_max[k] ? fmax(x, y) : x + y;
    }
    if (lane == 0) sh[k][warp] = x;
  }
  __syncthreads();
  for (int k = 0; k < K; ++k) {
    double x = sh[k][0];
    for (int w = 1; w < kThreads / 32; ++w) x = is_min[k] ? fmin(x, sh[k][w]) : is_max[k] ? fmax(x, sh[k][w]) : x + sh[k][w];
    v[k] = x;
  }
  __syncthreads();
}

__device__ __forceinline__ bool mask_on(const float* m, const int32_t* mi, int64_t k) {
  return m ? m[k] != 0.f : mi ? mi[k] != 0 : true;
}

__global__ void row_counts_kernel(double* counts, const float* mask, const int32_t* mask_i32, int64_t n, int64_t t) {
  for (int64_t i = blockIdx.x; i < n; i += gridDim.x) {
    double v[1] = {0};
    for (int64_t s = threadIdx.x; s < t; s += blockDim.x) v[0] += mask_on(mask, mask_i32, i * t + s) ? 1.0 : 0.0;
    const bool no[1] = {false};
    block_reduce<1>(v, no, no);
    if (threadIdx.x == 0) counts[i] = v[0];
  }
}

// One block: normalizer (explicit or default) and per-row weights w_i.
__global__ void row_weights_kernel(float* w, double* norm_out, const double* counts, int agg, double normalizer, int64_t n, int64_t t) {
  double v[2] = {0, 0};
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) {
    const double c = counts ? counts[i] : static_cast<double>(t);
    v[0] += c;
    v[1] += c > 0 ? 1.0 : 0.0;
  }
  const bool no[2] = {false, false};
  block_reduce<2>(v, no, no);
  double norm = normalizer;
  if (norm <= 0) norm = agg == kAggTokenMean ? v[0] : agg == kAggSeqMeanTokenMean ? v[1] : static_cast<double>(n) * static_cast<double>(t);
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) {
    double wi = norm > 0 ? 1.0 / norm : 0.0;
    if (agg == kAggSeqMeanTokenMean) {
      const double li = counts ? counts[i] : static_cast<double>(t);
      wi = li > 0 ? wi / li : 0.0;
    }
    w[i] = static_cast<float>(wi);
  }
  if (threadIdx.x == 0) *norm_out = norm;
}

__global__ void pg_rows_kernel(float* dlogp, double* rowstats, PgLossInputs in, const float* w) {
  const int64_t T = in.t;
  const bool has_kl = in.kl_beta > 0.f && in.ref_logp != nullptr;
  for (int64_t i = blockIdx.x; i < in.n; i += gridDim.x) {
    const float el = in.eps_low_seq ? in.eps_low_seq[i] : in.eps_low;
    const float eh = in.eps_high_seq ? in.eps_high_seq[i] : in.eps_high;
    const float lo = 1.f - el, hi = 1.f + eh, c = in.dual_clip;
    const float bs = in.kl_beta * (in.kl_scale ? in.kl_scale[i] : 1.f);
    const float wi = w[i];
    double v[kRowStats] = {0, 0, 0, 0, 0, INFINITY, -INFINITY, 0, 0, 0, 0, 0};
    for (int64_t s = threadIdx.x; s < T; s += blockDim.x) {
      const int64_t k = i * T + s;
      const bool on = mask_on(in.mask, in.mask_i32, k);
      float g = 0.f;
      if (on) {
        const float lp = in.logp[k], ol = in.old_logp[k];
        const float A = in.adv_per_token ? in.adv[k] : in.adv[i];
        const float draw = lp - ol;
        const float d = fminf(fmaxf(draw, -20.f), 20.f);
        const float inr = (draw > -20.f && draw < 20.f) ? 1.f : 0.f;
        const float r = expf(d);
        const float rc = fminf(fmaxf(r, lo), hi);
        const float l1 = -A * r, l2 = -A * rc;
        const bool unclipped = l1 >= l2;
        float l = unclipped ? l1 : l2;
        const bool dhit = c > 0.f && A < 0.f && l > -c * A;
        if (dhit) l = -c * A;
        g = (unclipped && !dhit) ? -A * r * inr : 0.f;
        bool fin = isfinite(lp) && isfinite(ol) && isfinite(A);
        float kl = 0.f;
        if (has_kl) {
          const float rf = in.ref_logp[k];
          const float xr = rf - lp;
          const float x = fminf(fmaxf(xr, -20.f), 20.f);
          const float ex = expf(x);
          kl = ex - x - 1.f;
          if (xr > -20.f && xr < 20.f) g += bs * (1.f - ex);
          fin = fin && isfinite(rf);
        }
        v[0] += 1;
        v[1] += (r < lo && A < 0.f);
        v[2] += (r > hi && A > 0.f);
        v[3] += dhit;
        v[4] += r;
        v[5] = fmin(v[5], static_cast<double>(r));
        v[6] = fmax(v[6], static_cast<double>(r));
        v[7] += 1.f / r + d - 1.f;
        v[8] += kl;
        v[9] += l;
        v[10] += static_cast<double>(bs) * kl;
        v[11] += fin ? 0 : 1;
      }
      if (dlogp) dlogp[k] = on ? wi * g : 0.f;
    }
    const bool mn[kRowStats] = {false, false, false, false, false, true, false, false, false, false, false, false};
    const bool mx[kRowStats] = {false, false, false, false, false, false, true, false, false, false, false, false};
    block_reduce<kRowStats>(v, mn, mx);
    if (threadIdx.x == 0) {
      for (int q = 0; q < kRowStats; ++q) rowstats[i * kRowStats + q] = v[q];
      rowstats[i * kRowStats + 9] *= wi;
      rowstats[i * kRowStats + 10] *= wi;
    }
  }
}

// One block, fixed order: rows → kPgStatCount statistics; loss = pg + kl.
__global__ void pg_final_kernel(float* loss, double* out, const double* rowstats, const double* norm, int64_t n) {
  double v[kRowStats] = {0, 0, 0, 0, 0, INFINITY, -INFINITY, 0, 0, 0, 0, 0};
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x)
    for (int q = 0; q < kRowStats; ++q) {
      const double x = rowstats[i * kRowStats + q];
      v[q] = q == 5 ? fmin(v[q], x) : q == 6 ? fmax(v[q], x) : v[q] + x;
    }
  const bool mn[kRowStats] = {false, false, false, false, false, true, false, false, false, false, false, false};
  const bool mx[kRowStats] = {false, false, false, false, false, false, true, false, false, false, false, false};
  block_reduce<kRowStats>(v, mn, mx);
  if (threadIdx.x == 0) {
    out[kStatTokens] = v[0];
    out[kStatClipLow] = v[1];
    out[kStatClipHigh] = v[2];
    out[kStatDualClip] = v[3];
    out[kStatRatioSum] = v[4];
    out[kStatRatioMin] = v[5];
    out[kStatRatioMax] = v[6];
    out[kStatApproxKl] = v[7];
    out[kStatRefKl] = v[8];
    out[kStatPgLoss] = v[9];
    out[kStatKlLoss] = v[10];
    out[kStatNormalizer] = *norm;
    out[kStatEntropy] = 0;
    out[kStatSftLoss] = 0;
    out[kStatSftTokens] = v[11];  // temporarily: non-finite count (cleared by the host)
    if (loss) *loss = static_cast<float>(v[9] + v[10]);
  }
}

__global__ void scale_kernel(float* dst, const float* scale, int64_t n) {
  const float s = *scale;
  if (s == 1.f) return;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) dst[i] *= s;
}

// Runs the clipped loss on device inputs; row weights stay on the device in `w` (fused-linear uses them).
void run_pg(float* loss, float* dlogp, double* stats, const PgLossInputs& in, DeviceBuffer& w) {
  const bool has_mask = in.mask != nullptr || in.mask_i32 != nullptr;
  DeviceBuffer counts(static_cast<size_t>(std::max<int64_t>(1, in.n)) * sizeof(double));
  DeviceBuffer norm(sizeof(double));
  DeviceBuffer rowstats(static_cast<size_t>(std::max<int64_t>(1, in.n)) * kRowStats * sizeof(double));
  DeviceBuffer out(kPgStatCount * sizeof(double));
  if (has_mask) {
    row_counts_kernel<<<grid_for(in.n), kThreads>>>(counts.as<double>(), in.mask, in.mask_i32, in.n, in.t);
    check_last("pg_loss row_counts_kernel");
  }
  row_weights_kernel<<<1, kThreads>>>(w.as<float>(), norm.as<double>(), has_mask ? counts.as<double>() : nullptr, in.agg, in.normalizer, in.n, in.t);
  check_last("pg_loss row_weights_kernel");
  pg_rows_kernel<<<grid_for(in.n), kThreads>>>(dlogp, rowstats.as<double>(), in, w.as<float>());
  check_last("pg_loss pg_rows_kernel");
  pg_final_kernel<<<1, kThreads>>>(loss, out.as<double>(), rowstats.as<double>(), norm.as<double>(), in.n);
  check_last("pg_loss pg_final_kernel");
  copy_d2h(stats, out.p, kPgStatCount * sizeof(double));
  if (stats[kStatSftTokens] > 0)
    throw KernelError("logp, oldLogp, refLogp or advantages: expected finite values at masked-in tokens, got " +
                      std::to_string(static_cast<int64_t>(stats[kStatSftTokens])) + " non-finite (positions are located by the CPU kernel only)");
  stats[kStatSftTokens] = 0;
}

// ---- fused linear ----

constexpr int kTile = 16;

// C[i, j] = alpha · Σ_p A(i, p) B(p, j) + beta · C[i, j], A(i, p) = A[i·a_i + p·a_p], B(p, j) = B[p·b_p + j·b_j].
__global__ void gemm_kernel(float* C, const float* A, const float* B, int64_t m, int64_t n, int64_t kk, int64_t a_i, int64_t a_p,
                            int64_t b_p, int64_t b_j, int64_t ldc, float alpha, float beta) {
  __shared__ float As[kTile][kTile + 1];
  __shared__ float Bs[kTile][kTile + 1];
  const int64_t i = blockIdx.y * int64_t(kTile) + threadIdx.y;
  const int64_t j = blockIdx.x * int64_t(kTile) + threadIdx.x;
  float acc = 0.f;
  for (int64_t p0 = 0; p0 < kk; p0 += kTile) {
    const int64_t pa = p0 + threadIdx.x, pb = p0 + threadIdx.y;
    As[threadIdx.y][threadIdx.x] = (i < m && pa < kk) ? A[i * a_i + pa * a_p] : 0.f;
    Bs[threadIdx.y][threadIdx.x] = (pb < kk && j < n) ? B[pb * b_p + j * b_j] : 0.f;
    __syncthreads();
#pragma unroll
    for (int q = 0; q < kTile; ++q) acc += As[threadIdx.y][q] * Bs[q][threadIdx.x];
    __syncthreads();
  }
  if (i < m && j < n) C[i * ldc + j] = alpha * acc + (beta == 0.f ? 0.f : beta * C[i * ldc + j]);
}

void gemm(float* C, const float* A, const float* B, int64_t m, int64_t n, int64_t k, int64_t a_i, int64_t a_p, int64_t b_p, int64_t b_j,
          int64_t ldc, float alpha, float beta, const char* what) {
  dim3 block(kTile, kTile);
  dim3 grid(static_cast<unsigned>((n + kTile - 1) / kTile), static_cast<unsigned>((m + kTile - 1) / kTile));
  gemm_kernel<<<grid, block>>>(C, A, B, m, n, k, a_i, a_p, b_p, b_j, ldc, alpha, beta);
  check_last(what);
}

// One block per chunk row: merge the chunk's (max, Σe, Σe·(u−max)) into the running row state; gather the target.
__global__ void chunk_lse_kernel(double* rmax, double* rsum, double* rz, float* tgt, const float* buf, const int32_t* targets, int64_t r0,
                                 int64_t mc, int64_t v0, int64_t vc) {
  for (int64_t j = blockIdx.x; j < mc; j += gridDim.x) {
    const float* row = buf + j * vc;
    double v[1] = {-INFINITY};
    for (int64_t q = threadIdx.x; q < vc; q += blockDim.x) v[0] = fmax(v[0], static_cast<double>(row[q]));
    const bool no[1] = {false}, yes[1] = {true};
    block_reduce<1>(v, no, yes);
    const double cm = v[0];
    double s[2] = {0, 0};
    for (int64_t q = threadIdx.x; q < vc; q += blockDim.x) {
      const double x = row[q] - cm;
      const double e = exp(x);
      s[0] += e;
      s[1] += e * x;
    }
    const bool no2[2] = {false, false};
    block_reduce<2>(s, no2, no2);
    if (threadIdx.x == 0) {
      const int64_t m = r0 + j;
      if (v0 == 0) {
        rmax[m] = cm;
        rsum[m] = s[0];
        rz[m] = s[1];
      } else {
        const double nm = fmax(rmax[m], cm);
        const double a = exp(rmax[m] - nm), b = exp(cm - nm);
        rz[m] = (rz[m] + rsum[m] * (rmax[m] - nm)) * a + (s[1] + s[0] * (cm - nm)) * b;
        rsum[m] = rsum[m] * a + s[0] * b;
        rmax[m] = nm;
      }
      const int32_t y = targets[m];
      if (y >= v0 && y < v0 + vc) tgt[m] = row[y - v0];
    }
  }
}

__global__ void finalize_rows_kernel(float* logp, float* logz, float* ubar, float* ent, int32_t* bad, const double* rmax, const double* rsum,
                                     const double* rz, const float* tgt, const int32_t* targets, const float* mask, const int32_t* mask_i32,
                                     const float* sft_mask, int64_t M, int64_t V) {
  for (int64_t m = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; m < M; m += int64_t(gridDim.x) * blockDim.x) {
    const double lse = rmax[m] + log(rsum[m]);
    logz[m] = static_cast<float>(lse);
    ubar[m] = static_cast<float>(rmax[m] + rz[m] / rsum[m]);
    ent[m] = static_cast<float>(log(rsum[m]) - rz[m] / rsum[m]);
    const int32_t y = targets[m];
    logp[m] = (y >= 0 && y < V) ? static_cast<float>(static_cast<double>(tgt[m]) - lse) : 0.f;
    const bool active = mask_on(mask, mask_i32, m) || (sft_mask != nullptr && sft_mask[m] != 0.f);
    if (active && (!isfinite(logp[m]) || !isfinite(ent[m]))) atomicAdd(bad, 1);
    if (active && (y < 0 || y >= V)) atomicAdd(bad + 1, 1);
  }
}

// One block: Σ sftMask, Σ sftMask·logp, Σ m H, Σ w_i m H (deterministic order).
__global__ void fused_sums_kernel(double* out, const float* logp, const float* ent, const float* sft_mask, const float* mask, const int32_t* mask_i32,
                                  const float* w, int64_t M, int64_t T) {
  double v[4] = {0, 0, 0, 0};
  for (int64_t m = threadIdx.x; m < M; m += blockDim.x) {
    if (sft_mask && sft_mask[m] != 0.f) {
      v[0] += 1;
      v[1] += logp[m];
    }
    if (mask_on(mask, mask_i32, m)) {
      v[2] += ent[m];
      v[3] += static_cast<double>(w[m / T]) * ent[m];
    }
  }
  const bool no[4] = {false, false, false, false};
  block_reduce<4>(v, no, no);
  if (threadIdx.x == 0)
    for (int q = 0; q < 4; ++q) out[q] = v[q];
}

__global__ void ge_kernel(float* G, float* E, const float* dlogp, const float* sft_mask, float sft_coef, const float* mask, const int32_t* mask_i32,
                          const float* w, float entropy_coef, int64_t M, int64_t T) {
  for (int64_t m = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; m < M; m += int64_t(gridDim.x) * blockDim.x) {
    float g = dlogp[m];
    if (sft_mask && sft_mask[m] != 0.f) g += sft_coef;
    G[m] = g;
    E[m] = mask_on(mask, mask_i32, m) ? -entropy_coef * w[m / T] : 0.f;
  }
}

// One block per chunk row: logits → dL/dz in place.
__global__ void chunk_grad_kernel(float* buf, const float* logz, const float* ubar, const float* G, const float* E, const int32_t* targets, int64_t r0,
                                  int64_t mc, int64_t v0, int64_t vc, float inv_tau) {
  for (int64_t j = blockIdx.x; j < mc; j += gridDim.x) {
    const int64_t m = r0 + j;
    float* row = buf + j * vc;
    const float g = G[m], e = E[m], lz = logz[m], ub = ubar[m];
    const int32_t y = targets[m];
    for (int64_t q = threadIdx.x; q < vc; q += blockDim.x) {
      if (g == 0.f && e == 0.f) {
        row[q] = 0.f;
        continue;
      }
      const float x = row[q];
      const float p = expf(x - lz);
      float dz = (-g * p - e * p * (x - ub)) * inv_tau;
      if (v0 + q == y) dz += g * inv_tau;
      row[q] = dz;
    }
  }
}

}  // namespace

void pg_loss(float* loss, float* dlogp, double* stats, const PgLossInputs& in) {
  check_pg_inputs(in, true);
  QGS_REQUIRE(loss != nullptr && stats != nullptr, "pg_loss: expected loss and stats outputs");
  if (in.n == 0 || in.t == 0) {
    for (int k = 0; k < kPgStatCount; ++k) stats[k] = 0;
    stats[kStatRatioMin] = std::numeric_limits<double>::infinity();
    stats[kStatRatioMax] = -std::numeric_limits<double>::infinity();
    stats[kStatNormalizer] = in.normalizer;
    memset_device(loss, 0, sizeof(float));
    return;
  }
  DeviceBuffer w(static_cast<size_t>(in.n) * sizeof(float));
  run_pg(loss, dlogp, stats, in, w);
}

void scale_inplace(float* dst, const float* scale, int64_t n) {
  QGS_REQUIRE(n >= 0, "scale_inplace: expected n >= 0");
  if (n == 0) return;
  scale_kernel<<<grid_for((n + 255) / 256), 256>>>(dst, scale, n);
  check_last("scale_inplace");
}

int64_t fused_linear_pg(float* loss, float* logp_out, float* dhidden, float* dweight, double* stats, const FusedLinearPgInputs& in) {
  const int64_t M = in.m, D = in.d, V = in.v;
  QGS_REQUIRE(M >= 0 && D >= 1 && V >= 1, "fused_linear_pg: expected M >= 0, D >= 1, V >= 1, got M=" + std::to_string(M) + ", D=" + std::to_string(D) + ", V=" + std::to_string(V));
  QGS_REQUIRE(in.pg.n * in.pg.t == M, "targets: expected N·T = M = " + std::to_string(M));
  QGS_REQUIRE(std::isfinite(in.temperature) && in.temperature > 0.f, "temperature: expected a finite number > 0, got " + std::to_string(in.temperature));
  QGS_REQUIRE(std::isfinite(in.sft_weight) && in.sft_weight >= 0.f, "sftWeight: expected a finite number >= 0, got " + std::to_string(in.sft_weight));
  QGS_REQUIRE(in.sft_weight == 0.f || in.sft_mask != nullptr || M == 0, "sftMask: expected a [M] mask when sftWeight > 0, got none");
  QGS_REQUIRE(in.sft_normalizer == 0.0 || (std::isfinite(in.sft_normalizer) && in.sft_normalizer > 0.0), "sftNormalizer: expected a finite number > 0");
  QGS_REQUIRE(std::isfinite(in.entropy_coef), "entropyCoef: expected a finite number");
  QGS_REQUIRE(loss != nullptr && stats != nullptr, "fused_linear_pg: expected loss and stats outputs");
  check_pg_inputs(in.pg, false);
  if (dhidden && M > 0) memset_device(dhidden, 0, static_cast<size_t>(M * D) * 4);
  if (dweight) memset_device(dweight, 0, static_cast<size_t>(V * D) * 4);
  if (M == 0) {
    for (int k = 0; k < kPgStatCount; ++k) stats[k] = 0;
    memset_device(loss, 0, sizeof(float));
    return 0;
  }
  // Chunks are capped so the tiled GEMM grid stays within launch limits for any M and V.
  const int64_t Mc = std::max<int64_t>(1, std::min<int64_t>({M, in.row_chunk > 0 ? in.row_chunk : 1024, 65535 * kTile}));
  const int64_t Vc = std::max<int64_t>(1, std::min<int64_t>({V, in.vocab_chunk > 0 ? in.vocab_chunk : 8192, 65535 * kTile}));
  const float inv_tau = 1.f / in.temperature;
  const bool want_grad = dhidden != nullptr || dweight != nullptr;
  const size_t m8 = static_cast<size_t>(M) * 8, m4 = static_cast<size_t>(M) * 4;
  DeviceBuffer buf(static_cast<size_t>(Mc * Vc) * 4), rmax(m8), rsum(m8), rz(m8), tgt(m4), logp(m4), logz(m4), ubar(m4), ent(m4), bad(8),
      sums(4 * sizeof(double)), w(static_cast<size_t>(in.pg.n) * 4), dlogp(m4), G(m4), E(m4);
  const int64_t workspace = static_cast<int64_t>(Mc * Vc * 4 + 3 * m8 + 9 * m4 + in.pg.n * 4 + 40);
  memset_device(tgt.p, 0, m4);
  memset_device(bad.p, 0, 8);

  for (int64_t r0 = 0; r0 < M; r0 += Mc) {
    const int64_t mc = std::min(Mc, M - r0);
    for (int64_t v0 = 0; v0 < V; v0 += Vc) {
      const int64_t vc = std::min(Vc, V - v0);
      gemm(buf.as<float>(), in.hidden + r0 * D, in.weight + v0 * D, mc, vc, D, D, 1, 1, D, vc, inv_tau, 0.f, "fused_linear_pg logits gemm");
      chunk_lse_kernel<<<grid_for(mc), kThreads>>>(rmax.as<double>(), rsum.as<double>(), rz.as<double>(), tgt.as<float>(), buf.as<float>(), in.targets, r0, mc,
                                                   v0, vc);
      check_last("fused_linear_pg chunk_lse_kernel");
    }
  }
  finalize_rows_kernel<<<grid_for((M + 255) / 256), 256>>>(logp.as<float>(), logz.as<float>(), ubar.as<float>(), ent.as<float>(), bad.as<int32_t>(),
                                                           rmax.as<double>(), rsum.as<double>(), rz.as<double>(), tgt.as<float>(), in.targets, in.pg.mask,
                                                           in.pg.mask_i32, in.sft_mask, M, V);
  check_last("fused_linear_pg finalize_rows_kernel");
  int32_t bad_h[2] = {0, 0};
  copy_d2h(bad_h, bad.p, 8);
  if (bad_h[1] > 0) throw KernelError("targets: expected values in [0, " + std::to_string(V) + ") at masked-in rows, got " + std::to_string(bad_h[1]) + " rows outside");
  if (bad_h[0] > 0) throw KernelError("hidden, weight: expected finite values, got " + std::to_string(bad_h[0]) + " rows with a non-finite log-probability");
  if (logp_out) copy_d2d(logp_out, logp.p, m4);

  PgLossInputs pg = in.pg;
  pg.logp = logp.as<float>();
  DeviceBuffer pg_loss_dev(4);
  run_pg(pg_loss_dev.as<float>(), want_grad ? dlogp.as<float>() : nullptr, stats, pg, w);
  float pg_loss_h = 0.f;
  copy_d2h(&pg_loss_h, pg_loss_dev.p, 4);

  fused_sums_kernel<<<1, kThreads>>>(sums.as<double>(), logp.as<float>(), ent.as<float>(), in.sft_mask, pg.mask, pg.mask_i32, w.as<float>(), M, pg.t);
  check_last("fused_linear_pg fused_sums_kernel");
  double s[4];
  copy_d2h(s, sums.p, sizeof s);
  const double sft_norm = in.sft_normalizer > 0 ? in.sft_normalizer : s[0];
  const double sft_loss = (in.sft_weight > 0 && sft_norm > 0) ? -in.sft_weight * s[1] / sft_norm : 0.0;
  const double ent_loss = -static_cast<double>(in.entropy_coef) * s[3];
  stats[kStatEntropy] = s[2];
  stats[kStatSftLoss] = sft_loss;
  stats[kStatSftTokens] = s[0];
  const float total = static_cast<float>(static_cast<double>(pg_loss_h) + sft_loss + ent_loss);
  copy_h2d(loss, &total, 4);
  if (!want_grad) return workspace;

  const float sft_coef = (in.sft_mask != nullptr && sft_norm > 0) ? static_cast<float>(-in.sft_weight / sft_norm) : 0.f;
  ge_kernel<<<grid_for((M + 255) / 256), 256>>>(G.as<float>(), E.as<float>(), dlogp.as<float>(), in.sft_mask, sft_coef, pg.mask, pg.mask_i32, w.as<float>(),
                                                in.entropy_coef, M, pg.t);
  check_last("fused_linear_pg ge_kernel");
  for (int64_t r0 = 0; r0 < M; r0 += Mc) {
    const int64_t mc = std::min(Mc, M - r0);
    for (int64_t v0 = 0; v0 < V; v0 += Vc) {
      const int64_t vc = std::min(Vc, V - v0);
      gemm(buf.as<float>(), in.hidden + r0 * D, in.weight + v0 * D, mc, vc, D, D, 1, 1, D, vc, inv_tau, 0.f, "fused_linear_pg logits gemm (pass 2)");
      chunk_grad_kernel<<<grid_for(mc), kThreads>>>(buf.as<float>(), logz.as<float>(), ubar.as<float>(), G.as<float>(), E.as<float>(), in.targets, r0, mc, v0,
                                                    vc, inv_tau);
      check_last("fused_linear_pg chunk_grad_kernel");
      // dhidden[r0:r0+mc, :] += dZ [mc, vc] · W[v0:v0+vc, :]
      if (dhidden) gemm(dhidden + r0 * D, buf.as<float>(), in.weight + v0 * D, mc, D, vc, vc, 1, D, 1, D, 1.f, 1.f, "fused_linear_pg dhidden gemm");
      // dweight[v0:v0+vc, :] += dZᵀ [vc, mc] · hidden[r0:r0+mc, :]
      if (dweight) gemm(dweight + v0 * D, buf.as<float>(), in.hidden + r0 * D, vc, D, mc, 1, vc, D, 1, D, 1.f, 1.f, "fused_linear_pg dweight gemm");
    }
  }
  return workspace;
}

}  // namespace qgs::cuda
