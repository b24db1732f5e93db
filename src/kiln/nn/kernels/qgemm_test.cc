// Differential tests of the int8 kernels: every micro-kernel this CPU can run (plus the AVX-VNNI
// kernel through an exact AVX2 emulation of vpdpbusd) against the plain reference loops, at tile
// edges, odd reduction lengths, both activation signednesses, all three output kinds, strides,
// padding, dilation and channel tails. Results must be bit-identical.
#include "kiln/nn/kernels/qgemm.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <memory>
#include <random>
#include <span>
#include <string>

#include "kiln/core/cpu_features.h"
#include "kiln/core/thread_pool.h"

namespace kiln::nn::kernels {
extern const QGemmConfig kQs8GemmAvxVnniEmulated;  // qs8_avxvnni_emulated.cc (test-only)

namespace {

std::vector<const QGemmConfig*> gemm_configs() {
  std::vector<const QGemmConfig*> out;
  for (const QKernels* k : available_qkernels()) {
    out.push_back(k->gemm);
    if (k->gemm_narrow) out.push_back(k->gemm_narrow);  // at most 8 columns per panel
    if (k->gemm_w7) out.push_back(k->gemm_w7);          // weights in [-64, 64] only
  }
  if (cpu_features().avx2 && cpu_features().fma) out.push_back(&kQs8GemmAvxVnniEmulated);
  return out;
}

std::vector<uint8_t> random_bytes(size_t n, std::mt19937& rng) {
  std::uniform_int_distribution<int> d(0, 255);
  std::vector<uint8_t> v(n);
  for (uint8_t& b : v) b = static_cast<uint8_t>(d(rng));
  return v;
}

// The weights a configuration takes: [-64, 64] for the 7-bit kernel, any int8 otherwise.
int weight_min(const QGemmConfig* cfg) { return cfg == &kQs8GemmAvx2W7 ? -64 : -128; }
int weight_max(const QGemmConfig* cfg) { return cfg == &kQs8GemmAvx2W7 ? 64 : 127; }

std::vector<int8_t> random_weights(size_t n, std::mt19937& rng, const QGemmConfig* cfg = nullptr) {
  std::uniform_int_distribution<int> d(cfg ? weight_min(cfg) : -128, cfg ? weight_max(cfg) : 127);
  std::vector<int8_t> v(n);
  for (int8_t& b : v) b = static_cast<int8_t>(d(rng));
  return v;
}

// Per-column scales that spread the int8 outputs over the whole range (some saturate).
std::vector<float> random_scales(size_t n, int64_t k, std::mt19937& rng) {
  std::uniform_real_distribution<float> d(0.3f, 3.f);
  std::vector<float> v(n);
  for (float& s : v) s = d(rng) / (64.f * std::sqrt(static_cast<float>(k)) * 8.f);
  return v;
}

std::vector<int32_t> random_bias(size_t n, std::mt19937& rng) {
  std::uniform_int_distribution<int32_t> d(-20000, 20000);
  std::vector<int32_t> v(n);
  for (int32_t& b : v) b = d(rng);
  return v;
}

struct OutKind {
  const char* name;
  QParams params;
};

std::vector<OutKind> out_kinds() {
  return {
      {"int8", int8_output(-5, false, -128, 127)},
      {"int8-relu", int8_output(-20, false, -20, 127)},
      {"uint8", int8_output(130, true, 0, 255)},
      {"uint8-clip", int8_output(100, true, 100, 200)},
      {"float", float_output(-3.4e38f, 3.4e38f)},
      {"float-relu", float_output(0.f, 3.4e38f)},
      {"int32", int32_output()},
  };
}

size_t es(const QParams& p) { return p.out == QOutput::kInt8 ? 1 : 4; }

// Compares two C buffers (m x n of ldc elements) byte for byte and checks the padding columns.
void expect_same(const std::vector<uint8_t>& got, const std::vector<uint8_t>& want, int64_t m, int64_t n, int64_t ldc,
                 size_t esize, const std::string& what) {
  int bad = 0;
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t j = 0; j < ldc; ++j) {
      const size_t off = static_cast<size_t>(i * ldc + j) * esize;
      if (std::memcmp(&got[off], &want[off], esize) != 0 && bad++ < 3)
        ADD_FAILURE() << what << " differs at (" << i << ", " << j << ")" << (j >= n ? " (past N)" : "");
    }
  }
  EXPECT_EQ(bad, 0) << what;
}

