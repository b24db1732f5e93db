#include "kiln/nn/kernels/qs16_conv.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "kiln/core/cpu_features.h"
#include "kiln/nn/kernels/qgemm.h"

namespace kiln::nn::kernels {
namespace {

const Q16Kernels kQs16Avx512Vnni = {"qs16_conv_avx512vnni", qs16_conv_avx512vnni, qs16_quantize_avx512};
const Q16Kernels kQs16Avx512 = {"qs16_conv_avx512", qs16_conv_avx512, qs16_quantize_avx512};
const Q16Kernels kQs16Avx2 = {"qs16_conv_avx2", qs16_conv_avx2, qs16_quantize_avx2};
const Q16Kernels kQs16Portable = {"qs16_conv_portable", qs16_conv_portable, qs16_quantize_portable};

}  // namespace

std::vector<const Q16Kernels*> available_q16kernels() {
  const CpuFeatures& f = cpu_features();
  std::vector<const Q16Kernels*> out;
  if (f.avx512f && f.avx512bw && f.avx512vl && f.avx512vnni) out.push_back(&kQs16Avx512Vnni);
  if (f.avx512f && f.avx512bw && f.avx512vl) out.push_back(&kQs16Avx512);
  if (f.avx2 && f.fma) out.push_back(&kQs16Avx2);
  out.push_back(&kQs16Portable);
  return out;
}

const Q16Kernels& q16kernels() {
  static const Q16Kernels* best = available_q16kernels().front();
  return *best;
}

bool q16_sums_fit(const int8_t* w, int64_t k, int64_t n, const int32_t* bias, int32_t zero_point) {
  for (int64_t j = 0; j < n; ++j) {
    int64_t abs_sum = 0, sum = 0;
    for (int64_t i = 0; i < k; ++i) {
      abs_sum += std::abs(static_cast<int64_t>(w[i * n + j]));
      sum += w[i * n + j];
    }
    const int64_t b = (bias ? bias[j] : 0) - static_cast<int64_t>(zero_point) * sum;
    if (32768 * abs_sum + std::abs(b) >= (int64_t{1} << 31)) return false;
  }
  return true;
}

Q16PackedWeights pack_q16weights(const int8_t* w, int64_t ks, int64_t kc, int64_t n, const int32_t* bias,
                                 const float* scale, int32_t zero_point) {
  constexpr int64_t nr = kQ16PanelColumns;
  Q16PackedWeights p;
  p.ks = ks;
  p.kc = kc;
  p.pairs = (kc + 1) / 2;
  p.n = n;
  p.panel_stride = nr * 8 + ks * p.pairs * nr * 4;
  const int64_t panels = std::max<int64_t>((n + nr - 1) / nr, 1);
  p.data = Tensor(DType::kUInt8, {panels * p.panel_stride});
  std::memset(p.data.raw(), 0, static_cast<size_t>(panels * p.panel_stride));
  for (int64_t panel = 0; panel * nr < n; ++panel) {
    uint8_t* dst = p.data.data<uint8_t>() + panel * p.panel_stride;
    const int64_t j0 = panel * nr, cols = std::min(nr, n - j0);
    int32_t* b = reinterpret_cast<int32_t*>(dst);
    float* s = reinterpret_cast<float*>(dst + nr * 4);
    int16_t* pairs = reinterpret_cast<int16_t*>(dst + nr * 8);
    for (int64_t j = 0; j < cols; ++j) {
      int64_t sum = 0;
      for (int64_t k = 0; k < ks * kc; ++k) sum += w[k * n + j0 + j];
      b[j] = static_cast<int32_t>((bias ? bias[j0 + j] : 0) - static_cast<int64_t>(zero_point) * sum);
      s[j] = scale ? scale[j0 + j] : 1.f;
      for (int64_t t = 0; t < ks; ++t)
        for (int64_t i = 0; i < kc; ++i)
          pairs[((t * p.pairs + i / 2) * nr + j) * 2 + i % 2] = w[(t * kc + i) * n + j0 + j];
    }
  }
  return p;
}

void q16conv_reference(const Q16Rows& a, int64_t ks, int64_t kc, int64_t n, const int8_t* w, const int32_t* bias,
                       const float* scale, int32_t zero_point, int64_t row_begin, int64_t row_end, void* c,
                       int64_t ldc, const QParams& p) {
  for (int64_t r = row_begin; r < row_end; ++r)
    for (int64_t j = 0; j < n; ++j) {
      int64_t acc = bias ? bias[j] : 0;
      for (int64_t t = 0; t < ks; ++t) {
        const int16_t* x = a.base + a.row_offset[r] + t * a.tap_stride;
        for (int64_t i = 0; i < kc; ++i) acc += (static_cast<int64_t>(x[i]) - zero_point) * w[(t * kc + i) * n + j];
      }
      qstore_reference(static_cast<int32_t>(acc), scale ? scale[j] : 1.f, p, c, r * ldc + j);
    }
}

}  // namespace kiln::nn::kernels
