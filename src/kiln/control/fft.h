// kiln/control/fft.h — spectral features for control loops: a radix-2 FFT planned once, and the
// energy of a signal in frequency bands (vibration monitoring: shaft harmonics, bearing tones).
//
// The plan allocates its twiddles, window and scratch at construction; compute() allocates nothing.
//
//   kiln::control::BandEnergy be(/*n=*/256, /*sample_rate=*/1000, {{0, 40}, {40, 120}, {120, 500}});
//   float x[256] = {...};
//   float out[3];
//   be.compute(x, out);    // mean-square power of x in each band (Hann window, Parseval-scaled)
#pragma once

#include <complex>
#include <utility>
#include <vector>

namespace kiln::control {

// In-place complex FFT of a power-of-two size.
class Fft {
 public:
  explicit Fft(int n);
  int size() const { return n_; }
  void forward(std::complex<double>* x) const;  // real-time safe

 private:
  int n_;
  std::vector<int> rev_;
  std::vector<std::complex<double>> tw_;
};

class BandEnergy {
 public:
  // Bands in Hz, [low, high). n must be a power of two in 8..65536 (checked by the caller).
  BandEnergy(int n, double sample_rate, std::vector<std::pair<double, double>> bands);
  int size() const { return fft_.size(); }
  int bands() const { return static_cast<int>(bands_.size()); }
  // x: n samples, oldest first. out: one value per band — the signal's mean-square power in that
  // band, so a sine of amplitude A inside a band gives A^2/2. Also returns the window's RMS.
  double compute(const float* x, float* out);

 private:
  Fft fft_;
  double rate_;
  std::vector<std::pair<int, int>> bins_;  // [first, last) FFT bins of each band
  std::vector<std::pair<double, double>> bands_;
  std::vector<double> window_;
  double norm_ = 1;
  std::vector<std::complex<double>> buf_;
};

}  // namespace kiln::control
