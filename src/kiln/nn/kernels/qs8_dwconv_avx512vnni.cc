// int8 NHWC depthwise convolution for AVX-512 VNNI: 16 channels per zmm as int32 lanes, any
// channel count (the last vector of a pixel is a lane-masked load and store). Built with
// -mavx512f -mavx512bw -mavx512vl -mavx512vnni only; everything here has internal linkage except
// the exported entry point, and no standard-library template is used.
//
// One multiply-add per tap and 16 channels: the activation bytes are widened to int32 lanes
// (vpmovsxbd, or vpmovzxbd for uint8 inputs, which then compute in the unsigned domain), the
// weights to int32 lanes whose upper int16 is zero (vpmovzxwd), and vpdpwssd adds
// lo16(x) * w + hi16(x) * 0 to the accumulator: exact, as |x - zero_point| <= 255 fits the low
// int16. The input zero point is folded into the bias where the taps are known (interior pixels:
// bias - zero_point * sum of the taps inside the input, all wrapping int32 like the reference);
// border pixels subtract it from each tap instead. The epilogue is the other int8 kernels'
// (float(acc) * scale, clamp, round half to even under the default MXCSR mode, + zero point), so
// results are bit-identical to qdwconv_reference.
//
// 3x3 kernels (dilation 1, strides 1 and 2, rows of up to 12 KB) take the column-unit path
// (col3_rows below): vpdpbusd over the three taps of a kernel column, 48 useful products per
// instruction instead of 16, on zero-point-padded row copies. Other geometries:
// paths per output row (as f32_window_avx512.cc): border pixels clip the window and run up to 64
// channels per pass; interior pixels of 3x3 and 5x5 kernels (dilation 1, stride 1 or 2) keep the
// K*K weight vectors of a 16-channel block in registers while the block slides along the row P
// pixels at a time, each widened input vector serving every window that covers it; other interior
// pixels go four at a time.
#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "kiln/nn/kernels/internal/padded_rows.h"
#include "kiln/nn/kernels/internal/qs8_avx512_requant.h"
#include "kiln/nn/kernels/internal/qs8_ukernels.h"
#include "kiln/nn/kernels/internal/window_span.h"

namespace kiln::nn::kernels {
namespace {

inline __mmask16 lane_mask(int64_t n) {
  return n >= 16 ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>((1u << (n > 0 ? n : 0)) - 1u);
}

// Per-call constants.
struct Dw {
  int64_t block_bytes;  // packed bytes per 16 channels: bias, scale, taps x 16 int16
  __m512i zero;         // input zero point in the domain the loads produce
  int32_t zero_value;   // the same, as a number (also the byte that loads as it)
  __m512i neg_zero;
  __m512 lo, hi;        // clamp bounds (int8: qmin - zp, qmax - zp; float: flo, fhi)
  __m512i zp;
  __m128i out_xor;
  QOutput out;
  int64_t es;           // bytes per output element
  avx512::PackedEpilogue packed;  // int8 output, four vectors at once (col3_row)
};

// 16 activation bytes (m: valid lanes) as int32 lanes. A full mask loads unmasked: the previous
// layer may have stored these bytes just before, and the store buffer forwards only to unmasked
// loads.
template <bool kU, bool kMasked>
inline __m512i load_x(const uint8_t* p, __mmask16 m) {
  const __m128i b = kMasked && m != 0xFFFF ? _mm_maskz_loadu_epi8(m, p)
                                           : _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  return kU ? _mm512_cvtepu8_epi32(b) : _mm512_cvtepi8_epi32(b);
}

// 16 packed int16 weights of one tap as int32 lanes with a zero upper half.
inline __m512i load_w(const uint8_t* blk, int64_t tap) {
  return _mm512_cvtepu16_epi32(_mm256_load_si256(reinterpret_cast<const __m256i*>(blk + 128 + tap * 32)));
}

// Blocks are 32-byte aligned (128 + taps * 32 bytes each), not always 64: unaligned zmm loads.
inline __m512i load_bias(const uint8_t* blk) { return _mm512_loadu_si512(blk); }

// Requantises / stores 16 accumulators of one pixel (m: valid lanes) in the output kind.
inline void store16(__m512i acc, const uint8_t* blk, const Dw& d, uint8_t* c, __mmask16 m) {
  const __m512 scale = _mm512_loadu_ps(reinterpret_cast<const float*>(blk + 64));
  switch (d.out) {
    case QOutput::kInt8: {
      const __m512 f = _mm512_min_ps(_mm512_max_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(acc), scale), d.lo), d.hi);
      const __m512i q = _mm512_add_epi32(_mm512_cvtps_epi32(f), d.zp);
      _mm_mask_storeu_epi8(c, m, _mm_xor_si128(_mm512_cvtsepi32_epi8(q), d.out_xor));
      return;
    }
    case QOutput::kFloat: {
      const __m512 f = _mm512_min_ps(_mm512_max_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(acc), scale), d.lo), d.hi);
      _mm512_mask_storeu_ps(c, m, f);
      return;
    }
    case QOutput::kInt32:
      _mm512_mask_storeu_epi32(c, m, acc);
      return;
  }
}

