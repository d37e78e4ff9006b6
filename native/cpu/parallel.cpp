// Persistent thread pool. This is the only global mutable state in the native core (DESIGN.md §2).
#include "qgs/parallel.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <exception>
#include <fstream>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "qgs/common.h"

#ifdef QGS_WITH_BLAS
extern "C" void openblas_set_num_threads(int);
#endif

namespace qgs {
namespace {

thread_local bool t_in_region = false;

int count_physical_cores() {
  unsigned logical = std::max(1u, std::thread::hardware_concurrency());
  std::set<std::pair<std::string, std::string>> cores;
  for (unsigned c = 0; c < logical; ++c) {
    std::string base = "/sys/devices/system/cpu/cpu" + std::to_string(c) + "/topology/";
    std::ifstream pkg(base + "physical_package_id"), core(base + "core_id");
    std::string p, k;
    if (!(pkg >> p) || !(core >> k)) return static_cast<int>(logical);
    cores.insert({p, k});
  }
  return cores.empty() ? static_cast<int>(logical) : static_cast<int>(cores.size());
}

int threads_from_env() { return static_cast<int>(env_int("QGS_NUM_THREADS", 1, 1024, count_physical_cores())); }

class Pool {
 public:
  Pool() { resize(threads_from_env()); }
  ~Pool() { stop_workers(); }

  // Read without run_mu_ (by run() on any thread); workers_ itself changes only under run_mu_.
  int size() const { return nthreads_.load(std::memory_order_acquire); }

  void resize(int n) {
    std::lock_guard<std::mutex> run_lock(run_mu_);
    stop_workers();
    n = std::max(1, n);
    stop_ = false;
    for (int i = 0; i < n - 1; ++i) workers_.emplace_back([this] { worker_loop(); });
    nthreads_.store(n, std::memory_order_release);
    blas_max_ = static_cast<int>(env_int("QGS_BLAS_THREADS", 1, 1024, n));
    set_blas(blas_max_);
  }

  // BLAS threads for one GEMM of `macs` multiply-adds: 1 below kBlasThreadedMacs, else blas_max_.
  // Waking OpenBLAS's threads for a small product costs more than it saves, and they then spin
  // (sched_yield) beside our pool's threads: on the 2-vCPU machine a 10M-MAC GEMM took 0.31-0.55 ms
  // on one thread vs 0.38-0.56 ms on two, and a cold QGS encode + score had p99 14-20 ms with two
  // BLAS threads vs 8.7-9.4 ms with one (same p50). The count changes only when the size class does.
  void blas_threads_for(int64_t macs) {
    const int want = macs < kBlasThreadedMacs ? 1 : blas_max_.load(std::memory_order_relaxed);
    if (blas_now_.load(std::memory_order_relaxed) != want) set_blas(want);
  }

  int blas_max() const { return blas_max_.load(std::memory_order_relaxed); }

  void wake() {
    if (size() == 1) return;
    {
      std::lock_guard<std::mutex> lk(mu_);
      ++wake_seq_;
    }
    cv_.notify_all();
  }

  void run(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn) {
    if (n <= 0) return;
    grain = std::max<int64_t>(1, grain);
    int64_t chunks = (n + grain - 1) / grain;
    if (t_in_region || size() == 1 || chunks == 1) {
      bool was = t_in_region;
      t_in_region = true;
      try {
        fn(0, n);
      } catch (...) {
        t_in_region = was;
        throw;
      }
      t_in_region = was;
      return;
    }
    // Several JS threads (workers, async work) may call in; one job runs at a time.
    std::lock_guard<std::mutex> run_lock(run_mu_);
    // Over-split a little so uneven ranges balance, but keep each piece >= grain.
    int64_t pieces = std::min<int64_t>(chunks, static_cast<int64_t>(size()) * 8);
    int64_t piece = (n + pieces - 1) / pieces;
    pieces = (n + piece - 1) / piece;
    {
      std::lock_guard<std::mutex> lk(mu_);
      job_ = &fn;
      job_n_ = n;
      job_piece_ = piece;
      job_pieces_ = pieces;
      next_.store(0);
      done_.store(0);
      error_ = nullptr;
      ++generation_;
    }
    cv_.notify_all();
    work_on_job();
    // The other threads' last pieces usually end within microseconds: spin before sleeping.
    spin_until([&] { return done_.load(std::memory_order_acquire) == job_pieces_ && active_.load(std::memory_order_acquire) == 0; });
    std::unique_lock<std::mutex> lk(mu_);
    done_cv_.wait(lk, [&] { return done_.load() == job_pieces_ && active_ == 0; });
    job_ = nullptr;
    std::exception_ptr err = error_;
    error_ = nullptr;
    lk.unlock();
    if (err) std::rethrow_exception(err);
  }