TEST(QGemm, EveryConfigMatchesReferenceAtTileEdges) {
  std::mt19937 rng(41);
  for (const QGemmConfig* cfg : gemm_configs()) {
    const int mr = cfg->mr, nr = cfg->nr;
    for (int64_t m : {int64_t{1}, int64_t(mr - 1), int64_t(mr), int64_t(mr + 1), int64_t(2 * mr + 3)}) {
      // nr / 2 and nr / 2 + 1: the AVX-512 kernel runs tiles of at most 16 columns on one vector.
      for (int64_t n : {int64_t{1}, int64_t(nr / 2), int64_t(nr / 2 + 1), int64_t(nr - 1), int64_t(nr), int64_t(nr + 1),
                        int64_t(3 * nr + 5)}) {
        for (int64_t k : {1, 3, 4, 7, 64, 131}) {
          if (m < 1) continue;
          for (bool a_unsigned : {false, true}) {
            // Odd k: output rows packed (ldc = n), which the narrow kernel stores eight at a time.
            const int64_t lda = k + 5, ldc = k % 2 ? n : n + 3;
            auto a = random_bytes(static_cast<size_t>(m * lda), rng);
            auto w = random_weights(static_cast<size_t>(k * n), rng, cfg);
            auto bias = random_bias(static_cast<size_t>(n), rng);
            auto scale = random_scales(static_cast<size_t>(n), k, rng);
            const int32_t zp = a_unsigned ? 121 : -7;
            QPackedWeights pw = pack_qweights(*cfg, w.data(), 1, k, n, n, false, bias.data(), scale.data(), zp, a_unsigned);
            for (const OutKind& o : out_kinds()) {
              const size_t esize = es(o.params);
              std::vector<uint8_t> want(static_cast<size_t>(m * ldc) * esize, 0xAB), got = want;
              qgemm_reference(m, n, k, a.data(), lda, a_unsigned, zp, w.data(), n, bias.data(), scale.data(), o.params,
                              want.data(), ldc);
              qgemm(*cfg, m, a.data(), lda, pw, got.data(), ldc, o.params, nullptr);
              expect_same(got, want, m, n, ldc, esize,
                          std::string(cfg->name) + " m=" + std::to_string(m) + " n=" + std::to_string(n) +
                              " k=" + std::to_string(k) + (a_unsigned ? " u8" : " s8") + " out=" + o.name);
            }
          }
        }
      }
    }
  }
}

// Large K with many rows: the one-thread path runs strips of rows (as many as keep 16 KB of A in
// L1: 8 rows at K = 2000, 48 at K = 300), every panel over each strip, the last strip partial.
TEST(QGemm, RowStripsCoverEveryRowAndPanel) {
  std::mt19937 rng(42);
  for (const QGemmConfig* cfg : gemm_configs()) {
    for (int64_t k : {300, 2000}) {
      for (int64_t m : {37, 203}) {
        const int64_t n = 3 * cfg->nr + 5, lda = k + 3, ldc = n + 2;
        auto a = random_bytes(static_cast<size_t>(m * lda), rng);
        auto w = random_weights(static_cast<size_t>(k * n), rng, cfg);
        auto bias = random_bias(static_cast<size_t>(n), rng);
        auto scale = random_scales(static_cast<size_t>(n), k, rng);
        QPackedWeights pw = pack_qweights(*cfg, w.data(), 1, k, n, n, false, bias.data(), scale.data(), 9, false);
        for (const OutKind& o : out_kinds()) {
          const size_t esize = es(o.params);
          std::vector<uint8_t> want(static_cast<size_t>(m * ldc) * esize, 0xAB), got = want;
          qgemm_reference(m, n, k, a.data(), lda, false, 9, w.data(), n, bias.data(), scale.data(), o.params, want.data(),
                          ldc);
          qgemm(*cfg, m, a.data(), lda, pw, got.data(), ldc, o.params, nullptr);
          expect_same(got, want, m, n, ldc, esize,
                      std::string(cfg->name) + " m=" + std::to_string(m) + " k=" + std::to_string(k) + " out=" + o.name);
        }
      }
    }
  }
}

// The products that saturate VPMADDUBSW's int16 pair sums (255 * -128 * 2) come out exact.
TEST(QGemm, ExtremeValuesDoNotSaturate) {
  for (const QGemmConfig* cfg : gemm_configs()) {
    const int64_t m = 3, n = 5, k = 64;
    for (bool a_unsigned : {false, true}) {
      std::vector<uint8_t> a(static_cast<size_t>(m * k), a_unsigned ? 255 : 0x80);  // 255 or -128
      const int lo = weight_min(cfg), hi = weight_max(cfg);  // the extremes this kernel takes
      std::vector<int8_t> w(static_cast<size_t>(k * n), static_cast<int8_t>(lo));
      for (int64_t j = 0; j < n; j += 2)
        for (int64_t kk = 0; kk < k; ++kk) w[kk * n + j] = static_cast<int8_t>(hi);
      const int32_t zp = a_unsigned ? 0 : 127;  // |a - zp| = 255
      QPackedWeights pw = pack_qweights(*cfg, w.data(), 1, k, n, n, false, nullptr, nullptr, zp, a_unsigned);
      std::vector<int32_t> got(static_cast<size_t>(m * n));
      qgemm(*cfg, m, a.data(), k, pw, got.data(), n, int32_output(), nullptr);
      for (int64_t i = 0; i < m; ++i)
        for (int64_t j = 0; j < n; ++j) {
          const int32_t diff = a_unsigned ? 255 : -255;
          EXPECT_EQ(got[i * n + j], diff * (j % 2 == 0 ? hi : lo) * k) << cfg->name << " (" << i << ", " << j << ")";
        }
    }
  }
}

