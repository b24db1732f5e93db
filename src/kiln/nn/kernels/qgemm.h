// kiln/nn/kernels/qgemm.h — int8 matrix multiplication, convolution and depthwise kernels with
// packed weights, int32 accumulation and float-scale requantisation, per-ISA micro-kernels.
//
// The int8 counterpart of gemm.h. C[M x N] = requantise(A[M x K] * W[K x N] + bias) where A holds
// activation bytes (int8 or uint8, asymmetric: real = scale * (q - zero_point)) and W int8
// weights, symmetric (zero point 0) with one scale per output column (per channel). W is
// constant: pack_qweights() lays it out once for a configuration's micro-kernel and folds the
// bias and the activation zero-point correction (-zero_point * sum_k W[k][j]) into one int32
// per column, so the inner loop is a plain sum of byte products.
//
// Requantisation uses a float multiplier per column, scale[j] = x_scale * w_scale[j] / y_scale,
// and rounds half to even (the default MXCSR mode): y = clamp(rint(float(acc) * scale[j]) + zp).
// This is exactly what the ONNX reference kernels (ops/quantize.cc) and ONNX Runtime's MLAS
// compute, so fused kernels are bit-exact against QLinearConv / QLinearMatMul; TFLite's
// multiplier+shift fixed point would differ by one in rare ties.
//
// Micro-kernels (one translation unit per instruction set, chosen once from cpu_features()):
//   qs8_avx512vnni  vpdpbusd on zmm, 8 x 32 tiles, and 16 x 8 tiles for at most 8 columns
//                   (QKernels::gemm_narrow: two K groups per vector); depthwise 16 channels per
//                   zmm, 3x3 by vpdpbusd over kernel columns (qs8_dwconv_avx512vnni.cc)
//   qs8_avxvnni     vpdpbusd on ymm, 6 x 16 tiles      (not executed on the development machine)
//   qs8_avx2        int8 widened to int16 + vpmaddwd, 4 x 16 tiles. Exact: vpmaddubsw is
//                   avoided because its int16 pair sums saturate (255 * 127 * 2 > 32767).
//   qs8_portable    plain C++, 4 x 8 tiles.
//
//   const QKernels& qk = qkernels();
//   QPackedWeights w = pack_qweights(*qk.gemm, W, 1, K, N, N, false, bias, scales, x_zp, false);
//   QParams p = int8_output(y_zp, false, -128, 127);
//   qgemm(*qk.gemm, M, A, K, w, C, N, p, nullptr);
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "kiln/core/tensor.h"
#include "kiln/nn/kernels/internal/qs8_ukernels.h"

namespace kiln {
class ThreadPool;
}

