// CUDA kernel of HSTU's quadratic pointwise attention: same contract as native/cpu/hstu.cpp
// (qgs/hstu.h). Tiles of 32 queries × 32 keys in shared memory over the causal triangle only;
// forward grid = (sequence·head, query block); backward = one kernel over query blocks (dQ) and one
// over key blocks (dK, dV, bias gradients), each recomputing the scores (nothing saved by the forward),
// so no output element is written by two blocks. Bias gradients use float atomics (order-dependent
// rounding). Status: compiled for sm_80/89/90, not run (no GPU in this workplace).
#include <cuda_runtime.h>

#include <cmath>
#include <string>
#include <vector>

#include "qgs/common.h"
#include "qgs/cuda_runtime.h"
#include "qgs/hstu.h"

namespace qgs::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int kB = 32;  // rows per query / key tile

struct Dims {
  int64_t heads, dqk, dv;
  float alpha, inv_n;
  int64_t num_pos, num_time;
  float time_div;
};

struct DevBuf {
  void* p = nullptr;
  explicit DevBuf(size_t bytes) { p = bytes ? malloc_device(bytes) : nullptr; }
  ~DevBuf() { free_device(p); }
  DevBuf(const DevBuf&) = delete;
  DevBuf& operator=(const DevBuf&) = delete;
  template <typename T>
  T* as() const { return static_cast<T*>(p); }
};

__device__ __forceinline__ int64_t bucket(const Dims& d, int64_t dt) {
  double x = static_cast<double>(dt < 0 ? -dt : dt);
  if (x < 1) x = 1;
  int64_t b = static_cast<int64_t>(floor(log(x) / static_cast<double>(d.time_div)));
  return b < d.num_time - 1 ? b : d.num_time - 1;
}

__device__ __forceinline__ float bias_at(const Dims& d, const float* pos, const float* tw, const int32_t* ts, int64_t start,
                                         int64_t qi, int64_t kj) {
  float b = 0.f;
  if (pos) b += pos[qi - kj < d.num_pos - 1 ? qi - kj : d.num_pos - 1];
  if (tw) b += tw[bucket(d, static_cast<int64_t>(ts[start + qi]) - ts[start + kj])];
  return b;
}

// Loads rows [row0, row0+n) of head h (width w, stride H·w) into a [kB, w] tile, zero rows past n.
__device__ void load_tile(float* dst, const float* src, const Dims& d, int64_t w, int64_t row0, int64_t h, int n) {
  for (int64_t e = threadIdx.x; e < kB * w; e += blockDim.x) {
    const int64_t r = e / w, c = e % w;
    dst[e] = r < n ? src[((row0 + r) * d.heads + h) * w + c] : 0.f;
  }
}

// x = α q_i·k_j + bias for the tile (i < nq, j < nk, causal); P = SiLU(x)·inv_n, and with dO/V also
// dS = (dO_i·v_j)·inv_n·SiLU'(x). Masked entries are 0.
__device__ void tile_scores(float* P, float* dS, const float* Q, const float* K, const float* dO, const float* V, const Dims& d,
                            const float* pos, const float* tw, const int32_t* ts, int64_t start, int64_t qb, int nq, int64_t kb,
                            int nk) {
  for (int e = threadIdx.x; e < kB * kB; e += blockDim.x) {
    const int i = e / kB, j = e % kB;
    float p = 0.f, ds = 0.f;
    if (i < nq && j < nk && kb + j <= qb + i) {
      float s = 0.f;
      for (int64_t c = 0; c < d.dqk; ++c) s += Q[i * d.dqk + c] * K[j * d.dqk + c];
      const float x = d.alpha * s + bias_at(d, pos, tw, ts, start, qb + i, kb + j);
      const float sg = 1.f / (1.f + expf(-x));
      p = x * sg * d.inv_n;
      if (dS) {
        float dp = 0.f;
        for (int64_t c = 0; c < d.dv; ++c) dp += dO[i * d.dv + c] * V[j * d.dv + c];
        ds = dp * d.inv_n * sg * (1.f + x * (1.f - sg));
      }
    }
    P[e] = p;
    if (dS) dS[e] = ds;
  }
}

