// CUDA nn kernels (same contracts as native/cpu/nn.cpp). Axis-wise kernels give one block per
// line (softmax, LayerNorm, L2, cross-entropy rows) with shared-memory reductions; elementwise
// ones use grid-stride loops. Index validation happens on the device: the first bad position is
// recorded with atomicMin and reported as a KernelError after the launch.
#include <cuda_runtime.h>

#include <algorithm>
#include <cfloat>
#include <string>

#include "qgs/common.h"
#include "qgs/cuda_runtime.h"
#include "qgs/nn.h"

namespace qgs::cuda {

namespace {
constexpr int kThreads = 256;

unsigned grid_for(int64_t n, int threads = kThreads) {
  return static_cast<unsigned>(std::max<int64_t>(1, std::min<int64_t>((n + threads - 1) / threads, 65535)));
}
unsigned lines_grid(int64_t lines) { return static_cast<unsigned>(std::max<int64_t>(1, std::min<int64_t>(lines, 65535))); }

// Device scratch freed on scope exit (also when a check throws).
struct DeviceBuf {
  void* p;
  explicit DeviceBuf(size_t bytes) : p(malloc_device(bytes)) {}
  ~DeviceBuf() { free_device(p); }
  DeviceBuf(const DeviceBuf&) = delete;
  DeviceBuf& operator=(const DeviceBuf&) = delete;
};

template <bool IsMax>
__device__ float block_reduce(float v, float* sh) {
  for (int o = 16; o > 0; o >>= 1) {
    float w = __shfl_down_sync(0xffffffffu, v, o);
    v = IsMax ? fmaxf(v, w) : v + w;
  }
  int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  __syncthreads();  // sh may still be read by a previous reduction
  if (lane == 0) sh[warp] = v;
  __syncthreads();
  int nw = (blockDim.x + 31) >> 5;
  v = threadIdx.x < nw ? sh[threadIdx.x] : (IsMax ? -FLT_MAX : 0.f);
  if (warp == 0)
    for (int o = 16; o > 0; o >>= 1) {
      float w = __shfl_down_sync(0xffffffffu, v, o);
      v = IsMax ? fmaxf(v, w) : v + w;
    }
  if (threadIdx.x == 0) sh[0] = v;
  __syncthreads();
  return sh[0];
}

__global__ void softmax_fwd_k(float* y, const float* x, int64_t lines, int64_t dim, int64_t inner, bool lg) {
  __shared__ float sh[32];
  for (int64_t l = blockIdx.x; l < lines; l += gridDim.x) {
    int64_t base = (l / inner) * dim * inner + (l % inner);
    float m = -INFINITY;
    for (int64_t d = threadIdx.x; d < dim; d += blockDim.x) m = fmaxf(m, x[base + d * inner]);
    m = block_reduce<true>(m, sh);
    float s = 0.f;
    for (int64_t d = threadIdx.x; d < dim; d += blockDim.x) s += expf(x[base + d * inner] - m);
    s = block_reduce<false>(s, sh);
    float lse = m + logf(s);
    for (int64_t d = threadIdx.x; d < dim; d += blockDim.x) {
      float v = x[base + d * inner];
      y[base + d * inner] = lg ? v - lse : expf(v - m) / s;
    }
  }
}

__global__ void softmax_bwd_k(float* dx, const float* y, const float* dy, int64_t lines, int64_t dim, int64_t inner, bool lg) {
  __shared__ float sh[32];
  for (int64_t l = blockIdx.x; l < lines; l += gridDim.x) {
    int64_t base = (l / inner) * dim * inner + (l % inner);
    float s = 0.f;
    for (int64_t d = threadIdx.x; d < dim; d += blockDim.x) s += lg ? dy[base + d * inner] : dy[base + d * inner] * y[base + d * inner];
    s = block_reduce<false>(s, sh);
    for (int64_t d = threadIdx.x; d < dim; d += blockDim.x) {
      int64_t i = base + d * inner;
      dx[i] = lg ? dy[i] - expf(y[i]) * s : y[i] * (dy[i] - s);
    }
  }
}

__global__ void ln_fwd_k(float* y, float* mean, float* rstd, const float* x, const float* w, const float* b, int64_t rows,
                         int64_t cols, float eps) {
  __shared__ float sh[32];
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const float* xr = x + r * cols;
    float s = 0.f;
    for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) s += xr[j];
    float mu = block_reduce<false>(s, sh) / cols;
    float v = 0.f;
    for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) v += (xr[j] - mu) * (xr[j] - mu);
    float rs = rsqrtf(block_reduce<false>(v, sh) / cols + eps);
    if (threadIdx.x == 0) {
      mean[r] = mu;
      rstd[r] = rs;
    }
    for (int64_t j = threadIdx.x; j < cols; j += blockDim.x)
      y[r * cols + j] = (xr[j] - mu) * rs * (w ? w[j] : 1.f) + (b ? b[j] : 0.f);
  }
}