// The bias with the zero point folded in for kernel rows [kh_lo, kh_hi) and every column.
inline __m512i folded_bias(const uint8_t* blk, const QWindow& s, int64_t kh_lo, int64_t kh_hi, const Dw& d) {
  __m512i b = load_bias(blk);
  for (int64_t t = kh_lo * s.kernel_w; t < kh_hi * s.kernel_w; ++t) b = _mm512_dpwssd_epi32(b, d.neg_zero, load_w(blk, t));
  return b;
}

// Channels [c, c + 16 * V) of one output pixel whose taps inside the input are rows
// [kh_lo, kh_hi) x columns [kw_lo, kw_hi) of the kernel (padding taps are skipped).
template <int V, bool kU>
inline void dw_pixel_block(const QWindow& s, const uint8_t* x_n, const uint8_t* w, int64_t ih0, int64_t iw0,
                           int64_t kh_lo, int64_t kh_hi, int64_t kw_lo, int64_t kw_hi, int64_t c, const Dw& d,
                           uint8_t* y) {
  const int64_t C = s.channels;
  const uint8_t* blk[V];
  __mmask16 m[V];
  __m512i acc[V];
#pragma GCC unroll 4
  for (int v = 0; v < V; ++v) {
    blk[v] = w + (c / 16 + v) * d.block_bytes;
    m[v] = lane_mask(C - c - 16 * v);
    acc[v] = load_bias(blk[v]);
  }
  for (int64_t kh = kh_lo; kh < kh_hi; ++kh) {
    const uint8_t* xrow = x_n + (ih0 + kh * s.dilation_h) * s.in_w * C + c;
    for (int64_t kw = kw_lo; kw < kw_hi; ++kw) {
      const uint8_t* xp = xrow + (iw0 + kw * s.dilation_w) * C;
      const int64_t t = kh * s.kernel_w + kw;
#pragma GCC unroll 4
      for (int v = 0; v < V; ++v) {
        const __m512i xv = _mm512_sub_epi32(load_x<kU, true>(xp + 16 * v, m[v]), d.zero);
        acc[v] = _mm512_dpwssd_epi32(acc[v], xv, load_w(blk[v], t));
      }
    }
  }
#pragma GCC unroll 4
  for (int v = 0; v < V; ++v) store16(acc[v], blk[v], d, y + (c + 16 * v) * d.es, m[v]);
}

// One output pixel anywhere (taps outside the input skipped), up to 64 channels per pass.
template <bool kU>
void dw_pixel(const QWindow& s, const uint8_t* x_n, const uint8_t* w, int64_t ih0, int64_t iw0, const Dw& d,
              uint8_t* y) {
  int64_t kh_lo, kh_hi, kw_lo, kw_hi;
  taps_inside(ih0, s.kernel_h, s.dilation_h, s.in_h, &kh_lo, &kh_hi);
  taps_inside(iw0, s.kernel_w, s.dilation_w, s.in_w, &kw_lo, &kw_hi);
  const int64_t C = s.channels;
  int64_t c = 0;
  for (; c + 48 < C; c += 64) dw_pixel_block<4, kU>(s, x_n, w, ih0, iw0, kh_lo, kh_hi, kw_lo, kw_hi, c, d, y);
  const int64_t rest = C - c;
  if (rest > 32) dw_pixel_block<3, kU>(s, x_n, w, ih0, iw0, kh_lo, kh_hi, kw_lo, kw_hi, c, d, y);
  else if (rest > 16) dw_pixel_block<2, kU>(s, x_n, w, ih0, iw0, kh_lo, kh_hi, kw_lo, kw_hi, c, d, y);
  else if (rest > 0) dw_pixel_block<1, kU>(s, x_n, w, ih0, iw0, kh_lo, kh_hi, kw_lo, kw_hi, c, d, y);
}

// Four neighbouring pixels whose windows lie inside the input columns (kernel rows [kh_lo, kh_hi)
// inside the input), any kernel size: each weight vector serves four pixels.
template <bool kU>
void dw_quad(const QWindow& s, const uint8_t* x_n, const uint8_t* w, int64_t kh_lo, int64_t kh_hi, int64_t ih0,
             int64_t iw0, const Dw& d, uint8_t* y) {
  const int64_t C = s.channels, step = s.stride_w * C;
  for (int64_t c = 0; c < C; c += 16) {
    const uint8_t* blk = w + (c / 16) * d.block_bytes;
    const __mmask16 m = lane_mask(C - c);
    const __m512i b = folded_bias(blk, s, kh_lo, kh_hi, d);
    __m512i a[4] = {b, b, b, b};
    for (int64_t kh = kh_lo; kh < kh_hi; ++kh) {
      const uint8_t* xrow = x_n + ((ih0 + kh * s.dilation_h) * s.in_w + iw0) * C + c;
      for (int64_t kw = 0; kw < s.kernel_w; ++kw) {
        const __m512i wv = load_w(blk, kh * s.kernel_w + kw);
        const uint8_t* xp = xrow + kw * s.dilation_w * C;
#pragma GCC unroll 4
        for (int j = 0; j < 4; ++j) a[j] = _mm512_dpwssd_epi32(a[j], load_x<kU, true>(xp + j * step, m), wv);
      }
    }
#pragma GCC unroll 4
    for (int j = 0; j < 4; ++j) store16(a[j], blk, d, y + (j * C + c) * d.es, m);
  }
}

