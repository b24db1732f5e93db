// Row operations and transcendental functions for AVX2 + FMA. Built with -mavx2 -mfma only;
// everything here has internal linkage and uses no standard-library templates.
#include <immintrin.h>

#include <math.h>

#include "kiln/nn/kernels/internal/avx2_math.h"
#include "kiln/nn/kernels/vmath.h"

namespace kiln::nn::kernels {
namespace {

using avx2::exp256;
using avx2::lane_mask;

inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}
inline float hmax(__m256 v) {
  __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_max_ps(s, _mm_movehl_ps(s, s));
  s = _mm_max_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// Loads the first n (< 8) lanes; the others read as `fill`.
inline __m256 load_tail(const float* p, int n, float fill) {
  const __m256i m = lane_mask(n);
  return _mm256_blendv_ps(_mm256_set1_ps(fill), _mm256_maskload_ps(p, m), _mm256_castsi256_ps(m));
}

void softmax(const float* x, float* y, int64_t rows, int64_t cols, bool log) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * cols;
    float* yr = y + r * cols;
    __m256 vmax = _mm256_set1_ps(-INFINITY);
    int64_t c = 0;
    for (; c + 8 <= cols; c += 8) vmax = _mm256_max_ps(vmax, _mm256_loadu_ps(xr + c));
    if (c < cols) vmax = _mm256_max_ps(vmax, load_tail(xr + c, static_cast<int>(cols - c), -INFINITY));
    const float m = hmax(vmax);
    const __m256 vm = _mm256_set1_ps(m);
    __m256 vsum = _mm256_setzero_ps();
    c = 0;
    if (log) {
      for (; c + 8 <= cols; c += 8) vsum = _mm256_add_ps(vsum, exp256(_mm256_sub_ps(_mm256_loadu_ps(xr + c), vm)));
      float sum = hsum(vsum);
      for (; c < cols; ++c) sum += expf(xr[c] - m);
      const __m256 shift = _mm256_set1_ps(m + logf(sum));
      c = 0;
      for (; c + 8 <= cols; c += 8) _mm256_storeu_ps(yr + c, _mm256_sub_ps(_mm256_loadu_ps(xr + c), shift));
      for (; c < cols; ++c) yr[c] = xr[c] - (m + logf(sum));
      continue;
    }
    // exp(x - max) is written to y, then scaled: one pass of exp, one of multiply.
    for (; c + 8 <= cols; c += 8) {
      const __m256 e = exp256(_mm256_sub_ps(_mm256_loadu_ps(xr + c), vm));
      _mm256_storeu_ps(yr + c, e);
      vsum = _mm256_add_ps(vsum, e);
    }
    float sum = hsum(vsum);
    for (; c < cols; ++c) {
      yr[c] = expf(xr[c] - m);
      sum += yr[c];
    }
    const __m256 inv = _mm256_set1_ps(1.f / sum);
    c = 0;
    for (; c + 8 <= cols; c += 8) _mm256_storeu_ps(yr + c, _mm256_mul_ps(_mm256_loadu_ps(yr + c), inv));
    for (; c < cols; ++c) yr[c] *= 1.f / sum;
  }
}