 private:
  void work_on_job() {
    t_in_region = true;
    for (;;) {
      int64_t i = next_.fetch_add(1);
      if (i >= job_pieces_) break;
      int64_t b = i * job_piece_, e = std::min(job_n_, b + job_piece_);
      try {
        (*job_)(b, e);
      } catch (...) {
        std::lock_guard<std::mutex> lk(mu_);
        if (!error_) error_ = std::current_exception();
      }
      if (done_.fetch_add(1) + 1 == job_pieces_) {
        std::lock_guard<std::mutex> lk(mu_);
        done_cv_.notify_all();
      }
    }
    t_in_region = false;
  }

  // Spins (with a pause) until ready() or spin_us_ microseconds have passed. A kernel is often a
  // run of back-to-back parallel_for calls with a few microseconds of serial work between them; a
  // worker that sleeps on the condition variable after each one pays a futex wake-up (tens of
  // microseconds on a VM) to start the next.
  template <class F>
  bool spin_until(F ready) const {
    if (spin_us_ <= 0) return ready();
    const auto until = std::chrono::steady_clock::now() + std::chrono::microseconds(spin_us_);
    for (int i = 0;; ++i) {
      if (ready()) return true;
#if defined(__x86_64__) || defined(__i386__)
      __builtin_ia32_pause();
#endif
      if ((i & 63) == 63 && std::chrono::steady_clock::now() >= until) return ready();
    }
  }

  void worker_loop() {
    uint64_t seen = 0, seen_wake = 0;
    for (;;) {
      spin_until([&] { return stop_.load(std::memory_order_acquire) || generation_.load(std::memory_order_acquire) != seen; });
      {
        std::unique_lock<std::mutex> lk(mu_);
        cv_.wait(lk, [&] { return stop_ || (generation_ != seen && job_ != nullptr) || wake_seq_ != seen_wake; });
        if (stop_) return;
        seen_wake = wake_seq_;
        // Woken by wake() with no job yet: back to spinning for the job that is on its way.
        if (!(generation_ != seen && job_ != nullptr)) continue;
        seen = generation_;
        ++active_;
      }
      work_on_job();
      {
        std::lock_guard<std::mutex> lk(mu_);
        --active_;
        done_cv_.notify_all();
      }
    }
  }

  void stop_workers() {
    {
      std::lock_guard<std::mutex> lk(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    for (auto& t : workers_) t.join();
    workers_.clear();
  }

  void set_blas(int n) {
    blas_now_.store(n, std::memory_order_relaxed);
#ifdef QGS_WITH_BLAS
    openblas_set_num_threads(n);
#endif
  }

  static constexpr int64_t kBlasThreadedMacs = int64_t(1) << 24;
  // Atomics: GEMMs may be called from several JS threads (main and workers) at once; a race only
  // changes how many BLAS threads one product uses.
  std::atomic<int> blas_max_{1}, blas_now_{0};
  std::mutex run_mu_;
  std::mutex mu_;
  std::condition_variable cv_, done_cv_;
  std::vector<std::thread> workers_;
  // Written under mu_; atomic so that spinning threads may read them without it.
  std::atomic<int> nthreads_{1};
  std::atomic<bool> stop_{false};
  std::atomic<uint64_t> generation_{0};
  uint64_t wake_seq_ = 0;  // under mu_: bumped by wake()
  std::atomic<int> active_{0};
  // QGS_POOL_SPIN_US: how long an idle thread spins before sleeping (0 = never spins).
  const int spin_us_ = static_cast<int>(env_int("QGS_POOL_SPIN_US", 0, 10000, 200));
  const std::function<void(int64_t, int64_t)>* job_ = nullptr;
  int64_t job_n_ = 0, job_piece_ = 1, job_pieces_ = 0;
  std::atomic<int64_t> next_{0}, done_{0};
  std::exception_ptr error_;
};

Pool& pool() {
  static Pool p;
  return p;
}

}  // namespace

int num_threads() { return pool().size(); }
int blas_threads() { return pool().blas_max(); }
void blas_threads_for_gemm(int64_t macs) { pool().blas_threads_for(macs); }
void set_num_threads(int n) { pool().resize(n < 1 ? count_physical_cores() : n); }
int physical_cores() { return count_physical_cores(); }
bool in_parallel_region() { return t_in_region; }
void wake_pool() { pool().wake(); }

void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn) {
  pool().run(n, grain, fn);
}

}  // namespace qgs
