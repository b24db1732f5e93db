#include "kiln/core/thread_pool.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

#include "kiln/core/alloc_counter.h"

namespace kiln {
namespace {

TEST(ThreadPool, EveryTaskRunsExactlyOnce) {
  for (int threads : {1, 2, 4}) {
    ThreadPool pool(threads);
    for (int64_t n : {1, 2, 7, 1000}) {
      std::vector<std::atomic<int>> hits(n);
      pool.parallel_for(n, [&](int64_t i) { hits[i].fetch_add(1); });
      for (int64_t i = 0; i < n; ++i) EXPECT_EQ(hits[i].load(), 1) << "threads " << threads << " n " << n;
    }
  }
}

TEST(ThreadPool, ManyJobsInARowAndAfterSleeping) {
  ThreadPool pool(3, /*spin_us=*/1);
  std::atomic<int64_t> sum{0};
  for (int round = 0; round < 200; ++round) {
    pool.parallel_for(10, [&](int64_t i) { sum.fetch_add(i); });
    if (round % 50 == 0) std::this_thread::sleep_for(std::chrono::milliseconds(2));  // workers go to sleep
  }
  EXPECT_EQ(sum.load(), 200 * 45);
}

// Late workers: jobs so short that the caller usually finishes before a worker wakes, so
// workers keep arriving at closed or already-replaced jobs. Each job's callable lives on the
// caller's stack and dies when parallel_for returns: a worker running a task of a finished job
// would count into the wrong job (and ASan would see a use after scope).
TEST(ThreadPool, WorkersThatWakeLateNeverRunAFinishedJob) {
  ThreadPool pool(3, /*spin_us=*/0);
  for (int round = 0; round < 20000; ++round) {
    int64_t local = 0;
    std::atomic<int64_t> sum{0};
    const int64_t n = 1 + round % 3;
    pool.parallel_for(n, [&sum, &local, round](int64_t i) { sum.fetch_add(i + 1 + (round & 1)); (void)local; });
    const int64_t expect = n * (n + 1) / 2 + n * (round & 1);
    ASSERT_EQ(sum.load(), expect) << "round " << round;
  }
}

TEST(ThreadPool, SingleThreadStartsNoThreadAndRunsInline) {
  ThreadPool pool(1);
  EXPECT_EQ(pool.threads(), 1);
  std::thread::id caller = std::this_thread::get_id();
  bool all_inline = true;
  pool.parallel_for(5, [&](int64_t) { all_inline &= std::this_thread::get_id() == caller; });
  EXPECT_TRUE(all_inline);
}

TEST(ThreadPool, ParallelForAllocatesNothing) {
  ThreadPool pool(2);
  std::atomic<int> c{0};
  pool.parallel_for(4, [&](int64_t) { c++; });
  uint64_t before = heap_allocation_count();
  for (int i = 0; i < 100; ++i) pool.parallel_for(8, [&](int64_t) { c++; });
  EXPECT_EQ(heap_allocation_count() - before, 0u);
  EXPECT_EQ(c.load(), 804);
}

}  // namespace
}  // namespace kiln
