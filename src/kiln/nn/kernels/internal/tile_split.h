// kiln/nn/kernels/internal/tile_split.h — how the packed GEMMs (fp32 gemm.cc, int8 qgemm.cc)
// spread their (row block, panel) grid over a thread pool.
//
//   for_each_tile(m, cfg.mr, panels, macs, kMinParallelMacs, pool,
//                 [&](int64_t row_block, int64_t panel) { micro_kernel(...); });
#pragma once

#include <algorithm>
#include <cstdint>

#include "kiln/core/thread_pool.h"

namespace kiln::nn::kernels {

// Calls f(row_block, panel) for every tile. With one thread, or below `min_parallel_macs`
// multiply-adds (waking a worker and joining it would cost more), everything runs on the calling
// thread. Otherwise about four tasks per thread, each a contiguous run of row blocks over all
// panels (the weight panels stay hot in each core's cache), or of panels when there are fewer
// row blocks than threads (a batch-1 fully connected layer).
template <typename F>
void for_each_tile(int64_t m, int mr, int64_t panels, int64_t macs, int64_t min_parallel_macs, ThreadPool* pool,
                   F&& f) {
  const int64_t row_blocks = (m + mr - 1) / mr;
  if (!pool || pool->threads() == 1 || macs < min_parallel_macs) {
    for (int64_t rb = 0; rb < row_blocks; ++rb)
      for (int64_t p = 0; p < panels; ++p) f(rb, p);
    return;
  }
  const int64_t tasks_wanted = static_cast<int64_t>(pool->threads()) * 4;
  if (row_blocks >= pool->threads()) {
    const int64_t per = std::max<int64_t>(1, (row_blocks + tasks_wanted - 1) / tasks_wanted);
    const int64_t tasks = (row_blocks + per - 1) / per;
    pool->parallel_for(tasks, [&](int64_t t) {
      for (int64_t rb = t * per; rb < std::min(row_blocks, (t + 1) * per); ++rb)
        for (int64_t p = 0; p < panels; ++p) f(rb, p);
    });
  } else {
    const int64_t per = std::max<int64_t>(1, (panels + tasks_wanted - 1) / tasks_wanted);
    const int64_t tasks = (panels + per - 1) / per;
    pool->parallel_for(tasks, [&](int64_t t) {
      for (int64_t rb = 0; rb < row_blocks; ++rb)
        for (int64_t p = t * per; p < std::min(panels, (t + 1) * per); ++p) f(rb, p);
    });
  }
}

}  // namespace kiln::nn::kernels