void layernorm(const float* x, const float* gamma, const float* beta, float eps, float* y, int64_t rows,
               int64_t cols) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * cols;
    float* yr = y + r * cols;
    __m256 vs = _mm256_setzero_ps();
    int64_t c = 0;
    for (; c + 8 <= cols; c += 8) vs = _mm256_add_ps(vs, _mm256_loadu_ps(xr + c));
    float sum = hsum(vs);
    for (; c < cols; ++c) sum += xr[c];
    const float mean = sum / static_cast<float>(cols);
    const __m256 vmean = _mm256_set1_ps(mean);
    __m256 vq = _mm256_setzero_ps();
    c = 0;
    for (; c + 8 <= cols; c += 8) {
      const __m256 d = _mm256_sub_ps(_mm256_loadu_ps(xr + c), vmean);
      vq = _mm256_fmadd_ps(d, d, vq);
    }
    float q = hsum(vq);
    for (; c < cols; ++c) q += (xr[c] - mean) * (xr[c] - mean);
    const float inv = 1.f / sqrtf(q / static_cast<float>(cols) + eps);
    const __m256 vinv = _mm256_set1_ps(inv);
    c = 0;
    for (; c + 8 <= cols; c += 8) {
      __m256 v = _mm256_mul_ps(_mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(xr + c), vmean), vinv),
                               _mm256_loadu_ps(gamma + c));
      if (beta) v = _mm256_add_ps(v, _mm256_loadu_ps(beta + c));
      _mm256_storeu_ps(yr + c, v);
    }
    for (; c < cols; ++c) yr[c] = (xr[c] - mean) * inv * gamma[c] + (beta ? beta[c] : 0.f);
  }
}

inline __m256 sigmoid8(__m256 v) {
  return avx2::sigmoid(v);
}

// tanh: odd Taylor polynomial for |x| < 0.3 (relative error < 1e-7 there), 1 - 2 / (exp(2x) + 1)
// elsewhere.
inline __m256 tanh8(__m256 v) {
  const __m256 ax = _mm256_andnot_ps(_mm256_set1_ps(-0.f), v);
  const __m256 x2 = _mm256_mul_ps(v, v);
  __m256 p = _mm256_set1_ps(62.f / 2835.f);
  p = _mm256_fmadd_ps(p, x2, _mm256_set1_ps(-17.f / 315.f));
  p = _mm256_fmadd_ps(p, x2, _mm256_set1_ps(2.f / 15.f));
  p = _mm256_fmadd_ps(p, x2, _mm256_set1_ps(-1.f / 3.f));
  const __m256 small = _mm256_fmadd_ps(_mm256_mul_ps(p, x2), v, v);
  const __m256 e = exp256(_mm256_add_ps(v, v));
  const __m256 big = _mm256_sub_ps(_mm256_set1_ps(1.f), _mm256_div_ps(_mm256_set1_ps(2.f), _mm256_add_ps(e, _mm256_set1_ps(1.f))));
  return _mm256_blendv_ps(big, small, _mm256_cmp_ps(ax, _mm256_set1_ps(0.3f), _CMP_LT_OQ));
}

template <typename F>
inline void map(const float* x, float* y, int64_t n, F f) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, f(_mm256_loadu_ps(x + i)));
  if (i < n) {
    const __m256i m = lane_mask(static_cast<int>(n - i));
    _mm256_maskstore_ps(y + i, m, f(_mm256_maskload_ps(x + i, m)));
  }
}

void sigmoid(const float* x, float* y, int64_t n) { map(x, y, n, [](__m256 v) { return sigmoid8(v); }); }
void vtanh(const float* x, float* y, int64_t n) { map(x, y, n, [](__m256 v) { return tanh8(v); }); }

void gelu(const float* x, float* y, int64_t n, bool tanh_approx) {
  if (tanh_approx) {
    map(x, y, n, [](__m256 v) {
      const __m256 inner = _mm256_mul_ps(_mm256_set1_ps(0.7978845608028654f),
                                         _mm256_fmadd_ps(_mm256_mul_ps(_mm256_set1_ps(0.044715f), v), _mm256_mul_ps(v, v), v));
      return _mm256_mul_ps(_mm256_mul_ps(_mm256_set1_ps(0.5f), v), _mm256_add_ps(_mm256_set1_ps(1.f), tanh8(inner)));
    });
    return;
  }
  // erf has no cheap vector form accurate enough here: scalar std::erf.
  for (int64_t i = 0; i < n; ++i) y[i] = 0.5f * x[i] * (1.f + erff(x[i] * 0.7071067811865476f));
}

}  // namespace

const VectorMath kF32VectorMathAvx2 = {"f32_vmath_avx2", softmax, layernorm, sigmoid, vtanh, gelu};

}  // namespace kiln::nn::kernels
