// The activation ranges each calibration method chooses, and the int8 parameters of a range.
#include "kiln/nn/quantize/calibration.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <random>
#include <vector>

namespace kiln::nn::quantize {
namespace {

TensorStats stats_of(const std::vector<float>& v) {
  TensorStats s;
  s.observe_range(v.data(), static_cast<int64_t>(v.size()));
  s.start_histogram();
  s.observe_histogram(v.data(), static_cast<int64_t>(v.size()));
  return s;
}

std::vector<float> normal_with_outlier(float outlier) {
  std::mt19937 rng(1);
  std::normal_distribution<float> d(0.f, 1.f);
  std::vector<float> v(200000);
  for (float& x : v) x = d(rng);
  v[17] = outlier;
  return v;
}

TEST(Calibration, MinMaxKeepsTheExtremesAndZero) {
  const TensorStats s = stats_of({0.5f, 2.f, 1.f});
  const Range r = choose_range(s, CalibrationMethod::kMinMax);
  EXPECT_EQ(r.lo, 0.f);  // zero must be representable exactly
  EXPECT_EQ(r.hi, 2.f);
}

TEST(Calibration, PercentileAndEntropyClipARareOutlier) {
  const TensorStats s = stats_of(normal_with_outlier(1000.f));
  const Range mm = choose_range(s, CalibrationMethod::kMinMax);
  const Range pc = choose_range(s, CalibrationMethod::kPercentile);
  const Range en = choose_range(s, CalibrationMethod::kEntropy);
  EXPECT_EQ(mm.hi, 1000.f);
  EXPECT_LT(pc.hi, 20.f);
  EXPECT_GT(pc.hi, 3.f);
  EXPECT_LT(en.hi, 100.f);
  EXPECT_GT(en.hi, 2.f);
  EXPECT_LT(en.lo, -2.f);  // the negative side is clipped by the same threshold, not erased
}

TEST(Calibration, AsymmetricInt8Parameters) {
  float scale = 0;
  int8_t zp = 0;
  asymmetric_int8({0.f, 2.55f}, &scale, &zp);
  EXPECT_FLOAT_EQ(scale, 0.01f);
  EXPECT_EQ(zp, -128);
  asymmetric_int8({-1.f, 1.f}, &scale, &zp);
  EXPECT_FLOAT_EQ(scale, 2.f / 255.f);
  EXPECT_LE(std::abs(zp), 1);  // -128 + 127.5: float rounding decides between -1 and 0
  asymmetric_int8({0.f, 0.f}, &scale, &zp);  // a constant-zero tensor still gets a usable scale
  EXPECT_GT(scale, 0.f);
}

}  // namespace
}  // namespace kiln::nn::quantize
