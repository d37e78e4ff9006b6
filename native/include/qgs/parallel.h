// The one persistent CPU thread pool (DESIGN.md §2). Sized to the physical cores; QGS_NUM_THREADS
// overrides. BLAS is set to the same thread count and must only be called outside parallel regions,
// so the two pools never compete.
#pragma once
#include <cstdint>
#include <functional>

namespace qgs {

// Number of threads parallel_for uses (including the calling thread).
int num_threads();

// Changes the pool size (and the BLAS thread count to match). n < 1 means "physical cores".
void set_num_threads(int n);

// Physical cores of this machine (hyperthread siblings counted once).
int physical_cores();

// Calls fn(begin, end) over disjoint ranges covering [0, n), each at least `grain` long except the
// last, dynamically scheduled across the pool (so very uneven work items balance). Blocks until all
// ranges are done; the first exception thrown by fn is rethrown here. Nested calls run serially on
// the calling thread.
void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn);

// True while the current thread is executing inside parallel_for.
bool in_parallel_region();

}  // namespace qgs
