// Weight copies held by the prepared plans (RankHeadPlan, LinearHstuEncoderPlan): a plan must not
// depend on the caller's buffers staying alive or unchanged. Private to native/cpu.
#pragma once
#include <cstdint>
#include <vector>

namespace qgs::cpu {

// A copy of n floats kept in `owned` (null stays null). The returned pointer stays valid while
// `owned` lives: later copies move the outer vector's elements, not their buffers.
inline const float* keep(std::vector<std::vector<float>>& owned, const float* p, int64_t n) {
  if (p == nullptr) return nullptr;
  owned.emplace_back(p, p + n);
  return owned.back().data();
}

}  // namespace qgs::cpu
