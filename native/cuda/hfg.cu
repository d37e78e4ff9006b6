// HFG grouped attention on CUDA (contract in qgs/hfg.h). Many rows per block: each warp owns one
// unit of work and a block runs 8 warps; grid-stride loops cover any N (no grid-size limits).
//   forward : one warp per query row (n, h, i). Lanes hold the head dimension (c = lane + 32·t,
//             d ≤ 128 → ≤ 4 registers); keys are visited once with an online softmax (running max
//             and sum), so no score buffer is needed and k/v rows are read coalesced.
//   backward: one warp per (n, h) pair, so dk/dv (summed over the Tq queries) have a single writer
//             and need no atomics. Per query the warp recomputes scores and dP = dO·V into a small
//             per-warp shared buffer (Tk ≤ 64), turns them into P and dS with lanes over keys, then
//             accumulates dq (registers) and dk, dv (global, same lane ↔ element mapping as the
//             zero-fill, so each element has one owning thread and no synchronisation is needed).
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>

#include "qgs/cuda_runtime.h"
#include "qgs/hfg.h"

namespace qgs::cuda {
namespace {

constexpr int kWarpsPerBlock = 8;
constexpr int kThreads = kWarpsPerBlock * 32;
constexpr int kRegs = static_cast<int>(kHfgMaxHeadDim / 32);  // 4
constexpr unsigned kFull = 0xffffffffu;
static_assert(kHfgMaxKeys <= 64, "the backward softmax keeps two key slots per lane");
static_assert(kHfgMaxHeadDim <= 32 * kRegs, "a query row must fit in kRegs registers per lane");

__device__ __forceinline__ float warp_sum(float x) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) x += __shfl_xor_sync(kFull, x, o);
  return x;
}

__device__ __forceinline__ float warp_max(float x) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) x = fmaxf(x, __shfl_xor_sync(kFull, x, o));
  return x;
}

__global__ void __launch_bounds__(kThreads)
    fwd_kernel(float* __restrict__ out, const float* __restrict__ q, const float* __restrict__ k,
               const float* __restrict__ v, const float* __restrict__ mask, int64_t N, int64_t H, int64_t Tq,
               int64_t Tk, int64_t d, float scale) {
  const int lane = threadIdx.x & 31;
  const int64_t rows = N * H * Tq;
  const int64_t nwarps = (static_cast<int64_t>(gridDim.x) * blockDim.x) >> 5;
  for (int64_t r = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) >> 5; r < rows; r += nwarps) {
    const int64_t nh = r / Tq;
    const int64_t n = nh / H;
    const float* qi = q + r * d;
    const float* kr = k + nh * Tk * d;
    const float* vr = v + nh * Tk * d;
    float qreg[kRegs], acc[kRegs];
#pragma unroll
    for (int t = 0; t < kRegs; ++t) {
      const int64_t c = lane + 32 * t;
      qreg[t] = c < d ? qi[c] : 0.f;
      acc[t] = 0.f;
    }
    float m = -INFINITY, l = 0.f;
    for (int64_t j = 0; j < Tk; ++j) {
      if (mask != nullptr && mask[n * Tk + j] == 0.f) continue;  // same branch for the whole warp
      float part = 0.f;
#pragma unroll
      for (int t = 0; t < kRegs; ++t) {
        const int64_t c = lane + 32 * t;
        if (c < d) part += qreg[t] * kr[j * d + c];
      }
      const float s = warp_sum(part) * scale;
      const float m_new = fmaxf(m, s);
      const float corr = expf(m - m_new);  // 0 on the first present key (m = -inf)
      const float p = expf(s - m_new);
      l = l * corr + p;
#pragma unroll
      for (int t = 0; t < kRegs; ++t) {
        const int64_t c = lane + 32 * t;
        acc[t] = acc[t] * corr + (c < d ? p * vr[j * d + c] : 0.f);
      }
      m = m_new;
    }
    const float inv = l > 0.f ? 1.f / l : 0.f;  // fully masked row: zeros, not NaN
#pragma unroll
    for (int t = 0; t < kRegs; ++t) {
      const int64_t c = lane + 32 * t;
      if (c < d) out[r * d + c] = acc[t] * inv;
    }
  }
}

