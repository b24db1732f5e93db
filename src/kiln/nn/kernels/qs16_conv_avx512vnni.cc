// The AVX-512 VNNI int16-activation convolution: vpdpwssd, one instruction per multiply-add of a
// pair (internal/qs16_conv_avx512.h).
#include <immintrin.h>

#include "kiln/nn/kernels/internal/qs16_conv_avx512.h"

namespace kiln::nn::kernels {
namespace {

struct VnniDot {
  static __m512i add(__m512i acc, __m512i x, __m512i w) { return _mm512_dpwssd_epi32(acc, x, w); }
};

}  // namespace

void qs16_conv_avx512vnni(const Q16Rows& a, const Q16Weights& w, int64_t row_begin, int64_t row_end, void* c,
                          int64_t ldc, const QParams& p) {
  q16_avx512::conv<VnniDot>(a, w, row_begin, row_end, c, ldc, p);
}

}  // namespace kiln::nn::kernels
