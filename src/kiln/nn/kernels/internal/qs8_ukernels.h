// Types shared by the per-ISA int8 micro-kernel translation units (qs8_*_<isa>.cc).
//
// Same rule as ukernels.h: this header is included by files compiled with AVX2 / AVX-512 /
// AVX-VNNI flags, so it holds only plain structs, enums and declarations. No inline function, no
// template, no standard-library header: an instantiation emitted by an AVX-512 unit could be
// picked by the linker for every caller and crash CPUs without AVX-512.
#pragma once

#include <cstddef>
#include <cstdint>

namespace kiln::nn::kernels {

// What leaves a tile: requantised int8 (the QLinearConv / QDQ path), dequantised float32 (a
// DequantizeLinear -> Conv/Gemm whose result is consumed in float), or the raw int32 sums
// (ConvInteger / MatMulInteger).
enum class QOutput : uint8_t { kInt8, kFloat, kInt32 };

// Per-call parameters of the epilogue.
//   kInt8:  y = clamp(round_half_even(float(acc) * scale[j]) + out_zero_point, qmin, qmax) ^ out_xor
//   kFloat: y = clamp(float(acc) * scale[j], flo, fhi)
//   kInt32: y = acc
// acc already holds the bias and the zero-point correction (both are folded into the packed
// weights). qmin/qmax and out_zero_point are in the signed domain: a uint8 output uses
// zero_point - 128, bounds - 128 and out_xor = 0x80.
struct QParams {
  QOutput out = QOutput::kInt8;
  int32_t out_zero_point = 0;
  int32_t qmin = -128, qmax = 127;
  float flo = -3.4e38f, fhi = 3.4e38f;
  uint8_t out_xor = 0;
  // XOR applied to every activation byte as it is loaded; set by the packing (it depends on the
  // input dtype and on the domain the micro-kernel computes in).
  uint8_t a_xor = 0;
};

// One tile's work. Activations are bytes (int8 or uint8, see a_xor); gemm reads rows of A with a
// stride, igemm reads them through an indirection buffer of ks * MR row pointers per row block.
struct QTile {
  int mr = 0;               // rows in this tile (<= config MR)
  int nc = 0;               // columns (<= NR)
  int64_t kc = 0;           // bytes per tap (gemm: K)
  int64_t ks = 1;           // taps (gemm: 1)
  const uint8_t* a = nullptr;              // gemm: first row of A
  int64_t lda = 0;                         // gemm: row stride of A (bytes)
  const uint8_t* const* a_ptrs = nullptr;  // igemm: ks * MR row pointers, tap-major
  ptrdiff_t a_offset = 0;                  // igemm: bytes added to every pointer except `zero`
  const uint8_t* zero = nullptr;           // igemm: the padding row (holds the input zero point);
                                           // null: the pointers have no padding row
  const uint8_t* w = nullptr;              // panel: int32 bias[NR], float scale[NR], weight groups
  void* c = nullptr;                       // int8, float or int32 elements per QParams::out
  int64_t ldc = 0;                         // row stride of C (elements)
  const QParams* params = nullptr;
};

using QTileKernel = void (*)(const QTile& t);
// `rows` rows from t.a into t.c (t.mr is ignored) against the one panel t.w / t.nc: the tiles of a
// strip without a call through the driver per tile.
using QRowsKernel = void (*)(const QTile& t, int64_t rows);

// How a configuration wants its weights packed, per group of 4 reduction steps and NR columns:
//   kGroup4: NR x 4 int8 (column j holds w[k..k+3][j]): VNNI vpdpbusd and the portable kernel.
//   kPairs16: NR x 2 int16 (w[k][j], w[k+2][j]) then NR x 2 int16 (w[k+1][j], w[k+3][j]): the
//             AVX2 vpmaddwd kernel (no vpmaddubsw, whose int16 pair sums saturate).
// kGroup4: groups of 4 bytes of K per column (vpdpbusd). kPairs16: int16 pairs (vpmaddwd).
// kGroupPairs (nr = 8 only): two consecutive groups of 4 per column side by side, lane 2 c + j of a
// 64-byte block holding group 2 p + j of column c; a tap's groups are padded to an even count.
enum class QWeightLayout : uint8_t { kGroup4, kPairs16, kGroupPairs };

struct QGemmConfig {
  const char* name;      // "qs8_gemm_avx2", ...
  int mr, nr;
  // The micro-kernel multiplies activations as uint8 (x ^ 0x80 for int8 inputs, as vpdpbusd
  // needs an unsigned operand) rather than int8; the packing folds the matching correction
  // -zero_point * sum(w) into the bias.
  bool a_unsigned;
  QWeightLayout layout;
  QTileKernel gemm;
  QTileKernel igemm;
  QRowsKernel gemm_rows = nullptr;   // optional: gemm over many row blocks of one panel
  QRowsKernel igemm_rows = nullptr;  // optional: the same for igemm (t.a_ptrs)
  // Below this many multiply-adds a GEMM runs on the calling thread: waking a worker and joining
  // it costs more. The bar is a time, so it falls with the kernel's speed: 2^20 on the VNNI sets
  // (at 2 threads against 2^18, on AVX-512 VNNI: KWS int8 28 -> 21.7 us, VWW 90 -> 79 us), 2^17
  // on AVX2 without VNNI (on a Zen 3 at 2 threads, against 2^20: KWS 101 -> 64 us, VWW 261 ->
  // 225 us, ResNet-8 169 -> 129 us; benchmarks.md#int8).
  int64_t min_parallel_macs = int64_t{1} << 20;
};

// Depthwise convolution on NHWC bytes. Rows are (n, oh) pairs n * out_h + oh in
// [row_begin, row_end). `w` is pack_qdepthwise()'s layout: per block of 16 channels, int32
// bias[16], float scale[16], then kh * kw taps of 16 int16 weights. `a_zero` is the input zero
// point in the signed domain (after a_xor); padding taps are skipped.
struct QWindow {
  int64_t batch, in_h, in_w, channels, out_h, out_w;
  int64_t kernel_h, kernel_w, stride_h, stride_w, dilation_h, dilation_w;
  int64_t pad_top, pad_left;
};
// `scratch`: at least QDwScratchFn(s) bytes, 64-byte aligned, owned by this call (the padded
// input rows and prepared weights of the faster paths; nothing on the stack beyond a few KB).
using QDwConvFn = void (*)(const QWindow& s, const uint8_t* x, const uint8_t* w, int32_t a_zero, const QParams& p,
                           void* y, int64_t row_begin, int64_t row_end, void* scratch);
using QDwScratchFn = size_t (*)(const QWindow& s);

// Per-tensor QuantizeLinear (float -> int8/uint8, y = sat(round_half_even(x / scale) + zp),
// NaN -> 0; qmin/qmax/zero_point in the output's own domain) and DequantizeLinear
// (y = float(x - zp) * scale); `is_unsigned` says whether the bytes are uint8.
using QuantizeFn = void (*)(const float* x, int64_t n, float scale, int32_t zero_point, bool is_unsigned, void* y);
using DequantizeFn = void (*)(const void* x, int64_t n, float scale, int32_t zero_point, bool is_unsigned, float* y);

// Elementwise y = Q(DQ(a) + DQ(b)) (or *) over n same-shaped int8/uint8 tensors, with the float
// operations of the unfused chain: va = float(a - a_zero) * a_scale (same for b), v = va + vb,
// y = clamp(round_half_even(v / y_scale) + y_zero, qmin, qmax); qmin/qmax in y's own values.
struct QBinaryParams {
  float a_scale, b_scale, y_scale;
  int32_t a_zero, b_zero, y_zero;
  int32_t qmin, qmax;
  bool mul, a_unsigned, b_unsigned, y_unsigned;
};
using QBinaryFn = void (*)(const uint8_t* a, const uint8_t* b, int64_t n, const QBinaryParams& p, uint8_t* y);

// Max / average pooling of NHWC bytes with requantisation (com.kiln.QPool): max runs on the stored
// integers (dequantisation is monotone), average sums them exactly in int32; both then requantise
// as DequantizeLinear -> float pool -> QuantizeLinear would:
//   max:     real = float(max - x_zero) * x_scale
//   average: real = float(sum - x_zero * valid) * x_scale / float(count)  (0 when count = 0)
//   y = clamp(round_half_even(real / y_scale) + y_zero, qmin, qmax)
// where `valid` counts the taps inside the input and `count` those inside the padded extent
// (count_include_pad) or the valid ones. A max pool whose input and output parameters are equal
// stores clamp(max, qmin, qmax) directly. Zero points, qmin and qmax in each tensor's own values;
// windows entirely in the padding give max = -1000 (then clamped). `acc` is scratch for
// `channels` int32 (kernels that keep sums in registers ignore it).
struct QPoolParams {
  bool is_max = true, count_include_pad = false, same_params = false;
  bool x_unsigned = false, y_unsigned = false;
  float x_scale = 1.f, y_scale = 1.f;
  int32_t x_zero = 0, y_zero = 0, qmin = -128, qmax = 127;
  int64_t pad_bottom = 0, pad_right = 0;
};
using QPoolFn = void (*)(const QWindow& s, const uint8_t* x, const QPoolParams& p, uint8_t* y, int32_t* acc);

struct QKernels {
  const char* name;     // "qs8_avx2", ...
  const QGemmConfig* gemm;
  QDwConvFn dwconv;
  QDwScratchFn dwconv_scratch;
  const char* dwconv_name;  // "qs8_dwconv_avx512vnni", ... (what `kiln info` reports)
  QuantizeFn quantize;
  DequantizeFn dequantize;
  QBinaryFn binary;
  QPoolFn pool;
  const char* pool_name;  // "qs8_pool_avx512", "qs8_pool_scalar"
  // Optional: a GEMM for at most 8 output columns (stems with 8 filters), or null.
  const QGemmConfig* gemm_narrow = nullptr;
  // Optional: a GEMM for layers whose weights all lie in [-64, 64] (7-bit weights), faster than
  // `gemm` on this set, or null (qgemm_config_for chooses).
  const QGemmConfig* gemm_w7 = nullptr;
  // Multiply-adds from which a depthwise convolution splits its rows over threads (fast_qconv.cc).
  int64_t dw_min_parallel_work = int64_t{1} << 18;
};

// Defined in qs8_<isa>.cc; qgemm.cc assembles them into QKernels sets. The VNNI GEMM units provide
// only GEMM micro-kernels; the AVX-512 VNNI set has its own depthwise kernel
// (qs8_dwconv_avx512vnni.cc), and the conversions use the AVX2 ones on both VNNI sets.
extern const QGemmConfig kQs8GemmAvx512Vnni;
extern const QGemmConfig kQs8GemmAvx512VnniN8;
extern const QGemmConfig kQs8GemmAvxVnni;
extern const QGemmConfig kQs8GemmAvx2;
extern const QGemmConfig kQs8GemmAvx2W7;  // qs8_avx2_w7.cc: weights in [-64, 64] only
extern const QGemmConfig kQs8GemmPortable;
void qs8_dwconv_avx512vnni(const QWindow& s, const uint8_t* x, const uint8_t* w, int32_t a_zero, const QParams& p,
                           void* y, int64_t row_begin, int64_t row_end, void* scratch);
size_t qs8_dwconv_avx512vnni_scratch(const QWindow& s);
void qs8_dwconv_avxvnni(const QWindow& s, const uint8_t* x, const uint8_t* w, int32_t a_zero, const QParams& p,
                        void* y, int64_t row_begin, int64_t row_end, void* scratch);
size_t qs8_dwconv_avxvnni_scratch(const QWindow& s);
// The 3x3 column-unit path of qs8_dwconv_avx2 (qs8_dwconv_col3_avx2.cc); false: geometry not taken.
bool qs8_dwconv_col3_avx2(const QWindow& s, const uint8_t* x, const uint8_t* w, int32_t a_zero, const QParams& p,
                          void* y, int64_t row_begin, int64_t row_end, void* scratch);
size_t qs8_dwconv_col3_avx2_scratch(const QWindow& s);  // 0 where the geometry is not taken
void qs8_dwconv_avx2(const QWindow& s, const uint8_t* x, const uint8_t* w, int32_t a_zero, const QParams& p, void* y,
                     int64_t row_begin, int64_t row_end, void* scratch);
size_t qs8_dwconv_avx2_scratch(const QWindow& s);
void qs8_dwconv_portable(const QWindow& s, const uint8_t* x, const uint8_t* w, int32_t a_zero, const QParams& p,
                         void* y, int64_t row_begin, int64_t row_end, void* scratch);
size_t qs8_dwconv_portable_scratch(const QWindow& s);
void qs8_quantize_avx512(const float* x, int64_t n, float scale, int32_t zero_point, bool is_unsigned, void* y);
void qs8_quantize_avx2(const float* x, int64_t n, float scale, int32_t zero_point, bool is_unsigned, void* y);
void qs8_quantize_portable(const float* x, int64_t n, float scale, int32_t zero_point, bool is_unsigned, void* y);
void qs8_dequantize_avx2(const void* x, int64_t n, float scale, int32_t zero_point, bool is_unsigned, float* y);
void qs8_binary_avx2(const uint8_t* a, const uint8_t* b, int64_t n, const QBinaryParams& p, uint8_t* y);
void qs8_binary_portable(const uint8_t* a, const uint8_t* b, int64_t n, const QBinaryParams& p, uint8_t* y);
void qs8_dequantize_portable(const void* x, int64_t n, float scale, int32_t zero_point, bool is_unsigned, float* y);
void qs8_binary_avx512(const uint8_t* a, const uint8_t* b, int64_t n, const QBinaryParams& p, uint8_t* y);
void qs8_pool_avx512(const QWindow& s, const uint8_t* x, const QPoolParams& p, uint8_t* y, int32_t* acc);
void qs8_pool_scalar(const QWindow& s, const uint8_t* x, const QPoolParams& p, uint8_t* y, int32_t* acc);
void qs8_pool_avx2(const QWindow& s, const uint8_t* x, const QPoolParams& p, uint8_t* y, int32_t* acc);

}  // namespace kiln::nn::kernels
