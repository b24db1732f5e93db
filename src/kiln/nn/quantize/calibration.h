// kiln/nn/quantize/calibration.h — activation statistics and the range each method chooses
// (internal to the quantiser, quantizer.h).
//
//   TensorStats s;
//   s.observe_range(values, n);            // pass 1: min / max
//   s.start_histogram();                   // percentile / entropy need pass 2
//   s.observe_histogram(values, n);
//   Range r = choose_range(s, CalibrationMethod::kEntropy);
#pragma once

#include <cstdint>
#include <vector>

namespace kiln::nn::quantize {

enum class CalibrationMethod { kMinMax, kPercentile, kEntropy };

struct Range {
  float lo = 0.f, hi = 0.f;
};

class TensorStats {
 public:
  static constexpr int kBins = 2048;
  void observe_range(const float* x, int64_t n);
  // Histogram of |x| over [0, max(|min|, |max|)] (call after every observe_range()).
  void start_histogram();
  void observe_histogram(const float* x, int64_t n);
  float min() const { return min_; }
  float max() const { return max_; }
  bool seen() const { return count_ > 0; }
  const std::vector<double>& histogram() const { return hist_; }
  float abs_max() const { return amax_; }

 private:
  float min_ = 0.f, max_ = 0.f, amax_ = 0.f;
  int64_t count_ = 0;
  std::vector<double> hist_;
};

// The real range [lo, hi] (always containing 0) to map onto int8: the observed extremes (minmax),
// the 99.99th percentile of |x| (percentile), or the clipping threshold that minimises the KL
// divergence between the float and the quantised distributions (entropy, as TensorRT does).
Range choose_range(const TensorStats& s, CalibrationMethod method);

// Asymmetric int8 parameters for a range: scale = (hi - lo) / 255, zero point in [-128, 127].
void asymmetric_int8(const Range& r, float* scale, int8_t* zero_point);

}  // namespace kiln::nn::quantize
