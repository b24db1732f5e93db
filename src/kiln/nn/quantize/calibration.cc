#include "kiln/nn/quantize/calibration.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace kiln::nn::quantize {

void TensorStats::observe_range(const float* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const float v = x[i];
    if (!std::isfinite(v)) continue;
    if (count_ == 0) min_ = max_ = v;
    min_ = std::min(min_, v);
    max_ = std::max(max_, v);
    ++count_;
  }
}

void TensorStats::start_histogram() {
  amax_ = std::max(std::fabs(min_), std::fabs(max_));
  hist_.assign(kBins, 0.0);
}

void TensorStats::observe_histogram(const float* x, int64_t n) {
  if (hist_.empty() || !(amax_ > 0.f)) return;
  const float w = amax_ / kBins;
  for (int64_t i = 0; i < n; ++i) {
    // Exact zeros (most of a Relu output) are represented exactly whatever the range; counting
    // them would let their spike dominate the KL divergence and pull the threshold down.
    if (!std::isfinite(x[i]) || x[i] == 0.f) continue;
    const int b = std::min(kBins - 1, static_cast<int>(std::fabs(x[i]) / w));
    hist_[b] += 1.0;
  }
}

namespace {

// KL(P || Q) where Q is P squeezed into `levels` bins and spread back over P's non-empty bins.
double kl_for_threshold(const std::vector<double>& hist, int i, int levels) {
  std::vector<double> p(hist.begin(), hist.begin() + i);
  for (size_t k = i; k < hist.size(); ++k) p[i - 1] += hist[k];  // outliers clip to the last bin
  std::vector<double> q(i, 0.0);
  for (int l = 0; l < levels; ++l) {
    const int b0 = static_cast<int>(static_cast<int64_t>(l) * i / levels);
    const int b1 = static_cast<int>(static_cast<int64_t>(l + 1) * i / levels);
    double sum = 0;
    int nonzero = 0;
    for (int k = b0; k < b1; ++k) {
      sum += hist[k];
      nonzero += hist[k] > 0;
    }
    if (nonzero == 0) continue;
    for (int k = b0; k < b1; ++k)
      if (hist[k] > 0) q[k] = sum / nonzero;
  }
  double ps = 0, qs = 0;
  for (int k = 0; k < i; ++k) {
    ps += p[k];
    qs += q[k];
  }
  if (ps <= 0 || qs <= 0) return std::numeric_limits<double>::infinity();
  double kl = 0;
  for (int k = 0; k < i; ++k) {
    if (p[k] <= 0) continue;
    const double pk = p[k] / ps;
    const double qk = q[k] > 0 ? q[k] / qs : 1e-12;
    kl += pk * std::log(pk / qk);
  }
  return kl;
}

}  // namespace

Range choose_range(const TensorStats& s, CalibrationMethod method) {
  Range r{std::min(s.min(), 0.f), std::max(s.max(), 0.f)};
  if (method == CalibrationMethod::kMinMax || s.histogram().empty() || !(s.abs_max() > 0.f)) return r;
  const std::vector<double>& h = s.histogram();
  const double bin = static_cast<double>(s.abs_max()) / TensorStats::kBins;
  float threshold = s.abs_max();
  if (method == CalibrationMethod::kPercentile) {
    double total = 0;
    for (double v : h) total += v;
    double acc = 0;
    for (int k = 0; k < TensorStats::kBins; ++k) {
      acc += h[k];
      if (acc >= total * 0.9999) {
        threshold = static_cast<float>((k + 1) * bin);
        break;
      }
    }
  } else {
    // One-sided data (after a Relu) has 256 levels on its side, two-sided data 128.
    const int levels = s.min() >= 0.f ? 256 : 128;
    double best = std::numeric_limits<double>::infinity();
    for (int i = levels; i <= TensorStats::kBins; i += 16) {
      const double kl = kl_for_threshold(h, i, levels);
      if (kl < best) {
        best = kl;
        threshold = static_cast<float>(i * bin);
      }
    }
  }
  r.lo = std::max(r.lo, -threshold);
  r.hi = std::min(r.hi, threshold);
  return r;
}

void asymmetric_int8(const Range& r, float* scale, int8_t* zero_point) {
  const float lo = std::min(r.lo, 0.f), hi = std::max(r.hi, 0.f);
  float s = (hi - lo) / 255.f;
  if (!(s > 0.f) || !std::isfinite(s)) s = 1.f;
  *scale = s;
  const float z = std::nearbyint(-128.f - lo / s);
  *zero_point = static_cast<int8_t>(std::min(127.f, std::max(-128.f, z)));
}

}  // namespace kiln::nn::quantize