TEST(QGemm, TransposedWeightsGiveTheSameResult) {
  std::mt19937 rng(43);
  const QGemmConfig& cfg = *qkernels().gemm;
  const int64_t m = 7, k = 19, n = 37;
  auto a = random_bytes(static_cast<size_t>(m * k), rng);
  auto w = random_weights(static_cast<size_t>(k * n), rng);
  std::vector<int8_t> wt(static_cast<size_t>(n * k));
  for (int64_t i = 0; i < k; ++i)
    for (int64_t j = 0; j < n; ++j) wt[j * k + i] = w[i * n + j];
  QPackedWeights p1 = pack_qweights(cfg, w.data(), 1, k, n, n, false, nullptr, nullptr, 3, false);
  QPackedWeights p2 = pack_qweights(cfg, wt.data(), 1, k, n, k, true, nullptr, nullptr, 3, false);
  std::vector<int32_t> c1(static_cast<size_t>(m * n)), c2(static_cast<size_t>(m * n));
  qgemm(cfg, m, a.data(), k, p1, c1.data(), n, int32_output(), nullptr);
  qgemm(cfg, m, a.data(), k, p2, c2.data(), n, int32_output(), nullptr);
  EXPECT_EQ(c1, c2);
}

TEST(QIgemm, EveryConfigMatchesReferenceWithPaddingRows) {
  std::mt19937 rng(47);
  for (const QGemmConfig* cfg : gemm_configs()) {
    // m = 150 at 9 taps of 32: the one-thread path's strips of rows (16 KB of pointed-to bytes
    // each: 56 rows, 48 for 16-row tiles), the last one partial.
    for (int64_t m : {int64_t{1}, int64_t(cfg->mr), int64_t(2 * cfg->mr + 1), int64_t{150}}) {
      for (int64_t ks : {1, 4, 9}) {
        for (int64_t kc : {1, 5, 8, 16, 19, 24, 32}) {  // 8, 16, 24, 32: whole 8-byte blocks per tap
          if (m == 150 && (ks != 9 || kc != 32)) continue;
          for (bool a_unsigned : {false, true}) {
            const int64_t n = cfg->nr + 3, k = ks * kc, rows = 11;
            const int32_t zp = a_unsigned ? 140 : 9;
            // Rows and the padding row in one buffer, the padding row last: a shifted row pointer
            // (row - offset) can then never equal the padding row's address, which the kernels
            // recognise by comparison (separate heap blocks made this test depend on addresses).
            std::vector<uint8_t> buffer = random_bytes(static_cast<size_t>(rows * kc), rng);
            buffer.resize(static_cast<size_t>(rows * kc + kc + 4), static_cast<uint8_t>(zp));
            const std::span<const uint8_t> src(buffer.data(), static_cast<size_t>(rows * kc));
            const std::span<uint8_t> zero(buffer.data() + rows * kc, static_cast<size_t>(kc + 4));
            auto w = random_weights(static_cast<size_t>(k * n), rng, cfg);
            auto bias = random_bias(static_cast<size_t>(n), rng);
            auto scale = random_scales(static_cast<size_t>(n), k, rng);
            const int64_t blocks = (m + cfg->mr - 1) / cfg->mr;
            std::vector<const uint8_t*> ptrs(static_cast<size_t>(blocks * ks * cfg->mr));
            std::vector<uint8_t> dense(static_cast<size_t>(m * k));
            std::uniform_int_distribution<int> pick(-1, static_cast<int>(rows) - 1);
            const ptrdiff_t offset = 64;  // pointers are stored shifted back by 64 bytes
            for (int64_t i = 0; i < blocks * cfg->mr; ++i)
              for (int64_t s = 0; s < ks; ++s) {
                const int r = pick(rng);
                const uint8_t* row = r < 0 ? zero.data() : src.data() + r * kc;
                const int64_t rb = i / cfg->mr, ii = i % cfg->mr;
                ptrs[static_cast<size_t>((rb * ks + s) * cfg->mr + ii)] = r < 0 ? zero.data() : row - offset;
                if (i < m) std::memcpy(&dense[static_cast<size_t>(i * k + s * kc)], row, static_cast<size_t>(kc));
              }
            QPackedWeights pw = pack_qweights(*cfg, w.data(), ks, kc, n, n, false, bias.data(), scale.data(), zp, a_unsigned);
            for (const OutKind& o : out_kinds()) {
              const size_t esize = es(o.params);
              std::vector<uint8_t> want(static_cast<size_t>(m * n) * esize), got = want;
              qgemm_reference(m, n, k, dense.data(), k, a_unsigned, zp, w.data(), n, bias.data(), scale.data(),
                              o.params, want.data(), n);
              qigemm(*cfg, m, ptrs.data(), offset, zero.data(), pw, got.data(), n, o.params, nullptr);
              expect_same(got, want, m, n, n, esize,
                          std::string(cfg->name) + " igemm m=" + std::to_string(m) + " ks=" + std::to_string(ks) +
                              " kc=" + std::to_string(kc) + (a_unsigned ? " u8" : " s8") + " out=" + o.name);
            }
          }
        }
      }
    }
  }
}

