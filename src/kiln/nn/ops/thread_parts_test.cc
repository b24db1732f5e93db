#include "kiln/nn/ops/thread_parts.h"

#include <gtest/gtest.h>

#include <vector>

namespace kiln::nn::ops {
namespace {

// Every index runs exactly once, in at most one part per thread, interior cuts on `align`.
TEST(ThreadParts, CoverTheRangeOncePerThreadCutAtTheAlignment) {
  ThreadPool pool(2);
  for (int64_t n : {int64_t{8191}, int64_t{8192}, int64_t{12136}, int64_t{100003}}) {
    std::vector<int> hits(static_cast<size_t>(n), 0);
    std::vector<std::pair<int64_t, int64_t>> bounds(kMaxThreadParts);
    const int64_t parts = for_thread_parts(&pool, n, 4096, 64, [&](int64_t part, int64_t b, int64_t e) {
      bounds[static_cast<size_t>(part)] = {b, e};
      for (int64_t i = b; i < e; ++i) ++hits[static_cast<size_t>(i)];
    });
    EXPECT_EQ(parts, n >= 8192 ? 2 : 1) << n;
    for (int64_t i = 0; i < n; ++i) ASSERT_EQ(hits[static_cast<size_t>(i)], 1) << n << " index " << i;
    for (int64_t p = 0; p + 1 < parts; ++p) EXPECT_EQ(bounds[static_cast<size_t>(p)].second % 64, 0) << n;
  }
}

// Without a pool: one part, inline.
TEST(ThreadParts, OnePartWithoutAPool) {
  int64_t seen_b = -1, seen_e = -1;
  EXPECT_EQ(for_thread_parts(nullptr, 1 << 20, 16, 1, [&](int64_t, int64_t b, int64_t e) {
              seen_b = b;
              seen_e = e;
            }),
            1);
  EXPECT_EQ(seen_b, 0);
  EXPECT_EQ(seen_e, 1 << 20);
}

}  // namespace
}  // namespace kiln::nn::ops
