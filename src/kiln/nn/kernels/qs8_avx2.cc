// int8 micro-kernels for AVX2 (no VNNI): GEMM / IGEMM 4 x 16 tiles, NHWC depthwise convolution
// 16 channels at a time (3x3 kernels take the column units of qs8_dwconv_col3_avx2.cc), per-tensor
// quantize / dequantize. Built with -mavx2 -mfma only;
// everything here has internal linkage except the exported entry points, and no standard-library
// template is used.
//
// No vpmaddubsw: its int16 sums of two u8 x s8 products saturate (255 * 127 * 2 > 32767), which
// would change results for ordinary 8-bit weights (ONNX Runtime documents this for its U8S8
// AVX2 path and offers 7-bit "reduce_range" weights as the workaround). Instead both operands
// are widened to int16 and multiplied with vpmaddwd, whose int32 pair sums cannot overflow here:
// activations are split into the (k0, k2) and (k1, k3) bytes of each group of 4 by two shifts,
// the weights were packed as matching int16 pairs (QWeightLayout::kPairs16). Exact for any
// int8 weights, at the cost of two vpmaddwd per 16 byte products instead of one vpmaddubsw.
#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "kiln/nn/kernels/internal/qgemm_rows.h"
#include "kiln/nn/kernels/internal/qs8_avx2_store.h"
#include "kiln/nn/kernels/internal/qs8_ukernels.h"

namespace kiln::nn::kernels {
namespace {

using namespace qs8_avx2;

constexpr int kMR = 4;
constexpr int kNR = 16;

// One group of 4 reduction steps: acc += the rows' bytes at k (or the n < 4 left, kTail) x the
// weight pairs at g. !kTwo (a panel of at most 8 columns: stems with 8 filters): acc0's half only.
template <int MR, bool kXor, bool kTwo, bool kTail>
inline void group4(__m256i (&acc0)[MR], __m256i (&acc1)[MR], const uint8_t* const (&a)[MR], int64_t k, int64_t n,
                   const uint8_t* g, __m256i axor) {
  const __m256i wl0 = _mm256_load_si256(reinterpret_cast<const __m256i*>(g));
  const __m256i wh0 = _mm256_load_si256(reinterpret_cast<const __m256i*>(g + 64));
  __m256i wl1 = wl0, wh1 = wh0;
  if constexpr (kTwo) {
    wl1 = _mm256_load_si256(reinterpret_cast<const __m256i*>(g + 32));
    wh1 = _mm256_load_si256(reinterpret_cast<const __m256i*>(g + 96));
  }
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i) {
    __m256i v;
    if constexpr (kTail) {
      v = bcast_partial(a[i] + k, n, axor);
    } else {
      int32_t raw;
      std::memcpy(&raw, a[i] + k, 4);
      v = _mm256_set1_epi32(raw);
      if constexpr (kXor) v = _mm256_xor_si256(v, axor);
    }
    const __m256i lo = _mm256_srai_epi16(_mm256_slli_epi16(v, 8), 8);  // bytes 0 and 2, sign-extended
    const __m256i hi = _mm256_srai_epi16(v, 8);                        // bytes 1 and 3
    acc0[i] = _mm256_add_epi32(acc0[i], _mm256_add_epi32(_mm256_madd_epi16(lo, wl0), _mm256_madd_epi16(hi, wh0)));
    if constexpr (kTwo)
      acc1[i] = _mm256_add_epi32(acc1[i], _mm256_add_epi32(_mm256_madd_epi16(lo, wl1), _mm256_madd_epi16(hi, wh1)));
  }
}

// acc += A rows (kc bytes each) x one tap of packed weights; returns the next tap's weights.
template <int MR, bool kXor, bool kTwo>
inline const uint8_t* accumulate(__m256i (&acc0)[MR], __m256i (&acc1)[MR], const uint8_t* const (&a)[MR],
                                 int64_t kc, const uint8_t* g, __m256i axor) {
  int64_t k = 0;
  for (; k + 4 <= kc; k += 4, g += 128) group4<MR, kXor, kTwo, false>(acc0, acc1, a, k, 4, g, axor);
  if (k < kc) {
    group4<MR, kXor, kTwo, true>(acc0, acc1, a, k, kc - k, g, axor);
    g += 128;
  }
  return g;
}

template <int MR>
inline void init_acc(__m256i (&acc0)[MR], __m256i (&acc1)[MR], const uint8_t* w) {
  const __m256i b0 = _mm256_load_si256(reinterpret_cast<const __m256i*>(w));
  const __m256i b1 = _mm256_load_si256(reinterpret_cast<const __m256i*>(w + 32));
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i) {
    acc0[i] = b0;
    acc1[i] = b1;
  }
}