namespace kiln::nn::kernels {

// The best kernel set for this CPU (honours KILN_ISA), chosen once.
const QKernels& qkernels();
// The GEMM of set `k` for a layer with these n int8 weights: k.gemm_w7 when the set has one and
// every weight lies in [-64, 64] (the AVX2 set's vpmaddubsw kernel, exact there), else k.gemm.
const QGemmConfig& qgemm_config_for(const QKernels& k, const int8_t* w, int64_t n);
// Every kernel set this CPU can run, best first (for differential tests and benchmarks).
std::vector<const QKernels*> available_qkernels();

// Epilogue parameters for an int8/uint8 output with zero point `zero_point` and clamp bounds
// [qmin, qmax] (a fused Relu or Clip), all in the output dtype's own values.
QParams int8_output(int32_t zero_point, bool is_unsigned, int32_t qmin, int32_t qmax);
// Float output y = clamp(acc * scale[j], lo, hi) (lo = 0 for a fused Relu).
QParams float_output(float lo, float hi);
QParams int32_output();

// Weights packed for one configuration.
struct QPackedWeights {
  int64_t ks = 1, kc = 0, n = 0;  // taps, bytes per tap, columns
  int64_t kc4 = 0;                // kc rounded up to a multiple of 4 (zero-padded)
  int nr = 0;
  int64_t panel_stride = 0;       // bytes per panel of nr columns
  uint8_t a_xor = 0;              // goes into QParams::a_xor when this packing is used
  Tensor data;                    // uint8, 64-byte aligned
  int64_t panels() const { return (n + nr - 1) / nr; }
  const uint8_t* panel(int64_t p) const { return data.data<uint8_t>() + p * panel_stride; }
};

// Packs the (ks * kc) x n weight matrix W, element (k, j) at w[k * ldw + j] (or w[j * ldw + k]
// when `transposed`), rows ordered tap-major (k = tap * kc + c). `bias` (n, optional) is in the
// accumulator's units (x_scale * w_scale[j]); `scale` (n) is the epilogue's per-column
// multiplier (unused for int32 output, may be null then). `a_zero_point` is the activations'
// zero point as stored, `a_unsigned` whether activations are uint8.
QPackedWeights pack_qweights(const QGemmConfig& cfg, const int8_t* w, int64_t ks, int64_t kc, int64_t n, int64_t ldw,
                             bool transposed, const int32_t* bias, const float* scale, int32_t a_zero_point,
                             bool a_unsigned);

// C (M x N, row stride ldc elements) = epilogue(A (M x K bytes, row stride lda) * W).
// `a_prexored`: the caller has already XORed every byte of A with w.a_xor (one pass over A instead
// of an XOR per broadcast in every tile; worth it on the VNNI kernels, whose vpxord competes with
// vpdpbusd for the same ports).
void qgemm(const QGemmConfig& cfg, int64_t m, const void* a, int64_t lda, const QPackedWeights& w, void* c,
           int64_t ldc, const QParams& p, ThreadPool* pool, bool a_prexored = false);

// Convolution through an indirection buffer (as igemm in gemm.h): for each block of MR output
// rows, ks * MR row pointers (tap-major) to kc contiguous bytes; `a_offset` is added to every
// pointer except `zero`, a row of at least kc4 bytes holding the input zero point.
// `a_prexored` as for qgemm (the rows and `zero` both hold bytes XORed with w.a_xor).
void qigemm(const QGemmConfig& cfg, int64_t m, const uint8_t* const* a_ptrs, ptrdiff_t a_offset,
            const uint8_t* zero, const QPackedWeights& w, void* c, int64_t ldc, const QParams& p, ThreadPool* pool,
            bool a_prexored = false);

// Depthwise weights [channels, kh * kw] (ONNX [C, 1, KH, KW]) with bias and scale per channel,
// packed for QKernels::dwconv.
struct QPackedDepthwise {
  int64_t channels = 0, taps = 0;
  uint8_t a_xor = 0;
  int32_t a_zero = 0;  // the input zero point in the signed domain the kernel computes in
  Tensor data;
};
QPackedDepthwise pack_qdepthwise(const int8_t* w, const int32_t* bias, const float* scale, int64_t channels,
                                 int64_t kh, int64_t kw, int32_t a_zero_point, bool a_unsigned);

// y = dwconv(x) over rows [row_begin, row_end) of `s` (see QWindow). `scratch`: 64-byte aligned,
// qdwconv_scratch_bytes(k, s) bytes (a multiple of 64) for this call alone; calls that run at the
// same time each need their own.
size_t qdwconv_scratch_bytes(const QKernels& k, const QWindow& s);
void qdwconv(const QKernels& k, const QWindow& s, const void* x, const QPackedDepthwise& w, QParams p, void* y,
             int64_t row_begin, int64_t row_end, void* scratch);

// The plain loops the micro-kernels are tested against. They compute sum_k (a - a_zero_point) *
// w + bias exactly in int32 and apply the same epilogue as the kernels (p.a_xor is ignored).
void qgemm_reference(int64_t m, int64_t n, int64_t k, const void* a, int64_t lda, bool a_unsigned,
                     int32_t a_zero_point, const int8_t* w, int64_t ldw, const int32_t* bias, const float* scale,
                     const QParams& p, void* c, int64_t ldc);
// Depthwise on NHWC bytes: w [channels, kh * kw].
void qdwconv_reference(const QWindow& s, const void* x, bool a_unsigned, int32_t a_zero_point, const int8_t* w,
                       const int32_t* bias, const float* scale, const QParams& p, void* y);
// The epilogue of one accumulator (what every kernel computes), writing element `j` of `c`.
void qstore_reference(int32_t acc, float scale, const QParams& p, void* c, int64_t j);

}  // namespace kiln::nn::kernels
