// The portable int16-activation convolution (kernels/qs16_conv.h): one output row at a time, the
// 32 int32 sums of a panel in a local array the compiler keeps in vectors.
#include <cmath>

#include "kiln/nn/kernels/internal/qs16_ukernels.h"

namespace kiln::nn::kernels {

void qs16_conv_portable(const Q16Rows& a, const Q16Weights& w, int64_t row_begin, int64_t row_end, void* c,
                        int64_t ldc, const QParams& p) {
  constexpr int64_t nr = kQ16PanelColumns;
  for (int64_t panel = 0; panel * nr < w.n; ++panel) {
    const uint8_t* pw = w.data + panel * w.panel_stride;
    const int32_t* bias = reinterpret_cast<const int32_t*>(pw);
    const float* scale = reinterpret_cast<const float*>(pw + nr * 4);
    const int16_t* pairs = reinterpret_cast<const int16_t*>(pw + nr * 8);
    const int64_t j0 = panel * nr, cols = w.n - j0 < nr ? w.n - j0 : nr;
    for (int64_t r = row_begin; r < row_end; ++r) {
      int32_t acc[nr];
      for (int64_t j = 0; j < nr; ++j) acc[j] = bias[j];
      const int16_t* row = a.base + a.row_offset[r];
      for (int64_t t = 0; t < w.ks; ++t) {
        const int16_t* x = row + t * a.tap_stride;
        for (int64_t q = 0; q < w.pairs; ++q) {
          const int32_t x0 = x[2 * q], x1 = x[2 * q + 1];
          const int16_t* wp = pairs + (t * w.pairs + q) * nr * 2;
          for (int64_t j = 0; j < nr; ++j) acc[j] += x0 * wp[2 * j] + x1 * wp[2 * j + 1];
        }
      }
      for (int64_t j = 0; j < cols; ++j) {
        const float f = static_cast<float>(acc[j]) * scale[j];
        const int64_t at = r * ldc + j0 + j;
        if (p.out == QOutput::kFloat) {
          static_cast<float*>(c)[at] = f < p.flo ? p.flo : (f > p.fhi ? p.fhi : f);
        } else {
          const float lo = static_cast<float>(p.qmin - p.out_zero_point), hi = static_cast<float>(p.qmax - p.out_zero_point);
          const int32_t v = static_cast<int32_t>(std::nearbyint(f < lo ? lo : (f > hi ? hi : f))) + p.out_zero_point;
          static_cast<uint8_t*>(c)[at] = static_cast<uint8_t>(static_cast<uint8_t>(static_cast<int8_t>(v)) ^ p.out_xor);
        }
      }
    }
  }
}

void qs16_quantize_portable(const float* x, int64_t n, float scale, int32_t zero_point, int16_t* y) {
  const float z = static_cast<float>(zero_point);
  for (int64_t i = 0; i < n; ++i) {
    const float v = std::nearbyint(x[i] / scale) + z;
    y[i] = std::isnan(v) ? int16_t{0} : static_cast<int16_t>(v < -32768.f ? -32768.f : (v > 32767.f ? 32767.f : v));
  }
}

}  // namespace kiln::nn::kernels