template <int MR, bool kXor, bool kTwo>
void gemm_acc(const QTile& t, __m256i (&acc0)[MR], __m256i (&acc1)[MR]) {
  const uint8_t* a[MR];
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i) a[i] = t.a + i * t.lda;
  const __m256i axor = _mm256_set1_epi8(static_cast<char>(t.params->a_xor));
  accumulate<MR, kXor, kTwo>(acc0, acc1, a, t.kc, t.w + kNR * 8, axor);
}

template <int MR, bool kXor, bool kTwo>
void igemm_acc(const QTile& t, __m256i (&acc0)[MR], __m256i (&acc1)[MR]) {
  const __m256i axor = _mm256_set1_epi8(static_cast<char>(t.params->a_xor));
  const uint8_t* g = t.w + kNR * 8;
  const uint8_t* const* ptrs = t.a_ptrs;
  for (int64_t s = 0; s < t.ks; ++s, ptrs += kMR) {
    const uint8_t* a[MR];
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i) a[i] = ptrs[i] == t.zero ? ptrs[i] : ptrs[i] + t.a_offset;
    g = accumulate<MR, kXor, kTwo>(acc0, acc1, a, t.kc, g, axor);
  }
}

// One tile: bias, the reduction (kIndirect: through t.a_ptrs), the epilogue. The reduction is
// instantiated for the tile's XOR and for a panel of at most 8 columns (one half computed).
template <int MR, bool kIndirect>
void tile(const QTile& t) {
  __m256i acc0[MR], acc1[MR];
  init_acc<MR>(acc0, acc1, t.w);
  const bool x = t.params->a_xor != 0, two = t.nc > 8;
  if constexpr (kIndirect) {
    if (two) x ? igemm_acc<MR, true, true>(t, acc0, acc1) : igemm_acc<MR, false, true>(t, acc0, acc1);
    else x ? igemm_acc<MR, true, false>(t, acc0, acc1) : igemm_acc<MR, false, false>(t, acc0, acc1);
  } else {
    if (two) x ? gemm_acc<MR, true, true>(t, acc0, acc1) : gemm_acc<MR, false, true>(t, acc0, acc1);
    else x ? gemm_acc<MR, true, false>(t, acc0, acc1) : gemm_acc<MR, false, false>(t, acc0, acc1);
  }
  store_tile16<MR>(acc0, acc1, t);
}
template <int MR>
void gemm_tile(const QTile& t) {
  tile<MR, false>(t);
}
template <int MR>
void igemm_tile(const QTile& t) {
  tile<MR, true>(t);
}

void gemm_any(const QTile& t) {
  switch (t.mr) {
    case 1: gemm_tile<1>(t); break;
    case 2: gemm_tile<2>(t); break;
    case 3: gemm_tile<3>(t); break;
    default: gemm_tile<4>(t); break;
  }
}
void igemm_any(const QTile& t) {
  switch (t.mr) {
    case 1: igemm_tile<1>(t); break;
    case 2: igemm_tile<2>(t); break;
    case 3: igemm_tile<3>(t); break;
    default: igemm_tile<4>(t); break;
  }
}

