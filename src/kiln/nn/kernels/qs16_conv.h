// kiln/nn/kernels/qs16_conv.h — convolution (and dense layer) of int16 activations with int8
// weights ("16x8", as TFLite calls it), for the first layer of a model whose input needs more than
// 256 levels (MFCC or other sensor features: `kiln quantize --input-bits 16`).
//
// C[rows x N] = epilogue(sum over taps t and k < kc of A(r, t)[k] * W[t * kc + k][j] + bias'[j])
// where A(r, t) = base + row_offset[r] + t * tap_stride points at kc contiguous int16 values: one
// kernel row of an NHWC window (kc = KW * C) inside a padded copy of the input, or for a dense
// layer the whole row of K values (one tap). The zero point is
// folded into the bias at packing time (bias' = bias - zero_point * sum_k W[k][j]), so the inner
// loop multiplies the stored int16 values directly: pairs of them against pairs of weights widened
// to int16 (vpmaddwd, whose int32 pair sums cannot saturate: 2 * 32768 * 128 < 2^31). The sums
// are exact when q16_sums_fit() holds; the epilogue is qgemm.h's (QParams, float multiplier per
// column, round half to even), so results match the reference bit for bit.
//
// Per-ISA kernels (qs16_conv_avx512vnni.cc: vpdpwssd; qs16_conv_avx512.cc and qs16_conv_avx2.cc:
// vpmaddwd + vpaddd; qs16_conv_portable.cc), chosen once from cpu_features() (KILN_ISA caps it as
// for the int8 kernels):
//
//   const Q16Kernels& k = q16kernels();
//   if (q16_sums_fit(w, ks * kc, n, bias, zp)) {
//     Q16PackedWeights pw = pack_q16weights(w, ks, kc, n, bias, scale, zp);
//     k.conv(Q16Rows{base, row_offset, tap_stride}, pw.view(), 0, rows, c, ldc, int8_output(y_zp, false, -128, 127));
//   }
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "kiln/core/tensor.h"
#include "kiln/nn/kernels/internal/qs16_ukernels.h"

namespace kiln::nn::kernels {

// Weights (ks * kc) x n, element (k, j) at w[k * n + j], k = tap * kc + i, packed as Q16Weights
// describes, with ceil(kc / 2) pairs per tap (zero weights past kc and past n). An odd kc reads one
// value past each tap, multiplied by a zero weight: the input buffer must extend that far.
struct Q16PackedWeights {
  int64_t ks = 0, kc = 0, pairs = 0, n = 0;
  int64_t panel_stride = 0;  // bytes
  Tensor data;               // 64-byte aligned
  Q16Weights view() const { return Q16Weights{data.data<uint8_t>(), panel_stride, ks, pairs, n}; }
};

// Whether every column's sums stay within int32 for any int16 input:
// 32768 * sum_k |w[k][j]| + |bias[j] - zero_point * sum_k w[k][j]| < 2^31.
bool q16_sums_fit(const int8_t* w, int64_t k, int64_t n, const int32_t* bias, int32_t zero_point);

// `bias` (n, optional) in accumulator units (x_scale * w_scale[j]); `scale` (n) the epilogue's
// multiplier; `zero_point` the activations' (int16) zero point.
Q16PackedWeights pack_q16weights(const int8_t* w, int64_t ks, int64_t kc, int64_t n, const int32_t* bias,
                                 const float* scale, int32_t zero_point);

// The best set for this CPU (honours KILN_ISA), chosen once; and every set it can run, best first.
const Q16Kernels& q16kernels();
std::vector<const Q16Kernels*> available_q16kernels();

// The plain loops the kernels are tested against: the sums from the unpacked weights with the zero
// point subtracted from each value (int64, so an overflow the packing would hide shows), then
// qstore_reference's epilogue.
void q16conv_reference(const Q16Rows& a, int64_t ks, int64_t kc, int64_t n, const int8_t* w, const int32_t* bias,
                       const float* scale, int32_t zero_point, int64_t row_begin, int64_t row_end, void* c,
                       int64_t ldc, const QParams& p);

}  // namespace kiln::nn::kernels