__global__ void ln_bwd_dx_k(float* dx, const float* dy, const float* x, const float* mean, const float* rstd, const float* w,
                            int64_t rows, int64_t cols) {
  __shared__ float sh[32];
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    float m = mean[r], rs = rstd[r], a = 0.f, c = 0.f;
    for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) {
      float g = dy[r * cols + j] * (w ? w[j] : 1.f);
      a += g;
      c += g * (x[r * cols + j] - m) * rs;
    }
    a = block_reduce<false>(a, sh) / cols;
    c = block_reduce<false>(c, sh) / cols;
    for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) {
      float h = (x[r * cols + j] - m) * rs;
      dx[r * cols + j] = rs * (dy[r * cols + j] * (w ? w[j] : 1.f) - a - h * c);
    }
  }
}

// dw/db: one thread per column over all rows (deterministic, coalesced).
__global__ void ln_bwd_params_k(float* dw, float* db, const float* dy, const float* x, const float* mean, const float* rstd,
                                int64_t rows, int64_t cols) {
  for (int64_t j = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; j < cols; j += int64_t(gridDim.x) * blockDim.x) {
    double sw = 0, sb = 0;
    for (int64_t r = 0; r < rows; ++r) {
      float g = dy[r * cols + j];
      sw += g * (x[r * cols + j] - mean[r]) * rstd[r];
      sb += g;
    }
    if (dw) dw[j] = static_cast<float>(sw);
    if (db) db[j] = static_cast<float>(sb);
  }
}

__global__ void find_bad_index_k(int64_t* first_bad, const int32_t* idx, int64_t n, int64_t limit) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    if (idx[i] < 0 || idx[i] >= limit) atomicMin(reinterpret_cast<unsigned long long*>(first_bad), static_cast<unsigned long long>(i));
}

// Throws naming the first index outside [0, limit) (one small device→host copy).
void validate_indices(const char* what, const int32_t* idx, int64_t n, int64_t limit) {
  if (n <= 0) return;
  DeviceBuf flag(sizeof(int64_t));
  int64_t none = INT64_MAX;
  copy_h2d(flag.p, &none, sizeof none);
  find_bad_index_k<<<grid_for(n), kThreads>>>(static_cast<int64_t*>(flag.p), idx, n, limit);
  check_last("find_bad_index");
  int64_t pos = 0;
  copy_d2h(&pos, flag.p, sizeof pos);
  if (pos != INT64_MAX) {
    int32_t v = 0;
    copy_d2h(&v, idx + pos, sizeof v);
    throw KernelError(std::string(what) + ": expected values in [0, " + std::to_string(limit) + "), got " + std::to_string(v) +
                      " at flat position " + std::to_string(pos));
  }
}

__global__ void gather_rows_k(float* out, const float* w, const int32_t* idx, int64_t n, int64_t dim) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n * dim; i += int64_t(gridDim.x) * blockDim.x)
    out[i] = w[int64_t(idx[i / dim]) * dim + i % dim];
}

__global__ void index_add_k(float* out, const float* src, const int32_t* idx, int64_t n, int64_t dim) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n * dim; i += int64_t(gridDim.x) * blockDim.x)
    atomicAdd(out + int64_t(idx[i / dim]) * dim + i % dim, src[i]);
}

