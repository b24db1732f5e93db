// kiln/nn/memory_planner.h — place buffers with known lifetimes in one arena.
//
// Each request says how many bytes it needs and the first and last step (inclusive) during
// which it is live. Two buffers may share bytes only if their lifetimes do not overlap. The
// planner places the largest buffers first, each at the lowest offset that does not collide
// with an already placed, time-overlapping buffer (TFLite's greedy-by-size strategy).
//
//   std::vector<kiln::nn::BufferRequest> r = {{1024, 0, 1}, {512, 1, 2}, {1024, 2, 3}};
//   kiln::nn::MemoryPlan p = kiln::nn::plan_memory(r);
//   // p.offsets[0] == p.offsets[2] == 0 (disjoint lifetimes), p.arena_bytes == 1536
#pragma once

#include <cstddef>
#include <span>
#include <vector>

namespace kiln::nn {

struct BufferRequest {
  size_t bytes = 0;
  int first = 0;  // first step that writes or reads the buffer
  int last = 0;   // last step that reads it (inclusive)
};

struct MemoryPlan {
  std::vector<size_t> offsets;  // one per request, multiples of `alignment`
  size_t arena_bytes = 0;
};

MemoryPlan plan_memory(std::span<const BufferRequest> requests, size_t alignment = 64);

}  // namespace kiln::nn
