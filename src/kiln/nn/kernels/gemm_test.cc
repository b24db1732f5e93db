// Differential tests: every GEMM micro-kernel this CPU can run against gemm_reference(), at tile
// edges and odd sizes, with every epilogue.
#include "kiln/nn/kernels/gemm.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <span>

#include "kiln/core/cpu_features.h"
#include "kiln/core/thread_pool.h"
#include "kiln/nn/kernels/internal/tile_split.h"

namespace kiln::nn::kernels {
namespace {

std::vector<float> random_vector(size_t n, std::mt19937& rng, float scale = 1.f) {
  std::normal_distribution<float> d(0.f, scale);
  std::vector<float> v(n);
  for (float& x : v) x = d(rng);
  return v;
}

void expect_close(const std::vector<float>& got, const std::vector<float>& want, int64_t m, int64_t n, int64_t ld,
                  int64_t k, const std::string& what) {
  int bad = 0;
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      float g = got[i * ld + j], w = want[i * ld + j];
      float tol = 1e-5f * std::sqrt(static_cast<float>(k) + 1) * (1 + std::fabs(w)) + 1e-5f;
      if (!(std::fabs(g - w) <= tol) && bad++ < 3)
        ADD_FAILURE() << what << " at (" << i << ", " << j << "): got " << g << ", want " << w;
    }
  EXPECT_EQ(bad, 0) << what;
}

std::string config_list() {
  std::string s;
  for (const GemmConfig* c : available_gemm_configs()) s += std::string(c->name) + " ";
  return s;
}

TEST(Gemm, AllConfigsMatchReferenceAtTileEdges) {
  std::mt19937 rng(3);
  SCOPED_TRACE("configs: " + config_list());
  for (const GemmConfig* cfg : available_gemm_configs()) {
    const int mr = cfg->mr, nr = cfg->nr;
    for (int64_t m : {int64_t{1}, int64_t(mr - 1), int64_t(mr), int64_t(mr + 1), int64_t(2 * mr + 3)}) {
      for (int64_t n : {int64_t{1}, int64_t(nr - 1), int64_t(nr), int64_t(nr + 1), int64_t(3 * nr + 5)}) {
        for (int64_t k : {1, 7, 64, 131}) {
          if (m < 1 || n < 1) continue;
          const int64_t lda = k + 3, ldc = n + 2;
          auto a = random_vector(m * lda, rng);
          auto w = random_vector(k * n, rng);
          auto bias = random_vector(n, rng);
          auto resid = random_vector(m * ldc, rng);
          for (Activation act : {Activation::kNone, Activation::kRelu, Activation::kClip, Activation::kHardSwish,
                                 Activation::kSigmoid, Activation::kSilu, Activation::kLeakyRelu,
                                 Activation::kHardSigmoid}) {
            GemmParams p;
            p.act = act;
            p.lo = -0.5f;
            p.hi = 2.f;
            p.alpha = act == Activation::kHardSigmoid ? 0.2f : 0.1f;
            p.beta = 0.5f;
            const bool with_residual = act == Activation::kRelu || act == Activation::kNone;
            if (with_residual) {
              p.residual = resid.data();
              p.ld_residual = ldc;
            }
            std::vector<float> want(m * ldc, -7.f), got(m * ldc, -7.f);
            gemm_reference(m, n, k, a.data(), lda, w.data(), n, bias.data(), want.data(), ldc, p);
            PackedWeights pw = pack_weights(*cfg, w.data(), k, n, n, false, bias.data());
            gemm(*cfg, m, a.data(), lda, pw, got.data(), ldc, p, nullptr);
            expect_close(got, want, m, n, ldc, k,
                         std::string(cfg->name) + " m=" + std::to_string(m) + " n=" + std::to_string(n) + " k=" +
                             std::to_string(k) + " act=" + activation_name(act) + (with_residual ? " +residual" : ""));
            // Columns past N (the padding of ldc) are never written.
            for (int64_t i = 0; i < m; ++i)
              for (int64_t j = n; j < ldc; ++j) ASSERT_EQ(got[i * ldc + j], -7.f);
          }
        }
      }
    }
  }
}

TEST(Gemm, TransposedWeightsPackTheSame) {
  std::mt19937 rng(5);
  const GemmConfig& cfg = gemm_config();
  const int64_t k = 19, n = 37;
  auto w = random_vector(k * n, rng);
  std::vector<float> wt(n * k);
  for (int64_t i = 0; i < k; ++i)
    for (int64_t j = 0; j < n; ++j) wt[j * k + i] = w[i * n + j];
  PackedWeights a = pack_weights(cfg, w.data(), k, n, n, false, nullptr);
  PackedWeights b = pack_weights(cfg, wt.data(), k, n, k, true, nullptr);
  ASSERT_EQ(a.data.byte_size(), b.data.byte_size());
  EXPECT_EQ(0, std::memcmp(a.data.raw(), b.data.raw(), a.data.byte_size()));
}

TEST(Igemm, AllConfigsMatchReferenceWithPaddingRows) {
  std::mt19937 rng(9);
  for (const GemmConfig* cfg : available_gemm_configs()) {
    for (int64_t m : {int64_t{1}, int64_t(cfg->mr), int64_t(2 * cfg->mr + 1)}) {
      for (int64_t ks : {1, 4, 9}) {
        for (int64_t kc : {1, 5, 16}) {
          const int64_t n = cfg->nr + 3, k = ks * kc, rows = 11;
          // The zero row and a pool of input rows in one buffer, the rows 64 floats past the
          // zero row: a shifted row pointer (below) can then never equal the zero row's address,
          // which the kernels use as the "padding tap" sentinel.
          std::vector<float> storage(kc + 64 + rows * kc, 0.f);
          const auto pool_rows = random_vector(rows * kc, rng);
          std::copy(pool_rows.begin(), pool_rows.end(), storage.begin() + kc + 64);
          const std::span<float> zero(storage.data(), kc);
          const float* src_rows = storage.data() + kc + 64;
          auto w = random_vector(k * n, rng);
          // Build the dense A (m x k) and the indirection buffer that describes it.
          const int64_t blocks = (m + cfg->mr - 1) / cfg->mr;
          std::vector<const float*> ptrs(blocks * ks * cfg->mr);
          std::vector<float> a(m * k);
          std::uniform_int_distribution<int> pick(-1, static_cast<int>(rows) - 1);
          // a_offset is exercised by storing pointers shifted back by 64 bytes.
          const ptrdiff_t offset = 64;
          for (int64_t i = 0; i < blocks * cfg->mr; ++i)
            for (int64_t s = 0; s < ks; ++s) {
              int r = pick(rng);
              const float* row = r < 0 ? zero.data() : src_rows + r * kc;
              int64_t rb = i / cfg->mr, ii = i % cfg->mr;
              ptrs[(rb * ks + s) * cfg->mr + ii] =
                  r < 0 ? zero.data() : reinterpret_cast<const float*>(reinterpret_cast<const char*>(row) - offset);
              if (i < m)
                for (int64_t c = 0; c < kc; ++c) a[i * k + s * kc + c] = row[c];
            }
          GemmParams p;
          p.act = Activation::kRelu;
          std::vector<float> want(m * n), got(m * n);
          gemm_reference(m, n, k, a.data(), k, w.data(), n, nullptr, want.data(), n, p);
          PackedWeights pw = pack_weights(*cfg, w.data(), k, n, n, false, nullptr);
          igemm(*cfg, m, ks, kc, ptrs.data(), offset, zero.data(), pw, got.data(), n, p, nullptr);
          expect_close(got, want, m, n, n, k,
                       std::string(cfg->name) + " igemm m=" + std::to_string(m) + " ks=" + std::to_string(ks) +
                           " kc=" + std::to_string(kc));
        }
      }
    }
  }
}

TEST(Gemm, ThreadedMatchesSingleThreaded) {
  std::mt19937 rng(11);
  const GemmConfig& cfg = gemm_config();
  ThreadPool pool(3);
  for (int64_t m : {1, 5, 100}) {  // 1 and 5: fewer row blocks than threads, split by panels
    const int64_t n = 200, k = 33;
    auto a = random_vector(m * k, rng), w = random_vector(k * n, rng);
    PackedWeights pw = pack_weights(cfg, w.data(), k, n, n, false, nullptr);
    GemmParams p;
    std::vector<float> one(m * n), many(m * n);
    gemm(cfg, m, a.data(), k, pw, one.data(), n, p, nullptr);
    gemm(cfg, m, a.data(), k, pw, many.data(), n, p, &pool);
    EXPECT_EQ(one, many) << "m=" << m;
  }
}

// Weights bigger than half of L2 are visited one panel group at a time (tile_split.h): the result
// must not depend on that order, with or without threads.
TEST(Gemm, PanelGroupsOfLargeWeightsMatchReference) {
  std::mt19937 rng(12);
  ThreadPool pool(2);
  for (const GemmConfig* cfg : available_gemm_configs()) {
    const int64_t k = cpu_features().l2_bytes / 2 / (cfg->nr * int64_t{sizeof(float)}) + 5;
    const int64_t n = 3 * cfg->nr + 1;
    // Fewer rows than columns: threads split the panels; more: they split the row blocks.
    for (int64_t m : {int64_t(2 * cfg->mr + 1), int64_t(5 * cfg->nr + 3)}) {
      auto a = random_vector(m * k, rng), w = random_vector(k * n, rng, 0.05f), bias = random_vector(n, rng);
      PackedWeights pw = pack_weights(*cfg, w.data(), k, n, n, false, bias.data());
      ASSERT_LT(panels_per_group(pw.panels(), pw.panel_stride * int64_t{sizeof(float)}), pw.panels());
      GemmParams p;
      p.act = Activation::kRelu;
      std::vector<float> want(m * n), one(m * n), many(m * n);
      gemm_reference(m, n, k, a.data(), k, w.data(), n, bias.data(), want.data(), n, p);
      gemm(*cfg, m, a.data(), k, pw, one.data(), n, p, nullptr);
      gemm(*cfg, m, a.data(), k, pw, many.data(), n, p, &pool);
      expect_close(one, want, m, n, n, k, std::string(cfg->name) + " m=" + std::to_string(m));
      EXPECT_EQ(one, many) << cfg->name << " m=" << m;
    }
  }
}

}  // namespace
}  // namespace kiln::nn::kernels
