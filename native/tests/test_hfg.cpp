// HFG grouped attention (CPU) against a naive double-precision reference: fresh random inputs,
// odd sizes, masks with fully masked rows, poisoned outputs, large logits, bad arguments.
#include <cmath>
#include <cstdio>
#include <limits>
#include <string>
#include <vector>

#include "qgs/hfg.h"
#include "test_util.h"
#ifdef QGS_WITH_CUDA
#include "qgs/cuda_runtime.h"
#endif

using namespace qgs_test;

namespace {

struct Ref {
  std::vector<double> out, dq, dk, dv;
};

// Naive float64 forward + analytic backward (softmax Jacobian written out, no shortcuts shared with
// the kernel: dS = P ⊙ (dP − rowsum(dP ⊙ P)) computed with explicit double loops).
Ref reference(const std::vector<float>& q, const std::vector<float>& k, const std::vector<float>& v,
              const std::vector<float>* mask, const std::vector<float>& dout, int64_t N, int64_t H, int64_t Tq,
              int64_t Tk, int64_t d, double scale) {
  Ref r;
  r.out.assign(q.size(), 0.0);
  r.dq.assign(q.size(), 0.0);
  r.dk.assign(k.size(), 0.0);
  r.dv.assign(v.size(), 0.0);
  for (int64_t n = 0; n < N; ++n)
    for (int64_t h = 0; h < H; ++h) {
      int64_t row = n * H + h;
      for (int64_t i = 0; i < Tq; ++i) {
        const float* qi = &q[(row * Tq + i) * d];
        const float* gi = &dout[(row * Tq + i) * d];
        std::vector<double> s(Tk, 0.0), p(Tk, 0.0), dp(Tk, 0.0);
        std::vector<bool> present(Tk);
        double mx = -INFINITY;
        bool any = false;
        for (int64_t j = 0; j < Tk; ++j) {
          present[j] = mask == nullptr || (*mask)[n * Tk + j] != 0.f;
          if (!present[j]) continue;
          double acc = 0;
          for (int64_t c = 0; c < d; ++c) acc += double(qi[c]) * k[(row * Tk + j) * d + c];
          s[j] = acc * scale;
          mx = std::max(mx, s[j]);
          any = true;
        }
        if (!any) continue;
        double sum = 0;
        for (int64_t j = 0; j < Tk; ++j) {
          if (present[j]) sum += (p[j] = std::exp(s[j] - mx));
        }
        for (int64_t j = 0; j < Tk; ++j) p[j] /= sum;
        for (int64_t j = 0; j < Tk; ++j)
          for (int64_t c = 0; c < d; ++c) {
            r.out[(row * Tq + i) * d + c] += p[j] * v[(row * Tk + j) * d + c];
            dp[j] += double(gi[c]) * v[(row * Tk + j) * d + c];
          }
        double D = 0;
        for (int64_t j = 0; j < Tk; ++j) D += p[j] * dp[j];
        for (int64_t j = 0; j < Tk; ++j) {
          double ds = p[j] * (dp[j] - D) * scale;
          for (int64_t c = 0; c < d; ++c) {
            r.dq[(row * Tq + i) * d + c] += ds * k[(row * Tk + j) * d + c];
            r.dk[(row * Tk + j) * d + c] += ds * qi[c];
            r.dv[(row * Tk + j) * d + c] += p[j] * gi[c];
          }
        }
      }
    }
  return r;
}

enum class Dev { CPU, CUDA };

#ifdef QGS_WITH_CUDA
// Runs the CUDA kernels on host vectors (copies in and out), outputs poisoned on the device too.
void run_cuda(std::vector<float>& out, std::vector<float>& dq, std::vector<float>& dk, std::vector<float>& dv,
              const std::vector<float>& q, const std::vector<float>& k, const std::vector<float>& v,
              const std::vector<float>& g, const float* mask, int64_t N, int64_t H, int64_t Tq, int64_t Tk, int64_t d,
              float scale) {
  namespace cu = qgs::cuda;
  auto up = [](const float* src, size_t n) {
    void* p = cu::malloc_device(n * 4);
    if (n) cu::copy_h2d(p, src, n * 4);
    return static_cast<float*>(p);
  };
  const size_t nq = q.size(), nk = k.size();
  float *dQ = up(q.data(), nq), *dK = up(k.data(), nk), *dV = up(v.data(), nk), *dG = up(g.data(), nq);
  float* dM = mask ? up(mask, size_t(N * Tk)) : nullptr;
  float *dO = up(out.data(), nq), *ddq = up(dq.data(), nq), *ddk = up(dk.data(), nk), *ddv = up(dv.data(), nk);
  qgs::cuda::grouped_attention_forward(dO, dQ, dK, dV, dM, N, H, Tq, Tk, d, scale);
  qgs::cuda::grouped_attention_backward(ddq, ddk, ddv, dG, dQ, dK, dV, dM, N, H, Tq, Tk, d, scale);
  cu::synchronize();
  if (nq) cu::copy_d2h(out.data(), dO, nq * 4), cu::copy_d2h(dq.data(), ddq, nq * 4);
  if (nk) cu::copy_d2h(dk.data(), ddk, nk * 4), cu::copy_d2h(dv.data(), ddv, nk * 4);
  for (float* p : {dQ, dK, dV, dG, dM, dO, ddq, ddk, ddv}) if (p) cu::free_device(p);
}
#endif

void run_case(Rng& rng, int64_t N, int64_t H, int64_t Tq, int64_t Tk, int64_t d, bool use_mask, float logit_sd,
              Dev dev = Dev::CPU) {
  const std::string tag = std::string(dev == Dev::CPU ? "cpu" : "cuda") + " N=" + std::to_string(N) + " H=" + std::to_string(H) + " Tq=" + std::to_string(Tq) +
                          " Tk=" + std::to_string(Tk) + " d=" + std::to_string(d) + (use_mask ? " mask" : "") +
                          " sd=" + std::to_string(logit_sd);
  const size_t nq = size_t(N * H * Tq * d), nk = size_t(N * H * Tk * d);
  auto q = rng.normals(nq, logit_sd), k = rng.normals(nk), v = rng.normals(nk), g = rng.normals(nq);
  std::vector<float> mask;
  if (use_mask) {
    mask.resize(size_t(N * Tk));
    for (int64_t n = 0; n < N; ++n) {
      // Every third row fully masked; the others drop each key with probability 0.3.
      bool all_off = (n % 3 == 1);
      for (int64_t j = 0; j < Tk; ++j) mask[n * Tk + j] = (!all_off && rng.uniform(0, 1) > 0.3f) ? 1.f : 0.f;
    }
  }
  const float scale = 1.f / std::sqrt(float(d)) * rng.uniform(0.5f, 1.5f);
  const float* mp = use_mask ? mask.data() : nullptr;
  auto out = poisoned(nq), dq = poisoned(nq), dk = poisoned(nk), dv = poisoned(nk);
  if (dev == Dev::CPU) {
    qgs::cpu::grouped_attention_forward(out.data(), q.data(), k.data(), v.data(), mp, N, H, Tq, Tk, d, scale);
    qgs::cpu::grouped_attention_backward(dq.data(), dk.data(), dv.data(), g.data(), q.data(), k.data(), v.data(), mp,
                                         N, H, Tq, Tk, d, scale);
  } else {
#ifdef QGS_WITH_CUDA
    run_cuda(out, dq, dk, dv, q, k, v, g, mp, N, H, Tq, Tk, d, scale);
#endif
  }
  // DESIGN.md §8: < 1e-5 on the CPU, < 1e-4 on CUDA (fast-math exp, different summation order).
  const double tol = dev == Dev::CPU ? 1e-5 : 1e-4;
  Ref r = reference(q, k, v, use_mask ? &mask : nullptr, g, N, H, Tq, Tk, d, scale);
  // dq and dk are sums of scale * p_j (g.v_j - D) * k (or q) terms that cancel (exactly pairwise with
  // two keys, nearly with saturated rows), so a small result can carry float32 rounding that is
  // large relative to itself but tiny relative to the terms. They pass when the relative error is
  // below tol OR the RMS error is below tol x the RMS size of one term; a real bug is off by O(terms).
  auto rms = [](const std::vector<float>& a) {
    double s = 0;
    for (float x : a) s += double(x) * x;
    return a.empty() ? 0.0 : std::sqrt(s / double(a.size()));
  };
  const double term = double(scale) * rms(g) * rms(v) * std::sqrt(double(d)) * std::max(rms(q), rms(k));
  auto check_grad = [&](const std::string& what, const std::vector<float>& got, const std::vector<double>& ref) {
    double num = 0, den = 0;
    bool finite = got.size() == ref.size();
    for (size_t i = 0; finite && i < got.size(); ++i) {
      finite = std::isfinite(got[i]);
      double e = got[i] - ref[i];
      num += e * e;
      den += ref[i] * ref[i];
    }
    const double rel = den > 0 ? std::sqrt(num / den) : (num > 0 ? 1.0 : 0.0);
    const double rms_err = got.empty() ? 0.0 : std::sqrt(num / double(got.size()));
    check(finite && (rel < tol || rms_err < tol * term),
          what + " " + tag + ": relative error " + std::to_string(rel) + ", rms error " + std::to_string(rms_err) + " vs term size " + std::to_string(term));
  };
  check_close("forward " + tag, out, r.out, tol);
  check_grad("dq", dq, r.dq);
  check_grad("dk", dk, r.dk);
  check_close("dv " + tag, dv, r.dv, tol);
  if (use_mask) {
    // Fully masked rows: exact zeros in the output and every gradient (not just "close").
    bool zeros = true;
    for (int64_t n = 1; n < N; n += 3)
      for (int64_t x = 0; x < H * Tq * d; ++x) zeros = zeros && out[n * H * Tq * d + x] == 0.f && dq[n * H * Tq * d + x] == 0.f;
    for (int64_t n = 1; n < N; n += 3)
      for (int64_t x = 0; x < H * Tk * d; ++x) zeros = zeros && dk[n * H * Tk * d + x] == 0.f && dv[n * H * Tk * d + x] == 0.f;
    check(zeros, "fully masked rows give exact zeros " + tag);
  }
}

}  // namespace