// 16 channels of one tap: acc += (x - zero) * w, x loaded from `xp` (n valid bytes).
inline void dw_tap(const uint8_t* xp, int n, const int16_t* w, __m128i axor, __m256i zero, __m256i& acc0,
                   __m256i& acc1) {
  __m128i xv;
  if (n >= 16) {
    xv = _mm_loadu_si128(reinterpret_cast<const __m128i*>(xp));
  } else if (n == 8) {
    // 8 channels (MobileNet-0.25 stems): a direct 8-byte load, no bounce through the stack.
    xv = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(xp));
  } else {
    alignas(16) uint8_t tmp[16] = {0};
    std::memcpy(tmp, xp, static_cast<size_t>(n));
    xv = _mm_load_si128(reinterpret_cast<const __m128i*>(tmp));
  }
  const __m256i x16 = _mm256_sub_epi16(_mm256_cvtepi8_epi16(_mm_xor_si128(xv, axor)), zero);
  // |x - zero| <= 255 and |w| <= 128: the int16 product is exact.
  const __m256i prod = _mm256_mullo_epi16(x16, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w)));
  acc0 = _mm256_add_epi32(acc0, _mm256_cvtepi16_epi32(_mm256_castsi256_si128(prod)));
  acc1 = _mm256_add_epi32(acc1, _mm256_cvtepi16_epi32(_mm256_extracti128_si256(prod, 1)));
}

}  // namespace

size_t qs8_dwconv_avx2_scratch(const QWindow& s) { return qs8_dwconv_col3_avx2_scratch(s); }

void qs8_dwconv_avx2(const QWindow& s, const uint8_t* x, const uint8_t* w, int32_t a_zero, const QParams& p, void* y,
                     int64_t row_begin, int64_t row_end, void* scratch) {
  if (qs8_dwconv_col3_avx2(s, x, w, a_zero, p, y, row_begin, row_end, scratch)) return;  // 3x3, strides 1 and 2
  const int64_t C = s.channels, taps = s.kernel_h * s.kernel_w;
  const int64_t block_bytes = 16 * 8 + taps * 16 * 2;
  const int64_t es = out_bytes(p);
  const __m128i axor = _mm_set1_epi8(static_cast<char>(p.a_xor));
  const __m256i zero = _mm256_set1_epi16(static_cast<int16_t>(a_zero));
  for (int64_t row = row_begin; row < row_end; ++row) {
    const int64_t n = row / s.out_h, oh = row % s.out_h;
    const int64_t ih0 = oh * s.stride_h - s.pad_top;
    const uint8_t* x_n = x + n * s.in_h * s.in_w * C;
    for (int64_t ow = 0; ow < s.out_w; ++ow) {
      const int64_t iw0 = ow * s.stride_w - s.pad_left;
      uint8_t* yp = static_cast<uint8_t*>(y) + ((n * s.out_h + oh) * s.out_w + ow) * C * es;
      for (int64_t c0 = 0; c0 < C; c0 += 16) {
        const uint8_t* blk = w + (c0 / 16) * block_bytes;
        const int nc = C - c0 >= 16 ? 16 : static_cast<int>(C - c0);
        __m256i acc0 = _mm256_load_si256(reinterpret_cast<const __m256i*>(blk));
        __m256i acc1 = _mm256_load_si256(reinterpret_cast<const __m256i*>(blk + 32));
        const int16_t* wt = reinterpret_cast<const int16_t*>(blk + 128);
        for (int64_t kh = 0; kh < s.kernel_h; ++kh) {
          const int64_t ih = ih0 + kh * s.dilation_h;
          if (ih < 0 || ih >= s.in_h) continue;
          const uint8_t* xrow = x_n + ih * s.in_w * C + c0;
          for (int64_t kw = 0; kw < s.kernel_w; ++kw) {
            const int64_t iw = iw0 + kw * s.dilation_w;
            if (iw < 0 || iw >= s.in_w) continue;
            dw_tap(xrow + iw * C, nc, wt + (kh * s.kernel_w + kw) * 16, axor, zero, acc0, acc1);
          }
        }
        const Epilogue e = make_epilogue(reinterpret_cast<const float*>(blk + 64), p);
        store_row(acc0, acc1, e, p, yp + c0 * es, nc);
      }
    }
  }
}