__global__ void hstu_fwd_kernel(float* out, const float* q, const float* k, const float* v, const float* pos, const float* tw,
                                const int32_t* ts, const int32_t* starts, const int32_t* lens, Dims d) {
  extern __shared__ __align__(16) float sm[];
  const int64_t item = blockIdx.x, b = item / d.heads, h = item % d.heads;
  const int64_t start = starts[b], len = lens[b], qb = int64_t(blockIdx.y) * kB;
  if (qb >= len) return;
  float* Q = sm;
  float* K = Q + kB * d.dqk;
  float* V = K + kB * d.dqk;
  float* P = V + kB * d.dv;
  float* O = P + kB * kB;
  const int nq = static_cast<int>(len - qb < kB ? len - qb : kB);
  load_tile(Q, q, d, d.dqk, start + qb, h, nq);
  for (int64_t e = threadIdx.x; e < kB * d.dv; e += blockDim.x) O[e] = 0.f;
  __syncthreads();
  for (int64_t kb = 0; kb <= qb; kb += kB) {
    const int nk = static_cast<int>(len - kb < kB ? len - kb : kB);
    load_tile(K, k, d, d.dqk, start + kb, h, nk);
    load_tile(V, v, d, d.dv, start + kb, h, nk);
    __syncthreads();
    tile_scores(P, nullptr, Q, K, nullptr, nullptr, d, pos, tw, ts, start, qb, nq, kb, nk);
    __syncthreads();
    for (int64_t e = threadIdx.x; e < kB * d.dv; e += blockDim.x) {
      const int64_t i = e / d.dv, c = e % d.dv;
      float acc = O[e];
      for (int j = 0; j < nk; ++j) acc += P[i * kB + j] * V[j * d.dv + c];
      O[e] = acc;
    }
    __syncthreads();
  }
  for (int64_t e = threadIdx.x; e < nq * d.dv; e += blockDim.x) {
    const int64_t i = e / d.dv, c = e % d.dv;
    out[((start + qb + i) * d.heads + h) * d.dv + c] = O[e];
  }
}

__global__ void hstu_bwd_dq_kernel(float* dq, const float* q, const float* k, const float* v, const float* dout, const float* pos,
                                   const float* tw, const int32_t* ts, const int32_t* starts, const int32_t* lens, Dims d) {
  extern __shared__ __align__(16) float sm[];
  const int64_t item = blockIdx.x, b = item / d.heads, h = item % d.heads;
  const int64_t start = starts[b], len = lens[b], qb = int64_t(blockIdx.y) * kB;
  if (qb >= len) return;
  float* Q = sm;
  float* dO = Q + kB * d.dqk;
  float* K = dO + kB * d.dv;
  float* V = K + kB * d.dqk;
  float* P = V + kB * d.dv;
  float* dS = P + kB * kB;
  float* dQ = dS + kB * kB;
  const int nq = static_cast<int>(len - qb < kB ? len - qb : kB);
  load_tile(Q, q, d, d.dqk, start + qb, h, nq);
  load_tile(dO, dout, d, d.dv, start + qb, h, nq);
  for (int64_t e = threadIdx.x; e < kB * d.dqk; e += blockDim.x) dQ[e] = 0.f;
  __syncthreads();
  for (int64_t kb = 0; kb <= qb; kb += kB) {
    const int nk = static_cast<int>(len - kb < kB ? len - kb : kB);
    load_tile(K, k, d, d.dqk, start + kb, h, nk);
    load_tile(V, v, d, d.dv, start + kb, h, nk);
    __syncthreads();
    tile_scores(P, dS, Q, K, dO, V, d, pos, tw, ts, start, qb, nq, kb, nk);
    __syncthreads();
    for (int64_t e = threadIdx.x; e < kB * d.dqk; e += blockDim.x) {
      const int64_t i = e / d.dqk, c = e % d.dqk;
      float acc = 0.f;
      for (int j = 0; j < nk; ++j) acc += dS[i * kB + j] * K[j * d.dqk + c];
      dQ[e] += d.alpha * acc;
    }
    __syncthreads();
  }
  for (int64_t e = threadIdx.x; e < nq * d.dqk; e += blockDim.x) {
    const int64_t i = e / d.dqk, c = e % d.dqk;
    dq[((start + qb + i) * d.heads + h) * d.dqk + c] = dQ[e];
  }
}