int main() {
  uint64_t seed = fresh_seed();
  Rng rng(seed);
  // d in {8, 16, 32, 64} take the fixed-width CPU path, every other d the generic one; Tq up to 10
  // covers the 4-query tiles and their remainder, Tk 9/10/17 the partial 8-key and 16-key blocks.
  for (int64_t Tq : {1, 3, 10})
    for (int64_t Tk : {1, 2, 9, 10, 17, 33, 64})
      for (int64_t d : {1, 3, 8, 16, 32, 64, 128}) {
        int64_t N = rng.integer(1, 9), H = rng.integer(1, 3);
        run_case(rng, N, H, Tq, Tk, d, false, 1.f);
        run_case(rng, N + 2, H, Tq, Tk, d, true, 1.f);
      }
  // Many rows (exercises the pool split) and large logits (softmax must not overflow).
  run_case(rng, 517, 4, 10, 10, 32, true, 1.f);
  run_case(rng, 37, 2, 3, 9, 16, true, 30.f);
  run_case(rng, 0, 2, 3, 9, 16, true, 1.f);

  // Bad arguments throw KernelError (never abort).
  std::vector<float> buf(64 * 129 * 2, 0.f);
  float* p = buf.data();
  check_throws("Tk = 0", [&] { qgs::cpu::grouped_attention_forward(p, p, p, p, nullptr, 1, 1, 1, 0, 4, 1.f); });
  check_throws("Tk = 65", [&] { qgs::cpu::grouped_attention_forward(p, p, p, p, nullptr, 1, 1, 1, 65, 4, 1.f); });
  check_throws("d = 129", [&] { qgs::cpu::grouped_attention_forward(p, p, p, p, nullptr, 1, 1, 1, 4, 129, 1.f); });
  check_throws("H = 0", [&] { qgs::cpu::grouped_attention_forward(p, p, p, p, nullptr, 1, 0, 1, 4, 4, 1.f); });
  check_throws("N < 0", [&] { qgs::cpu::grouped_attention_forward(p, p, p, p, nullptr, -1, 1, 1, 4, 4, 1.f); });
  check_throws("NaN scale", [&] {
    qgs::cpu::grouped_attention_forward(p, p, p, p, nullptr, 1, 1, 1, 4, 4, std::numeric_limits<float>::quiet_NaN());
  });
  check_throws("null q", [&] { qgs::cpu::grouped_attention_forward(p, nullptr, p, p, nullptr, 1, 1, 1, 4, 4, 1.f); });
  check_throws("backward Tq = 0",
               [&] { qgs::cpu::grouped_attention_backward(p, p, p, p, p, p, p, nullptr, 1, 1, 0, 4, 4, 1.f); });
#ifdef QGS_WITH_CUDA
  std::string reason;
  if (qgs::cuda::device_count(&reason) > 0) {
    for (int64_t Tq : {1, 3})
      for (int64_t Tk : {1, 2, 9, 33, 64})
        for (int64_t d : {1, 3, 8, 64, 128}) {
          run_case(rng, rng.integer(1, 9), rng.integer(1, 3), Tq, Tk, d, false, 1.f, Dev::CUDA);
          run_case(rng, rng.integer(3, 11), rng.integer(1, 3), Tq, Tk, d, true, 1.f, Dev::CUDA);
        }
    run_case(rng, 20011, 4, 10, 10, 32, true, 1.f, Dev::CUDA);  // many blocks, N·H·Tq = 800k query rows
    run_case(rng, 37, 2, 3, 9, 16, true, 30.f, Dev::CUDA);
    run_case(rng, 0, 2, 3, 9, 16, true, 1.f, Dev::CUDA);
    std::vector<float> none(1, 0.f);
    check_throws("cuda Tk = 65", [&] {
      qgs::cuda::grouped_attention_forward(none.data(), none.data(), none.data(), none.data(), nullptr, 1, 1, 1, 65, 4, 1.f);
    });
  } else {
    std::printf("test_hfg: CUDA kernels compiled but not run (%s)\n", reason.c_str());
  }
#endif
  return finish("test_hfg", seed);
}