// K x K kernels (dilation 1) on interior pixels, one 16-channel block: the K*K weight vectors stay
// in registers while the block slides along the row, and each input vector widened serves every
// window that covers it. A step handles P units of kOut output pixels; the input vector k serves
// tap k - T * j of unit j. Plain: one pixel per unit, T = the stride (3x3, stride 1, P = 8: 10
// loads per kernel row for 24 vpdpwssd). Pairs (8 channels, stride 1): one 16-byte load holds two
// neighbouring pixels, i.e. the same tap of two neighbouring outputs, so a unit is two outputs,
// T = 2, and the block's weights, bias and scales are duplicated into both halves.
//
// `rows` output rows, the input and output moving by x_row_step / y_row_step bytes from one to the
// next (the narrow rows of dwconv_rows: the weights and the folded bias are loaded once for them).
template <int K, int T, int P, int kOut, bool kU, bool kMasked>
inline void dw_span_block(const QWindow& s, const uint8_t* x_n, const uint8_t* blk, int64_t c, __mmask16 m,
                          int64_t kh_lo, int64_t kh_hi, int64_t ih0, int64_t ow_begin, int64_t blocks, const Dw& d,
                          uint8_t* y_row, int64_t rows, int64_t x_row_step, int64_t y_row_step) {
  const int64_t C = s.channels;
  constexpr int kInputs = (P - 1) * T + K;  // input vectors under P neighbouring units
  __m512i wk[K * K];
#pragma GCC unroll 25
  for (int t = 0; t < K * K; ++t) wk[t] = load_w(blk, t);
  __m512i bias = load_bias(blk);
#pragma GCC unroll 25
  for (int t = 0; t < K * K; ++t)
    if (t >= kh_lo * K && t < kh_hi * K) bias = _mm512_dpwssd_epi32(bias, d.neg_zero, wk[t]);
  for (int64_t rr = 0; rr < rows; ++rr, x_n += x_row_step, y_row += y_row_step)
  for (int64_t q = 0; q < blocks; ++q) {
    const int64_t ow = ow_begin + P * kOut * q;
    const int64_t iw0 = ow * s.stride_w - s.pad_left;
    __m512i a[P];
#pragma GCC unroll 8
    for (int j = 0; j < P; ++j) a[j] = bias;
#pragma GCC unroll 5
    for (int kh = 0; kh < K; ++kh) {
      if (kh < kh_lo || kh >= kh_hi) continue;
      const uint8_t* xp = x_n + ((ih0 + kh) * s.in_w + iw0) * C + c;
#pragma GCC unroll 24
      for (int k = 0; k < kInputs; ++k) {
        const __m512i v = load_x<kU, kMasked>(xp + k * C, m);
#pragma GCC unroll 8
        for (int j = 0; j < P; ++j) {
          const int t = k - T * j;
          if (t >= 0 && t < K) a[j] = _mm512_dpwssd_epi32(a[j], v, wk[kh * K + t]);
        }
      }
    }
#pragma GCC unroll 8
    for (int j = 0; j < P; ++j)  // the last step of a narrow row may run past out_w (see dwconv_rows)
      if (ow + kOut * j < s.out_w) store16(a[j], blk, d, y_row + ((ow + kOut * j) * C + c) * d.es, m);
  }
}

template <int K, int S, int P, bool kU>
void dw_span(const QWindow& s, const uint8_t* x_n, const uint8_t* w, int64_t kh_lo, int64_t kh_hi, int64_t ih0,
             int64_t ow_begin, int64_t blocks, const Dw& d, uint8_t* y_row, int64_t rows, int64_t x_row_step,
             int64_t y_row_step) {
  const int64_t C = s.channels;
  for (int64_t c = 0; c < C; c += 16) {
    const uint8_t* blk = w + (c / 16) * d.block_bytes;
    if (C - c >= 16)
      dw_span_block<K, S, P, 1, kU, false>(s, x_n, blk, c, 0xFFFF, kh_lo, kh_hi, ih0, ow_begin, blocks, d, y_row, rows,
                                           x_row_step, y_row_step);
    else
      dw_span_block<K, S, P, 1, kU, true>(s, x_n, blk, c, lane_mask(C - c), kh_lo, kh_hi, ih0, ow_begin, blocks, d,
                                          y_row, rows, x_row_step, y_row_step);
  }
}

// 8 channels, stride 1: `w` is the duplicated block (see dw_span_block); `blocks` steps of 2 * P
// output pixels.
template <int K, int P, bool kU>
void dw_span_pairs(const QWindow& s, const uint8_t* x_n, const uint8_t* w, int64_t kh_lo, int64_t kh_hi, int64_t ih0,
                   int64_t ow_begin, int64_t blocks, const Dw& d, uint8_t* y_row, int64_t rows, int64_t x_row_step,
                   int64_t y_row_step) {
  dw_span_block<K, 2, P, 2, kU, false>(s, x_n, w, 0, 0xFFFF, kh_lo, kh_hi, ih0, ow_begin, blocks, d, y_row, rows,
                                       x_row_step, y_row_step);
}