__global__ void hstu_bwd_dkv_kernel(float* dk, float* dv, float* dpos, float* dtime, const float* q, const float* k, const float* v,
                                    const float* dout, const float* pos, const float* tw, const int32_t* ts, const int32_t* starts,
                                    const int32_t* lens, Dims d) {
  extern __shared__ __align__(16) float sm[];
  const int64_t item = blockIdx.x, b = item / d.heads, h = item % d.heads;
  const int64_t start = starts[b], len = lens[b], kb = int64_t(blockIdx.y) * kB;
  if (kb >= len) return;
  float* K = sm;
  float* V = K + kB * d.dqk;
  float* Q = V + kB * d.dv;
  float* dO = Q + kB * d.dqk;
  float* P = dO + kB * d.dv;
  float* dS = P + kB * kB;
  float* dK = dS + kB * kB;
  float* dV = dK + kB * d.dqk;
  const int nk = static_cast<int>(len - kb < kB ? len - kb : kB);
  load_tile(K, k, d, d.dqk, start + kb, h, nk);
  load_tile(V, v, d, d.dv, start + kb, h, nk);
  for (int64_t e = threadIdx.x; e < kB * d.dqk; e += blockDim.x) dK[e] = 0.f;
  for (int64_t e = threadIdx.x; e < kB * d.dv; e += blockDim.x) dV[e] = 0.f;
  __syncthreads();
  for (int64_t qb = kb; qb < len; qb += kB) {
    const int nq = static_cast<int>(len - qb < kB ? len - qb : kB);
    load_tile(Q, q, d, d.dqk, start + qb, h, nq);
    load_tile(dO, dout, d, d.dv, start + qb, h, nq);
    __syncthreads();
    tile_scores(P, dS, Q, K, dO, V, d, pos, tw, ts, start, qb, nq, kb, nk);
    __syncthreads();
    for (int64_t e = threadIdx.x; e < kB * d.dv; e += blockDim.x) {
      const int64_t j = e / d.dv, c = e % d.dv;
      float acc = 0.f;
      for (int i = 0; i < nq; ++i) acc += P[i * kB + j] * dO[i * d.dv + c];
      dV[e] += acc;
    }
    for (int64_t e = threadIdx.x; e < kB * d.dqk; e += blockDim.x) {
      const int64_t j = e / d.dqk, c = e % d.dqk;
      float acc = 0.f;
      for (int i = 0; i < nq; ++i) acc += dS[i * kB + j] * Q[i * d.dqk + c];
      dK[e] += d.alpha * acc;
    }
    if (dpos || dtime) {
      for (int e = threadIdx.x; e < kB * kB; e += blockDim.x) {
        const int i = e / kB, j = e % kB;
        if (i < nq && j < nk && kb + j <= qb + i) {
          const int64_t qi = qb + i, kj = kb + j;
          if (dpos) atomicAdd(&dpos[qi - kj < d.num_pos - 1 ? qi - kj : d.num_pos - 1], dS[e]);
          if (dtime) atomicAdd(&dtime[bucket(d, static_cast<int64_t>(ts[start + qi]) - ts[start + kj])], dS[e]);
        }
      }
    }
    __syncthreads();
  }
  for (int64_t e = threadIdx.x; e < nk * d.dqk; e += blockDim.x) {
    const int64_t j = e / d.dqk, c = e % d.dqk;
    if (dk) dk[((start + kb + j) * d.heads + h) * d.dqk + c] = dK[e];
  }
  for (int64_t e = threadIdx.x; e < nk * d.dv; e += blockDim.x) {
    const int64_t j = e / d.dv, c = e % d.dv;
    if (dv) dv[((start + kb + j) * d.heads + h) * d.dv + c] = dV[e];
  }
}

struct Prepared {
  std::vector<int32_t> starts, lens;
  int64_t rows = 0, max_len = 0;
};

Prepared prepare(const HstuConfig& c) {
  Prepared p;
  p.rows = hstu_rows(c);
  for (int64_t b = 0; b < c.batch; ++b) {
    int64_t s = c.offsets ? c.offsets[b] : b * c.max_len;
    int64_t l = c.offsets ? c.offsets[b + 1] - c.offsets[b] : (c.lengths ? c.lengths[b] : c.max_len);
    p.starts.push_back(static_cast<int32_t>(s));
    p.lens.push_back(static_cast<int32_t>(l));
    p.max_len = std::max(p.max_len, l);
  }
  return p;
}

template <typename Kern>
void set_smem(Kern kernel, size_t bytes, const char* what) {
  cudaError_t e = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes));
  if (e != cudaSuccess) throw KernelError(std::string(what) + ": cudaFuncSetAttribute: " + cudaGetErrorName(e) + ": " + cudaGetErrorString(e));
}

Dims dims_of(const HstuConfig& c) { return Dims{c.heads, c.dqk, c.dv, c.alpha, c.inv_n, c.num_pos, c.num_time, c.time_div}; }

void check_tables(const HstuConfig& c, const float* pos, const float* tw, const int32_t* ts, int64_t rows) {
  QGS_REQUIRE(c.num_pos == 0 || pos != nullptr, "pos_bias: missing (num_pos > 0)");
  QGS_REQUIRE(c.num_time == 0 || (tw != nullptr && (ts != nullptr || rows == 0)), "time_bias / timestamps: missing (num_time > 0)");
}

}  // namespace