__global__ void l2_fwd_k(float* y, float* norm, const float* x, int64_t lines, int64_t dim, int64_t inner, float eps) {
  __shared__ float sh[32];
  for (int64_t l = blockIdx.x; l < lines; l += gridDim.x) {
    int64_t base = (l / inner) * dim * inner + (l % inner);
    float s = 0.f;
    for (int64_t d = threadIdx.x; d < dim; d += blockDim.x) s += x[base + d * inner] * x[base + d * inner];
    float nr = sqrtf(block_reduce<false>(s, sh));
    if (threadIdx.x == 0) norm[l] = nr;
    float inv = 1.f / fmaxf(nr, eps);
    for (int64_t d = threadIdx.x; d < dim; d += blockDim.x) y[base + d * inner] = x[base + d * inner] * inv;
  }
}

__global__ void l2_bwd_k(float* dx, const float* dy, const float* y, const float* norm, int64_t lines, int64_t dim, int64_t inner,
                         float eps) {
  __shared__ float sh[32];
  for (int64_t l = blockIdx.x; l < lines; l += gridDim.x) {
    int64_t base = (l / inner) * dim * inner + (l % inner);
    float nr = norm[l];
    float s = 0.f;
    for (int64_t d = threadIdx.x; d < dim; d += blockDim.x) s += dy[base + d * inner] * y[base + d * inner];
    s = block_reduce<false>(s, sh);
    for (int64_t d = threadIdx.x; d < dim; d += blockDim.x) {
      int64_t i = base + d * inner;
      dx[i] = nr > eps ? (dy[i] - y[i] * s) / nr : dy[i] / eps;
    }
  }
}

__global__ void bce_k(float* loss, float* dx, double* sum, const float* x, const float* t, const float* w, int64_t wn, int64_t n) {
  __shared__ float sh[32];
  float acc = 0.f;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    float xi = x[i], ti = t[i], wi = w ? w[i % wn] : 1.f;
    float e = expf(-fabsf(xi));
    float l = wi * (fmaxf(xi, 0.f) - xi * ti + log1pf(e));
    float sig = xi >= 0.f ? 1.f / (1.f + e) : e / (1.f + e);
    if (loss) loss[i] = l;
    dx[i] = wi * (sig - ti);
    acc += l;
  }
  acc = block_reduce<false>(acc, sh);
  if (threadIdx.x == 0) atomicAdd(sum, static_cast<double>(acc));
}

__global__ void ce_rows_k(float* loss, float* dx, double* sum, unsigned long long* count, const float* logits, const int32_t* targets,
                          int64_t n, int64_t c, int64_t ignore, bool has_ignore) {
  __shared__ float sh[32];
  for (int64_t r = blockIdx.x; r < n; r += gridDim.x) {
    int32_t t = targets ? targets[r] : 0;
    const float* x = logits + r * c;
    float* d = dx + r * c;
    if (has_ignore && t == ignore) {
      for (int64_t j = threadIdx.x; j < c; j += blockDim.x) d[j] = 0.f;
      if (threadIdx.x == 0) loss[r] = 0.f;
      continue;
    }
    float m = -INFINITY;
    for (int64_t j = threadIdx.x; j < c; j += blockDim.x) m = fmaxf(m, x[j]);
    m = block_reduce<true>(m, sh);
    float s = 0.f;
    for (int64_t j = threadIdx.x; j < c; j += blockDim.x) s += expf(x[j] - m);
    s = block_reduce<false>(s, sh);
    float rest = 0.f;  // sum of p_j over j != t (precise p_t - 1, as on the CPU)
    for (int64_t j = threadIdx.x; j < c; j += blockDim.x) {
      float p = expf(x[j] - m) / s;
      d[j] = p;
      if (j != t) rest += p;
    }
    rest = block_reduce<false>(rest, sh);
    if (threadIdx.x == 0) {
      d[t] = -rest;
      float l = m + logf(s) - x[t];
      loss[r] = l;
      atomicAdd(sum, static_cast<double>(l));
      atomicAdd(count, 1ull);
    }
  }
}

