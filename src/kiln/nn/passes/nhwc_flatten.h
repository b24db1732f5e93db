// kiln/nn/passes/nhwc_flatten.h — the weight rows of a classifier that reads Flatten of an NHWC
// map instead of the NCHW one (layout_nhwc.cc for float, quantized.cc for int8 weights).
//
// Flatten(NCHW) numbers the features k = (c * H + h) * W + w, Flatten(NHWC) k' = (h * W + w) * C + c;
// row k' of the new weights is row k of the old ones.
//
//   permute_flatten_rows(w.data<float>(), p.data<float>(), C, H, W, cols, trans_b);
#pragma once

#include <cstdint>

namespace kiln::nn::passes {

// `src` and `dst` are [K, cols] (or [cols, K] with trans_b), K = C * H * W.
template <typename T>
void permute_flatten_rows(const T* src, T* dst, int64_t C, int64_t H, int64_t W, int64_t cols, bool trans_b) {
  const int64_t K = C * H * W;
  for (int64_t h = 0; h < H; ++h)
    for (int64_t x = 0; x < W; ++x)
      for (int64_t c = 0; c < C; ++c) {
        const int64_t k_new = (h * W + x) * C + c, k_old = (c * H + h) * W + x;
        for (int64_t j = 0; j < cols; ++j) {
          if (trans_b) dst[j * K + k_new] = src[j * K + k_old];
          else dst[k_new * cols + j] = src[k_old * cols + j];
        }
      }
}

}  // namespace kiln::nn::passes
