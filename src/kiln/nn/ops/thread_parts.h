// kiln/nn/ops/thread_parts.h — one contiguous part of a range per pool thread.
//
//   // at least 4 KiB per part, cut at cache lines:
//   for_thread_parts(k.pool, n, 4096, 64, [&](int64_t part, int64_t begin, int64_t end) { ... });
//
// Unlike for_rows (conv_geometry.h), which balances chunks of rows, this gives each thread one
// part, the pool handing thread i part i: an elementwise step after a split one works mostly on
// what the same thread just wrote (on a VM whose cores hand data over slowly, bench/cross_core.cc),
// and a reduction keeps one partial result per part (at most kMaxThreadParts).
#pragma once

#include <algorithm>
#include <cstdint>

#include "kiln/core/thread_pool.h"

namespace kiln::nn::ops {

inline constexpr int64_t kMaxThreadParts = 64;

// Splits [0, n) into min(threads, n / min_part, kMaxThreadParts) parts (interior cuts at multiples
// of `align`), runs f(part, begin, end) for each and returns how many; one part, inline, without a
// pool or when n is under 2 * min_part.
template <typename F>
int64_t for_thread_parts(ThreadPool* pool, int64_t n, int64_t min_part, int64_t align, F&& f) {
  const int64_t parts = pool ? std::min({static_cast<int64_t>(pool->threads()), n / min_part, kMaxThreadParts}) : 1;
  if (parts <= 1) {
    f(int64_t{0}, int64_t{0}, n);
    return 1;
  }
  pool->parallel_for(parts, [&](int64_t i) {
    const int64_t begin = n * i / parts / align * align;
    const int64_t end = i + 1 == parts ? n : n * (i + 1) / parts / align * align;
    f(i, begin, end);
  });
  return parts;
}

}  // namespace kiln::nn::ops
