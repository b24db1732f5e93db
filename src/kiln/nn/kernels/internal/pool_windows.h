// kiln/nn/kernels/internal/pool_windows.h — the window walk of the vector int8 pooling kernels
// (qs8_pool_avx512.cc, qs8_pool_avx2.cc): for every output pixel, the kernel taps that lie inside
// the input and the divisor of an average, with exactly the conditions of qs8_pool_scalar
// (qgemm.cc). Everything is `static`, so each including unit keeps its own copy (nothing compiled
// with one unit's ISA flags can be picked by the linker for another).
//
//   for_each_pool_window(s, x, p, y, [&](const uint8_t* x_n, int64_t ih0, int64_t iw0, const PoolTaps& t,
//                                        uint8_t* out) { ... channels of one output pixel ... });
#pragma once

#include <cstdint>

#include "kiln/nn/kernels/internal/qs8_ukernels.h"

namespace kiln::nn::kernels {

// Taps [k0, k1) of n (step `dil` from `start`) whose position lies in [lo, hi).
static inline void tap_range(int64_t start, int64_t dil, int64_t n, int64_t lo, int64_t hi, int64_t* k0,
                             int64_t* k1) {
  int64_t a = 0, b = n;
  while (a < b && start + a * dil < lo) ++a;
  while (b > a && start + (b - 1) * dil >= hi) --b;
  *k0 = a;
  *k1 = b;
}

// The taps of one window inside the input (rows [kh0, kh1) x columns [kw0, kw1)), how many there
// are, and the average's divisor (count_include_pad counts padding inside the padded extent).
struct PoolTaps {
  int64_t kh0, kh1, kw0, kw1, valid, count;
};

template <typename F>
static inline void for_each_pool_window(const QWindow& s, const uint8_t* x, const QPoolParams& p, uint8_t* y, F&& f) {
  const int64_t C = s.channels;
  for (int64_t n = 0; n < s.batch; ++n) {
    const uint8_t* x_n = x + n * s.in_h * s.in_w * C;
    for (int64_t oh = 0; oh < s.out_h; ++oh) {
      const int64_t ih0 = oh * s.stride_h - s.pad_top;
      PoolTaps t;
      int64_t ch0, ch1;
      tap_range(ih0, s.dilation_h, s.kernel_h, 0, s.in_h, &t.kh0, &t.kh1);
      tap_range(ih0, s.dilation_h, s.kernel_h, -s.pad_top, s.in_h + p.pad_bottom, &ch0, &ch1);
      for (int64_t ow = 0; ow < s.out_w; ++ow) {
        const int64_t iw0 = ow * s.stride_w - s.pad_left;
        int64_t cw0, cw1;
        tap_range(iw0, s.dilation_w, s.kernel_w, 0, s.in_w, &t.kw0, &t.kw1);
        tap_range(iw0, s.dilation_w, s.kernel_w, -s.pad_left, s.in_w + p.pad_right, &cw0, &cw1);
        t.valid = (t.kh1 - t.kh0) * (t.kw1 - t.kw0);
        t.count = p.count_include_pad ? (ch1 - ch0) * (cw1 - cw0) : t.valid;
        f(x_n, ih0, iw0, t, y + ((n * s.out_h + oh) * s.out_w + ow) * C);
      }
    }
  }
}

}  // namespace kiln::nn::kernels
