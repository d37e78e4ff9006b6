// Thread pool: full coverage of the range, exceptions propagate, nesting runs serially.
#include <atomic>
#include <chrono>
#include <stdexcept>
#include <thread>
#include <vector>

#include "qgs/parallel.h"
#include "test_util.h"

int main() {
  using namespace qgs_test;
  uint64_t seed = fresh_seed();
  Rng rng(seed);
  for (int rep = 0; rep < 50; ++rep) {
    int64_t n = rng.integer(0, 5000), grain = rng.integer(1, 300);
    std::vector<std::atomic<int>> hit(static_cast<size_t>(n));
    qgs::parallel_for(n, grain, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) hit[static_cast<size_t>(i)]++;
    });
    bool ok = true;
    for (auto& h : hit) ok = ok && h.load() == 1;
    check(ok, "parallel_for covers each index exactly once");
  }
  check_throws("exception propagates", [] {
    qgs::parallel_for(1000, 1, [](int64_t b, int64_t) {
      if (b > 500) throw std::runtime_error("boom");
    });
  });
  std::atomic<int64_t> total{0};
  qgs::parallel_for(64, 1, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      check(qgs::in_parallel_region(), "inside region flag");
      qgs::parallel_for(10, 1, [&](int64_t b2, int64_t e2) { total += e2 - b2; });
    }
  });
  check(total.load() == 640, "nested parallel_for runs serially and completely");
  // Several threads submitting back-to-back jobs at once (JS main thread + workers; idle pool
  // threads spin between jobs before sleeping), with a resize in the middle.
  {
    std::atomic<int> bad{0};
    std::vector<std::thread> callers;
    for (int t = 0; t < 3; ++t) {
      callers.emplace_back([&bad, t] {
        for (int rep = 0; rep < 300; ++rep) {
          const int64_t n = 1 + (rep * 37 + t * 11) % 997;
          std::vector<std::atomic<int>> hit(static_cast<size_t>(n));
          qgs::parallel_for(n, 1 + rep % 7, [&](int64_t b, int64_t e) {
            for (int64_t i = b; i < e; ++i) hit[static_cast<size_t>(i)]++;
          });
          for (auto& h : hit)
            if (h.load() != 1) bad++;
        }
      });
    }
    qgs::set_num_threads(3);
    for (auto& c : callers) c.join();
    qgs::set_num_threads(0);
    check(bad.load() == 0, "concurrent callers: every index of every job exactly once");
  }
  // wake_pool (serving calls it as a request goes to the worker) racing jobs, idle periods long
  // enough for the threads to sleep, and a resize: no lost or doubled work, no hang.
  {
    qgs::set_num_threads(3);
    std::atomic<bool> done{false};
    std::thread waker([&done] {
      while (!done.load()) {
        qgs::wake_pool();
        std::this_thread::sleep_for(std::chrono::microseconds(150));
      }
    });
    int bad = 0;
    for (int rep = 0; rep < 200; ++rep) {
      if (rep % 50 == 25) qgs::set_num_threads(rep % 100 == 25 ? 2 : 3);
      if (rep % 10 == 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));  // threads go to sleep
      if (rep % 3 == 0) qgs::wake_pool();
      const int64_t n = 1 + (rep * 53) % 811;
      std::vector<std::atomic<int>> hit(static_cast<size_t>(n));
      qgs::parallel_for(n, 1 + rep % 5, [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i) hit[static_cast<size_t>(i)]++;
      });
      for (auto& h : hit)
        if (h.load() != 1) bad++;
    }
    done = true;
    waker.join();
    qgs::set_num_threads(1);
    qgs::wake_pool();  // a one-thread pool has nobody to wake
    qgs::set_num_threads(0);
    check(bad == 0, "wake_pool racing jobs, sleeps and resizes: every index exactly once");
  }
  check(qgs::num_threads() >= 1, "pool has threads");
  qgs::set_num_threads(3);
  check(qgs::num_threads() == 3, "resize to 3");
  qgs::set_num_threads(0);
  return finish("test_parallel", seed);
}