__global__ void __launch_bounds__(kThreads)
    bwd_kernel(float* __restrict__ dq, float* __restrict__ dk, float* __restrict__ dv, const float* __restrict__ dout,
               const float* __restrict__ q, const float* __restrict__ k, const float* __restrict__ v,
               const float* __restrict__ mask, int64_t N, int64_t H, int64_t Tq, int64_t Tk, int64_t d, float scale) {
  __shared__ float sh_p[kWarpsPerBlock][kHfgMaxKeys];
  __shared__ float sh_ds[kWarpsPerBlock][kHfgMaxKeys];
  const int lane = threadIdx.x & 31;
  const int w = threadIdx.x >> 5;
  float* p = sh_p[w];
  float* ds = sh_ds[w];
  const int64_t pairs = N * H;
  const int64_t nwarps = (static_cast<int64_t>(gridDim.x) * blockDim.x) >> 5;
  for (int64_t nh = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) >> 5; nh < pairs; nh += nwarps) {
    const int64_t n = nh / H;
    const float* kr = k + nh * Tk * d;
    const float* vr = v + nh * Tk * d;
    float* dkr = dk + nh * Tk * d;
    float* dvr = dv + nh * Tk * d;
    for (int64_t j = 0; j < Tk; ++j) {
#pragma unroll
      for (int t = 0; t < kRegs; ++t) {
        const int64_t c = lane + 32 * t;
        if (c < d) dkr[j * d + c] = 0.f, dvr[j * d + c] = 0.f;
      }
    }
    for (int64_t i = 0; i < Tq; ++i) {
      const int64_t qo = (nh * Tq + i) * d;
      float qreg[kRegs], greg[kRegs], dqreg[kRegs];
#pragma unroll
      for (int t = 0; t < kRegs; ++t) {
        const int64_t c = lane + 32 * t;
        qreg[t] = c < d ? q[qo + c] : 0.f;
        greg[t] = c < d ? dout[qo + c] : 0.f;
        dqreg[t] = 0.f;
      }
      // Scores (into p) and dP = dO·v_j (into ds), lanes over d, one warp reduction each.
      for (int64_t j = 0; j < Tk; ++j) {
        float s = -INFINITY, g = 0.f;
        if (mask == nullptr || mask[n * Tk + j] != 0.f) {
          float ps = 0.f, pg = 0.f;
#pragma unroll
          for (int t = 0; t < kRegs; ++t) {
            const int64_t c = lane + 32 * t;
            if (c < d) {
              ps += qreg[t] * kr[j * d + c];
              pg += greg[t] * vr[j * d + c];
            }
          }
          s = warp_sum(ps) * scale;
          g = warp_sum(pg);
        }
        if (lane == 0) p[j] = s, ds[j] = g;
      }
      __syncwarp();
      // Softmax and dS with lanes over keys (Tk ≤ 64 → two keys per lane).
      float mx = -INFINITY;
      for (int64_t j = lane; j < Tk; j += 32) mx = fmaxf(mx, p[j]);
      mx = warp_max(mx);
      if (mx != -INFINITY) {
        // Two key slots per lane (j0 = lane, j1 = lane + 32), kept in named registers.
        const int64_t j0 = lane, j1 = lane + 32;
        const float e0 = j0 < Tk ? expf(p[j0] - mx) : 0.f;
        const float e1 = j1 < Tk ? expf(p[j1] - mx) : 0.f;
        const float inv = 1.f / warp_sum(e0 + e1);
        const float p0 = e0 * inv, p1 = e1 * inv;
        const float g0 = j0 < Tk ? ds[j0] : 0.f, g1 = j1 < Tk ? ds[j1] : 0.f;
        const float D = warp_sum(p0 * g0 + p1 * g1);
        if (j0 < Tk) p[j0] = p0, ds[j0] = scale * p0 * (g0 - D);
        if (j1 < Tk) p[j1] = p1, ds[j1] = scale * p1 * (g1 - D);
        __syncwarp();
        for (int64_t j = 0; j < Tk; ++j) {
          const float pj = p[j], a = ds[j];
          if (pj == 0.f) continue;  // masked or underflowed key: contributes nothing (uniform branch)
#pragma unroll
          for (int t = 0; t < kRegs; ++t) {
            const int64_t c = lane + 32 * t;
            if (c < d) {
              dqreg[t] += a * kr[j * d + c];
              dkr[j * d + c] += a * qreg[t];
              dvr[j * d + c] += pj * greg[t];
            }
          }
        }
      }
#pragma unroll
      for (int t = 0; t < kRegs; ++t) {
        const int64_t c = lane + 32 * t;
        if (c < d) dq[qo + c] = dqreg[t];
      }
      __syncwarp();  // p/ds are rewritten by the next query
    }
  }
}

unsigned blocks_for(int64_t warps_needed) {
  const int64_t b = (warps_needed + kWarpsPerBlock - 1) / kWarpsPerBlock;
  // Grid-stride loops cover the rest; this cap is far above what fills any current GPU.
  return static_cast<unsigned>(std::max<int64_t>(1, std::min<int64_t>(b, int64_t(1) << 20)));
}

}  // namespace

void grouped_attention_forward(float* out, const float* q, const float* k, const float* v, const float* key_mask,
                               int64_t N, int64_t H, int64_t Tq, int64_t Tk, int64_t d, float scale, void* stream) {
  hfg_check_sizes(N, H, Tq, Tk, d);
  QGS_REQUIRE(std::isfinite(scale), "groupedAttention: scale must be finite");
  if (N == 0) return;
  QGS_REQUIRE(out && q && k && v, "groupedAttention: out, q, k and v must be non-null");
  fwd_kernel<<<blocks_for(N * H * Tq), kThreads, 0, static_cast<cudaStream_t>(stream)>>>(out, q, k, v, key_mask, N, H,
                                                                                          Tq, Tk, d, scale);
  check_last("groupedAttention forward kernel");
}

void grouped_attention_backward(float* dq, float* dk, float* dv, const float* dout, const float* q, const float* k,
                                const float* v, const float* key_mask, int64_t N, int64_t H, int64_t Tq, int64_t Tk,
                                int64_t d, float scale, void* stream) {
  hfg_check_sizes(N, H, Tq, Tk, d);
  QGS_REQUIRE(std::isfinite(scale), "groupedAttention backward: scale must be finite");
  if (N == 0) return;
  QGS_REQUIRE(dq && dk && dv && dout && q && k && v, "groupedAttention backward: dq, dk, dv, dout, q, k and v must be non-null");
  bwd_kernel<<<blocks_for(N * H), kThreads, 0, static_cast<cudaStream_t>(stream)>>>(dq, dk, dv, dout, q, k, v, key_mask,
                                                                                     N, H, Tq, Tk, d, scale);
  check_last("groupedAttention backward kernel");
}

}  // namespace qgs::cuda