using SpanFn = void (*)(const QWindow&, const uint8_t*, const uint8_t*, int64_t, int64_t, int64_t, int64_t, int64_t,
                        const Dw&, uint8_t*, int64_t, int64_t, int64_t);

// The register-resident span for this geometry, and how many output pixels it handles per step;
// *pairs is set when it wants the duplicated 8-channel block.
template <bool kU>
SpanFn span_for(const QWindow& s, int* pixels, bool* pairs) {
  *pairs = false;
  if (s.dilation_h != 1 || s.dilation_w != 1 || s.kernel_h != s.kernel_w) return nullptr;
  if (s.channels == 8 && s.stride_w == 1 && (s.kernel_w == 3 || s.kernel_w == 5)) {
    *pairs = true;
    *pixels = 8;
    return s.kernel_w == 3 ? dw_span_pairs<3, 4, kU> : dw_span_pairs<5, 4, kU>;
  }
  if (s.kernel_w == 3) {
    *pixels = 8;
    if (s.stride_w == 1) return dw_span<3, 1, 8, kU>;
    if (s.stride_w == 2) return dw_span<3, 2, 8, kU>;
  }
  if (s.kernel_w == 5) {
    *pixels = 4;
    if (s.stride_w == 1) return dw_span<5, 1, 4, kU>;
    if (s.stride_w == 2) return dw_span<5, 2, 4, kU>;
  }
  return nullptr;
}

// n bytes of `v` / of `src` (a few hundred bytes per kernel row of a narrow image: inline 64-byte
// stores and a masked tail instead of memset / memcpy calls).
inline void fill_bytes(uint8_t* dst, __m512i v, int64_t n) {
  int64_t i = 0;
  for (; i + 64 <= n; i += 64) _mm512_storeu_si512(dst + i, v);
  if (i < n) _mm512_mask_storeu_epi8(dst + i, _cvtu64_mask64(~0ull >> (64 - (n - i))), v);
}
inline void copy_bytes(uint8_t* dst, const uint8_t* src, int64_t n) {
  int64_t i = 0;
  for (; i + 64 <= n; i += 64) _mm512_storeu_si512(dst + i, _mm512_loadu_si512(src + i));
  if (i < n) {
    const __mmask64 m = _cvtu64_mask64(~0ull >> (64 - (n - i)));
    _mm512_mask_storeu_epi8(dst + i, m, _mm512_maskz_loadu_epi8(m, src + i));
  }
}

// The 3x3 span with P pixels per step (4 to 8) for stride 1 or 2 (narrow rows).
template <bool kU>
SpanFn narrow_span3(int64_t stride, int p) {
  const bool s1 = stride == 1;
  switch (p) {
    case 4: return s1 ? dw_span<3, 1, 4, kU> : dw_span<3, 2, 4, kU>;
    case 5: return s1 ? dw_span<3, 1, 5, kU> : dw_span<3, 2, 5, kU>;
    case 6: return s1 ? dw_span<3, 1, 6, kU> : dw_span<3, 2, 6, kU>;
    case 7: return s1 ? dw_span<3, 1, 7, kU> : dw_span<3, 2, 7, kU>;
    default: return s1 ? dw_span<3, 1, 8, kU> : dw_span<3, 2, 8, kU>;
  }
}

// 3x3 kernels (dilation 1, strides 1 and 2) by vpdpbusd: each int32 lane multiplies four bytes,
// the taps of one kernel column, so one instruction does 48 useful products for 16 channels where
// vpdpwssd does 16. Output rows read their input rows from zero-point-padded unsigned copies
// (int8 inputs XORed with 0x80 while copying, so the zero point becomes zero + 128); the "column
// unit" of padded input column p and 16 channels interleaves the bytes of up to four rows (zero-
// masked loads, OR, one dword permute, one in-lane byte shuffle), and an output pixel is three
// vpdpbusd over the units of its window's columns. At stride 1 two output rows share four-row
// units: the upper one weighs rows 0-2 (bytes w0, w1, w2, 0), the lower one rows 1-3 (0, w0, w1,
// w2). Padding taps add zero_point * w, which the bias folded over all nine taps takes away
// again, so border pixels need no special case. With 8 channels and stride 1 a unit holds two
// neighbouring columns and a vector two neighbouring output pixels. int8 outputs are requantised
// four vectors at a time when the multipliers allow (qs8_avx512_requant.h).
constexpr int64_t kCol3RowBytes = 12288;  // one padded input row copy (four are kept)
constexpr int64_t kCol3Slack = 64;        // bytes before and after a row that unit loads may touch
constexpr int64_t kCol3MaxBlocks = 64;    // channels / 16