void hstu_forward(float* out, const float* q, const float* k, const float* v, const float* pos_bias, const float* time_bias,
                  const int32_t* ts, const HstuConfig& cfg) {
  Prepared p = prepare(cfg);
  check_tables(cfg, pos_bias, time_bias, ts, p.rows);
  if (p.rows > 0) memset_device(out, 0, sizeof(float) * p.rows * cfg.heads * cfg.dv);
  const int64_t items = cfg.batch * cfg.heads;
  if (items == 0 || p.max_len == 0) return;
  DevBuf starts(sizeof(int32_t) * cfg.batch), lens(sizeof(int32_t) * cfg.batch);
  copy_h2d(starts.p, p.starts.data(), sizeof(int32_t) * cfg.batch);
  copy_h2d(lens.p, p.lens.data(), sizeof(int32_t) * cfg.batch);
  const size_t bytes = sizeof(float) * (2 * kB * cfg.dqk + 2 * kB * cfg.dv + kB * kB);
  set_smem(hstu_fwd_kernel, bytes, "hstu_fwd_kernel");
  QGS_REQUIRE(items <= INT32_MAX && (p.max_len + kB - 1) / kB <= 65535, "hstu (cuda): too many sequences·heads or query blocks");
  dim3 grid(static_cast<unsigned>(items), static_cast<unsigned>((p.max_len + kB - 1) / kB));
  hstu_fwd_kernel<<<grid, kThreads, bytes>>>(out, q, k, v, cfg.num_pos ? pos_bias : nullptr, cfg.num_time ? time_bias : nullptr, ts,
                                             starts.as<int32_t>(), lens.as<int32_t>(), dims_of(cfg));
  check_last("hstu_fwd_kernel");
  synchronize();
}

void hstu_backward(float* dq, float* dk, float* dv, float* dpos, float* dtime, const float* q, const float* k, const float* v,
                   const float* pos_bias, const float* time_bias, const int32_t* ts, const float* dout, const HstuConfig& cfg) {
  Prepared p = prepare(cfg);
  check_tables(cfg, pos_bias, time_bias, ts, p.rows);
  QGS_REQUIRE(dout != nullptr || p.rows == 0, "dout: missing");
  const int64_t nqk = p.rows * cfg.heads * cfg.dqk, nv = p.rows * cfg.heads * cfg.dv;
  if (dq && nqk) memset_device(dq, 0, sizeof(float) * nqk);
  if (dk && nqk) memset_device(dk, 0, sizeof(float) * nqk);
  if (dv && nv) memset_device(dv, 0, sizeof(float) * nv);
  if (dpos && cfg.num_pos) memset_device(dpos, 0, sizeof(float) * cfg.num_pos);
  if (dtime && cfg.num_time) memset_device(dtime, 0, sizeof(float) * cfg.num_time);
  const int64_t items = cfg.batch * cfg.heads;
  if (items == 0 || p.max_len == 0) return;
  DevBuf starts(sizeof(int32_t) * cfg.batch), lens(sizeof(int32_t) * cfg.batch);
  copy_h2d(starts.p, p.starts.data(), sizeof(int32_t) * cfg.batch);
  copy_h2d(lens.p, p.lens.data(), sizeof(int32_t) * cfg.batch);
  QGS_REQUIRE(items <= INT32_MAX && (p.max_len + kB - 1) / kB <= 65535, "hstu (cuda): too many sequences·heads or query blocks");
  dim3 grid(static_cast<unsigned>(items), static_cast<unsigned>((p.max_len + kB - 1) / kB));
  const float* pos = cfg.num_pos ? pos_bias : nullptr;
  const float* tw = cfg.num_time ? time_bias : nullptr;
  const Dims d = dims_of(cfg);
  const size_t bytes = sizeof(float) * (3 * kB * cfg.dqk + 2 * kB * cfg.dv + 2 * kB * kB);
  if (dq) {
    set_smem(hstu_bwd_dq_kernel, bytes, "hstu_bwd_dq_kernel");
    hstu_bwd_dq_kernel<<<grid, kThreads, bytes>>>(dq, q, k, v, dout, pos, tw, ts, starts.as<int32_t>(), lens.as<int32_t>(), d);
    check_last("hstu_bwd_dq_kernel");
  }
  if (dk || dv || dpos || dtime) {
    const size_t bytes2 = sizeof(float) * (3 * kB * cfg.dqk + 3 * kB * cfg.dv + 2 * kB * kB);
    set_smem(hstu_bwd_dkv_kernel, bytes2, "hstu_bwd_dkv_kernel");
    hstu_bwd_dkv_kernel<<<grid, kThreads, bytes2>>>(dk, dv, pos ? dpos : nullptr, tw ? dtime : nullptr, q, k, v, dout, pos, tw, ts,
                                                    starts.as<int32_t>(), lens.as<int32_t>(), d);
    check_last("hstu_bwd_dkv_kernel");
  }
  synchronize();
}

}  // namespace qgs::cuda