// A whose bytes the caller already XORed with the packing's a_xor gives the same result.
TEST(QGemm, PrexoredActivationsGiveTheSameResult) {
  std::mt19937 rng(71);
  for (const QGemmConfig* cfg : gemm_configs())
    for (bool a_unsigned : {false, true}) {
      const int64_t m = 11, k = 37, n = 45;
      auto a = random_bytes(static_cast<size_t>(m * k), rng);
      auto w = random_weights(static_cast<size_t>(k * n), rng, cfg);
      auto scale = random_scales(static_cast<size_t>(n), k, rng);
      auto bias = random_bias(static_cast<size_t>(n), rng);
      QPackedWeights pw = pack_qweights(*cfg, w.data(), 1, k, n, n, false, bias.data(), scale.data(),
                                        a_unsigned ? 140 : -9, a_unsigned);
      std::vector<uint8_t> ax = a;
      for (uint8_t& b : ax) b = static_cast<uint8_t>(b ^ pw.a_xor);
      const QParams p = int8_output(4, false, -128, 127);
      std::vector<uint8_t> plain(static_cast<size_t>(m * n)), pre(static_cast<size_t>(m * n));
      qgemm(*cfg, m, a.data(), k, pw, plain.data(), n, p, nullptr);
      qgemm(*cfg, m, ax.data(), k, pw, pre.data(), n, p, nullptr, true);
      EXPECT_EQ(plain, pre) << cfg->name << (a_unsigned ? " u8" : " s8");
    }
}

// The 7-bit kernel is chosen only for layers whose every weight lies in [-64, 64]: one weight of
// 65 or -65 (which its vpmaddubsw pair sums could saturate on) keeps the exact kernel.
TEST(QGemm, SevenBitKernelOnlyForSevenBitWeights) {
  for (const QKernels* k : available_qkernels()) {
    std::vector<int8_t> w(300);
    for (size_t i = 0; i < w.size(); ++i) w[i] = static_cast<int8_t>(static_cast<int>(i % 129) - 64);
    const int64_t n = static_cast<int64_t>(w.size());
    EXPECT_EQ(&qgemm_config_for(*k, w.data(), n), k->gemm_w7 ? k->gemm_w7 : k->gemm) << k->name;
    for (int8_t big : {int8_t{65}, int8_t{-65}, int8_t{127}, int8_t{-128}}) {
      w[137] = big;
      EXPECT_EQ(&qgemm_config_for(*k, w.data(), n), k->gemm) << k->name << " weight " << int{big};
    }
  }
}

TEST(QGemm, ThreadedMatchesSingleThreaded) {
  std::mt19937 rng(53);
  const QGemmConfig& cfg = *qkernels().gemm;
  ThreadPool pool(3);
  for (int64_t m : {1, 5, 100}) {
    const int64_t n = 200, k = 33;
    auto a = random_bytes(static_cast<size_t>(m * k), rng);
    auto w = random_weights(static_cast<size_t>(k * n), rng);
    auto scale = random_scales(static_cast<size_t>(n), k, rng);
    QPackedWeights pw = pack_qweights(cfg, w.data(), 1, k, n, n, false, nullptr, scale.data(), -3, false);
    std::vector<int8_t> one(static_cast<size_t>(m * n)), many(static_cast<size_t>(m * n));
    const QParams p = int8_output(4, false, -128, 127);
    qgemm(cfg, m, a.data(), k, pw, one.data(), n, p, nullptr);
    qgemm(cfg, m, a.data(), k, pw, many.data(), n, p, &pool);
    EXPECT_EQ(one, many) << "m=" << m;
  }
}

struct DwCase {
  int64_t c, h, w, kh, kw, sh, sw, dh, dw, pt, pl, pb, pr;
};

// The window of a depthwise or pooling case over a batch of 2, output size in floor mode.
template <typename Case>
QWindow window_of(const Case& d) {
  QWindow s{};
  s.batch = 2;
  s.in_h = d.h;
  s.in_w = d.w;
  s.channels = d.c;
  s.kernel_h = d.kh;
  s.kernel_w = d.kw;
  s.stride_h = d.sh;
  s.stride_w = d.sw;
  s.dilation_h = d.dh;
  s.dilation_w = d.dw;
  s.pad_top = d.pt;
  s.pad_left = d.pl;
  s.out_h = (d.h + d.pt + d.pb - d.dh * (d.kh - 1) - 1) / d.sh + 1;
  s.out_w = (d.w + d.pl + d.pr - d.dw * (d.kw - 1) - 1) / d.sw + 1;
  return s;
}