__global__ void find_bad_target_k(int64_t* first_bad, const int32_t* t, int64_t n, int64_t c, int64_t ignore, bool has_ignore) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    if (!(has_ignore && t[i] == ignore) && (t[i] < 0 || t[i] >= c))
      atomicMin(reinterpret_cast<unsigned long long*>(first_bad), static_cast<unsigned long long>(i));
}

__global__ void row_dot_k(float* out, const float* a, const float* b, int64_t rows, int64_t d, float scale) {
  __shared__ float sh[32];
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    float s = 0.f;
    for (int64_t e = threadIdx.x; e < d; e += blockDim.x) s += a[r * d + e] * b[r * d + e];
    s = block_reduce<false>(s, sh);
    if (threadIdx.x == 0) out[r] = s * scale;
  }
}

// row_dots_many: line (i, j) dots q_i with neg[i, j]; q row index = line / k.
__global__ void row_dots_many_k(float* out, const float* q, const float* neg, int64_t lines, int64_t k, int64_t d, float scale) {
  __shared__ float sh[32];
  for (int64_t l = blockIdx.x; l < lines; l += gridDim.x) {
    const float* qr = q + (l / k) * d;
    float s = 0.f;
    for (int64_t e = threadIdx.x; e < d; e += blockDim.x) s += qr[e] * neg[l * d + e];
    s = block_reduce<false>(s, sh);
    if (threadIdx.x == 0) out[l] = s * scale;
  }
}

__global__ void concat_k(float* logits, const float* pos, const float* neg, int64_t n, int64_t k) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n * (k + 1); i += int64_t(gridDim.x) * blockDim.x) {
    int64_t r = i / (k + 1), j = i % (k + 1);
    logits[i] = j == 0 ? pos[r] : neg[r * k + j - 1];
  }
}

__global__ void split_k(float* g0, float* gneg, const float* g, int64_t n, int64_t k) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n * (k + 1); i += int64_t(gridDim.x) * blockDim.x) {
    int64_t r = i / (k + 1), j = i % (k + 1);
    if (j == 0) g0[r] = g[i];
    else gneg[r * k + j - 1] = g[i];
  }
}

__global__ void infonce_bwd_k(float* dq, float* dp, float* dneg, const float* g0, const float* gneg, const float* q, const float* p,
                              const float* neg, int64_t n, int64_t k, int64_t d) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n * d; i += int64_t(gridDim.x) * blockDim.x) {
    int64_t r = i / d, e = i % d;
    if (dq) {
      float a = g0[r] * p[i];
      for (int64_t j = 0; j < k; ++j) a += gneg[r * k + j] * neg[(r * k + j) * d + e];
      dq[i] = a;
    }
    if (dp) dp[i] = g0[r] * q[i];
    if (dneg)
      for (int64_t j = 0; j < k; ++j) dneg[(r * k + j) * d + e] = gneg[r * k + j] * q[i];
  }
}

__global__ void scale_by_k(float* out, const float* src, const float* g, bool scalar, int64_t n, float alpha) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    out[i] = alpha * src[i] * (scalar ? g[0] : g[i]);
}

__global__ void scale_rows_k(float* out, const float* src, const float* g, int64_t rows, int64_t cols, float alpha) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < rows * cols; i += int64_t(gridDim.x) * blockDim.x)
    out[i] = alpha * (g ? g[i / cols] : 1.f) * src[i];
}
}  // namespace

void softmax_forward(float* y, const float* x, int64_t outer, int64_t dim, int64_t inner, bool log) {
  int64_t lines = outer * inner;
  if (lines <= 0 || dim <= 0) return;
  softmax_fwd_k<<<lines_grid(lines), kThreads>>>(y, x, lines, dim, inner, log);
  check_last("softmax_forward");
}

