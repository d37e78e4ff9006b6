// CUDA kernel of the causal linear recurrence: same contract as native/cpu/linrec.cpp (qgs/linrec.h).
// One thread block per (sequence, head), walking the sequence in chunks of C steps (C picked so the
// tiles fit in shared memory): intra-chunk products over shared-memory tiles, the fp32 state carried
// between chunks in shared memory, log-space cumulative decays in double. The backward first
// recomputes the chunk-start states into a device scratch (nothing is saved by the forward), then
// runs the reverse chunk scan of native/cpu/linrec.cpp with the same four-term decay gradient.
// Status: compiled for sm_80/89/90, not run (no GPU in this workplace).
#include <cuda_runtime.h>

#include <algorithm>
#include <cfloat>
#include <string>
#include <vector>

#include "qgs/common.h"
#include "qgs/cuda_runtime.h"
#include "qgs/linrec.h"

namespace qgs::cuda {
namespace {

constexpr int kThreads = 256;

struct Dims {
  int64_t heads, dk, dv;
  int decay;  // LinrecDecay
  float scale;
  bool inv_t;
  int C;
};

// Device buffer freed on scope exit (also when an exception unwinds).
struct DevBuf {
  void* p = nullptr;
  explicit DevBuf(size_t bytes) { p = bytes ? malloc_device(bytes) : nullptr; }
  ~DevBuf() { free_device(p); }
  DevBuf(const DevBuf&) = delete;
  DevBuf& operator=(const DevBuf&) = delete;
  template <typename T>
  T* as() const { return static_cast<T*>(p); }
};

__device__ __forceinline__ double log_gamma(const float* decay, const Dims& d, int64_t row, int64_t h) {
  float g = 1.f;
  if (d.decay == 1) g = decay[h];
  else if (d.decay == 2) g = decay[row * d.heads + h];
  if (g >= 1.f) return 0.0;
  return fmax(log(static_cast<double>(g)), log(static_cast<double>(FLT_MIN)));
}

__device__ __forceinline__ float scale_at(const Dims& d, int64_t t) { return d.inv_t ? d.scale / static_cast<float>(t + 1) : d.scale; }

// Shared-memory layout of one block (floats unless noted), C steps per chunk.
struct Smem {
  double* A;
  float *E, *F, *Q, *K, *V, *G, *S, *R, *P, *Pg, *X, *GS, *VR, *y, *z, *red;
  __device__ Smem(char* base, int C, int64_t dk, int64_t dv, bool backward) {
    A = reinterpret_cast<double*>(base);
    float* f = reinterpret_cast<float*>(base + sizeof(double) * C);
    auto take = [&](int64_t n) {
      float* r = f;
      f += n;
      return r;
    };
    E = take(C);
    F = take(C);
    Q = take(C * dk);
    K = take(C * dk);
    V = take(C * dv);
    S = take(dk * dv);
    P = take(C * C);
    if (backward) {
      G = take(C * dv);
      R = take(dk * dv);
      Pg = take(C * C);
      X = take(C * C);
      GS = take(C * dk);
      VR = take(C * dk);
      y = take(C);
      z = take(C);
      red = take(kThreads);
    }
  }
};

size_t smem_bytes(int C, int64_t dk, int64_t dv, bool backward) {
  size_t f = 2 * C + 2 * C * dk + C * dv + dk * dv + C * C;
  if (backward) f += C * dv + dk * dv + 2 * C * C + 2 * C * dk + 2 * C + kThreads;
  return sizeof(double) * C + sizeof(float) * f;
}

// Loads chunk rows [row0, row0+n) of head h and the decays (A, E, F) into shared memory.
__device__ void load_chunk(Smem& s, const float* q, const float* k, const float* v, const float* decay, const Dims& d,
                           int64_t row0, int64_t h, int n) {
  for (int64_t i = threadIdx.x; i < n * d.dk; i += blockDim.x) {
    const int64_t t = i / d.dk, p = i % d.dk;
    if (q) s.Q[i] = q[((row0 + t) * d.heads + h) * d.dk + p];
    s.K[i] = k[((row0 + t) * d.heads + h) * d.dk + p];
  }
  for (int64_t i = threadIdx.x; i < n * d.dv; i += blockDim.x) {
    const int64_t t = i / d.dv, c = i % d.dv;
    s.V[i] = v[((row0 + t) * d.heads + h) * d.dv + c];
  }
  if (threadIdx.x == 0) {
    double acc = 0;
    for (int t = 0; t < n; ++t) {
      acc += log_gamma(decay, d, row0 + t, h);
      s.A[t] = acc;
    }
    for (int t = 0; t < n; ++t) {
      s.E[t] = static_cast<float>(exp(s.A[t]));
      s.F[t] = static_cast<float>(exp(s.A[n - 1] - s.A[t]));
    }
  }
  __syncthreads();
}

__device__ __forceinline__ float Mij(const Smem& s, int i, int j) { return static_cast<float>(exp(s.A[i] - s.A[j])); }

// S ← E_last S + Σ_j F_j k_jᵀ v_j
__device__ void advance_state(Smem& s, float* S, const Dims& d, int n) {
  for (int64_t e = threadIdx.x; e < d.dk * d.dv; e += blockDim.x) {
    const int64_t p = e / d.dv, c = e % d.dv;
    float acc = s.E[n - 1] * S[e];
    for (int j = 0; j < n; ++j) acc += s.F[j] * s.K[j * d.dk + p] * s.V[j * d.dv + c];
    S[e] = acc;
  }
  __syncthreads();
}

__global__ void linrec_fwd_kernel(float* out, float* state_out, const float* q, const float* k, const float* v,
                                  const float* decay, const float* init, const int32_t* starts, const int32_t* lens, Dims d) {
  extern __shared__ __align__(16) char smem_raw[];
  const int64_t item = blockIdx.x, b = item / d.heads, h = item % d.heads;
  const int64_t start = starts[b], len = lens[b];
  const int C = d.C;
  Smem s(smem_raw, C, d.dk, d.dv, false);
  for (int64_t e = threadIdx.x; e < d.dk * d.dv; e += blockDim.x) s.S[e] = init ? init[item * d.dk * d.dv + e] : 0.f;
  __syncthreads();
  for (int64_t c0 = 0; c0 < len; c0 += C) {
    const int n = static_cast<int>(len - c0 < C ? len - c0 : C);
    const int64_t row0 = start + c0;
    load_chunk(s, q, k, v, decay, d, row0, h, n);
    for (int e = threadIdx.x; e < n * n; e += blockDim.x) {
      const int i = e / n, j = e % n;
      float acc = 0.f;
      if (j <= i) {
        for (int64_t p = 0; p < d.dk; ++p) acc += s.Q[i * d.dk + p] * s.K[j * d.dk + p];
        acc *= Mij(s, i, j);
      }
      s.P[i * C + j] = acc;
    }
    __syncthreads();
    for (int64_t e = threadIdx.x; e < n * d.dv; e += blockDim.x) {
      const int i = static_cast<int>(e / d.dv);
      const int64_t c = e % d.dv;
      float inter = 0.f, intra = 0.f;
      for (int64_t p = 0; p < d.dk; ++p) inter += s.Q[i * d.dk + p] * s.S[p * d.dv + c];
      for (int j = 0; j <= i; ++j) intra += s.P[i * C + j] * s.V[j * d.dv + c];
      out[((row0 + i) * d.heads + h) * d.dv + c] = scale_at(d, c0 + i) * (s.E[i] * inter + intra);
    }
    __syncthreads();
    advance_state(s, s.S, d, n);
  }
  if (state_out)
    for (int64_t e = threadIdx.x; e < d.dk * d.dv; e += blockDim.x) state_out[item * d.dk * d.dv + e] = s.S[e];
}

__global__ void linrec_bwd_kernel(float* dq, float* dk_out, float* dv_out, float* ddecay_step, float* dhead, float* dinit,
                                  const float* q, const float* k, const float* v, const float* decay, const float* init,
                                  const float* dout, const float* dstate, const int32_t* starts, const int32_t* lens,
                                  const int64_t* state_off, float* states, Dims d) {
  extern __shared__ __align__(16) char smem_raw[];
  const int64_t item = blockIdx.x, b = item / d.heads, h = item % d.heads;
  const int64_t start = starts[b], len = lens[b];
  const int C = d.C;
  const int64_t sd = d.dk * d.dv;
  const int64_t nch = (len + C - 1) / C;
  float* st = states + state_off[b] * d.heads * sd + h * nch * sd;  // this item's chunk-start states
  Smem s(smem_raw, C, d.dk, d.dv, true);
  // Pass 1: chunk-start states.
  for (int64_t e = threadIdx.x; e < sd; e += blockDim.x) s.S[e] = init ? init[item * sd + e] : 0.f;
  __syncthreads();
  for (int64_t ci = 0; ci < nch; ++ci) {
    for (int64_t e = threadIdx.x; e < sd; e += blockDim.x) st[ci * sd + e] = s.S[e];
    if (ci + 1 == nch) break;
    const int n = static_cast<int>(len - ci * C < C ? len - ci * C : C);
    load_chunk(s, nullptr, k, v, decay, d, start + ci * C, h, n);
    advance_state(s, s.S, d, n);
  }
  __syncthreads();
  for (int64_t e = threadIdx.x; e < sd; e += blockDim.x) s.R[e] = dstate ? dstate[item * sd + e] : 0.f;
  float head_acc = 0.f;  // thread 0 only
  __syncthreads();
  for (int64_t ci = nch - 1; ci >= 0; --ci) {
    const int64_t c0 = ci * C, row0 = start + c0;
    const int n = static_cast<int>(len - c0 < C ? len - c0 : C);
    load_chunk(s, q, k, v, decay, d, row0, h, n);
    for (int64_t e = threadIdx.x; e < sd; e += blockDim.x) s.S[e] = st[ci * sd + e];
    for (int64_t e = threadIdx.x; e < n * d.dv; e += blockDim.x) {
      const int64_t t = e / d.dv, c = e % d.dv;
      s.G[e] = dout ? scale_at(d, c0 + t) * dout[((row0 + t) * d.heads + h) * d.dv + c] : 0.f;
    }
    __syncthreads();
    for (int e = threadIdx.x; e < n * n; e += blockDim.x) {
      const int i = e / n, j = e % n;
      float pr = 0.f, gr = 0.f;
      if (j <= i) {
        for (int64_t p = 0; p < d.dk; ++p) pr += s.Q[i * d.dk + p] * s.K[j * d.dk + p];
        for (int64_t c = 0; c < d.dv; ++c) gr += s.G[i * d.dv + c] * s.V[j * d.dv + c];
      }
      const float m = j <= i ? Mij(s, i, j) : 0.f;
      s.X[i * C + j] = pr * gr;
      s.P[i * C + j] = pr * m;
      s.Pg[i * C + j] = gr * m;
    }
    // GS[i][p] = Σ_c g_i[c] S[p][c],  VR[t][p] = Σ_c R[p][c] v_t[c]
    for (int64_t e = threadIdx.x; e < n * d.dk; e += blockDim.x) {
      const int64_t i = e / d.dk, p = e % d.dk;
      float gs = 0.f, vr = 0.f;
      for (int64_t c = 0; c < d.dv; ++c) {
        gs += s.G[i * d.dv + c] * s.S[p * d.dv + c];
        vr += s.R[p * d.dv + c] * s.V[i * d.dv + c];
      }
      s.GS[e] = gs;
      s.VR[e] = vr;
    }
    __syncthreads();
    for (int64_t e = threadIdx.x; e < n * d.dk; e += blockDim.x) {
      const int i = static_cast<int>(e / d.dk);
      const int64_t p = e % d.dk;
      if (dq) {
        float acc = s.E[i] * s.GS[e];
        for (int j = 0; j <= i; ++j) acc += s.Pg[i * C + j] * s.K[j * d.dk + p];
        dq[((row0 + i) * d.heads + h) * d.dk + p] = acc;
      }
      if (dk_out) {
        float acc = s.F[i] * s.VR[e];
        for (int j = i; j < n; ++j) acc += s.Pg[j * C + i] * s.Q[j * d.dk + p];
        dk_out[((row0 + i) * d.heads + h) * d.dk + p] = acc;
      }
    }
    if (dv_out) {
      for (int64_t e = threadIdx.x; e < n * d.dv; e += blockDim.x) {
        const int t = static_cast<int>(e / d.dv);
        const int64_t c = e % d.dv;
        float kr = 0.f;
        for (int64_t p = 0; p < d.dk; ++p) kr += s.K[t * d.dk + p] * s.R[p * d.dv + c];
        float acc = s.F[t] * kr;
        for (int i = t; i < n; ++i) acc += s.P[i * C + t] * s.G[i * d.dv + c];
        dv_out[((row0 + t) * d.heads + h) * d.dv + c] = acc;
      }
    }
    const bool want_decay = d.decay != 0 && (ddecay_step || dhead);
    if (want_decay) {
      // y_t = k_t·(R v_t), z_i = q_i·(S g_i), rs = ⟨R, S_prev⟩ (block reduction).
      for (int t = threadIdx.x; t < n; t += blockDim.x) {
        float yy = 0.f, zz = 0.f;
        for (int64_t p = 0; p < d.dk; ++p) {
          yy += s.K[t * d.dk + p] * s.VR[t * d.dk + p];
          zz += s.Q[t * d.dk + p] * s.GS[t * d.dk + p];
        }
        s.y[t] = yy;
        s.z[t] = zz;
      }
      float part = 0.f;
      for (int64_t e = threadIdx.x; e < sd; e += blockDim.x) part += s.R[e] * s.S[e];
      s.red[threadIdx.x] = part;
      __syncthreads();
      for (int w = blockDim.x / 2; w > 0; w >>= 1) {
        if (static_cast<int>(threadIdx.x) < w) s.red[threadIdx.x] += s.red[threadIdx.x + w];
        __syncthreads();
      }
      const float rs = s.red[0];
      __syncthreads();
      // dγ_t = F_t E_{t−1} rs + F_t Σ_{j<t} M[t−1][j] y_j + E_{t−1} Σ_{i≥t} M[i][t] z_i
      //        + Σ_{i≥t} M[i][t] Σ_{j<t} M[t−1][j] X[i][j]
      for (int t = threadIdx.x; t < n; t += blockDim.x) {
        const float Ep = t == 0 ? 1.f : s.E[t - 1];
        float term = s.F[t] * Ep * rs;
        for (int j = 0; j < t; ++j) term += s.F[t] * Mij(s, t - 1, j) * s.y[j];
        float sc = 0.f;
        for (int i = t; i < n; ++i) {
          const float mit = Mij(s, i, t);
          sc += mit * s.z[i];
          float inner = 0.f;
          for (int j = 0; j < t; ++j) inner += Mij(s, t - 1, j) * s.X[i * C + j];
          term += mit * inner;
        }
        term += Ep * sc;
        if (ddecay_step) ddecay_step[(row0 + t) * d.heads + h] = term;
        s.red[t] = term;  // not s.y: other threads still read y[j < t]
      }
      __syncthreads();
      if (threadIdx.x == 0 && dhead)
        for (int t = 0; t < n; ++t) head_acc += s.red[t];
    }
    __syncthreads();
    // R ← E_last R + Σ_i E_i q_iᵀ g_i
    for (int64_t e = threadIdx.x; e < sd; e += blockDim.x) {
      const int64_t p = e / d.dv, c = e % d.dv;
      float acc = s.E[n - 1] * s.R[e];
      for (int i = 0; i < n; ++i) acc += s.E[i] * s.Q[i * d.dk + p] * s.G[i * d.dv + c];
      s.R[e] = acc;
    }
    __syncthreads();
  }
  if (dinit)
    for (int64_t e = threadIdx.x; e < sd; e += blockDim.x) dinit[item * sd + e] = s.R[e];
  if (threadIdx.x == 0 && dhead) dhead[item] = head_acc;
}

// ddecay[h] = Σ_b partial[b·H + h] (deterministic, no atomics).
__global__ void sum_heads_kernel(float* ddecay, const float* partial, int64_t batch, int64_t heads) {
  for (int64_t h = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; h < heads; h += int64_t(gridDim.x) * blockDim.x) {
    float acc = 0.f;
    for (int64_t b = 0; b < batch; ++b) acc += partial[b * heads + h];
    ddecay[h] = acc;
  }
}

struct Prepared {
  std::vector<int32_t> starts, lens;
  std::vector<int64_t> state_off;  // chunk-state offset (in chunks) of each sequence
  int64_t rows = 0, total_chunks = 0;
};

Prepared prepare(const LinrecConfig& c, int C) {
  Prepared p;
  p.rows = linrec_rows(c);
  for (int64_t b = 0; b < c.batch; ++b) {
    int64_t s = c.offsets ? c.offsets[b] : b * c.max_len;
    int64_t l = c.offsets ? c.offsets[b + 1] - c.offsets[b] : (c.lengths ? c.lengths[b] : c.max_len);
    p.starts.push_back(static_cast<int32_t>(s));
    p.lens.push_back(static_cast<int32_t>(l));
    p.state_off.push_back(p.total_chunks);
    p.total_chunks += (l + C - 1) / C;
  }
  return p;
}

// Largest chunk (≤ 64, ≥ 1) whose tiles fit in the opt-in shared memory of the device.
int pick_chunk(int64_t dk, int64_t dv, bool backward, size_t* bytes) {
  int dev = 0, optin = 0;
  if (cudaGetDevice(&dev) != cudaSuccess || cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev) != cudaSuccess) {
    cudaGetLastError();
    optin = 48 * 1024;
  }
  for (int C = 64; C >= 1; C /= 2) {
    *bytes = smem_bytes(C, dk, dv, backward);
    if (*bytes <= static_cast<size_t>(optin)) return C;
  }
  throw KernelError("linrec (cuda): dk·dv = " + std::to_string(dk * dv) + " needs more shared memory than the device has (" +
                    std::to_string(optin) + " bytes per block)");
}

template <typename K>
void set_smem(K kernel, size_t bytes, const char* what) {
  cudaError_t e = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes));
  if (e != cudaSuccess) throw KernelError(std::string(what) + ": cudaFuncSetAttribute: " + cudaGetErrorName(e) + ": " + cudaGetErrorString(e));
}

