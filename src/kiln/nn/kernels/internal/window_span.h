// kiln/nn/kernels/internal/window_span.h — the integer geometry every window kernel (depthwise
// convolution, pooling; fp32 and int8; every instruction set) needs: which taps of a kernel axis
// fall inside the input, and which output columns have their whole window inside it.
//
// Everything is `static`: each including unit gets its own copy, so nothing compiled with one
// unit's ISA flags can be picked by the linker for another.
//
//   int64_t kh_lo, kh_hi;
//   taps_inside(ih0, s.kernel_h, s.dilation_h, s.in_h, &kh_lo, &kh_hi);  // rows of this output row
//   int64_t ow_lo, ow_hi;
//   interior_columns(s, &ow_lo, &ow_hi);  // [ow_lo, ow_hi): no column tap in the padding
#pragma once

#include <cstdint>

namespace kiln::nn::kernels {

// Taps [*lo, *hi) of a kernel axis whose input positions start + t * dilation lie in [0, extent).
static inline void taps_inside(int64_t start, int64_t taps, int64_t dilation, int64_t extent, int64_t* lo,
                               int64_t* hi) {
  int64_t l = 0, h = taps;
  while (l < h && start + l * dilation < 0) ++l;
  while (h > l && start + (h - 1) * dilation >= extent) --h;
  *lo = l;
  *hi = h;
}

// Output columns [*lo, *hi) whose whole window lies inside the input columns (any window struct
// with the Window2d field names).
template <typename W>
static inline void interior_columns(const W& s, int64_t* lo, int64_t* hi) {
  const int64_t span_w = (s.kernel_w - 1) * s.dilation_w;
  int64_t l = s.pad_left > 0 ? (s.pad_left + s.stride_w - 1) / s.stride_w : 0;
  int64_t h = s.in_w - span_w + s.pad_left > 0 ? (s.in_w - 1 - span_w + s.pad_left) / s.stride_w + 1 : 0;
  if (h > s.out_w) h = s.out_w;
  if (l > h) l = h;
  *lo = l;
  *hi = h;
}

}  // namespace kiln::nn::kernels