// The kernel-column weights and folded bias of one 16-channel block.
struct alignas(64) Col3Block {
  __m512i w[3];      // w[kw]: lane j = bytes w(0, kw, j), w(1, kw, j), w(2, kw, j), 0
  __m512i w_low[3];  // the same one byte up, for the output row below: 0, w(0, kw, j), ...
  __m512i bias;      // bias - zero * sum of the nine taps
  __m512 scale;
  bool packed;       // int8 output with every multiplier below 0.5
};

inline Col3Block col3_block(const uint8_t* blk, int32_t zero, const Dw& d) {
  Col3Block b;
  const __m512i lo = _mm512_set1_epi32(0xFF);
  for (int kw = 0; kw < 3; ++kw) {
    __m512i v = _mm512_setzero_si512();
    for (int kh = 0; kh < 3; ++kh)
      v = _mm512_or_si512(v, _mm512_slli_epi32(_mm512_and_si512(load_w(blk, kh * 3 + kw), lo), 8 * kh));
    b.w[kw] = v;
    b.w_low[kw] = _mm512_slli_epi32(v, 8);
  }
  __m512i bias = load_bias(blk);
  const __m512i neg = _mm512_set1_epi32(-zero);
  for (int t = 0; t < 9; ++t) bias = _mm512_dpwssd_epi32(bias, neg, load_w(blk, t));
  b.bias = bias;
  b.scale = _mm512_loadu_ps(reinterpret_cast<const float*>(blk + 64));
  b.packed = d.out == QOutput::kInt8 && avx512::packable_scales(b.scale);
  return b;
}

// The column unit at byte offset `off` of the first kRows (3 or 4) padded rows.
template <int kRows>
inline __m512i col_unit(const uint8_t* const (&r)[4], int64_t off, __m512i dword_idx, __m512i byte_idx) {
  const auto ld = [&](int i) { return _mm_loadu_si128(reinterpret_cast<const __m128i*>(r[i] + off)); };
  __m512i v = _mm512_zextsi128_si512(ld(0));  // lane 3 zero for three rows
  v = _mm512_inserti32x4(v, ld(1), 1);
  v = _mm512_inserti32x4(v, ld(2), 2);
  if constexpr (kRows == 4) v = _mm512_inserti32x4(v, ld(3), 3);
  return _mm512_shuffle_epi8(_mm512_permutexvar_epi32(dword_idx, v), byte_idx);
}

// Four requantised vectors of 16 channels, pixel j at y + j * pixel_bytes (contiguous when 64).
inline void store4(const __m512i (&acc)[4], const Col3Block& b, const Dw& d, uint8_t* y, int64_t pixel_bytes,
                   __mmask16 m) {
  const __m512i v = avx512::pack4(avx512::round_scaled(acc[0], b.scale), avx512::round_scaled(acc[1], b.scale),
                                  avx512::round_scaled(acc[2], b.scale), avx512::round_scaled(acc[3], b.scale), d.packed);
  if (pixel_bytes == 16) {
    _mm512_storeu_si512(y, v);
    return;
  }
  _mm_mask_storeu_epi8(y, m, _mm512_castsi512_si128(v));
  _mm_mask_storeu_epi8(y + pixel_bytes, m, _mm512_extracti32x4_epi32(v, 1));
  _mm_mask_storeu_epi8(y + 2 * pixel_bytes, m, _mm512_extracti32x4_epi32(v, 2));
  _mm_mask_storeu_epi8(y + 3 * pixel_bytes, m, _mm512_extracti32x4_epi32(v, 3));
}