TEST(QDwConv, EveryKernelSetMatchesReference) {
  std::mt19937 rng(59);
  const DwCase cases[] = {
      {16, 7, 7, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1},  {64, 25, 5, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1},
      {17, 6, 9, 3, 3, 2, 2, 1, 1, 0, 1, 1, 0},  {1, 5, 5, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1},
      {40, 9, 8, 5, 5, 2, 1, 1, 1, 2, 2, 2, 2},  {24, 10, 10, 3, 3, 1, 1, 2, 2, 2, 2, 2, 2},
      {33, 4, 4, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0},  {8, 3, 3, 3, 3, 1, 1, 1, 1, 2, 2, 2, 2},
      // Rows wide enough for the AVX-512 kernel's register-resident spans (8 pixels per step for
      // 3x3, 4 for 5x5) next to its four-pixel and border paths: odd channel counts (masked
      // tails), strides 1 and 2, asymmetric and no padding, more than 64 channels.
      {35, 6, 21, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1}, {19, 9, 37, 3, 3, 2, 2, 1, 1, 0, 1, 1, 0},
      {48, 7, 30, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1}, {16, 5, 20, 3, 3, 1, 1, 1, 1, 0, 0, 0, 0},
      {7, 9, 26, 3, 3, 1, 2, 1, 1, 1, 1, 1, 1},  {67, 5, 12, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1},
      {21, 8, 19, 5, 5, 1, 1, 1, 1, 2, 2, 2, 2}, {50, 11, 23, 5, 5, 2, 2, 1, 1, 1, 2, 2, 1},
      {3, 6, 14, 5, 5, 1, 1, 1, 1, 0, 0, 0, 0},  {13, 6, 17, 3, 5, 1, 1, 1, 1, 1, 2, 1, 2},
      {9, 7, 22, 3, 3, 1, 1, 2, 2, 2, 2, 2, 2},
      // Narrow rows (at most 16 outputs) run on a zero-point-padded copy of the kernel rows; the
      // last one has an input column no output reads (stride 2, no right padding).
      {8, 6, 9, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1},   {24, 9, 10, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1},
      {20, 5, 33, 3, 3, 2, 2, 1, 1, 1, 1, 0, 0},
      // Rows wider than the narrow limit (32 outputs): spans between border pixels, 8-channel pairs.
      {13, 5, 40, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1}, {18, 7, 41, 5, 5, 1, 1, 1, 1, 2, 2, 2, 2},
      {8, 4, 37, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1},  {32, 5, 70, 3, 3, 2, 2, 1, 1, 0, 0, 1, 1},
      // Narrow images too large for one padded copy: several chunks of rows per image.
      {130, 12, 30, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1}, {100, 15, 40, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1},
      // 3x3 rows too wide for the AVX-512 column-unit path's 12 KB row copies: the spans.
      {320, 4, 40, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1}, {300, 5, 81, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1},
      // 3x3 rows of at most 3 outputs: the narrow spans, not the column units.
      {16, 5, 3, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1},  {20, 7, 5, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1},
  };
  for (const QKernels* qk : available_qkernels()) {
    int case_index = 0;
    for (const DwCase& d : cases) {
      ++case_index;
      for (bool a_unsigned : {false, true}) {
        const QWindow s = window_of(d);
        // Zero points inside and at the ends of the range (|x - zero_point| up to 255).
        const int32_t zps_s[] = {-100, 127, -128}, zps_u[] = {200, 0, 255};
        const int32_t zp = a_unsigned ? zps_u[case_index % 3] : zps_s[case_index % 3];
        auto x = random_bytes(static_cast<size_t>(s.batch * d.h * d.w * d.c), rng);
        auto w = random_weights(static_cast<size_t>(d.c * d.kh * d.kw), rng);
        auto bias = random_bias(static_cast<size_t>(d.c), rng);
        auto scale = random_scales(static_cast<size_t>(d.c), d.kh * d.kw, rng);
        QPackedDepthwise pw = pack_qdepthwise(w.data(), bias.data(), scale.data(), d.c, d.kh, d.kw, zp, a_unsigned);
        const int64_t outs = s.batch * s.out_h * s.out_w * d.c;
        for (const OutKind& o : out_kinds()) {
          const size_t esize = es(o.params);
          std::vector<uint8_t> want(static_cast<size_t>(outs) * esize), got = want;
          qdwconv_reference(s, x.data(), a_unsigned, zp, w.data(), bias.data(), scale.data(), o.params, want.data());
          // In two row ranges, as the thread split calls it, each with scratch of exactly the
          // size the kernel asks for (a heap block of its own: ASan sees any read or write past
          // it), filled with junk that no result may depend on.
          const int64_t rows = s.batch * s.out_h, split = rows / 2 + 1;
          const size_t bytes = qdwconv_scratch_bytes(*qk, s);
          ASSERT_EQ(bytes % 64, 0u);
          std::unique_ptr<uint8_t, decltype(&std::free)> scratch(
              static_cast<uint8_t*>(bytes ? std::aligned_alloc(64, bytes) : nullptr), &std::free);
          if (bytes) std::memset(scratch.get(), 0xA5, bytes);
          qdwconv(*qk, s, x.data(), pw, o.params, got.data(), 0, split, scratch.get());
          if (bytes) std::memset(scratch.get(), 0x5A, bytes);
          qdwconv(*qk, s, x.data(), pw, o.params, got.data(), split, rows, scratch.get());
          expect_same(got, want, 1, outs, outs, esize,
                      std::string(qk->name) + " dwconv c=" + std::to_string(d.c) + " " + std::to_string(d.h) + "x" +
                          std::to_string(d.w) + " k" + std::to_string(d.kh) + "x" + std::to_string(d.kw) + " s" +
                          std::to_string(d.sh) + "," + std::to_string(d.sw) + " zp=" + std::to_string(zp) +
                          (a_unsigned ? " u8" : " s8") + " out=" + o.name);
        }
      }
    }
  }
}

