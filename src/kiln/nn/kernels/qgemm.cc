#include "kiln/nn/kernels/qgemm.h"

#include "kiln/nn/kernels/internal/tile_split.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "kiln/core/cpu_features.h"
#include "kiln/core/thread_pool.h"

namespace kiln::nn::kernels {
namespace {

// The VNNI sets reuse the AVX2 conversion kernels (every VNNI CPU has AVX2); AVX-VNNI also the
// AVX2 depthwise kernel.
// Elementwise Add/Mul and pooling: AVX-512 on the AVX-512 VNNI set, AVX2 on the AVX-VNNI and AVX2
// sets, the scalar loop on the portable one.
const QKernels kQs8Avx512VnniSet = {"qs8_avx512vnni",      &kQs8GemmAvx512Vnni,
                                    qs8_dwconv_avx512vnni, qs8_dwconv_avx512vnni_scratch,
                                    "qs8_dwconv_avx512vnni", qs8_quantize_avx512,
                                    qs8_dequantize_avx2,   qs8_binary_avx512,
                                    qs8_pool_avx512,       "qs8_pool_avx512",
                                    &kQs8GemmAvx512VnniN8};
const QKernels kQs8AvxVnniSet = {"qs8_avxvnni",      &kQs8GemmAvxVnni,    qs8_dwconv_avxvnni,
                                 qs8_dwconv_avxvnni_scratch, "qs8_dwconv_avxvnni", qs8_quantize_avx2,
                                 qs8_dequantize_avx2, qs8_binary_avx2,   qs8_pool_avx2,
                                 "qs8_pool_avx2"};
const QKernels kQs8Avx2Set = {"qs8_avx2",        &kQs8GemmAvx2,       qs8_dwconv_avx2, qs8_dwconv_avx2_scratch,
                              "qs8_dwconv_avx2", qs8_quantize_avx2,   qs8_dequantize_avx2, qs8_binary_avx2,
                              qs8_pool_avx2,     "qs8_pool_avx2",     nullptr,             &kQs8GemmAvx2W7,
                              int64_t{1} << 15};
const QKernels kQs8PortableSet = {"qs8_portable",        &kQs8GemmPortable,
                                  qs8_dwconv_portable,   qs8_dwconv_portable_scratch,
                                  "qs8_dwconv_portable", qs8_quantize_portable,
                                  qs8_dequantize_portable, qs8_binary_portable,
                                  qs8_pool_scalar,       "qs8_pool_scalar"};

// The zero point the micro-kernel must subtract, in the domain it multiplies in.
int32_t kernel_zero_point(bool kernel_unsigned, int32_t a_zero_point, bool a_unsigned) {
  if (kernel_unsigned) return a_unsigned ? a_zero_point : a_zero_point + 128;
  return a_unsigned ? a_zero_point - 128 : a_zero_point;
}

uint8_t kernel_a_xor(bool kernel_unsigned, bool a_unsigned) { return kernel_unsigned != a_unsigned ? 0x80 : 0; }

// Bytes of A a row strip of qgemm's one-thread path keeps in L1 while every panel passes over it.
constexpr int64_t kStripBytes = 16 * 1024;

size_t out_size(const QParams& p) { return p.out == QOutput::kInt8 ? 1 : 4; }

// With one thread (or a layer too small to split) and every weight panel in L2: f(i0, rows, panel)
// over strips of rows, a multiple of MR rows whose activations (row_bytes each) stay in L1 while
// every panel passes over them, each strip one call into the unit's own row loop
// (QGemmConfig::gemm_rows / igemm_rows) instead of one driver call per tile. False (nothing done)
// otherwise, or for a single row block.
template <typename F>
bool for_each_strip(int64_t m, const QGemmConfig& cfg, const QPackedWeights& w, ThreadPool* pool, int64_t macs,
                    int64_t row_bytes, F&& f) {
  if (m <= cfg.mr || (pool && pool->threads() > 1 && macs >= cfg.min_parallel_macs) ||
      panels_per_group(w.panels(), w.panel_stride) < w.panels())
    return false;
  const int64_t strip = std::max<int64_t>(cfg.mr, kStripBytes / std::max<int64_t>(row_bytes, 1) / cfg.mr * cfg.mr);
  for (int64_t i0 = 0; i0 < m; i0 += strip)
    for (int64_t panel = 0; panel < w.panels(); ++panel) f(i0, std::min(strip, m - i0), panel);
  return true;
}

// The tile of a strip's first row block in `panel` (the unit's row loop sets t.mr).
QTile strip_tile(const QTile& base, const QGemmConfig& cfg, const QPackedWeights& w, int64_t i0, int64_t panel,
                 void* c, int64_t ldc, size_t es) {
  QTile t = base;
  const int64_t j0 = panel * cfg.nr;
  t.nc = static_cast<int>(std::min<int64_t>(cfg.nr, w.n - j0));
  t.w = w.panel(panel);
  t.c = static_cast<uint8_t*>(c) + (i0 * ldc + j0) * es;
  return t;
}

}  // namespace

std::vector<const QKernels*> available_qkernels() {
  const CpuFeatures& f = cpu_features();
  std::vector<const QKernels*> out;
  if (f.avx512f && f.avx512bw && f.avx512vl && f.avx512vnni && f.avx2 && f.fma) out.push_back(&kQs8Avx512VnniSet);
  if (f.avxvnni && f.avx2 && f.fma) out.push_back(&kQs8AvxVnniSet);
  if (f.avx2 && f.fma) out.push_back(&kQs8Avx2Set);
  out.push_back(&kQs8PortableSet);
  return out;
}

const QKernels& qkernels() {
  static const QKernels* best = available_qkernels().front();
  return *best;
}

QParams int8_output(int32_t zero_point, bool is_unsigned, int32_t qmin, int32_t qmax) {
  QParams p;
  p.out = QOutput::kInt8;
  const int32_t shift = is_unsigned ? 128 : 0;
  p.out_zero_point = zero_point - shift;
  p.qmin = qmin - shift;
  p.qmax = qmax - shift;
  p.out_xor = is_unsigned ? 0x80 : 0;
  return p;
}

QParams float_output(float lo, float hi) {
  QParams p;
  p.out = QOutput::kFloat;
  p.flo = lo;
  p.fhi = hi;
  return p;
}

QParams int32_output() {
  QParams p;
  p.out = QOutput::kInt32;
  return p;
}

QPackedWeights pack_qweights(const QGemmConfig& cfg, const int8_t* w, int64_t ks, int64_t kc, int64_t n, int64_t ldw,
                             bool transposed, const int32_t* bias, const float* scale, int32_t a_zero_point,
                             bool a_unsigned) {
  QPackedWeights p;
  p.ks = ks;
  p.kc = kc;
  p.n = n;
  p.kc4 = (kc + 3) / 4 * 4;
  p.nr = cfg.nr;
  p.a_xor = kernel_a_xor(cfg.a_unsigned, a_unsigned);
  const int64_t nr = cfg.nr;
  const bool pairs = cfg.layout == QWeightLayout::kGroupPairs;  // nr == 8
  const int64_t tap_groups = pairs ? (p.kc4 / 4 + 1) / 2 * 2 : p.kc4 / 4;
  const int64_t groups = ks * tap_groups;
  const int64_t group_bytes = cfg.layout == QWeightLayout::kPairs16 ? nr * 8 : nr * 4;
  p.panel_stride = nr * 8 + groups * group_bytes;
  const int64_t panels = std::max<int64_t>(p.panels(), 1);
  p.data = Tensor(DType::kUInt8, {panels * p.panel_stride});
  std::memset(p.data.raw(), 0, static_cast<size_t>(panels * p.panel_stride));
  const int32_t zd = kernel_zero_point(cfg.a_unsigned, a_zero_point, a_unsigned);
  auto at = [&](int64_t k, int64_t j) -> int32_t { return transposed ? w[j * ldw + k] : w[k * ldw + j]; };
  for (int64_t panel = 0; panel < p.panels(); ++panel) {
    uint8_t* dst = p.data.data<uint8_t>() + panel * p.panel_stride;
    const int64_t j0 = panel * nr, cols = std::min<int64_t>(nr, n - j0);
    int32_t* b = reinterpret_cast<int32_t*>(dst);
    float* s = reinterpret_cast<float*>(dst + nr * 4);
    for (int64_t j = 0; j < cols; ++j) {
      int64_t sum = 0;
      for (int64_t k = 0; k < ks * kc; ++k) sum += at(k, j0 + j);
      const int64_t v = (bias ? bias[j0 + j] : 0) - static_cast<int64_t>(zd) * sum;
      b[j] = static_cast<int32_t>(static_cast<uint32_t>(static_cast<uint64_t>(v)));  // wraps like the reference
      s[j] = scale ? scale[j0 + j] : 1.f;
    }
    uint8_t* g = dst + nr * 8;
    for (int64_t t = 0; t < ks; ++t)
      for (int64_t c0 = 0; c0 < p.kc4; c0 += 4, g += group_bytes) {
        for (int64_t j = 0; j < cols; ++j)
          for (int i = 0; i < 4; ++i) {
            const int32_t v = c0 + i < kc ? at(t * kc + c0 + i, j0 + j) : 0;
            if (pairs) {  // group c0 / 4 of the tap: block of its pair, lane 2 j + (odd group)
              const int64_t gi = c0 / 4;
              uint8_t* block = dst + nr * 8 + (t * tap_groups + gi - gi % 2) * group_bytes;
              block[(2 * j + gi % 2) * 4 + i] = static_cast<uint8_t>(static_cast<int8_t>(v));
            } else if (cfg.layout == QWeightLayout::kGroup4) {
              g[j * 4 + i] = static_cast<uint8_t>(static_cast<int8_t>(v));
            } else {
              // lo block: (w[k0], w[k2]); hi block: (w[k1], w[k3]), each an int16 pair per column.
              int16_t* lo = reinterpret_cast<int16_t*>(g);
              int16_t* hi = reinterpret_cast<int16_t*>(g + nr * 4);
              int16_t* dst16 = (i & 1) ? hi : lo;
              dst16[j * 2 + (i >> 1)] = static_cast<int16_t>(v);
            }
          }
      }
  }
  return p;
}

void qgemm(const QGemmConfig& cfg, int64_t m, const void* a, int64_t lda, const QPackedWeights& w, void* c,
           int64_t ldc, const QParams& params, ThreadPool* pool, bool a_prexored) {
  QParams p = params;
  p.a_xor = a_prexored ? 0 : w.a_xor;
  const size_t es = out_size(p);
  // The fields every tile shares, copied per tile (a QTile built from scratch in the loop was
  // zero-filled with rep stos first: 40 % of this function's own time on MobileNetV2 int8).
  QTile base;
  base.kc = w.kc;
  base.lda = lda;
  base.ldc = ldc;
  base.params = &p;
  const int64_t macs = m * w.n * w.kc;
  if (cfg.gemm_rows && for_each_strip(m, cfg, w, pool, macs, w.kc, [&](int64_t i0, int64_t rows, int64_t panel) {
        QTile t = strip_tile(base, cfg, w, i0, panel, c, ldc, es);
        t.a = static_cast<const uint8_t*>(a) + i0 * lda;
        cfg.gemm_rows(t, rows);
      }))
    return;
  for_each_tile(m, cfg.mr, cfg.nr, w.panels(), w.panel_stride, macs, cfg.min_parallel_macs, pool, [&](int64_t rb, int64_t panel) {
    QTile t = base;
    const int64_t i0 = rb * cfg.mr, j0 = panel * cfg.nr;
    t.mr = static_cast<int>(std::min<int64_t>(cfg.mr, m - i0));
    t.nc = static_cast<int>(std::min<int64_t>(cfg.nr, w.n - j0));
    t.a = static_cast<const uint8_t*>(a) + i0 * lda;
    t.w = w.panel(panel);
    t.c = static_cast<uint8_t*>(c) + (i0 * ldc + j0) * es;
    cfg.gemm(t);
  });
}

void qigemm(const QGemmConfig& cfg, int64_t m, const uint8_t* const* a_ptrs, ptrdiff_t a_offset,
            const uint8_t* zero, const QPackedWeights& w, void* c, int64_t ldc, const QParams& params,
            ThreadPool* pool, bool a_prexored) {
  QParams p = params;
  p.a_xor = a_prexored ? 0 : w.a_xor;
  const size_t es = out_size(p);
  QTile base;  // as in qgemm
  base.kc = w.kc;
  base.ks = w.ks;
  base.a_offset = a_offset;
  base.zero = zero;
  base.ldc = ldc;
  base.params = &p;
  const int64_t macs = m * w.n * w.kc * w.ks;
  if (cfg.igemm_rows && for_each_strip(m, cfg, w, pool, macs, w.kc * w.ks, [&](int64_t i0, int64_t rows, int64_t panel) {
        QTile t = strip_tile(base, cfg, w, i0, panel, c, ldc, es);
        t.a_ptrs = a_ptrs + (i0 / cfg.mr) * w.ks * cfg.mr;  // a row block's pointers cover all taps
        cfg.igemm_rows(t, rows);
      }))
    return;
  for_each_tile(m, cfg.mr, cfg.nr, w.panels(), w.panel_stride, macs, cfg.min_parallel_macs, pool, [&](int64_t rb, int64_t panel) {
    QTile t = base;
    const int64_t i0 = rb * cfg.mr, j0 = panel * cfg.nr;
    t.mr = static_cast<int>(std::min<int64_t>(cfg.mr, m - i0));
    t.nc = static_cast<int>(std::min<int64_t>(cfg.nr, w.n - j0));
    t.a_ptrs = a_ptrs + rb * w.ks * cfg.mr;
    t.w = w.panel(panel);
    t.c = static_cast<uint8_t*>(c) + (i0 * ldc + j0) * es;
    cfg.igemm(t);
  });
}

QPackedDepthwise pack_qdepthwise(const int8_t* w, const int32_t* bias, const float* scale, int64_t channels,
                                 int64_t kh, int64_t kw, int32_t a_zero_point, bool a_unsigned) {
  QPackedDepthwise p;
  p.channels = channels;
  p.taps = kh * kw;
  p.a_xor = a_unsigned ? 0x80 : 0;
  p.a_zero = a_unsigned ? a_zero_point - 128 : a_zero_point;
  const int64_t blocks = (channels + 15) / 16;
  const int64_t block_bytes = 16 * 8 + p.taps * 16 * 2;
  p.data = Tensor(DType::kUInt8, {std::max<int64_t>(blocks, 1) * block_bytes});
  std::memset(p.data.raw(), 0, static_cast<size_t>(p.data.byte_size()));
  for (int64_t b = 0; b < blocks; ++b) {
    uint8_t* dst = p.data.data<uint8_t>() + b * block_bytes;
    int32_t* bb = reinterpret_cast<int32_t*>(dst);
    float* ss = reinterpret_cast<float*>(dst + 64);
    int16_t* ww = reinterpret_cast<int16_t*>(dst + 128);
    for (int64_t j = 0; j < 16 && b * 16 + j < channels; ++j) {
      const int64_t c = b * 16 + j;
      bb[j] = bias ? bias[c] : 0;
      ss[j] = scale ? scale[c] : 1.f;
      for (int64_t t = 0; t < p.taps; ++t) ww[t * 16 + j] = w[c * p.taps + t];
    }
  }
  return p;
}

const QGemmConfig& qgemm_config_for(const QKernels& k, const int8_t* w, int64_t n) {
  if (!k.gemm_w7) return *k.gemm;
  for (int64_t i = 0; i < n; ++i)
    if (w[i] < -64 || w[i] > 64) return *k.gemm;
  return *k.gemm_w7;
}

size_t qdwconv_scratch_bytes(const QKernels& k, const QWindow& s) {
  return (k.dwconv_scratch(s) + 63) / 64 * 64;
}

void qdwconv(const QKernels& k, const QWindow& s, const void* x, const QPackedDepthwise& w, QParams p, void* y,
             int64_t row_begin, int64_t row_end, void* scratch) {
  p.a_xor = w.a_xor;
  k.dwconv(s, static_cast<const uint8_t*>(x), w.data.data<uint8_t>(), w.a_zero, p, y, row_begin, row_end, scratch);
}

namespace {
// std::nearbyint in the default rounding mode without the libm call baseline x86-64 makes for it
// (no SSE4.1): exact for |v| < 2^22; larger values are clamped first (they saturate int8 anyway).
inline float round_half_even_scalar(float v) {
  v = std::min(std::max(v, -4.0e6f), 4.0e6f);
  constexpr float m = 12582912.f;
  return (v + m) - m;
}
}  // namespace

// The pooling loop QPool ran before the vector kernels, kept as the reference they are tested
// against and as the kernel of the sets without one.
void qs8_pool_scalar(const QWindow& s, const uint8_t* xb, const QPoolParams& p, uint8_t* yb, int32_t* acc) {
  const int64_t C = s.channels;
  for (int64_t n = 0; n < s.batch; ++n)
    for (int64_t oh = 0; oh < s.out_h; ++oh)
      for (int64_t ow = 0; ow < s.out_w; ++ow) {
        for (int64_t c = 0; c < C; ++c) acc[c] = p.is_max ? -1000 : 0;
        int64_t count = 0, valid = 0;
        for (int64_t kh = 0; kh < s.kernel_h; ++kh) {
          const int64_t ih = oh * s.stride_h - s.pad_top + kh * s.dilation_h;
          for (int64_t kw = 0; kw < s.kernel_w; ++kw) {
            const int64_t iw = ow * s.stride_w - s.pad_left + kw * s.dilation_w;
            if (!(ih >= 0 && ih < s.in_h && iw >= 0 && iw < s.in_w)) {
              // Padding inside the padded extent counts (as zero) only with count_include_pad.
              if (p.count_include_pad && ih < s.in_h + p.pad_bottom && iw < s.in_w + p.pad_right) ++count;
              continue;
            }
            ++count;
            ++valid;
            const uint8_t* row = xb + ((n * s.in_h + ih) * s.in_w + iw) * C;
            if (p.x_unsigned) {
              if (p.is_max) for (int64_t c = 0; c < C; ++c) acc[c] = std::max<int32_t>(acc[c], row[c]);
              else for (int64_t c = 0; c < C; ++c) acc[c] += row[c];
            } else {
              const int8_t* r8 = reinterpret_cast<const int8_t*>(row);
              if (p.is_max) for (int64_t c = 0; c < C; ++c) acc[c] = std::max<int32_t>(acc[c], r8[c]);
              else for (int64_t c = 0; c < C; ++c) acc[c] += r8[c];
            }
          }
        }
        uint8_t* out = yb + ((n * s.out_h + oh) * s.out_w + ow) * C;
        if (p.is_max && p.same_params) {  // the max of the stored integers is the answer
          for (int64_t c = 0; c < C; ++c) out[c] = static_cast<uint8_t>(std::min(std::max(acc[c], p.qmin), p.qmax));
          continue;
        }
        for (int64_t c = 0; c < C; ++c) {
          float real;
          if (p.is_max) {
            real = static_cast<float>(acc[c] - p.x_zero) * p.x_scale;
          } else {
            // Padding taps added nothing; each tap inside owes -zero_point.
            real = count ? static_cast<float>(acc[c] - p.x_zero * static_cast<int32_t>(valid)) * p.x_scale /
                               static_cast<float>(count)
                         : 0.f;
          }
          float q = round_half_even_scalar(real / p.y_scale) + static_cast<float>(p.y_zero);
          q = std::min(std::max(q, static_cast<float>(p.qmin)), static_cast<float>(p.qmax));
          const int32_t r = static_cast<int32_t>(q);
          out[c] = p.y_unsigned ? static_cast<uint8_t>(r) : static_cast<uint8_t>(static_cast<int8_t>(r));
        }
      }
}

void qstore_reference(int32_t acc, float scale, const QParams& p, void* c, int64_t j) {
  switch (p.out) {
    case QOutput::kInt32:
      static_cast<int32_t*>(c)[j] = acc;
      return;
    case QOutput::kFloat: {
      float f = static_cast<float>(acc) * scale;
      static_cast<float*>(c)[j] = std::min(std::max(f, p.flo), p.fhi);
      return;
    }
    case QOutput::kInt8: {
      float f = static_cast<float>(acc) * scale;
      f = std::min(std::max(f, static_cast<float>(p.qmin - p.out_zero_point)),
                   static_cast<float>(p.qmax - p.out_zero_point));
      const int32_t r = static_cast<int32_t>(std::nearbyint(f)) + p.out_zero_point;
      static_cast<uint8_t*>(c)[j] = static_cast<uint8_t>(static_cast<uint8_t>(static_cast<int8_t>(r)) ^ p.out_xor);
      return;
    }
  }
}

void qgemm_reference(int64_t m, int64_t n, int64_t k, const void* a, int64_t lda, bool a_unsigned,
                     int32_t a_zero_point, const int8_t* w, int64_t ldw, const int32_t* bias, const float* scale,
                     const QParams& p, void* c, int64_t ldc) {
  const uint8_t* ab = static_cast<const uint8_t*>(a);
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      uint32_t acc = bias ? static_cast<uint32_t>(bias[j]) : 0u;
      for (int64_t kk = 0; kk < k; ++kk) {
        const uint8_t raw = ab[i * lda + kk];
        const int32_t av = a_unsigned ? static_cast<int32_t>(raw) : static_cast<int32_t>(static_cast<int8_t>(raw));
        acc += static_cast<uint32_t>((av - a_zero_point) * static_cast<int32_t>(w[kk * ldw + j]));
      }
      qstore_reference(static_cast<int32_t>(acc), scale ? scale[j] : 1.f, p, c, i * ldc + j);
    }
}

