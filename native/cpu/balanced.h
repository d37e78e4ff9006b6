// Load-balanced work items for the sequence kernels (linrec, hstu): items of very uneven cost
// (jagged batches with long-tailed lengths) are claimed longest first from an atomic counter by every
// pool thread, so one long sequence never waits behind a queue of short ones (LPT scheduling).
// Private to native/cpu.
#pragma once
#include <algorithm>
#include <atomic>
#include <cstdint>
#include <numeric>
#include <vector>

#include "qgs/parallel.h"

namespace qgs::cpu {

// Calls make_scratch() once per participating thread, then body(item, scratch) for every item with
// cost > 0 (items of cost 0 are passed too: they may still write padding), longest first.
template <typename MakeScratch, typename Body>
void run_balanced(const std::vector<int64_t>& cost, MakeScratch make_scratch, Body body) {
  const int64_t n = static_cast<int64_t>(cost.size());
  if (n == 0) return;
  std::vector<int64_t> order(static_cast<size_t>(n));
  std::iota(order.begin(), order.end(), int64_t(0));
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return cost[a] > cost[b]; });
  std::atomic<int64_t> next{0};
  const int64_t workers = std::max<int64_t>(1, std::min<int64_t>(num_threads(), n));
  parallel_for(workers, 1, [&](int64_t b, int64_t e) {
    auto scratch = make_scratch();
    for (int64_t w = b; w < e; ++w) {
      for (;;) {
        int64_t i = next.fetch_add(1);
        if (i >= n) break;
        body(order[static_cast<size_t>(i)], scratch);
      }
    }
  });
}

}  // namespace qgs::cpu
