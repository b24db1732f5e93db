#include "kiln/nn/memory_planner.h"

#include <algorithm>
#include <numeric>

namespace kiln::nn {

MemoryPlan plan_memory(std::span<const BufferRequest> requests, size_t alignment) {
  const size_t n = requests.size();
  auto aligned = [&](size_t b) { return (b + alignment - 1) / alignment * alignment; };
  std::vector<size_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    if (requests[a].bytes != requests[b].bytes) return requests[a].bytes > requests[b].bytes;
    return requests[a].first < requests[b].first;
  });
  MemoryPlan plan;
  plan.offsets.assign(n, 0);
  std::vector<size_t> placed;  // indices already placed, kept sorted by offset
  struct Interval { size_t begin, end; };
  std::vector<Interval> busy;
  for (size_t idx : order) {
    const BufferRequest& r = requests[idx];
    size_t size = aligned(std::max<size_t>(r.bytes, 1));
    busy.clear();
    for (size_t p : placed) {
      const BufferRequest& q = requests[p];
      if (q.last < r.first || r.last < q.first) continue;  // lifetimes do not overlap
      busy.push_back({plan.offsets[p], plan.offsets[p] + aligned(std::max<size_t>(q.bytes, 1))});
    }
    std::sort(busy.begin(), busy.end(), [](const Interval& a, const Interval& b) { return a.begin < b.begin; });
    size_t offset = 0;
    for (const Interval& b : busy) {
      if (offset + size <= b.begin) break;
      offset = std::max(offset, b.end);
    }
    plan.offsets[idx] = offset;
    plan.arena_bytes = std::max(plan.arena_bytes, offset + size);
    placed.push_back(idx);
  }
  return plan;
}

}  // namespace kiln::nn