// One output row into y_row, or with kTwo (stride 1) two: y_row from padded rows 0-2 and y_low
// from rows 1-3. Column 0 of a padded row is the first padding column; `blocks` holds the
// prepared weights. kPairs: 8 channels, stride 1, two output pixels per vector.
template <int S, bool kPairs, bool kTwo>
inline void col3_row(const QWindow& s, const uint8_t* const (&rows)[4], const Col3Block* blocks, const uint8_t* w,
                     const Dw& d, uint8_t* y_row, uint8_t* y_low) {
  constexpr int kRows = kTwo ? 4 : 3;
  constexpr int64_t kStep = kPairs ? 2 : 1;  // output pixels per vector
  const int64_t C = s.channels;
  const int64_t unit_step = kPairs ? 8 : C;  // bytes from one column to the next
  const __m512i dword_idx = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
  const __m512i byte_idx = _mm512_broadcast_i32x4(_mm_setr_epi8(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15));
  for (int64_t c = 0; c < C; c += 16) {
    const Col3Block& b = blocks[c / 16];
    const uint8_t* blk = kPairs ? w : w + (c / 16) * d.block_bytes;
    const __mmask16 m = lane_mask(C - c);
    __m512i u0 = col_unit<kRows>(rows, c, dword_idx, byte_idx);
    __m512i u1 = col_unit<kRows>(rows, c + unit_step, dword_idx, byte_idx);
    // The vector of output pixels ow (and ow + 1 for pairs) over the units of columns p0, p0 + 1,
    // p0 + 2 with p0 = ow * S (u0 and u1 hold the first two, and are left for the next vector);
    // the lower row's into *low.
    const auto vec = [&](int64_t ow, __m512i* low) {
      const int64_t p0 = ow * S;
      const __m512i u2 = col_unit<kRows>(rows, c + (p0 + 2) * unit_step, dword_idx, byte_idx);
      __m512i acc = _mm512_dpbusd_epi32(b.bias, u0, b.w[0]);
      acc = _mm512_dpbusd_epi32(acc, u1, b.w[1]);
      acc = _mm512_dpbusd_epi32(acc, u2, b.w[2]);
      if constexpr (kTwo) {
        __m512i l = _mm512_dpbusd_epi32(b.bias, u0, b.w_low[0]);
        l = _mm512_dpbusd_epi32(l, u1, b.w_low[1]);
        *low = _mm512_dpbusd_epi32(l, u2, b.w_low[2]);
      }
      if constexpr (S == 1 && !kPairs) {
        u0 = u1;
        u1 = u2;
      } else {  // stride 2, or pairs: the next vector's window starts two columns further on
        u0 = u2;
        u1 = col_unit<kRows>(rows, c + (p0 + 3) * unit_step, dword_idx, byte_idx);
      }
      return acc;
    };
    int64_t ow = 0;
    if (b.packed) {
      const int64_t pixel_bytes = kPairs ? 16 : C;  // from one vector's outputs to the next one's
      for (; ow + 4 * kStep <= s.out_w; ow += 4 * kStep) {
        __m512i up[4], low[4];
#pragma GCC unroll 4
        for (int j = 0; j < 4; ++j) up[j] = vec(ow + j * kStep, &low[j]);
        store4(up, b, d, y_row + ow * C + c, pixel_bytes, m);
        if constexpr (kTwo) store4(low, b, d, y_low + ow * C + c, pixel_bytes, m);
      }
    }
    for (; ow < s.out_w; ow += kStep) {
      __m512i low;
      const __m512i acc = vec(ow, &low);
      const __mmask16 sm = kPairs ? (ow + 1 < s.out_w ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>(0x00FF)) : m;
      store16(acc, blk, d, y_row + (ow * C + c) * d.es, sm);
      if constexpr (kTwo) store16(low, blk, d, y_low + (ow * C + c) * d.es, sm);
    }
  }
}

// Whether the column-unit path takes this geometry (it needs its row copies to fit).
inline bool col3_fits(const QWindow& s) {
  if (s.kernel_h != 3 || s.kernel_w != 3 || s.dilation_h != 1 || s.dilation_w != 1) return false;
  if (s.stride_w != 1 && s.stride_w != 2) return false;
  if (s.channels > 16 * kCol3MaxBlocks) return false;
  // Rows of 3 outputs or fewer (VWW's last 3x3 maps) are faster on the narrow spans below, which
  // keep the weights in registers over several rows; from KWS's 25x5 maps up this path wins.
  if (s.out_w < 4) return false;
  const int64_t cols = (s.out_w - 1) * s.stride_w + 4;
  return (cols + 2) * s.channels + 64 <= kCol3RowBytes;
}

// The column-unit path's scratch (internal/padded_rows.h): unit loads may start kCol3Slack bytes
// before a row.
inline PaddedRowScratch col3_scratch(const QWindow& s) {
  return padded_row_scratch(s, sizeof(Col3Block), kCol3Slack, kCol3Slack);
}

template <bool kU>
__attribute__((noinline)) void col3_rows(const QWindow& s, const uint8_t* x, const uint8_t* w, const uint8_t* dup,
                                         const Dw& d, uint8_t* y, int64_t row_begin, int64_t row_end,
                                         uint8_t* scratch) {
  const int64_t C = s.channels, S = s.stride_w;
  const bool pairs = C == 8 && S == 1;
  const bool two = S == 1 && s.stride_h == 1;  // output rows in pairs over four input rows
  const int32_t zero_u = kU ? d.zero_value : d.zero_value + 128;
  const uint8_t zero_b = static_cast<uint8_t>(zero_u), x_b = kU ? 0 : 0x80;
  const int64_t nb = (C + 15) / 16;
  Col3Block* blocks = reinterpret_cast<Col3Block*>(scratch);
  for (int64_t b = 0; b < nb; ++b) blocks[b] = col3_block(pairs ? dup : w + b * d.block_bytes, zero_u, d);
  // Padded columns every output reads (+1: a pair's second column), all filled.
  const int64_t cols = (s.out_w - 1) * S + 3 + (pairs ? 1 : 0);
  PaddedRowRing ring;
  place_ring(ring, scratch, col3_scratch(s), cols * C + kCol3Slack, zero_b);
  const auto copy = [&](uint8_t* dst, const uint8_t* src) {
    copy_padded_row(dst, src, s.pad_left, s.in_w, cols, C, x_b, zero_b, kCol3Slack);
  };
  for_each_output_row(ring, s, row_begin, row_end, two, x, copy, [&](const uint8_t* const (&rows)[4], int64_t r, bool both) {
    uint8_t* y_row = y + r * s.out_w * C * d.es;
    uint8_t* y_low = y_row + s.out_w * C * d.es;
    if (pairs) {
      if (both) col3_row<1, true, true>(s, rows, blocks, dup, d, y_row, y_low);
      else col3_row<1, true, false>(s, rows, blocks, dup, d, y_row, nullptr);
    } else if (S == 1) {
      if (both) col3_row<1, false, true>(s, rows, blocks, w, d, y_row, y_low);
      else col3_row<1, false, false>(s, rows, blocks, w, d, y_row, nullptr);
    } else {
      col3_row<2, false, false>(s, rows, blocks, w, d, y_row, nullptr);
    }
  });
}

