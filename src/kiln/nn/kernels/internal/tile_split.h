// kiln/nn/kernels/internal/tile_split.h — how the packed GEMMs (fp32 gemm.cc, int8 qgemm.cc)
// spread their (row block, panel) grid over a thread pool.
//
//   for_each_tile(m, cfg.mr, cfg.nr, panels, panel_bytes, macs, kMinParallelMacs, pool,
//                 [&](int64_t row_block, int64_t panel) { micro_kernel(...); });
#pragma once

#include <algorithm>
#include <cstdint>

#include "kiln/core/cpu_features.h"
#include "kiln/core/thread_pool.h"

namespace kiln::nn::kernels {

// How many weight panels of `panel_bytes` each fit together in half of this core's L2 cache.
inline int64_t panels_per_group(int64_t panels, int64_t panel_bytes) {
  const int64_t budget = cpu_features().l2_bytes / 2;
  return std::clamp<int64_t>(budget / std::max<int64_t>(panel_bytes, 1), 1, std::max<int64_t>(panels, 1));
}

// Calls f(row_block, panel) for every tile. The panels are visited in groups whose packed weights
// fit in half of L2: every row block runs over one group before the next group starts, so a
// layer with more weights than L2 (ResNet's 3x3x512x512) reads them from memory once rather than
// once per row block. With one thread, or below `min_parallel_macs` multiply-adds (waking a
// worker and joining it would cost more), everything runs on the calling thread. Otherwise about
// four tasks per thread, each a contiguous run of row blocks (over all panel groups), or of
// panels (over all row blocks) when the weights exceed L2 and outweigh the activations (N > M:
// ResNet's last stages, classifiers) or there are fewer row blocks than threads (batch-1 fully
// connected layers), so that each core streams only its share of the weights.
template <typename F>
void for_each_tile(int64_t m, int mr, int nr, int64_t panels, int64_t panel_bytes, int64_t macs,
                   int64_t min_parallel_macs, ThreadPool* pool, F&& f) {
  const int64_t row_blocks = (m + mr - 1) / mr;
  const int64_t group = panels_per_group(panels, panel_bytes);
  auto run = [&](int64_t rb0, int64_t rb1, int64_t p0, int64_t p1) {
    for (int64_t g = p0; g < p1; g += group)
      for (int64_t rb = rb0; rb < rb1; ++rb)
        for (int64_t p = g; p < std::min(p1, g + group); ++p) f(rb, p);
  };
  if (!pool || pool->threads() == 1 || macs < min_parallel_macs) {
    run(0, row_blocks, 0, panels);
    return;
  }
  const int64_t tasks_wanted = static_cast<int64_t>(pool->threads()) * 4;
  // Weights that do not fit in L2 (panel groups) and outweigh the activations (N * K > m * K):
  // each core takes a share of the panels.
  const bool split_panels =
      row_blocks < pool->threads() || (group < panels && panels >= pool->threads() && panels * nr > m);
  if (!split_panels) {
    const int64_t per = std::max<int64_t>(1, (row_blocks + tasks_wanted - 1) / tasks_wanted);
    const int64_t tasks = (row_blocks + per - 1) / per;
    pool->parallel_for(tasks, [&](int64_t t) { run(t * per, std::min(row_blocks, (t + 1) * per), 0, panels); });
  } else {
    const int64_t per = std::max<int64_t>(1, (panels + tasks_wanted - 1) / tasks_wanted);
    const int64_t tasks = (panels + per - 1) / per;
    pool->parallel_for(tasks, [&](int64_t t) { run(0, row_blocks, t * per, std::min(panels, (t + 1) * per)); });
  }
}

}  // namespace kiln::nn::kernels
