#include "kiln/core/thread_pool.h"

#include <chrono>

#if defined(__x86_64__)
#include <immintrin.h>
#define KILN_PAUSE() _mm_pause()
#else
#define KILN_PAUSE() ((void)0)
#endif

namespace kiln {

ThreadPool::ThreadPool(int threads, int spin_us) : spin_us_(spin_us) {
  for (int i = 1; i < threads; ++i) workers_.emplace_back([this, i] { worker_loop(i); });
}

ThreadPool::~ThreadPool() {
  stop_.store(true, std::memory_order_release);
  epoch_.fetch_add(1, std::memory_order_acq_rel);
  epoch_.notify_all();
  for (std::thread& t : workers_) t.join();
}

void ThreadPool::work(TaskFn fn, void* ctx, int64_t n) {
  for (;;) {
    int64_t i = next_.fetch_add(1, std::memory_order_relaxed);
    if (i >= n) break;
    fn(ctx, i);
  }
}

void ThreadPool::run(int64_t n, TaskFn fn, void* ctx) {
  fn_ = fn;
  ctx_ = ctx;
  n_ = n;
  next_.store(0, std::memory_order_relaxed);
  const uint32_t e = epoch_.load(std::memory_order_relaxed) + 1;
  join_.store(uint64_t{e} << 32, std::memory_order_release);
  epoch_.store(e, std::memory_order_release);
  epoch_.notify_all();
  work(fn, ctx, n);
  // No task is left: close the job so no late worker joins, then wait only for the workers
  // inside it to finish their last task.
  join_.fetch_or(kClosed, std::memory_order_acq_rel);
  while ((join_.load(std::memory_order_acquire) & kCountMask) != 0) KILN_PAUSE();
}

void ThreadPool::worker_loop(int /*index*/) {
  // The epoch is 0 until the first job; reading it here instead could miss a job published
  // before this thread got to run.
  uint32_t seen = 0;
  for (;;) {
    // Bounded spin for the next job, then sleep until the epoch changes.
    auto deadline = std::chrono::steady_clock::now() + std::chrono::microseconds(spin_us_);
    uint32_t e = epoch_.load(std::memory_order_acquire);
    while (e == seen) {
      for (int k = 0; k < 64 && e == seen; ++k) {
        KILN_PAUSE();
        e = epoch_.load(std::memory_order_acquire);
      }
      if (e != seen || std::chrono::steady_clock::now() > deadline) break;
    }
    if (e == seen) {
      epoch_.wait(seen, std::memory_order_acquire);
      e = epoch_.load(std::memory_order_acquire);
    }
    seen = e;
    if (stop_.load(std::memory_order_acquire)) return;
    // Join job `e` if it is still open; a worker that woke too late (closed, or a newer job
    // already published) goes back to waiting.
    uint64_t s = join_.load(std::memory_order_acquire);
    bool joined = false;
    while ((s >> 32) == e && (s & kClosed) == 0) {
      if (join_.compare_exchange_weak(s, s + 1, std::memory_order_acq_rel, std::memory_order_acquire)) {
        joined = true;
        break;
      }
    }
    if (!joined) continue;
    work(fn_, ctx_, n_);
    join_.fetch_sub(1, std::memory_order_release);
  }
}

}  // namespace kiln
