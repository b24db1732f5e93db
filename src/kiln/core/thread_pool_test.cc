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

// Uneven tasks (the first range far heavier than the others), so that threads run out of their
// own tasks and take the rest of the others' ranges from the back, thousands of times.
TEST(ThreadPool, StealingRunsEveryTaskExactlyOnce) {
  for (int threads : {2, 3}) {
    ThreadPool pool(threads);
    for (int round = 0; round < 2000; ++round) {
      const int64_t n = 2 + round % 31;
      std::vector<std::atomic<int>> hits(n);
      pool.parallel_for(n, [&](int64_t i) {
        volatile int64_t spin = 0;
        for (int64_t k = 0; k < (i < n / threads ? 2000 : 10); ++k) spin = spin + k;
        hits[i].fetch_add(1);
      });
      for (int64_t i = 0; i < n; ++i) ASSERT_EQ(hits[i].load(), 1) << "threads " << threads << " n " << n << " task " << i;
    }
  }
}

// The caller starts at task 0 and runs its own range [0, n/threads) in order (others may take its
// last tasks from the back), then takes others' tasks from the back, last first: successive
// parallel_fors over the same rows give the caller the same rows. (A worker that gets going before
// the caller may have taken everything.)
TEST(ThreadPool, CallerRunsItsOwnRangeFromTheFront) {
  ThreadPool pool(2);
  const std::thread::id caller = std::this_thread::get_id();
  for (int round = 0; round < 500; ++round) {
    const int64_t n = 16;
    std::vector<int64_t> mine;
    mine.reserve(n);
    pool.parallel_for(n, [&](int64_t i) {
      if (std::this_thread::get_id() == caller) mine.push_back(i);
    });
    size_t k = 0;
    while (k < mine.size() && mine[k] < n / 2) {
      ASSERT_EQ(mine[k], static_cast<int64_t>(k)) << "round " << round;
      ++k;
    }
    for (int64_t expect = n - 1; k < mine.size(); ++k, --expect) ASSERT_EQ(mine[k], expect) << "round " << round;
  }
}

// More tasks than a range's bounds hold (2^30): they run in chunks, each task exactly once (count
// and sum, in one slot per thread so that the check itself does not contend).
TEST(ThreadPool, MoreTasksThanARangeHolds) {
  ThreadPool pool(2);
  const int64_t n = (int64_t{1} << 30) + 7;
  const std::thread::id caller = std::this_thread::get_id();
  struct alignas(64) Slot {
    int64_t count = 0, sum = 0;
  } slots[2];
  pool.parallel_for(n, [&](int64_t i) {
    Slot& s = slots[std::this_thread::get_id() == caller ? 0 : 1];
    s.count += 1;
    s.sum += i;
  });
  EXPECT_EQ(slots[0].count + slots[1].count, n);
  EXPECT_EQ(slots[0].sum + slots[1].sum, n * (n - 1) / 2);
}

// A named callable (an lvalue) works as a temporary does (this did not compile before).
TEST(ThreadPool, TakesANamedCallable) {
  ThreadPool pool(2);
  std::vector<std::atomic<int>> hits(9);
  auto task = [&](int64_t i) { hits[i].fetch_add(1); };
  pool.parallel_for(9, task);
  for (int64_t i = 0; i < 9; ++i) EXPECT_EQ(hits[i].load(), 1);
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
