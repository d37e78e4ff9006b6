// Uninitialised float scratch for kernels that write every element before reading it (a zero-filled
// std::vector would memset it first: at serving sizes a visible share of a cold encode). Private to
// native/cpu.
#pragma once
#include <cstdint>
#include <memory>

namespace qgs::cpu {

inline std::unique_ptr<float[]> scratch(int64_t n) { return std::unique_ptr<float[]>(new float[static_cast<size_t>(n)]); }

}  // namespace qgs::cpu