struct PoolCase {
  int64_t c, h, w, kh, kw, sh, sw, dh, dw, pt, pl, pb, pr, oh, ow;  // oh/ow: 0 = floor mode
};

TEST(QPool, EveryKernelSetMatchesTheScalarLoop) {
  std::mt19937 rng(67);
  const PoolCase cases[] = {
      {16, 7, 7, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 0, 0},  {67, 6, 9, 2, 2, 1, 1, 1, 1, 0, 0, 1, 1, 0, 0},
      {64, 25, 5, 25, 5, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0}, {130, 3, 3, 3, 3, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0},
      {1, 5, 6, 3, 3, 1, 1, 2, 2, 2, 2, 2, 2, 0, 0},   {17, 8, 8, 3, 3, 2, 2, 1, 1, 0, 0, 0, 0, 4, 4},
      {33, 5, 7, 3, 3, 3, 3, 1, 1, 1, 1, 1, 1, 3, 4},  // ceil mode: the last windows reach past the padding
      // multiples of 8 channels (the AVX2 kernel's 1-, 3- and 4+1-vector passes; others go scalar there)
      {8, 8, 8, 2, 2, 2, 2, 1, 1, 0, 0, 0, 0, 0, 0},   {24, 6, 6, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 0, 0},
      {40, 5, 5, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0},
      // 2x2 stride 2 on 16 or 32 channels with rows of whole 64-byte vectors (the AVX-512 row
      // pass: 4 or 2 pixels per vector, odd heights, several vectors per row), next to ones
      // that miss it (rows of 96 bytes, odd width), and byte passes of 64 + 16, 32 + 16 and 16 + 4
      {16, 8, 8, 2, 2, 2, 2, 1, 1, 0, 0, 0, 0, 0, 0},  {32, 5, 4, 2, 2, 2, 2, 1, 1, 0, 0, 0, 0, 0, 0},
      {16, 4, 12, 2, 2, 2, 2, 1, 1, 0, 0, 0, 0, 0, 0}, {32, 2, 6, 2, 2, 2, 2, 1, 1, 0, 0, 0, 0, 0, 0},
      {16, 6, 6, 2, 2, 2, 2, 1, 1, 0, 0, 0, 0, 0, 0},  {32, 4, 5, 2, 2, 2, 2, 1, 1, 0, 0, 0, 0, 0, 0},
      {80, 4, 4, 2, 2, 2, 2, 1, 1, 0, 0, 0, 0, 0, 0},  {48, 5, 5, 3, 3, 2, 2, 1, 1, 0, 0, 0, 0, 0, 0},
      {20, 4, 4, 2, 2, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0},
  };
  for (const QKernels* qk : available_qkernels()) {
    for (const PoolCase& d : cases) {
      QWindow s = window_of(d);
      if (d.oh) s.out_h = d.oh;  // ceil mode
      if (d.ow) s.out_w = d.ow;
      auto x = random_bytes(static_cast<size_t>(s.batch * d.h * d.w * d.c), rng);
      const size_t outs = static_cast<size_t>(s.batch * s.out_h * s.out_w * d.c);
      for (int variant = 0; variant < 10; ++variant) {
        QPoolParams p;
        p.is_max = variant < 4;
        p.same_params = variant < 2;
        p.x_unsigned = variant % 2 == 1;
        p.y_unsigned = p.same_params ? p.x_unsigned : variant % 4 >= 2;
        p.count_include_pad = variant >= 7;
        p.x_scale = 0.02f;
        p.y_scale = p.same_params ? p.x_scale : (variant % 3 == 0 ? 0.013f : 0.05f);
        p.x_zero = p.x_unsigned ? 131 : -7;
        p.y_zero = p.same_params ? p.x_zero : (p.y_unsigned ? 120 : 5);
        const int32_t lo = p.y_unsigned ? 0 : -128, hi = p.y_unsigned ? 255 : 127;
        p.qmin = variant % 5 == 4 ? p.y_zero : lo;  // a fused Relu now and then
        p.qmax = variant == 6 ? p.y_zero + 40 : hi;
        p.pad_bottom = d.pb;
        p.pad_right = d.pr;
        std::vector<uint8_t> want(outs, 0xAB), got(outs, 0xCD);
        std::vector<int32_t> acc(static_cast<size_t>(d.c));
        qs8_pool_scalar(s, x.data(), p, want.data(), acc.data());
        qk->pool(s, x.data(), p, got.data(), acc.data());
        EXPECT_EQ(got, want) << qk->pool_name << " c=" << d.c << " " << d.h << "x" << d.w << " k" << d.kh << "x"
                             << d.kw << " variant " << variant;
      }
    }
  }
}

