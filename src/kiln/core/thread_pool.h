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
// The caller never waits for a worker that has not started: a worker joins a job only while the
// job is open, and the caller closes it as soon as it runs out of tasks, then waits only for the
// workers that joined. On a loaded machine, where a woken worker may not get a CPU for a
// scheduler tick, a parallel_for therefore costs at most what running it alone would.
#pragma once

#include <atomic>
#include <cstdint>
#include <thread>
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
  // calls have finished. Tasks are handed out dynamically (an atomic counter), so uneven tasks
  // balance.
  template <typename F>
  void parallel_for(int64_t n, F&& f) {
    if (n <= 0) return;
    if (workers_.empty() || n == 1) {
      for (int64_t i = 0; i < n; ++i) f(i);
      return;
    }
    run(n, [](void* ctx, int64_t i) { (*static_cast<F*>(ctx))(i); }, &f);
  }

 private:
  using TaskFn = void (*)(void* ctx, int64_t i);
  void run(int64_t n, TaskFn fn, void* ctx);
  void worker_loop(int index);
  void work(TaskFn fn, void* ctx, int64_t n);

  std::vector<std::thread> workers_;
  int spin_us_;
  // A job is published by bumping `epoch_` (workers sleep on it); `join_` holds the job's epoch
  // (high 32 bits), a closed flag and the number of workers inside the job (low bits).
  static constexpr uint64_t kClosed = uint64_t{1} << 31;
  static constexpr uint64_t kCountMask = kClosed - 1;
  std::atomic<uint32_t> epoch_{0};
  std::atomic<uint64_t> join_{0};
  std::atomic<bool> stop_{false};
  TaskFn fn_ = nullptr;
  void* ctx_ = nullptr;
  int64_t n_ = 0;
  std::atomic<int64_t> next_{0};
};

}  // namespace kiln