void check_decay_mode(const LinrecConfig& c) {
  QGS_REQUIRE(c.decay == LinrecDecay::None || c.decay == LinrecDecay::PerHead || c.decay == LinrecDecay::PerStep, "decay: bad mode");
}

}  // namespace

void linrec_forward(float* out, float* state_out, const float* q, const float* k, const float* v, const float* decay,
                    const float* init_state, const LinrecConfig& cfg) {
  check_decay_mode(cfg);
  size_t bytes = 0;
  const int C = pick_chunk(cfg.dk, cfg.dv, false, &bytes);
  Prepared p = prepare(cfg, C);
  const int64_t items = cfg.batch * cfg.heads;
  if (p.rows > 0) memset_device(out, 0, sizeof(float) * p.rows * cfg.heads * cfg.dv);  // padding rows
  if (items == 0) return;
  DevBuf starts(sizeof(int32_t) * cfg.batch), lens(sizeof(int32_t) * cfg.batch);
  copy_h2d(starts.p, p.starts.data(), sizeof(int32_t) * cfg.batch);
  copy_h2d(lens.p, p.lens.data(), sizeof(int32_t) * cfg.batch);
  Dims d{cfg.heads, cfg.dk, cfg.dv, static_cast<int>(cfg.decay), cfg.scale, cfg.inv_t, C};
  set_smem(linrec_fwd_kernel, bytes, "linrec_fwd_kernel");
  linrec_fwd_kernel<<<static_cast<unsigned>(items), kThreads, bytes>>>(out, state_out, q, k, v, decay, init_state,
                                                                       starts.as<int32_t>(), lens.as<int32_t>(), d);
  check_last("linrec_fwd_kernel");
  synchronize();  // before the temporaries are freed
}