// Narrow rows (at most 32 outputs, where the border pixels and the remainder after whole spans
// are a large part of the row): the input rows under a chunk of output rows are copied into
// scratch with zero-point bytes around them, and the span runs over whole rows as if they were
// interior (a padding tap adds zero_point * w, which the bias folded over all taps takes away
// again), its last step computing past out_w without storing. 3x3 narrow rows take P = out_w /
// steps pixels per step (4 to 8), so that little is computed past out_w (a 5-wide row: one step
// of 5 instead of 8). A chunk's padded rows take at most kNarrowBytes.
struct NarrowPlan {
  bool on = false;
  int pixels = 0;          // output pixels per span step
  int64_t steps = 0;       // span steps per row
  int64_t cols = 0;        // padded input columns per row
  int64_t chunk_rows = 0;  // output rows per chunk
  int64_t bytes = 0;       // scratch for one chunk's padded input rows
};
constexpr int64_t kNarrowMax = 32;
constexpr int64_t kNarrowBytes = 32768;

inline NarrowPlan narrow_plan(const QWindow& s) {
  NarrowPlan n;
  int pixels = 0;
  bool pairs = false;
  if (!span_for<false>(s, &pixels, &pairs) || pairs || s.out_w > kNarrowMax) return n;
  const int64_t K = s.kernel_w;
  if (K == 3) {
    const int64_t st = (s.out_w + 7) / 8;
    pixels = static_cast<int>((s.out_w + st - 1) / st);
    if (pixels < 4) pixels = 4;
  }
  n.pixels = pixels;
  n.steps = (s.out_w + pixels - 1) / pixels;
  n.cols = (n.steps * pixels - 1) * s.stride_w + K;
  const int64_t row_bytes = n.cols * s.channels;
  if (s.pad_left >= n.cols || K * row_bytes > kNarrowBytes) return n;
  n.on = true;
  n.chunk_rows = (kNarrowBytes / row_bytes - K) / s.stride_h + 1;  // >= 1: K rows fit
  if (n.chunk_rows > s.out_h) n.chunk_rows = s.out_h;
  n.bytes = ((n.chunk_rows - 1) * s.stride_h + K) * row_bytes;
  return n;
}