namespace {

// QuantizeLinear by the definition (an IEEE division per value), for [i, n) of x.
void quantize_by_division(const float* x, int64_t i, int64_t n, float scale, int32_t zero_point, bool is_unsigned,
                          uint8_t* out) {
  const float lo = is_unsigned ? 0.f : -128.f, hi = is_unsigned ? 255.f : 127.f;
  const __m256 vs = _mm256_set1_ps(scale), vz = _mm256_set1_ps(static_cast<float>(zero_point));
  const __m256 vlo = _mm256_set1_ps(lo), vhi = _mm256_set1_ps(hi);
  for (; i + 8 <= n; i += 8) {
    __m256 v = _mm256_round_ps(_mm256_div_ps(_mm256_loadu_ps(x + i), vs), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    v = _mm256_add_ps(v, vz);
    v = _mm256_and_ps(v, _mm256_cmp_ps(v, v, _CMP_ORD_Q));  // NaN -> 0
    v = _mm256_min_ps(_mm256_max_ps(v, vlo), vhi);
    const __m256i q = _mm256_cvtps_epi32(v);
    const __m128i w16 = _mm_packs_epi32(_mm256_castsi256_si128(q), _mm256_extracti128_si256(q, 1));
    const __m128i b = is_unsigned ? _mm_packus_epi16(w16, w16) : _mm_packs_epi16(w16, w16);
    _mm_storel_epi64(reinterpret_cast<__m128i*>(out + i), b);
  }
  for (; i < n; ++i) {
    float v = __builtin_nearbyintf(x[i] / scale) + static_cast<float>(zero_point);
    if (v != v) v = 0.f;
    v = v < lo ? lo : (v > hi ? hi : v);
    const int32_t q = static_cast<int32_t>(v);
    out[i] = static_cast<uint8_t>(q);
  }
}

}  // namespace

// Blocks of 32 by the reciprocal, as qs8_convert_avx512.cc (whose comment has the argument): a
// block with a value within 2^-11 of a rounding tie, a NaN or a value beyond int32 takes the
// division, so the bytes are the definition's.
void qs8_quantize_avx2(const float* x, int64_t n, float scale, int32_t zero_point, bool is_unsigned, void* y) {
  uint8_t* out = static_cast<uint8_t*>(y);
  const float inv = 1.f / scale;
  int64_t i = 0;
  if (inv > 1e-30f && inv < 1e30f && zero_point >= -255 && zero_point <= 255) {
    const __m256 vinv = _mm256_set1_ps(inv);
    const __m256i near_tie = _mm256_castps_si256(_mm256_set1_ps(0.5f - 0x1p-11f));
    const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7FFFFFFF));
    const __m256i zp16 = _mm256_set1_epi16(static_cast<int16_t>(zero_point));
    const __m256i perm = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    for (; i + 32 <= n; i += 32) {
      __m256i q[4];
      // The largest distance from an integer, as the bits of a non-negative float (NaN's lie above
      // every number's), compared once per block.
      __m256i worst = _mm256_setzero_si256();
      for (int j = 0; j < 4; ++j) {
        const __m256 v = _mm256_mul_ps(_mm256_loadu_ps(x + i + 8 * j), vinv);
        q[j] = _mm256_cvtps_epi32(v);  // round half to even (default MXCSR)
        const __m256 d = _mm256_and_ps(_mm256_sub_ps(v, _mm256_cvtepi32_ps(q[j])), abs_mask);
        worst = _mm256_max_epi32(worst, _mm256_castps_si256(d));
      }
      if (!_mm256_testz_si256(_mm256_cmpgt_epi32(worst, near_tie), _mm256_cmpgt_epi32(worst, near_tie))) {
        quantize_by_division(x, i, i + 32, scale, zero_point, is_unsigned, out);
        continue;
      }
      const __m256i lo = _mm256_adds_epi16(_mm256_packs_epi32(q[0], q[1]), zp16);
      const __m256i hi = _mm256_adds_epi16(_mm256_packs_epi32(q[2], q[3]), zp16);
      const __m256i b = is_unsigned ? _mm256_packus_epi16(lo, hi) : _mm256_packs_epi16(lo, hi);
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + i), _mm256_permutevar8x32_epi32(b, perm));
    }
  }
  quantize_by_division(x, i, n, scale, zero_point, is_unsigned, out);
}

