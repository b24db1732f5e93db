#include "kiln/nn/kernels/gemm.h"

#include "kiln/nn/kernels/internal/tile_split.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "kiln/core/cpu_features.h"
#include "kiln/core/thread_pool.h"

namespace kiln::nn::kernels {

const char* activation_name(Activation a) {
  switch (a) {
    case Activation::kNone: return "none";
    case Activation::kRelu: return "relu";
    case Activation::kClip: return "clip";
    case Activation::kHardSwish: return "hardswish";
    case Activation::kSigmoid: return "sigmoid";
    case Activation::kSilu: return "silu";
    case Activation::kLeakyRelu: return "leakyrelu";
    case Activation::kHardSigmoid: return "hardsigmoid";
  }
  return "?";
}

float apply_activation(float x, const GemmParams& p) {
  switch (p.act) {
    case Activation::kNone: return x;
    case Activation::kRelu: return x > 0 ? x : 0;
    case Activation::kClip: return std::min(std::max(x, p.lo), p.hi);
    case Activation::kHardSwish: return x * std::min(std::max(x + 3.f, 0.f), 6.f) / 6.f;
    case Activation::kSigmoid: return 1.f / (1.f + std::exp(-x));
    case Activation::kSilu: return x / (1.f + std::exp(-x));
    case Activation::kLeakyRelu: return x < 0 ? x * p.alpha : x;
    case Activation::kHardSigmoid: return std::min(std::max(p.alpha * x + p.beta, 0.f), 1.f);
  }
  return x;
}

std::vector<const GemmConfig*> available_gemm_configs() {
  const CpuFeatures& f = cpu_features();
  std::vector<const GemmConfig*> out;
  if (f.avx512f) out.push_back(&kF32GemmAvx512);
  if (f.avx512f) out.push_back(&kF32GemmAvx512Narrow);
  if (f.avx2 && f.fma) out.push_back(&kF32GemmAvx2);
  out.push_back(&kF32GemmPortable);
  return out;
}

const GemmConfig& gemm_config() {
  static const GemmConfig* best = available_gemm_configs().front();
  return *best;
}

const GemmConfig& gemm_config_for(int64_t n) {
  const GemmConfig& best = gemm_config();
  if (&best == &kF32GemmAvx512 && n <= kF32GemmAvx512Narrow.nr) return kF32GemmAvx512Narrow;
  return best;
}

int64_t packed_floats(const GemmConfig& cfg, int64_t k, int64_t n) {
  const int64_t panels = std::max<int64_t>((n + cfg.nr - 1) / cfg.nr, 1);
  return panels * (cfg.nr + k * cfg.nr);
}

void pack_weights_into(const GemmConfig& cfg, const float* w, int64_t k, int64_t n, int64_t ldw, bool transposed,
                       const float* bias, float* out) {
  const int64_t panel_stride = cfg.nr + k * cfg.nr;
  const int64_t panels = (n + cfg.nr - 1) / cfg.nr;
  for (int64_t panel = 0; panel < panels; ++panel) {
    float* dst = out + panel * panel_stride;
    const int64_t j0 = panel * cfg.nr;
    const int64_t cols = std::min<int64_t>(cfg.nr, n - j0);
    for (int64_t j = 0; j < cfg.nr; ++j) dst[j] = bias && j < cols ? bias[j0 + j] : 0.f;
    dst += cfg.nr;
    for (int64_t kk = 0; kk < k; ++kk, dst += cfg.nr) {
      int64_t j = 0;
      if (transposed)
        for (; j < cols; ++j) dst[j] = w[(j0 + j) * ldw + kk];
      else
        for (; j < cols; ++j) dst[j] = w[kk * ldw + j0 + j];
      for (; j < cfg.nr; ++j) dst[j] = 0.f;
    }
  }
}

PackedWeights pack_weights(const GemmConfig& cfg, const float* w, int64_t k, int64_t n, int64_t ldw, bool transposed,
                           const float* bias) {
  PackedWeights p;
  p.k = k;
  p.n = n;
  p.nr = cfg.nr;
  p.panel_stride = cfg.nr + k * cfg.nr;
  p.data = Tensor(DType::kFloat32, {packed_floats(cfg, k, n)});
  pack_weights_into(cfg, w, k, n, ldw, transposed, bias, p.data.data<float>());
  return p;
}

namespace {

// Below this many multiply-adds a GEMM runs on the calling thread: waking a worker and joining
// it costs more than it saves.
constexpr int64_t kMinParallelMacs = 1 << 17;

// Weights bigger than L2 (tile_split.h visits them a panel group at a time): while row block rb
// >= 1 runs over `panel`, it pulls slice rb - 1 (one line per k step) of the panel that takes
// its place in the next group into L2, so the next group's first row block does not wait on
// memory. Null when the weights fit or there is no next group.
const char* next_panel_slice(const PackedView& w, int64_t rb, int64_t panel, int64_t group, int64_t k_steps) {
  const int64_t panels = (w.n + w.nr - 1) / w.nr;
  if (group >= panels || rb == 0 || panel + group >= panels) return nullptr;
  const int64_t bytes = w.panel_stride * int64_t{sizeof(float)}, off = (rb - 1) * k_steps * 64;
  if (off >= bytes) return nullptr;
  return reinterpret_cast<const char*>(w.data + (panel + group) * w.panel_stride) + off;
}

}  // namespace

void gemm(const GemmConfig& cfg, int64_t m, const float* a, int64_t lda, const PackedWeights& w, float* c,
          int64_t ldc, const GemmParams& p, ThreadPool* pool) {
  gemm_view(cfg, m, a, lda, PackedView{w.k, w.n, w.nr, w.panel_stride, w.data.data<float>()}, c, ldc, p, pool);
}

void gemm_view(const GemmConfig& cfg, int64_t m, const float* a, int64_t lda, const PackedView& w, float* c,
               int64_t ldc, const GemmParams& p, ThreadPool* pool) {
  const int64_t panels = (w.n + w.nr - 1) / w.nr;
  const int64_t panel_bytes = w.panel_stride * int64_t{sizeof(float)};
  const int64_t group = panels_per_group(panels, panel_bytes);
  for_each_tile(m, cfg.mr, cfg.nr, panels, panel_bytes, m * w.n * w.k, kMinParallelMacs, pool, [&](int64_t rb, int64_t panel) {
    Tile t;
    const int64_t i0 = rb * cfg.mr, j0 = panel * cfg.nr;
    t.mr = static_cast<int>(std::min<int64_t>(cfg.mr, m - i0));
    t.nc = static_cast<int>(std::min<int64_t>(cfg.nr, w.n - j0));
    t.kc = w.k;
    t.a = a + i0 * lda;
    t.lda = lda;
    t.w = w.data + panel * w.panel_stride;
    t.prefetch = next_panel_slice(w, rb, panel, group, w.k);
    t.c = c + i0 * ldc + j0;
    t.ldc = ldc;
    if (p.residual) {
      t.residual = p.residual + i0 * p.ld_residual + j0;
      t.ld_residual = p.ld_residual;
    }
    t.params = &p;
    cfg.gemm(t);
  });
}

void igemm(const GemmConfig& cfg, int64_t m, int64_t ks, int64_t kc, const float* const* a_ptrs, ptrdiff_t a_offset,
           const float* zero, const PackedWeights& w, float* c, int64_t ldc, const GemmParams& p, ThreadPool* pool) {
  const int64_t panel_bytes = w.panel_stride * int64_t{sizeof(float)};
  const int64_t group = panels_per_group(w.panels(), panel_bytes);
  const PackedView view{w.k, w.n, w.nr, w.panel_stride, w.data.data<float>()};
  for_each_tile(m, cfg.mr, cfg.nr, w.panels(), panel_bytes, m * w.n * ks * kc, kMinParallelMacs, pool, [&](int64_t rb, int64_t panel) {
    Tile t;
    const int64_t i0 = rb * cfg.mr, j0 = panel * cfg.nr;
    t.mr = static_cast<int>(std::min<int64_t>(cfg.mr, m - i0));
    t.nc = static_cast<int>(std::min<int64_t>(cfg.nr, w.n - j0));
    t.kc = kc;
    t.ks = ks;
    t.a_ptrs = a_ptrs + rb * ks * cfg.mr;
    t.a_offset = a_offset;
    t.zero = zero;
    t.w = w.panel(panel);
    t.prefetch = next_panel_slice(view, rb, panel, group, ks * kc);
    t.c = c + i0 * ldc + j0;
    t.ldc = ldc;
    if (p.residual) {
      t.residual = p.residual + i0 * p.ld_residual + j0;
      t.ld_residual = p.ld_residual;
    }
    t.params = &p;
    cfg.igemm(t);
  });
}

void gemm_reference(int64_t m, int64_t n, int64_t k, const float* a, int64_t lda, const float* w, int64_t ldw,
                    const float* bias, float* c, int64_t ldc, const GemmParams& p) {
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      double acc = bias ? bias[j] : 0.0;
      for (int64_t kk = 0; kk < k; ++kk) acc += static_cast<double>(a[i * lda + kk]) * w[kk * ldw + j];
      float v = static_cast<float>(acc);
      if (p.residual) v += p.residual[i * p.ld_residual + j];
      c[i * ldc + j] = apply_activation(v, p);
    }
}

}  // namespace kiln::nn::kernels