void linrec_backward(float* dq, float* dk, float* dv, float* ddecay, float* dinit, const float* q, const float* k,
                     const float* v, const float* decay, const float* init_state, const float* dout,
                     const float* dstate_out, const LinrecConfig& cfg) {
  check_decay_mode(cfg);
  size_t bytes = 0;
  const int C = pick_chunk(cfg.dk, cfg.dv, true, &bytes);
  Prepared p = prepare(cfg, C);
  const int64_t items = cfg.batch * cfg.heads;
  const int64_t nqk = p.rows * cfg.heads * cfg.dk, nv = p.rows * cfg.heads * cfg.dv;
  if (dq && nqk) memset_device(dq, 0, sizeof(float) * nqk);
  if (dk && nqk) memset_device(dk, 0, sizeof(float) * nqk);
  if (dv && nv) memset_device(dv, 0, sizeof(float) * nv);
  float* dstep = cfg.decay == LinrecDecay::PerStep ? ddecay : nullptr;
  if (dstep && p.rows) memset_device(dstep, 0, sizeof(float) * p.rows * cfg.heads);
  if (items == 0) {
    if (ddecay && cfg.decay == LinrecDecay::PerHead) memset_device(ddecay, 0, sizeof(float) * cfg.heads);
    return;
  }
  DevBuf starts(sizeof(int32_t) * cfg.batch), lens(sizeof(int32_t) * cfg.batch), offs(sizeof(int64_t) * cfg.batch);
  copy_h2d(starts.p, p.starts.data(), sizeof(int32_t) * cfg.batch);
  copy_h2d(lens.p, p.lens.data(), sizeof(int32_t) * cfg.batch);
  copy_h2d(offs.p, p.state_off.data(), sizeof(int64_t) * cfg.batch);
  DevBuf states(sizeof(float) * static_cast<size_t>(std::max<int64_t>(p.total_chunks, 1) * cfg.heads * cfg.dk * cfg.dv));
  const bool per_head = cfg.decay == LinrecDecay::PerHead && ddecay != nullptr;
  DevBuf partial(per_head ? sizeof(float) * items : 0);
  Dims d{cfg.heads, cfg.dk, cfg.dv, static_cast<int>(cfg.decay), cfg.scale, cfg.inv_t, C};
  set_smem(linrec_bwd_kernel, bytes, "linrec_bwd_kernel");
  linrec_bwd_kernel<<<static_cast<unsigned>(items), kThreads, bytes>>>(
      dq, dk, dv, dstep, per_head ? partial.as<float>() : nullptr, dinit, q, k, v, decay, init_state, dout, dstate_out,
      starts.as<int32_t>(), lens.as<int32_t>(), offs.as<int64_t>(), states.as<float>(), d);
  check_last("linrec_bwd_kernel");
  if (per_head) {
    sum_heads_kernel<<<1, 128>>>(ddecay, partial.as<float>(), cfg.batch, cfg.heads);
    check_last("sum_heads_kernel");
  }
  synchronize();
}

}  // namespace qgs::cuda