void qs8_dequantize_avx2(const void* x, int64_t n, float scale, int32_t zero_point, bool is_unsigned, float* y) {
  const uint8_t* in = static_cast<const uint8_t*>(x);
  const __m256 vs = _mm256_set1_ps(scale);
  const __m256i vz = _mm256_set1_epi32(zero_point);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m128i b = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(in + i));
    const __m256i v = is_unsigned ? _mm256_cvtepu8_epi32(b) : _mm256_cvtepi8_epi32(b);
    _mm256_storeu_ps(y + i, _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(v, vz)), vs));
  }
  for (; i < n; ++i) {
    const int32_t v = is_unsigned ? static_cast<int32_t>(in[i]) : static_cast<int32_t>(static_cast<int8_t>(in[i]));
    y[i] = static_cast<float>(v - zero_point) * scale;
  }
}

void qs8_binary_avx2(const uint8_t* a, const uint8_t* b, int64_t n, const QBinaryParams& p, uint8_t* y) {
  const __m256 as = _mm256_set1_ps(p.a_scale), bs = _mm256_set1_ps(p.b_scale), ys = _mm256_set1_ps(p.y_scale);
  const __m256i az = _mm256_set1_epi32(p.a_zero), bz = _mm256_set1_epi32(p.b_zero);
  const __m256 yz = _mm256_set1_ps(static_cast<float>(p.y_zero));
  const __m256 lo = _mm256_set1_ps(static_cast<float>(p.qmin)), hi = _mm256_set1_ps(static_cast<float>(p.qmax));
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m128i ra = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(a + i));
    const __m128i rb = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(b + i));
    const __m256i ia = p.a_unsigned ? _mm256_cvtepu8_epi32(ra) : _mm256_cvtepi8_epi32(ra);
    const __m256i ib = p.b_unsigned ? _mm256_cvtepu8_epi32(rb) : _mm256_cvtepi8_epi32(rb);
    const __m256 va = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(ia, az)), as);
    const __m256 vb = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(ib, bz)), bs);
    const __m256 v = p.mul ? _mm256_mul_ps(va, vb) : _mm256_add_ps(va, vb);
    __m256 q = _mm256_round_ps(_mm256_div_ps(v, ys), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    q = _mm256_min_ps(_mm256_max_ps(_mm256_add_ps(q, yz), lo), hi);
    const __m256i qi = _mm256_cvtps_epi32(q);
    const __m128i w16 = _mm_packs_epi32(_mm256_castsi256_si128(qi), _mm256_extracti128_si256(qi, 1));
    const __m128i bytes = p.y_unsigned ? _mm_packus_epi16(w16, w16) : _mm_packs_epi16(w16, w16);
    _mm_storel_epi64(reinterpret_cast<__m128i*>(y + i), bytes);
  }
  if (i < n) qs8_binary_portable(a + i, b + i, n - i, p, y + i);
}

const QGemmConfig kQs8GemmAvx2 = {"qs8_gemm_avx2",
                                  kMR,
                                  kNR,
                                  false,
                                  QWeightLayout::kPairs16,
                                  gemm_any,
                                  igemm_any,
                                  gemm_rows<kMR, gemm_tile<kMR>, gemm_any>,
                                  gemm_rows<kMR, igemm_tile<kMR>, igemm_any, true>,
                                  int64_t{1} << 17};

}  // namespace kiln::nn::kernels
