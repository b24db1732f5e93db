// Differential tests: every NHWC window kernel this CPU can run against the plain references, at
// vector-width edges of the channel count, with strides, dilations and asymmetric padding.
#include "kiln/nn/kernels/window.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

namespace kiln::nn::kernels {
namespace {

std::vector<float> random_vector(size_t n, std::mt19937& rng) {
  std::normal_distribution<float> d(0.f, 1.f);
  std::vector<float> v(n);
  for (float& x : v) x = d(rng);
  return v;
}

struct Geometry {
  int64_t h, w, kh, kw, sh, sw, dh, dw, pt, pl, pb, pr;
};

Window2d make(const Geometry& g, int64_t batch, int64_t c) {
  Window2d s;
  s.batch = batch;
  s.in_h = g.h;
  s.in_w = g.w;
  s.channels = c;
  s.kernel_h = g.kh;
  s.kernel_w = g.kw;
  s.stride_h = g.sh;
  s.stride_w = g.sw;
  s.dilation_h = g.dh;
  s.dilation_w = g.dw;
  s.pad_top = g.pt;
  s.pad_left = g.pl;
  s.pad_bottom = g.pb;
  s.pad_right = g.pr;
  s.out_h = (g.h + g.pt + g.pb - (g.dh * (g.kh - 1) + 1)) / g.sh + 1;
  s.out_w = (g.w + g.pl + g.pr - (g.dw * (g.kw - 1) + 1)) / g.sw + 1;
  return s;
}

const Geometry kGeometries[] = {
    {7, 6, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1},  // same padding
    {9, 8, 3, 3, 2, 2, 1, 1, 0, 1, 1, 0},  // stride 2, asymmetric pads
    {8, 8, 5, 5, 1, 2, 1, 1, 2, 2, 2, 2},
    {10, 9, 3, 3, 1, 1, 2, 2, 2, 2, 2, 2},  // dilation 2
    {5, 12, 1, 7, 1, 1, 1, 1, 0, 3, 0, 3},  // 1 x 7
    {4, 4, 3, 3, 2, 2, 1, 1, 0, 0, 1, 1},   // window past the input on the bottom/right
    {5, 21, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1},  // wide rows: several interior quads, stride 1
    {6, 23, 3, 3, 2, 2, 1, 1, 0, 1, 1, 0},  // wide rows, stride 2, asymmetric pads
    {4, 19, 3, 3, 1, 2, 1, 1, 0, 0, 0, 0},  // stride 1 down, 2 across, no padding
    {7, 21, 5, 5, 1, 1, 1, 1, 2, 2, 2, 2},  // wide rows, 5x5, stride 1
    {7, 27, 5, 5, 2, 2, 1, 1, 1, 2, 2, 1},  // wide rows, 5x5, stride 2, asymmetric pads
};

TEST(WindowKernels, DepthwiseMatchesReference) {
  std::mt19937 rng(21);
  for (const WindowKernels* k : available_window_kernels()) {
    for (const Geometry& g : kGeometries) {
      for (int64_t c : {1, 7, 8, 9, 15, 16, 17, 24, 31, 32, 33, 48, 70, 96}) {
        Window2d s = make(g, 2, c);
        auto x = random_vector(s.batch * s.in_h * s.in_w * c, rng);
        auto wraw = random_vector(c * g.kh * g.kw, rng);
        auto bias = random_vector(c, rng);
        std::vector<float> w = pack_depthwise(wraw.data(), bias.data(), c, g.kh, g.kw);
        const int64_t out = s.batch * s.out_h * s.out_w * c;
        auto resid = random_vector(out, rng);
        for (int variant = 0; variant < 3; ++variant) {
          const bool with_residual = variant == 1;
          GemmParams p;
          p.act = variant == 0 ? Activation::kClip : variant == 1 ? Activation::kRelu : Activation::kSilu;
          p.lo = -1.f;
          p.hi = 1.5f;
          std::vector<float> want(out), got(out + 8, 123.f);
          const float* r = with_residual ? resid.data() : nullptr;
          dwconv_reference(s, x.data(), w.data(), r, p, want.data());
          k->dwconv(s, x.data(), w.data(), r, p, got.data(), 0, s.batch * s.out_h);
          for (int64_t i = 0; i < out; ++i)
            ASSERT_NEAR(got[i], want[i], 1e-4f * (1 + std::fabs(want[i])))
                << k->name << " c=" << c << " kernel " << g.kh << "x" << g.kw << " stride " << g.sh << " at " << i;
          for (int i = 0; i < 8; ++i) ASSERT_EQ(got[out + i], 123.f) << "wrote past the output";
        }
      }
    }
  }
}

TEST(WindowKernels, PoolingMatchesReference) {
  std::mt19937 rng(22);
  for (const WindowKernels* k : available_window_kernels()) {
    for (const Geometry& g : kGeometries) {
      for (int64_t c : {1, 5, 8, 17, 32, 40}) {
        Window2d s = make(g, 1, c);
        auto x = random_vector(s.in_h * s.in_w * c, rng);
        const int64_t out = s.out_h * s.out_w * c;
        for (PoolKind kind : {PoolKind::kMax, PoolKind::kAverageIncludePad, PoolKind::kAverageExcludePad}) {
          std::vector<float> want(out), got(out);
          pool_reference(s, kind, x.data(), want.data());
          k->pool(s, kind, x.data(), got.data(), 0, s.out_h);
          for (int64_t i = 0; i < out; ++i)
            ASSERT_NEAR(got[i], want[i], 1e-5f * (1 + std::fabs(want[i])))
                << k->name << " kind " << static_cast<int>(kind) << " c=" << c << " at " << i;
        }
      }
    }
  }
}

TEST(WindowKernels, GlobalAverageMatchesMean) {
  std::mt19937 rng(23);
  for (const WindowKernels* k : available_window_kernels()) {
    for (int64_t c : {1, 8, 13, 32, 45}) {
      const int64_t n = 2, hw = 49;
      auto x = random_vector(n * hw * c, rng);
      std::vector<float> got(n * c);
      k->global_avg(n, hw, c, x.data(), got.data());
      for (int64_t b = 0; b < n; ++b)
        for (int64_t ch = 0; ch < c; ++ch) {
          double sum = 0;
          for (int64_t i = 0; i < hw; ++i) sum += x[(b * hw + i) * c + ch];
          ASSERT_NEAR(got[b * c + ch], sum / hw, 1e-5) << k->name;
        }
    }
  }
}

}  // namespace
}  // namespace kiln::nn::kernels
