#include "kiln/control/fft.h"

#include <cmath>

namespace kiln::control {

Fft::Fft(int n) : n_(n), rev_(static_cast<size_t>(n)), tw_(static_cast<size_t>(n / 2)) {
  int bits = 0;
  while ((1 << bits) < n) ++bits;
  for (int i = 0; i < n; ++i) {
    int r = 0;
    for (int b = 0; b < bits; ++b)
      if (i & (1 << b)) r |= 1 << (bits - 1 - b);
    rev_[static_cast<size_t>(i)] = r;
  }
  for (int k = 0; k < n / 2; ++k) tw_[static_cast<size_t>(k)] = std::polar(1.0, -2.0 * M_PI * k / n);
}

void Fft::forward(std::complex<double>* x) const {
  for (int i = 0; i < n_; ++i) {
    int r = rev_[static_cast<size_t>(i)];
    if (r > i) std::swap(x[i], x[r]);
  }
  for (int len = 2; len <= n_; len <<= 1) {
    int half = len / 2, step = n_ / len;
    for (int i = 0; i < n_; i += len) {
      for (int k = 0; k < half; ++k) {
        std::complex<double> t = tw_[static_cast<size_t>(k * step)] * x[i + k + half];
        x[i + k + half] = x[i + k] - t;
        x[i + k] += t;
      }
    }
  }
}

BandEnergy::BandEnergy(int n, double sample_rate, std::vector<std::pair<double, double>> bands)
    : fft_(n), rate_(sample_rate), bands_(std::move(bands)), window_(static_cast<size_t>(n)), buf_(static_cast<size_t>(n)) {
  double sw2 = 0;
  for (int i = 0; i < n; ++i) {
    double w = 0.5 - 0.5 * std::cos(2.0 * M_PI * i / n);  // periodic Hann
    window_[static_cast<size_t>(i)] = w;
    sw2 += w * w;
  }
  // Parseval: sum_k |X_k|^2 = n * sum_t |w_t x_t|^2; one-sided, so twice the positive bins.
  norm_ = 2.0 / (static_cast<double>(n) * sw2);
  const double df = sample_rate / n;
  for (const auto& [lo, hi] : bands_) {
    int a = static_cast<int>(std::ceil(lo / df - 1e-9));
    int b = static_cast<int>(std::ceil(hi / df - 1e-9));
    if (a < 1) a = 1;  // the DC bin is the mean, not vibration
    if (b > n / 2 + 1) b = n / 2 + 1;
    if (b < a) b = a;
    bins_.emplace_back(a, b);
  }
}

double BandEnergy::compute(const float* x, float* out) {
  const int n = fft_.size();
  double mean = 0, ms = 0;
  for (int i = 0; i < n; ++i) mean += x[i];
  mean /= n;
  for (int i = 0; i < n; ++i) {
    double v = x[i] - mean;
    ms += v * v;
    buf_[static_cast<size_t>(i)] = {v * window_[static_cast<size_t>(i)], 0.0};
  }
  fft_.forward(buf_.data());
  for (size_t b = 0; b < bins_.size(); ++b) {
    double e = 0;
    for (int k = bins_[b].first; k < bins_[b].second; ++k) {
      double p = std::norm(buf_[static_cast<size_t>(k)]);
      // The Nyquist bin has no mirror image: count it once.
      e += (k == n / 2) ? 0.5 * p : p;
    }
    out[b] = static_cast<float>(e * norm_);
  }
  return std::sqrt(ms / n);
}

}  // namespace kiln::control
