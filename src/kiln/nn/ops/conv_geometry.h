// kiln/nn/ops/conv_geometry.h — what the channels-last convolution ops (fp32 fast_conv.cc and
// int8 fast_qconv.cc) share: the 2-D window attributes of a com.kiln Conv/Pool node, read and
// checked once, and the split of output rows over the thread pool.
//
//   Geometry g;
//   KILN_RETURN_IF_ERROR(read_geometry(ctx, &g));
//   for_rows(k.pool, rows, macs, [&](int64_t begin, int64_t end) { kernel(begin, end); });
#pragma once

#include <algorithm>
#include <cstdint>

#include "kiln/core/status.h"
#include "kiln/core/thread_pool.h"
#include "kiln/nn/kernel.h"

namespace kiln::nn::ops {

struct Geometry {
  int64_t kh, kw, sh, sw, dh, dw, pt, pl, pb, pr;
};

// kernel_shape, strides, dilations and pads of a 2-D window; a clear error when one is missing,
// of the wrong length or out of range.
Status read_geometry(PrepareContext& ctx, Geometry* g);

// Splits rows [0, rows) over the pool in chunks; runs inline without a pool or when `work`
// (multiply-adds or comparisons) is too small to repay a worker's wake-up and join.
template <typename F>
void for_rows(ThreadPool* pool, int64_t rows, int64_t work, F&& f) {
  if (!pool || pool->threads() == 1 || rows < 2 || work < (1 << 16)) {
    f(0, rows);
    return;
  }
  const int64_t chunks = std::min<int64_t>(rows, pool->threads() * 4);
  pool->parallel_for(chunks, [&](int64_t c) { f(rows * c / chunks, rows * (c + 1) / chunks); });
}

}  // namespace kiln::nn::ops
