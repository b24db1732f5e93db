// Differential tests of the int16-activation convolution kernels (qs16_conv.h): every kernel set
// this CPU can run against the reference loops, bit for bit, at tile and panel edges, odd tap
// lengths, extreme int16 values, both int8 signednesses with clamps and float output; and the
// int16 QuantizeLinear kernels against the reference formula.
#include "kiln/nn/kernels/qs16_conv.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <string>

#include "kiln/nn/kernels/qgemm.h"

namespace kiln::nn::kernels {
namespace {

struct Case {
  int64_t rows, ks, kc, n, tap_stride;
};

// Runs one case on every kernel set, int8 (signed and unsigned, clamped) and float outputs.
void check(const Case& cs, std::mt19937& rng, bool extreme) {
  const int64_t k = cs.ks * cs.kc;
  std::uniform_int_distribution<int> wd(extreme ? -128 : -90, extreme ? 127 : 90);
  std::uniform_int_distribution<int> xd(extreme ? -32768 : -3000, extreme ? 32767 : 3000);
  std::vector<int8_t> w(static_cast<size_t>(k * cs.n));
  for (auto& v : w) v = static_cast<int8_t>(wd(rng));
  if (extreme)  // the largest sums a column can reach
    for (int64_t i = 0; i < k; ++i) w[static_cast<size_t>(i * cs.n)] = -128;
  std::vector<int32_t> bias(static_cast<size_t>(cs.n));
  std::vector<float> scale(static_cast<size_t>(cs.n));
  for (int64_t j = 0; j < cs.n; ++j) {
    bias[static_cast<size_t>(j)] = std::uniform_int_distribution<int>(-5000, 5000)(rng);
    scale[static_cast<size_t>(j)] = (extreme ? 1e-6f : 2e-4f) * static_cast<float>(1 + j % 7);
  }
  const int32_t zp = extreme ? 0 : std::uniform_int_distribution<int>(-2000, 2000)(rng);
  ASSERT_TRUE(q16_sums_fit(w.data(), k, cs.n, bias.data(), zp));
  // Row r's taps start at 3 r (overlapping windows, as in a convolution); one value of slack.
  std::vector<int64_t> offsets(static_cast<size_t>(cs.rows));
  for (int64_t r = 0; r < cs.rows; ++r) offsets[static_cast<size_t>(r)] = 3 * r;
  std::vector<int16_t> x(static_cast<size_t>(3 * cs.rows + cs.ks * cs.tap_stride + 1));
  for (auto& v : x) v = static_cast<int16_t>(xd(rng));
  if (extreme) std::fill(x.begin(), x.begin() + static_cast<std::ptrdiff_t>(x.size() / 2), int16_t{-32768});
  const Q16Rows a{x.data(), offsets.data(), cs.tap_stride};
  const Q16PackedWeights pw = pack_q16weights(w.data(), cs.ks, cs.kc, cs.n, bias.data(), scale.data(), zp);
  const QParams outs[] = {int8_output(3, false, -128, 127), int8_output(130, true, 130, 250),
                          int8_output(-20, false, -20, 100), float_output(-3.4e38f, 3.4e38f), float_output(0.f, 2.5f)};
  for (const QParams& p : outs) {
    const size_t es = p.out == QOutput::kFloat ? 4 : 1, ldc = static_cast<size_t>(cs.n + 3);
    std::vector<uint8_t> want(static_cast<size_t>(cs.rows) * ldc * es, 0xAB);
    q16conv_reference(a, cs.ks, cs.kc, cs.n, w.data(), bias.data(), scale.data(), zp, 0, cs.rows, want.data(),
                      static_cast<int64_t>(ldc), p);
    for (const Q16Kernels* kern : available_q16kernels()) {
      std::vector<uint8_t> got(want.size(), 0xAB);
      // Two calls that split the rows: row ranges must not depend on each other.
      const int64_t mid = cs.rows / 3;
      kern->conv(a, pw.view(), 0, mid, got.data(), static_cast<int64_t>(ldc), p);
      kern->conv(a, pw.view(), mid, cs.rows, got.data(), static_cast<int64_t>(ldc), p);
      EXPECT_EQ(0, std::memcmp(want.data(), got.data(), want.size()))
          << kern->name << " rows " << cs.rows << " ks " << cs.ks << " kc " << cs.kc << " n " << cs.n
          << " out " << static_cast<int>(p.out) << " extreme " << extreme;
    }
  }
}

TEST(Q16Conv, EveryKernelSetMatchesReference) {
  std::mt19937 rng(7);
  for (const Case& c : {Case{1, 1, 1, 1, 5}, Case{7, 3, 3, 8, 40}, Case{8, 10, 4, 64, 24}, Case{9, 2, 9, 33, 50},
                        Case{125, 10, 4, 64, 24}, Case{17, 7, 21, 40, 70}, Case{30, 1, 2, 96, 4}})
    for (bool extreme : {false, true}) check(c, rng, extreme);
}

TEST(Q16Conv, SumsThatCouldOverflowAreRefused) {
  // 512 weights of -128 against -32768: 2^31, one past int32.
  std::vector<int8_t> w(512, -128);
  EXPECT_FALSE(q16_sums_fit(w.data(), 512, 1, nullptr, 0));
  EXPECT_TRUE(q16_sums_fit(w.data(), 511, 1, nullptr, 0));
  // The zero point's correction counts too.
  EXPECT_FALSE(q16_sums_fit(w.data(), 511, 1, nullptr, 20000));
}

TEST(Q16Quantize, EveryKernelSetMatchesTheReferenceFormula) {
  std::vector<float> x = {0.f, 0.5f, 1.5f, 2.5f, -0.5f, -1.5f, 1e9f, -1e9f, std::numeric_limits<float>::infinity(),
                          -std::numeric_limits<float>::infinity(), std::nanf(""), 3.2767e4f, -3.2768e4f, 123.456f};
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> d(-80.f, 40.f);
  for (int i = 0; i < 20000; ++i) x.push_back(d(rng));  // enough for x / s and x * (1 / s) to round apart
  for (const float scale : {1.f, 0.0010478497f, 3.7e-3f})
    for (const int32_t zp : {0, 17347, -32768}) {
      std::vector<int16_t> want(x.size());
      for (size_t i = 0; i < x.size(); ++i) {
        const float v = std::nearbyint(x[i] / scale) + static_cast<float>(zp);
        want[i] = std::isnan(v) ? 0 : static_cast<int16_t>(std::min(std::max(v, -32768.f), 32767.f));
      }
      for (const Q16Kernels* kern : available_q16kernels())
        for (size_t n : {x.size(), size_t{5}, size_t{16}, size_t{17}}) {
          std::vector<int16_t> got(x.size(), 0x5A5A);
          kern->quantize(x.data(), static_cast<int64_t>(n), scale, zp, got.data());
          for (size_t i = 0; i < n; ++i)
            ASSERT_EQ(want[i], got[i]) << kern->name << " x " << x[i] << " scale " << scale << " zp " << zp;
          for (size_t i = n; i < x.size(); ++i) ASSERT_EQ(got[i], 0x5A5A) << kern->name << " wrote past n";
        }
    }
}

}  // namespace
}  // namespace kiln::nn::kernels
