// e^x without libm, for the vectorised inner loops of the CPU kernels (private to native/cpu).
#pragma once
#include <cstdint>

namespace qgs::cpu {

// e^x for x in [-87.3, 88] (callers clamp or mask outside it): Cephes expf — range reduction by
// ln 2 (split into two constants), a degree-6 polynomial (~1 ulp), and the 2^k factor built from the
// exponent bits. Branch-free, so loops over it vectorise. Shared by the HFG softmax (hfg_simd.h) and
// the HSTU SiLU (hstu.cpp).
inline __attribute__((always_inline)) float exp_poly(float x) {
  const float k = __builtin_floorf(x * 1.44269504088896341f + 0.5f);
  const float r = x - k * 0.693359375f + k * 2.12194440e-4f;
  float t = 1.9875691500e-4f;
  t = t * r + 1.3981999507e-3f;
  t = t * r + 8.3334519073e-3f;
  t = t * r + 4.1665795894e-2f;
  t = t * r + 1.6666665459e-1f;
  t = t * r + 5.0000001201e-1f;
  const float y = t * r * r + r + 1.f;
  const int32_t bits = (static_cast<int32_t>(k) + 127) << 23;  // 2^k, k in [-126, 127]
  float pow2;
  __builtin_memcpy(&pow2, &bits, sizeof pow2);
  return y * pow2;
}

}  // namespace qgs::cpu