template <bool kU>
void dwconv_rows(const QWindow& s, const uint8_t* x, const uint8_t* w, const Dw& d, uint8_t* y, int64_t row_begin,
                 int64_t row_end, uint8_t* scratch) {
  const int64_t C = s.channels;
  int64_t ow_lo, ow_hi;  // output columns whose whole window lies inside the input
  interior_columns(s, &ow_lo, &ow_hi);
  int pixels = 0;
  bool pairs = false;
  const SpanFn span = span_for<kU>(s, &pixels, &pairs);
  // The duplicated block of the pair span: bias[16], scale[16], 25 taps x 16 int16 at most.
  alignas(64) uint8_t dup[16 * 8 + 25 * 16 * 2];
  if (pairs) {
    const int64_t taps = s.kernel_h * s.kernel_w;
    for (int64_t i = 0; i < 8; ++i) {
      for (int64_t half = 0; half < 2; ++half) {
        reinterpret_cast<int32_t*>(dup)[half * 8 + i] = reinterpret_cast<const int32_t*>(w)[i];
        reinterpret_cast<float*>(dup + 64)[half * 8 + i] = reinterpret_cast<const float*>(w + 64)[i];
        for (int64_t t = 0; t < taps; ++t)
          reinterpret_cast<int16_t*>(dup + 128)[t * 16 + half * 8 + i] = reinterpret_cast<const int16_t*>(w + 128)[t * 16 + i];
      }
    }
  }
  const uint8_t* span_weights = pairs ? dup : w;
  if (col3_fits(s)) {
    col3_rows<kU>(s, x, w, dup, d, y, row_begin, row_end, scratch);
    return;
  }
  const NarrowPlan np = narrow_plan(s);
  if (np.on) {
    // Chunks of output rows of one image whose input rows, padded, fit in scratch together: they
    // are copied once, and the span runs over the whole chunk with its weights in registers.
    const int64_t K = s.kernel_w, cols = np.cols;
    const SpanFn narrow_span = K == 3 ? narrow_span3<kU>(s.stride_w, np.pixels) : span;
    QWindow ps = s;
    ps.in_h = K;  // unused by the span (the rows it reads are the chunk's)
    ps.in_w = cols;
    ps.pad_top = 0;
    ps.pad_left = 0;
    const __m512i zero_vec = _mm512_set1_epi8(static_cast<char>(d.zero_value));
    const int64_t sh = s.stride_h, row_bytes = cols * C;
    const int64_t copy_w = s.in_w < cols - s.pad_left ? s.in_w : cols - s.pad_left;
    uint8_t* padded = scratch;
    for (int64_t r = row_begin; r < row_end;) {
      const int64_t n = r / s.out_h, oh = r % s.out_h;
      int64_t rows = s.out_h - oh;
      if (rows > row_end - r) rows = row_end - r;
      if (rows > np.chunk_rows) rows = np.chunk_rows;
      const uint8_t* x_n = x + n * s.in_h * s.in_w * C;
      const int64_t ih_first = oh * sh - s.pad_top, in_rows = (rows - 1) * sh + K;
      for (int64_t i = 0; i < in_rows; ++i) {
        uint8_t* prow = padded + i * row_bytes;
        const int64_t ih = ih_first + i;
        if (ih < 0 || ih >= s.in_h || copy_w <= 0) {
          fill_bytes(prow, zero_vec, row_bytes);
          continue;
        }
        fill_bytes(prow, zero_vec, s.pad_left * C);
        copy_bytes(prow + s.pad_left * C, x_n + ih * s.in_w * C, copy_w * C);
        const int64_t right = cols - s.pad_left - copy_w;
        if (right > 0) fill_bytes(prow + (s.pad_left + copy_w) * C, zero_vec, right * C);
      }
      narrow_span(ps, padded, w, 0, K, 0, 0, np.steps, d, y + r * s.out_w * C * d.es, rows, sh * row_bytes,
                  s.out_w * C * d.es);
      r += rows;
    }
    return;
  }
  for (int64_t r = row_begin; r < row_end; ++r) {
    const int64_t n = r / s.out_h, oh = r % s.out_h;
    const uint8_t* x_n = x + n * s.in_h * s.in_w * C;
    const int64_t ih0 = oh * s.stride_h - s.pad_top;
    int64_t kh_lo, kh_hi;
    taps_inside(ih0, s.kernel_h, s.dilation_h, s.in_h, &kh_lo, &kh_hi);
    uint8_t* y_row = y + r * s.out_w * C * d.es;
    int64_t ow = 0;
    for (; ow < ow_lo; ++ow) dw_pixel<kU>(s, x_n, w, ih0, ow * s.stride_w - s.pad_left, d, y_row + ow * C * d.es);
    if (span && ow + pixels <= ow_hi) {
      const int64_t blocks = (ow_hi - ow) / pixels;
      span(s, x_n, span_weights, kh_lo, kh_hi, ih0, ow, blocks, d, y_row, 1, 0, 0);
      ow += pixels * blocks;
    }
    for (; ow + 4 <= ow_hi; ow += 4)
      dw_quad<kU>(s, x_n, w, kh_lo, kh_hi, ih0, ow * s.stride_w - s.pad_left, d, y_row + ow * C * d.es);
    for (; ow < s.out_w; ++ow) dw_pixel<kU>(s, x_n, w, ih0, ow * s.stride_w - s.pad_left, d, y_row + ow * C * d.es);
  }
}

}  // namespace

size_t qs8_dwconv_avx512vnni_scratch(const QWindow& s) {
  if (col3_fits(s)) return static_cast<size_t>(col3_scratch(s).bytes());
  return static_cast<size_t>(narrow_plan(s).bytes);
}

void qs8_dwconv_avx512vnni(const QWindow& s, const uint8_t* x, const uint8_t* w, int32_t a_zero, const QParams& p,
                           void* y, int64_t row_begin, int64_t row_end, void* scratch) {
  // a_xor is 0x80 exactly for uint8 inputs (pack_qdepthwise): those are widened without the XOR,
  // i.e. in the unsigned domain, where the zero point is a_zero + 128.
  const bool is_unsigned = p.a_xor != 0;
  const int32_t zero = is_unsigned ? a_zero + 128 : a_zero;
  Dw d;
  d.block_bytes = 16 * 8 + s.kernel_h * s.kernel_w * 16 * 2;
  d.zero = _mm512_set1_epi32(zero);
  d.zero_value = zero;
  d.neg_zero = _mm512_set1_epi32(-zero);
  if (p.out == QOutput::kInt8) {
    d.lo = _mm512_set1_ps(static_cast<float>(p.qmin - p.out_zero_point));
    d.hi = _mm512_set1_ps(static_cast<float>(p.qmax - p.out_zero_point));
  } else {
    d.lo = _mm512_set1_ps(p.flo);
    d.hi = _mm512_set1_ps(p.fhi);
  }
  d.zp = _mm512_set1_epi32(p.out_zero_point);
  d.out_xor = _mm_set1_epi8(static_cast<char>(p.out_xor));
  d.out = p.out;
  d.es = p.out == QOutput::kInt8 ? 1 : 4;
  if (p.out == QOutput::kInt8) d.packed = avx512::make_packed_epilogue(p);
  uint8_t* yb = static_cast<uint8_t*>(y);
  uint8_t* sb = static_cast<uint8_t*>(scratch);
  if (is_unsigned) dwconv_rows<true>(s, x, w, d, yb, row_begin, row_end, sb);
  else dwconv_rows<false>(s, x, w, d, yb, row_begin, row_end, sb);
}

}  // namespace kiln::nn::kernels