void softmax_backward(float* dx, const float* y, const float* dy, int64_t outer, int64_t dim, int64_t inner, bool log) {
  int64_t lines = outer * inner;
  if (lines <= 0 || dim <= 0) return;
  softmax_bwd_k<<<lines_grid(lines), kThreads>>>(dx, y, dy, lines, dim, inner, log);
  check_last("softmax_backward");
}

void layer_norm_forward(float* y, float* mean, float* rstd, const float* x, const float* w, const float* b, int64_t rows, int64_t cols,
                        float eps) {
  QGS_REQUIRE(eps > 0.f, "layerNorm: eps: expected > 0, got " + std::to_string(eps));
  QGS_REQUIRE(cols > 0 || rows == 0, "layerNorm: normalised axis must not be empty");
  if (rows <= 0) return;
  ln_fwd_k<<<lines_grid(rows), kThreads>>>(y, mean, rstd, x, w, b, rows, cols, eps);
  check_last("layer_norm_forward");
}

void layer_norm_backward(float* dx, float* dw, float* db, const float* dy, const float* x, const float* mean, const float* rstd,
                         const float* w, int64_t rows, int64_t cols) {
  if (cols <= 0) return;
  if (rows > 0) {
    ln_bwd_dx_k<<<lines_grid(rows), kThreads>>>(dx, dy, x, mean, rstd, w, rows, cols);
    check_last("layer_norm_backward dx");
  }
  if (dw || db) {
    ln_bwd_params_k<<<grid_for(cols), kThreads>>>(dw, db, dy, x, mean, rstd, rows, cols);
    check_last("layer_norm_backward dw/db");
  }
}

void embedding_forward(float* out, const float* weight, const int32_t* idx, int64_t n, int64_t vocab, int64_t dim) {
  validate_indices("embedding: indices", idx, n, vocab);
  if (n * dim <= 0) return;
  gather_rows_k<<<grid_for(n * dim), kThreads>>>(out, weight, idx, n, dim);
  check_last("embedding_forward");
}

void index_add_rows(float* out, const float* src, const int32_t* idx, int64_t n, int64_t rows, int64_t dim) {
  validate_indices("embedding backward: indices", idx, n, rows);
  memset_device(out, 0, static_cast<size_t>(rows * dim) * sizeof(float));
  if (n * dim <= 0) return;
  index_add_k<<<grid_for(n * dim), kThreads>>>(out, src, idx, n, dim);
  check_last("index_add_rows");
}

void l2_normalize_forward(float* y, float* norm, const float* x, int64_t outer, int64_t dim, int64_t inner, float eps) {
  QGS_REQUIRE(eps > 0.f, "l2Normalize: eps: expected > 0, got " + std::to_string(eps));
  int64_t lines = outer * inner;
  if (lines <= 0) return;
  l2_fwd_k<<<lines_grid(lines), kThreads>>>(y, norm, x, lines, dim, inner, eps);
  check_last("l2_normalize_forward");
}

void l2_normalize_backward(float* dx, const float* dy, const float* y, const float* norm, int64_t outer, int64_t dim, int64_t inner,
                           float eps) {
  int64_t lines = outer * inner;
  if (lines <= 0) return;
  l2_bwd_k<<<lines_grid(lines), kThreads>>>(dx, dy, y, norm, lines, dim, inner, eps);
  check_last("l2_normalize_backward");
}

double bce_with_logits(float* loss, float* dx, const float* x, const float* t, const float* w, int64_t wn, int64_t n) {
  QGS_REQUIRE(n >= 0, "bceWithLogits: size must be non-negative");
  QGS_REQUIRE(w == nullptr || wn >= 1, "bceWithLogits: weight must not be empty");
  if (n == 0) return 0.0;
  DeviceBuf sum(sizeof(double));
  memset_device(sum.p, 0, sizeof(double));
  bce_k<<<grid_for(n), kThreads>>>(loss, dx, static_cast<double*>(sum.p), x, t, w, wn, n);
  check_last("bce_with_logits");
  double s = 0;
  copy_d2h(&s, sum.p, sizeof s);
  return s;
}

