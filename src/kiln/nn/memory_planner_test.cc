#include "kiln/nn/memory_planner.h"

#include <gtest/gtest.h>

#include <random>

namespace kiln::nn {
namespace {

TEST(MemoryPlanner, ReusesBuffersWithDisjointLifetimes) {
  std::vector<BufferRequest> r = {{1024, 0, 1}, {512, 1, 2}, {1024, 2, 3}};
  MemoryPlan p = plan_memory(r);
  EXPECT_EQ(p.offsets[0], p.offsets[2]);
  EXPECT_EQ(p.arena_bytes, 1536u);
}

TEST(MemoryPlanner, RandomPlansNeverOverlapLiveBuffers) {
  std::mt19937 rng(7);
  for (int trial = 0; trial < 200; ++trial) {
    std::vector<BufferRequest> r;
    int n = 1 + rng() % 40;
    size_t total = 0;
    for (int i = 0; i < n; ++i) {
      int a = rng() % 30, b = a + rng() % 6;
      size_t bytes = 1 + rng() % 5000;
      r.push_back({bytes, a, b});
      total += (bytes + 63) / 64 * 64;
    }
    MemoryPlan p = plan_memory(r);
    EXPECT_LE(p.arena_bytes, total);
    for (int i = 0; i < n; ++i) {
      EXPECT_EQ(p.offsets[i] % 64, 0u);
      EXPECT_LE(p.offsets[i] + r[i].bytes, p.arena_bytes);
      for (int j = i + 1; j < n; ++j) {
        bool time = !(r[i].last < r[j].first || r[j].last < r[i].first);
        bool space = p.offsets[i] < p.offsets[j] + r[j].bytes && p.offsets[j] < p.offsets[i] + r[i].bytes;
        EXPECT_FALSE(time && space) << "buffers " << i << " and " << j << " overlap";
      }
    }
  }
}

}  // namespace
}  // namespace kiln::nn
