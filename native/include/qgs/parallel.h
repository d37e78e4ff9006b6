// The one persistent CPU thread pool (DESIGN.md §2). Sized to the physical cores; QGS_NUM_THREADS
// overrides. BLAS uses up to the same thread count (QGS_BLAS_THREADS overrides) for large products
// and one thread for small ones (blas_threads_for_gemm), and must only be called outside parallel
// regions, so the two pools never compete.
#pragma once
#include <cstdint>
#include <functional>

namespace qgs {

// Number of threads parallel_for uses (including the calling thread).
int num_threads();

// Changes the pool size (and the BLAS thread count to match). n < 1 means "physical cores".
void set_num_threads(int n);

// Most BLAS threads one GEMM may use (the pool size unless QGS_BLAS_THREADS says otherwise).
int blas_threads();

// Sets the BLAS thread count for a GEMM of `macs` multiply-adds (1 for small ones); call right
// before the BLAS call.
void blas_threads_for_gemm(int64_t macs);

// Physical cores of this machine (hyperthread siblings counted once).
int physical_cores();

// Calls fn(begin, end) over disjoint ranges covering [0, n), each at least `grain` long except the
// last, dynamically scheduled across the pool (so very uneven work items balance). Blocks until all
// ranges are done; the first exception thrown by fn is rethrown here. Nested calls run serially on
// the calling thread.
void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn);

// Wakes the pool's idle threads into their spin phase (QGS_POOL_SPIN_US) without work: a caller
// that is about to run parallel regions after a pause (a serving request arriving) calls it first,
// so the threads' wake-up (a futex wake, tens to hundreds of microseconds on a VM) overlaps the
// caller's own preparation instead of delaying the first region. Cheap when they are awake already.
void wake_pool();

// True while the current thread is executing inside parallel_for.
bool in_parallel_region();

}  // namespace qgs
