// kiln/nn/kernels/window.h — channels-last (NHWC) sliding-window kernels: depthwise convolution,
// max / average pooling and global average pooling, vectorised across channels.
//
// In NHWC the channels of one pixel are contiguous, so every tap of a window is one contiguous
// vector load per 8 (AVX2) channels: depthwise convolution and pooling become streams of FMAs /
// max operations with no gathers. Interior and border pixels share one loop; border taps that
// fall outside the input are skipped (zero padding), which for pooling also gives the ONNX
// divisor rules.
//
//   const WindowKernels& k = window_kernels();
//   k.dwconv(shape, x, packed_weights, nullptr, params, y, 0, shape.batch * shape.out_h);
#pragma once

#include <cstdint>
#include <vector>

#include "kiln/nn/kernels/internal/ukernels.h"

namespace kiln::nn::kernels {

// Geometry of a 2-D window operation on NHWC tensors x [batch, in_h, in_w, channels] ->
// y [batch, out_h, out_w, channels].
struct Window2d {
  int64_t batch = 1, in_h = 0, in_w = 0, channels = 0, out_h = 0, out_w = 0;
  int64_t kernel_h = 1, kernel_w = 1, stride_h = 1, stride_w = 1, dilation_h = 1, dilation_w = 1;
  int64_t pad_top = 0, pad_left = 0, pad_bottom = 0, pad_right = 0;
};

enum class PoolKind : uint8_t { kMax, kAverageIncludePad, kAverageExcludePad };

// Rows are (n, oh) pairs numbered n * out_h + oh; [row_begin, row_end) lets callers split work.
// `w` holds bias [channels] then kernel_h * kernel_w rows of [channels] (pack_depthwise()).
using DwConvFn = void (*)(const Window2d& s, const float* x, const float* w, const float* residual,
                          const GemmParams& p, float* y, int64_t row_begin, int64_t row_end);
using PoolFn = void (*)(const Window2d& s, PoolKind kind, const float* x, float* y, int64_t row_begin,
                        int64_t row_end);
// y [batch, channels] = mean over the hw pixels of x [batch, hw, channels].
using GlobalAvgFn = void (*)(int64_t batch, int64_t hw, int64_t channels, const float* x, float* y);

struct WindowKernels {
  const char* name;
  DwConvFn dwconv;
  PoolFn pool;
  GlobalAvgFn global_avg;
};

const WindowKernels& window_kernels();
std::vector<const WindowKernels*> available_window_kernels();

// Depthwise weights in ONNX layout [channels, 1, kh, kw] (+ bias [channels]) -> the packed
// layout the kernels read.
std::vector<float> pack_depthwise(const float* w, const float* bias, int64_t channels, int64_t kh, int64_t kw);

// Plain loops the vectorised kernels are tested against.
void dwconv_reference(const Window2d& s, const float* x, const float* w, const float* residual, const GemmParams& p,
                      float* y);
void pool_reference(const Window2d& s, PoolKind kind, const float* x, float* y);

extern const WindowKernels kF32WindowAvx2;
// AVX-512 depthwise convolution (f32_window_avx512.cc); available_window_kernels() pairs it with
// the AVX2 pooling kernels as "f32_window_avx512".
extern const DwConvFn kF32DwconvAvx512;
extern const WindowKernels kF32WindowPortable;

}  // namespace kiln::nn::kernels
