#include "kiln/core/thread_pool.h"

#include <chrono>

#if defined(__x86_64__)
#include <immintrin.h>
#define KILN_PAUSE() _mm_pause()
#else
#define KILN_PAUSE() ((void)0)
#endif

namespace kiln {
namespace {

constexpr uint64_t pack(uint64_t begin, uint64_t end) { return begin | (end << 32); }
constexpr int64_t begin_of(uint64_t b) { return static_cast<int64_t>(b & 0xffffffffu); }
constexpr int64_t end_of(uint64_t b) { return static_cast<int64_t>(b >> 32); }

}  // namespace

ThreadPool::ThreadPool(int threads, int spin_us) : ranges_(static_cast<size_t>(threads < 1 ? 1 : threads)), spin_us_(spin_us) {
  for (int i = 1; i < threads; ++i) workers_.emplace_back([this, i] { worker_loop(i); });
}

ThreadPool::~ThreadPool() {
  stop_.store(true, std::memory_order_release);
  const uint32_t e = epoch_.load(std::memory_order_relaxed) + 1;
  job_.join.store((uint64_t{e} << 32) | kClosed, std::memory_order_release);
  epoch_.store(e, std::memory_order_release);
  epoch_.notify_all();
  for (std::thread& t : workers_) t.join();
}

int64_t ThreadPool::take_front(int index) {
  // Only the owner moves `begin`, by one past `end` at most once (then it stops), so the add never
  // carries into `end`.
  const uint64_t b = ranges_[static_cast<size_t>(index)].bounds.fetch_add(1, std::memory_order_relaxed);
  return begin_of(b) < end_of(b) ? begin_of(b) : -1;
}

int64_t ThreadPool::take_back(int index) {
  std::atomic<uint64_t>& r = ranges_[static_cast<size_t>(index)].bounds;
  uint64_t b = r.load(std::memory_order_relaxed);
  while (begin_of(b) < end_of(b)) {
    if (r.compare_exchange_weak(b, b - (uint64_t{1} << 32), std::memory_order_relaxed)) return end_of(b) - 1;
  }
  return -1;
}

void ThreadPool::work(int index) {
  const TaskFn fn = job_.fn;
  void* const ctx = job_.ctx;
  for (int64_t i; (i = take_front(index)) >= 0;) fn(ctx, i);
  const int t = threads();
  for (int k = 1; k < t; ++k) {
    const int victim = (index + k) % t;
    for (int64_t i; (i = take_back(victim)) >= 0;) fn(ctx, i);
  }
}

void ThreadPool::run(int64_t n, TaskFn fn, void* ctx) {
  const int t = threads();
  for (int p = 0; p < t; ++p)
    ranges_[static_cast<size_t>(p)].bounds.store(pack(static_cast<uint64_t>(n * p / t), static_cast<uint64_t>(n * (p + 1) / t)),
                                                 std::memory_order_relaxed);
  job_.fn = fn;
  job_.ctx = ctx;
  const uint32_t e = epoch_.load(std::memory_order_relaxed) + 1;
  job_.join.store(uint64_t{e} << 32, std::memory_order_release);
  epoch_.store(e, std::memory_order_release);
  epoch_.notify_all();
  work(0);
  // No task is left: close the job so no late worker joins, then wait only for the workers
  // inside it to finish their last task.
  job_.join.fetch_or(kClosed, std::memory_order_acq_rel);
  while ((job_.join.load(std::memory_order_acquire) & kCountMask) != 0) KILN_PAUSE();
}

void ThreadPool::worker_loop(int index) {
  // Job numbers start at 1; reading the current one here instead could miss a job published
  // before this thread got to run.
  uint32_t seen = 0;
  for (;;) {
    // Bounded spin for the next job, then sleep until the epoch changes.
    uint64_t s = job_.join.load(std::memory_order_acquire);
    if (static_cast<uint32_t>(s >> 32) == seen) {
      const auto deadline = std::chrono::steady_clock::now() + std::chrono::microseconds(spin_us_);
      do {
        for (int k = 0; k < 64 && static_cast<uint32_t>(s >> 32) == seen; ++k) {
          KILN_PAUSE();
          s = job_.join.load(std::memory_order_acquire);
        }
      } while (static_cast<uint32_t>(s >> 32) == seen && std::chrono::steady_clock::now() <= deadline);
      if (static_cast<uint32_t>(s >> 32) == seen) {
        epoch_.wait(seen, std::memory_order_acquire);
        continue;
      }
    }
    const uint32_t e = static_cast<uint32_t>(s >> 32);
    seen = e;
    if (stop_.load(std::memory_order_acquire)) return;
    // Join job `e` if it is still open; a worker that woke too late (closed, or a newer job
    // already published) goes back to waiting.
    bool joined = false;
    while (static_cast<uint32_t>(s >> 32) == e && (s & kClosed) == 0) {
      if (job_.join.compare_exchange_weak(s, s + 1, std::memory_order_acq_rel, std::memory_order_acquire)) {
        joined = true;
        break;
      }
    }
    if (!joined) continue;
    work(index);
    job_.join.fetch_sub(1, std::memory_order_release);
  }
}

}  // namespace kiln