// What QuantizeLinear / DequantizeLinear compute in ops/quantize.cc, for one value.
uint8_t quantize_one(float x, float scale, int32_t zp, bool is_unsigned) {
  float v = std::nearbyint(x / scale) + static_cast<float>(zp);
  if (std::isnan(v)) return 0;
  const float lo = is_unsigned ? 0.f : -128.f, hi = is_unsigned ? 255.f : 127.f;
  v = std::min(std::max(v, lo), hi);
  return static_cast<uint8_t>(static_cast<int32_t>(v));
}

TEST(QConvert, QuantizeAndDequantizeMatchTheOperatorDefinition) {
  std::mt19937 rng(61);
  std::normal_distribution<float> d(0.f, 3.f);
  std::vector<float> x(203);
  for (float& v : x) v = d(rng);
  // Ties (x / scale = k + 0.5 round to even), infinities, NaN, huge values.
  const float specials[] = {0.25f, 0.75f, -0.25f, -0.75f, 1.25f, std::numeric_limits<float>::infinity(),
                            -std::numeric_limits<float>::infinity(), std::numeric_limits<float>::quiet_NaN(), 1e30f,
                            -1e30f, 0.f, -0.f};
  for (size_t i = 0; i < sizeof(specials) / sizeof(specials[0]); ++i) x[i * 3] = specials[i];
  for (const QKernels* qk : available_qkernels()) {
    for (bool is_unsigned : {false, true}) {
      const float scale = 0.5f;
      const int32_t zp = is_unsigned ? 128 : 3;
      std::vector<uint8_t> q(x.size());
      qk->quantize(x.data(), static_cast<int64_t>(x.size()), scale, zp, is_unsigned, q.data());
      for (size_t i = 0; i < x.size(); ++i)
        ASSERT_EQ(q[i], quantize_one(x[i], scale, zp, is_unsigned)) << qk->name << " x=" << x[i] << " i=" << i;
      std::vector<float> back(x.size());
      qk->dequantize(q.data(), static_cast<int64_t>(q.size()), scale, zp, is_unsigned, back.data());
      for (size_t i = 0; i < x.size(); ++i) {
        const int32_t v = is_unsigned ? q[i] : static_cast<int8_t>(q[i]);
        ASSERT_EQ(back[i], static_cast<float>(v - zp) * scale) << qk->name << " i=" << i;
      }
    }
  }
}

// One NaN, infinity or huge value among ordinary values far from ties, at every position of a
// 64-value block and its tail: the kernels that check a whole block at once must still see it.
TEST(QConvert, QuantizeFindsOneSpecialValueAnywhereInABlock) {
  const float specials[] = {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity(),
                            -std::numeric_limits<float>::infinity(), 3e9f, -3e9f};
  const float scale = 0.25f;
  for (float special : specials)
    for (int64_t n : {64, 100})
      for (int64_t at = 0; at < n; ++at) {
        std::vector<float> x(static_cast<size_t>(n));
        for (int64_t i = 0; i < n; ++i) x[static_cast<size_t>(i)] = scale * static_cast<float>(i % 40 - 20) + 0.01f;
        x[static_cast<size_t>(at)] = special;
        for (const QKernels* qk : available_qkernels())
          for (bool is_unsigned : {false, true}) {
            const int32_t zp = is_unsigned ? 128 : 0;
            std::vector<uint8_t> q(x.size());
            qk->quantize(x.data(), n, scale, zp, is_unsigned, q.data());
            for (size_t i = 0; i < x.size(); ++i)
              ASSERT_EQ(q[i], quantize_one(x[i], scale, zp, is_unsigned))
                  << qk->name << " special=" << special << " at=" << at << " i=" << i;
          }
      }
}

// Ordinary values (few of them near a tie, so most blocks take a fast path that multiplies by the
// reciprocal), beyond the int8 range, at odd lengths: exactly the division's result.
TEST(QConvert, QuantizeOrdinaryValuesAtOddLengths) {
  std::mt19937 rng(62);
  std::normal_distribution<float> nd(0.f, 1.f);
  for (float scale : {0.1f, 0.0371f, 1.f / 3.f, 7.3e-3f, 113.7f})
    for (int64_t n : {1, 15, 64, 65, 1037})
      for (bool is_unsigned : {false, true})
        for (int32_t zp : {is_unsigned ? 0 : -128, is_unsigned ? 128 : 3, is_unsigned ? 255 : 127}) {
          std::vector<float> x(static_cast<size_t>(n));
          for (float& v : x) v = nd(rng) * 150.f * scale;  // about 1 in 4 beyond the 8-bit range
          for (const QKernels* qk : available_qkernels()) {
            std::vector<uint8_t> q(x.size());
            qk->quantize(x.data(), n, scale, zp, is_unsigned, q.data());
            for (size_t i = 0; i < x.size(); ++i)
              ASSERT_EQ(q[i], quantize_one(x[i], scale, zp, is_unsigned))
                  << qk->name << " scale=" << scale << " zp=" << zp << " n=" << n << " x=" << x[i] << " i=" << i;
          }
        }
}