void qdwconv_reference(const QWindow& s, const void* x, bool a_unsigned, int32_t a_zero_point, const int8_t* w,
                       const int32_t* bias, const float* scale, const QParams& p, void* y) {
  const uint8_t* xb = static_cast<const uint8_t*>(x);
  const int64_t C = s.channels, taps = s.kernel_h * s.kernel_w;
  for (int64_t n = 0; n < s.batch; ++n)
    for (int64_t oh = 0; oh < s.out_h; ++oh)
      for (int64_t ow = 0; ow < s.out_w; ++ow)
        for (int64_t c = 0; c < C; ++c) {
          uint32_t acc = bias ? static_cast<uint32_t>(bias[c]) : 0u;
          for (int64_t kh = 0; kh < s.kernel_h; ++kh)
            for (int64_t kw = 0; kw < s.kernel_w; ++kw) {
              const int64_t ih = oh * s.stride_h - s.pad_top + kh * s.dilation_h;
              const int64_t iw = ow * s.stride_w - s.pad_left + kw * s.dilation_w;
              if (ih < 0 || ih >= s.in_h || iw < 0 || iw >= s.in_w) continue;
              const uint8_t raw = xb[((n * s.in_h + ih) * s.in_w + iw) * C + c];
              const int32_t av =
                  a_unsigned ? static_cast<int32_t>(raw) : static_cast<int32_t>(static_cast<int8_t>(raw));
              acc += static_cast<uint32_t>((av - a_zero_point) * static_cast<int32_t>(w[c * taps + kh * s.kernel_w + kw]));
            }
          qstore_reference(static_cast<int32_t>(acc), scale ? scale[c] : 1.f, p, y,
                           ((n * s.out_h + oh) * s.out_w + ow) * C + c);
        }
}

}  // namespace kiln::nn::kernels
