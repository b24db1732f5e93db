// kiln/core/thread_pool.h — a small fork-join pool for inference, safe to share a machine with
// real-time loops.
//
// The pool owns `threads - 1` workers; the calling thread is the last worker, so a pool of 1
// thread starts no thread at all and parallel_for() simply runs the tasks inline. Workers spin
// briefly (bounded, default 50 µs) after a job for the next one, then sleep on a futex: an idle
// pool burns no CPU, unlike the spinning pools of ONNX Runtime, OpenMP or ggml that steal cycles
// from control loops on the same cores.
//
//   kiln::ThreadPool pool(2);
//   pool.parallel_for(rows, [&](int64_t i) { process_row(i); });   // blocks until all done
//
// parallel_for() takes any callable without allocating (it passes a pointer to it), so it may
// be used inside an allocation-free run(). One parallel_for at a time per pool.
//
// Tasks are split into one contiguous range per thread (the caller first, then worker 1, ...),
// as pthreadpool does: each thread runs its own range from the front, on a cache line no other
// thread writes while it has work, then takes tasks from the back of the others' ranges. So
// successive parallel_fors over the same rows give each thread the same rows (the rows a layer
// wrote stay in the cache of the core that reads them next), handing out a task costs no shared
// counter, and uneven tasks still balance.
//
// The caller never waits for a worker that has not started: a worker joins a job only while the
// job is open, and the caller closes it as soon as no task is left (it takes a late worker's
// tasks itself), then waits only for the workers that joined. On a loaded machine, where a woken
// worker may not get a CPU for a scheduler tick, a parallel_for therefore costs at most what
// running it alone would.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <thread>
#include <type_traits>
#include <vector>

namespace kiln {

class ThreadPool {
 public:
  // `threads` >= 1 counts the caller. `spin_us` bounds the busy-wait of idle workers.
  explicit ThreadPool(int threads, int spin_us = 50);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int threads() const { return static_cast<int>(workers_.size()) + 1; }

  // Calls f(i) for every i in [0, n), spread over the workers and the caller; returns when all
  // calls have finished. Thread t starts on tasks [n*t/threads, n*(t+1)/threads).
  template <typename F>
  void parallel_for(int64_t n, F&& f) {
    if (n <= 0) return;
    if (workers_.empty() || n == 1) {
      for (int64_t i = 0; i < n; ++i) f(i);
      return;
    }
    if (n > kMaxTasks) {  // a range packs its bounds in 32 bits each: run 2^20 chunks of tasks
      constexpr int64_t kChunks = int64_t{1} << 20;
      auto chunk = [&](int64_t c) {
        for (int64_t i = n / kChunks * c + std::min(c, n % kChunks), e = i + n / kChunks + (c < n % kChunks); i < e; ++i) f(i);
      };
      run(kChunks, [](void* ctx, int64_t c) { (*static_cast<decltype(chunk)*>(ctx))(c); }, &chunk);
      return;
    }
    run(n, [](void* ctx, int64_t i) { (*static_cast<std::remove_reference_t<F>*>(ctx))(i); }, &f);
  }

 private:
  using TaskFn = void (*)(void* ctx, int64_t i);
  static constexpr int64_t kMaxTasks = int64_t{1} << 30;
  // One thread's tasks [begin, end): begin in the low 32 bits, end in the high 32 bits. The owner
  // takes from the front with one fetch_add, the others from the back with a compare-exchange.
  struct alignas(64) Range {
    std::atomic<uint64_t> bounds{0};
  };

  void run(int64_t n, TaskFn fn, void* ctx);
  void worker_loop(int index);
  void work(int index);
  int64_t take_front(int index);
  int64_t take_back(int index);

  std::vector<std::thread> workers_;
  std::vector<Range> ranges_;  // one per thread; [0] is the caller's
  int spin_us_;
  // A job: `join` holds its number (high 32 bits), a closed flag and the number of workers inside
  // it (low bits); `fn` and `ctx` share its cache line, so a joining worker reads them in one
  // transfer. Sleeping workers wait on `epoch_`, the same number stored after `join`.
  static constexpr uint64_t kClosed = uint64_t{1} << 31;
  static constexpr uint64_t kCountMask = kClosed - 1;
  struct alignas(64) Job {
    std::atomic<uint64_t> join{0};
    TaskFn fn = nullptr;
    void* ctx = nullptr;
  } job_;
  alignas(64) std::atomic<uint32_t> epoch_{0};
  std::atomic<bool> stop_{false};
};

}  // namespace kiln