// Values at, next to and a few ulps from ties k + 0.5 of x / scale, for scales whose reciprocal is
// inexact, quantise exactly as the division defines (a kernel that multiplied by 1 / scale would
// round some of them the other way).
TEST(QConvert, QuantizeIsExactNearTies) {
  std::mt19937 rng(63);
  std::uniform_int_distribution<int> kd(-300, 300);
  std::normal_distribution<float> nd(0.f, 1.f);
  for (float scale : {0.5f, 0.1f, 0.0371f, 1.f / 3.f, 7.3e-3f, 3.3e-5f, 113.7f}) {
    // Blocks of 8 (one vector) of one kind: 0-3 ulps from a tie, 4-64 ulps, or ordinary values.
    std::vector<float> x;
    for (int block = 0; block < 3000; ++block)
      for (int lane = 0; lane < 8; ++lane) {
        if (block % 3 == 2) {
          x.push_back(nd(rng) * 200.f * scale);
          continue;
        }
        float v = (static_cast<float>(kd(rng)) + 0.5f) * scale;  // near a tie of x / scale
        const int ulps = block % 3 == 0 ? lane % 4 : 4 + (block * 8 + lane) % 61;
        const bool down = (block + lane) % 2 == 0;
        for (int u = 0; u < ulps; ++u) v = std::nextafter(v, down ? -1e30f : 1e30f);
        x.push_back(v);
      }
    for (const QKernels* qk : available_qkernels())
      for (bool is_unsigned : {false, true}) {
        const int32_t zp = is_unsigned ? 100 : -3;
        std::vector<uint8_t> q(x.size());
        qk->quantize(x.data(), static_cast<int64_t>(x.size()), scale, zp, is_unsigned, q.data());
        for (size_t i = 0; i < x.size(); ++i)
          ASSERT_EQ(q[i], quantize_one(x[i], scale, zp, is_unsigned))
              << qk->name << " scale=" << scale << " x=" << x[i] << " i=" << i;
      }
  }
}

}  // namespace
}  // namespace kiln::nn::kernels

namespace kiln::nn::kernels {
namespace {

// QAdd / QMul: every kernel set computes DQ(a) op DQ(b) -> Q exactly as the operator definitions
// chain them (float ops in the same order, round half to even), including the tail after the
// last full vector, mixed int8/uint8 operands and a Relu clamp.
TEST(QBinary, EveryKernelSetMatchesTheUnfusedFloatChain) {
  std::mt19937 rng(91);
  std::uniform_int_distribution<int> byte(0, 255);
  for (const QKernels* qk : available_qkernels()) {
    // 2000: enough values that a multiply-add contracted into an FMA would round one differently.
    for (int64_t n : {1, 7, 8, 9, 33, 100, 2000}) {
      for (int variant = 0; variant < 6; ++variant) {
        QBinaryParams p{0.031f, 0.017f, variant & 1 ? 0.02f : 0.0004f, 3, variant & 2 ? 140 : -7, variant & 1 ? -128 : 10,
                        variant & 1 ? -100 : -128, 127, (variant & 1) != 0, false, (variant & 2) != 0, false};
        if (variant >= 4) {  // quotients on and next to ties k + 0.5, with an inexact reciprocal 1 / 0.3
          p.a_scale = 0.15f;
          p.b_scale = 0.45f;
          p.y_scale = 0.3f;
          p.mul = variant == 5;
        }
        std::vector<uint8_t> a(static_cast<size_t>(n)), b(a.size()), got(a.size()), want(a.size());
        for (size_t i = 0; i < a.size(); ++i) {
          a[i] = static_cast<uint8_t>(byte(rng));
          b[i] = static_cast<uint8_t>(byte(rng));
        }
        qk->binary(a.data(), b.data(), n, p, got.data());
        for (size_t i = 0; i < a.size(); ++i) {
          const int32_t qa = static_cast<int8_t>(a[i]);
          const int32_t qb = p.b_unsigned ? b[i] : static_cast<int8_t>(b[i]);
          const float va = static_cast<float>(qa - p.a_zero) * p.a_scale;
          const float vb = static_cast<float>(qb - p.b_zero) * p.b_scale;
          float q = std::nearbyint((p.mul ? va * vb : va + vb) / p.y_scale) + static_cast<float>(p.y_zero);
          q = std::min(std::max(q, static_cast<float>(p.qmin)), static_cast<float>(p.qmax));
          want[i] = static_cast<uint8_t>(static_cast<int32_t>(q));
        }
        EXPECT_EQ(got, want) << qk->name << " n=" << n << " variant " << variant;
      }
    }
  }
}

}  // namespace
}  // namespace kiln::nn::kernels