int64_t cross_entropy_forward(float* loss, float* dx, double* sum, const float* logits, const int32_t* targets, int64_t n, int64_t c,
                              int64_t ignore_index, bool has_ignore) {
  QGS_REQUIRE(c >= 1 || n == 0, "crossEntropy: logits: expected at least one class");
  *sum = 0;
  if (n == 0) return 0;
  if (targets) {
    DeviceBuf flag(sizeof(int64_t));
    int64_t none = INT64_MAX;
    copy_h2d(flag.p, &none, sizeof none);
    find_bad_target_k<<<grid_for(n), kThreads>>>(static_cast<int64_t*>(flag.p), targets, n, c, ignore_index, has_ignore);
    check_last("crossEntropy target check");
    int64_t pos = 0;
    copy_d2h(&pos, flag.p, sizeof pos);
    if (pos != INT64_MAX) {
      int32_t v = 0;
      copy_d2h(&v, targets + pos, sizeof v);
      throw KernelError("crossEntropy: targets: expected class ids in [0, " + std::to_string(c) + ")" +
                        (has_ignore ? " or ignoreIndex " + std::to_string(ignore_index) : std::string()) + ", got " +
                        std::to_string(v) + " at row " + std::to_string(pos));
    }
  }
  DeviceBuf acc(sizeof(double) + sizeof(unsigned long long));
  memset_device(acc.p, 0, sizeof(double) + sizeof(unsigned long long));
  double* dsum = static_cast<double*>(acc.p);
  auto* dcount = reinterpret_cast<unsigned long long*>(dsum + 1);
  ce_rows_k<<<lines_grid(n), kThreads>>>(loss, dx, dsum, dcount, logits, targets, n, c, ignore_index, has_ignore);
  check_last("cross_entropy_forward");
  unsigned long long cnt = 0;
  copy_d2h(sum, dsum, sizeof(double));
  copy_d2h(&cnt, dcount, sizeof cnt);
  return static_cast<int64_t>(cnt);
}

void row_dot(float* out, const float* a, const float* b, int64_t n, int64_t d, float scale) {
  if (n <= 0) return;
  row_dot_k<<<lines_grid(n), kThreads>>>(out, a, b, n, d, scale);
  check_last("row_dot");
}

void row_dots_many(float* out, const float* q, const float* neg, int64_t n, int64_t k, int64_t d, float scale) {
  if (n * k <= 0) return;
  row_dots_many_k<<<lines_grid(n * k), 64>>>(out, q, neg, n * k, k, d, scale);
  check_last("row_dots_many");
}

void concat_pos_neg(float* logits, const float* pos, const float* neg, int64_t n, int64_t k) {
  if (n <= 0) return;
  concat_k<<<grid_for(n * (k + 1)), kThreads>>>(logits, pos, neg, n, k);
  check_last("concat_pos_neg");
}

void split_pos_neg(float* g0, float* gneg, const float* g, int64_t n, int64_t k) {
  if (n <= 0) return;
  split_k<<<grid_for(n * (k + 1)), kThreads>>>(g0, gneg, g, n, k);
  check_last("split_pos_neg");
}

void infonce_rows_backward(float* dq, float* dp, float* dneg, const float* g0, const float* gneg, const float* q, const float* p,
                           const float* neg, int64_t n, int64_t k, int64_t d) {
  if (n * d <= 0) return;
  infonce_bwd_k<<<grid_for(n * d), kThreads>>>(dq, dp, dneg, g0, gneg, q, p, neg, n, k, d);
  check_last("infonce_rows_backward");
}

void scale_by(float* out, const float* src, const float* g, bool g_scalar, int64_t n, float alpha) {
  if (n <= 0) return;
  scale_by_k<<<grid_for(n), kThreads>>>(out, src, g, g_scalar, n, alpha);
  check_last("scale_by");
}

void scale_rows(float* out, const float* src, const float* g, int64_t rows, int64_t cols, float alpha) {
  if (rows * cols <= 0) return;
  scale_rows_k<<<grid_for(rows * cols), kThreads>>>(out, src, g, rows, cols, alpha);
  check_last("scale_rows");
}

}  // namespace qgs::cuda
