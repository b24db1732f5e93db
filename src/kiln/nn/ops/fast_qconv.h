// kiln/nn/ops/fast_qconv.h — which com.kiln.QConv layers take the kernel-row-taps path, and so
// can quantise a float input themselves.
//
// A convolution of fewer than 4 input channels whose kernel rows are taps (RGB and audio stems)
// copies its input into a zero-point-padded buffer; fast_qconv.cc takes that path exactly where
// qconv_row_taps() holds. Given a float32 X (the quantized pass's
// fuse_input_quantize removes the QuantizeLinear before it), it quantises each input row straight
// into that buffer with x_scale / x_zero_point, saving the quantised tensor and its copy.
//
//   if (qconv_row_taps(c, group, kernel_w, dilation_w)) { /* fuse */ }
#pragma once

#include <cstdint>

namespace kiln::nn::ops {

inline bool qconv_row_taps(int64_t channels, int64_t group, int64_t kernel_w, int64_t dilation_w) {
  return group == 1 && channels < 4 && dilation_w == 1 && kernel_w * channels >= 3;
}

}  // namespace kiln::nn::ops
