// Host-side CUDA helpers used by the N-API layer. Implemented in native/cuda/runtime.cu and only
// linked when the addon is built with QGS_CUDA=ON. Every CUDA call is checked; failures throw
// qgs::KernelError with the CUDA error name (never abort).
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

namespace qgs::cuda {

// Number of usable devices; 0 (and *reason set) when no driver/GPU answers.
int device_count(std::string* reason);
std::string device_name();
void* malloc_device(size_t bytes);
void free_device(void* p) noexcept;
void copy_h2d(void* dst, const void* src, size_t bytes);
void copy_d2h(void* dst, const void* src, size_t bytes);
void copy_d2d(void* dst, const void* src, size_t bytes);
void memset_device(void* dst, int value, size_t bytes);
void synchronize();
// a[i] += b[i] for i < n (gradient accumulation).
void add_inplace(float* a, const float* b, int64_t n);

// Throws KernelError("<what>: <cuda error>") when the last launch failed.
void check_last(const char* what);

}  // namespace qgs::cuda
