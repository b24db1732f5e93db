// Types shared by the int16-activation convolution kernels (qs16_conv_<isa>.cc); see
// kernels/qs16_conv.h. Same rule as qs8_ukernels.h: included by files compiled with AVX2 / AVX-512
// flags, so plain structs and declarations only (no inline function, template or library header).
#pragma once

#include <cstddef>
#include <cstdint>

#include "kiln/nn/kernels/internal/qs8_ukernels.h"

namespace kiln::nn::kernels {

// Columns per packed panel, for every ISA (two zmm or four ymm of int32 sums).
constexpr int64_t kQ16PanelColumns = 32;

// Where output pixel r's taps are: base + row_offset[r] + t * tap_stride (int16 elements).
struct Q16Rows {
  const int16_t* base = nullptr;
  const int64_t* row_offset = nullptr;
  int64_t tap_stride = 0;
};

// Packed weights as the kernels read them (Q16PackedWeights::view()): per panel of 32 columns,
// int32 bias[32], float scale[32], then ks * pairs blocks of 32 int32 words, each the int16 pair
// (w[2p][j], w[2p + 1][j]) of one tap.
struct Q16Weights {
  const uint8_t* data = nullptr;
  int64_t panel_stride = 0;  // bytes
  int64_t ks = 0, pairs = 0, n = 0;
};

// Output rows [row_begin, row_end) into c (row stride ldc elements of p's output type: int8 or
// float32).
using Q16ConvFn = void (*)(const Q16Rows& a, const Q16Weights& w, int64_t row_begin, int64_t row_end, void* c,
                           int64_t ldc, const QParams& p);
// QuantizeLinear of float32 to int16: y = saturate(round_half_even(x / scale) + zero_point),
// NaN -> 0 (what ops/quantize.cc computes).
using Q16QuantizeFn = void (*)(const float* x, int64_t n, float scale, int32_t zero_point, int16_t* y);

struct Q16Kernels {
  const char* name;  // "qs16_conv_avx512", ... (what `kiln info` reports)
  Q16ConvFn conv;
  Q16QuantizeFn quantize;
};

void qs16_conv_avx512(const Q16Rows& a, const Q16Weights& w, int64_t row_begin, int64_t row_end, void* c,
                      int64_t ldc, const QParams& p);
void qs16_conv_avx512vnni(const Q16Rows& a, const Q16Weights& w, int64_t row_begin, int64_t row_end, void* c,
                          int64_t ldc, const QParams& p);
void qs16_quantize_avx512(const float* x, int64_t n, float scale, int32_t zero_point, int16_t* y);
void qs16_conv_avx2(const Q16Rows& a, const Q16Weights& w, int64_t row_begin, int64_t row_end, void* c,
                    int64_t ldc, const QParams& p);
void qs16_quantize_avx2(const float* x, int64_t n, float scale, int32_t zero_point, int16_t* y);
void qs16_conv_portable(const Q16Rows& a, const Q16Weights& w, int64_t row_begin, int64_t row_end, void* c,
                        int64_t ldc, const QParams& p);
void qs16_quantize_portable(const float* x, int64_t n, float scale, int32_t zero_point, int16_t* y);

}  // namespace kiln::nn::kernels
