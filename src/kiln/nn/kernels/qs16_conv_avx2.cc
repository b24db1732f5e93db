// The AVX2 int16-activation convolution (kernels/qs16_conv.h): tiles of 2 output rows x 32
// columns, 8 ymm of int32 sums (with the 4 weight vectors and a broadcast, 13 of the 16 registers).
#include <immintrin.h>

#include "kiln/nn/kernels/internal/qs16_ukernels.h"

namespace kiln::nn::kernels {
namespace {

constexpr int kMr = 2;

inline int32_t load_pair(const int16_t* x) {
  int32_t v;
  __builtin_memcpy(&v, x, 4);
  return v;
}

inline int32_t round_clamped(float f, float lo, float hi) {
  return _mm_cvtss_si32(_mm_set_ss(f < lo ? lo : (f > hi ? hi : f)));  // rounds half to even (MXCSR)
}

// The 32 sums of one row, requantised or dequantised; the first `cols` stored.
void store_row(const __m256i acc[4], const uint8_t* scale, const QParams& p, void* c, int64_t cols) {
  __m256 f[4];
  for (int v = 0; v < 4; ++v) f[v] = _mm256_mul_ps(_mm256_cvtepi32_ps(acc[v]), _mm256_loadu_ps(reinterpret_cast<const float*>(scale) + 8 * v));
  if (p.out == QOutput::kFloat) {
    alignas(32) float tmp[32];
    for (int v = 0; v < 4; ++v)
      _mm256_store_ps(tmp + 8 * v, _mm256_min_ps(_mm256_max_ps(f[v], _mm256_set1_ps(p.flo)), _mm256_set1_ps(p.fhi)));
    __builtin_memcpy(c, tmp, static_cast<size_t>(cols) * 4);
    return;
  }
  const __m256 lo = _mm256_set1_ps(static_cast<float>(p.qmin - p.out_zero_point));
  const __m256 hi = _mm256_set1_ps(static_cast<float>(p.qmax - p.out_zero_point));
  const __m256i zp = _mm256_set1_epi32(p.out_zero_point);
  __m256i q[4];
  for (int v = 0; v < 4; ++v)
    q[v] = _mm256_add_epi32(_mm256_cvtps_epi32(_mm256_min_ps(_mm256_max_ps(f[v], lo), hi)), zp);
  // Values are already within int8: the saturating packs only narrow. Per 128-bit lane they
  // interleave groups of 4; the permute restores column order.
  const __m256i bytes = _mm256_packs_epi16(_mm256_packs_epi32(q[0], q[1]), _mm256_packs_epi32(q[2], q[3]));
  const __m256i ordered = _mm256_xor_si256(_mm256_permutevar8x32_epi32(bytes, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7)),
                                           _mm256_set1_epi8(static_cast<char>(p.out_xor)));
  if (cols == 32) {
    _mm256_storeu_si256(static_cast<__m256i*>(c), ordered);
  } else {
    alignas(32) uint8_t tmp[32];
    _mm256_store_si256(reinterpret_cast<__m256i*>(tmp), ordered);
    __builtin_memcpy(c, tmp, static_cast<size_t>(cols));
  }
}

}  // namespace

void qs16_conv_avx2(const Q16Rows& a, const Q16Weights& w, int64_t row_begin, int64_t row_end, void* c, int64_t ldc,
                    const QParams& p) {
  constexpr int64_t nr = kQ16PanelColumns;
  const int64_t es = p.out == QOutput::kFloat ? 4 : 1;
  for (int64_t panel = 0; panel * nr < w.n; ++panel) {
    const uint8_t* pw = w.data + panel * w.panel_stride;
    const uint8_t* pairs = pw + nr * 8;
    const int64_t j0 = panel * nr, cols = w.n - j0 < nr ? w.n - j0 : nr;
    for (int64_t r0 = row_begin; r0 < row_end; r0 += kMr) {
      const int rows = row_end - r0 < kMr ? static_cast<int>(row_end - r0) : kMr;
      const int16_t* x0 = a.base + a.row_offset[r0];
      const int16_t* x1 = a.base + a.row_offset[r0 + rows - 1];
      __m256i acc0[4], acc1[4];
      for (int v = 0; v < 4; ++v) acc0[v] = acc1[v] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(pw) + v);
      const uint8_t* wp = pairs;
      for (int64_t t = 0; t < w.ks; ++t) {
        const int64_t off = t * a.tap_stride;
        for (int64_t q = 0; q < w.pairs; ++q, wp += nr * 4) {
          const __m256i b0 = _mm256_set1_epi32(load_pair(x0 + off + 2 * q));
          const __m256i b1 = _mm256_set1_epi32(load_pair(x1 + off + 2 * q));
          for (int v = 0; v < 4; ++v) {
            const __m256i wv = _mm256_load_si256(reinterpret_cast<const __m256i*>(wp) + v);
            acc0[v] = _mm256_add_epi32(acc0[v], _mm256_madd_epi16(b0, wv));
            acc1[v] = _mm256_add_epi32(acc1[v], _mm256_madd_epi16(b1, wv));
          }
        }
      }
      uint8_t* out = static_cast<uint8_t*>(c) + (r0 * ldc + j0) * es;
      store_row(acc0, pw + nr * 4, p, out, cols);
      if (rows > 1) store_row(acc1, pw + nr * 4, p, out + ldc * es, cols);
    }
  }
}

void qs16_quantize_avx2(const float* x, int64_t n, float scale, int32_t zero_point, int16_t* y) {
  const __m256 s = _mm256_set1_ps(scale), z = _mm256_set1_ps(static_cast<float>(zero_point));
  const __m256 lo = _mm256_set1_ps(-32768.f), hi = _mm256_set1_ps(32767.f);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 v = _mm256_loadu_ps(x + i);
    __m256 r = _mm256_round_ps(_mm256_div_ps(v, s), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    r = _mm256_min_ps(_mm256_max_ps(_mm256_add_ps(r, z), lo), hi);
    r = _mm256_and_ps(r, _mm256_cmp_ps(v, v, _CMP_ORD_Q));  // NaN -> 0
    const __m256i q = _mm256_cvtps_epi32(r);
    const __m128i packed = _mm_packs_epi32(_mm256_castsi256_si128(q), _mm256_extracti128_si256(q, 1));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(y + i), packed);
  }
  for (; i < n; ++i) {
    const float v = x[i];
    if (v != v) {
      y[i] = 0;
      continue;
    }
    float r = _mm_cvtss_f32(_mm_round_ss(_mm_setzero_ps(), _mm_set_ss(v / scale), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    y[i] = static_cast<int16_t>(round_clamped(r + static_cast<float>(zero_point), -32768.f, 32767.f));
  }
}

}  // namespace kiln::nn::kernels
