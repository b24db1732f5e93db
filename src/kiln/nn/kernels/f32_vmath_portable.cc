// Row operations and transcendental functions in portable C++ (std:: math functions).
#include <algorithm>
#include <cmath>

#include "kiln/nn/kernels/vmath.h"

namespace kiln::nn::kernels {
namespace {

void softmax(const float* x, float* y, int64_t rows, int64_t cols, bool log) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * cols;
    float* yr = y + r * cols;
    float m = -INFINITY;
    for (int64_t c = 0; c < cols; ++c) m = std::max(m, xr[c]);
    double sum = 0;
    for (int64_t c = 0; c < cols; ++c) sum += std::exp(static_cast<double>(xr[c] - m));
    if (log) {
      const float ls = static_cast<float>(std::log(sum));
      for (int64_t c = 0; c < cols; ++c) yr[c] = xr[c] - m - ls;
    } else {
      const double inv = 1.0 / sum;
      for (int64_t c = 0; c < cols; ++c) yr[c] = static_cast<float>(std::exp(static_cast<double>(xr[c] - m)) * inv);
    }
  }
}

void layernorm(const float* x, const float* gamma, const float* beta, float eps, float* y, int64_t rows,
               int64_t cols) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * cols;
    float* yr = y + r * cols;
    double mean = 0;
    for (int64_t c = 0; c < cols; ++c) mean += xr[c];
    mean /= static_cast<double>(cols);
    double var = 0;
    for (int64_t c = 0; c < cols; ++c) var += (xr[c] - mean) * (xr[c] - mean);
    var /= static_cast<double>(cols);
    const float inv = static_cast<float>(1.0 / std::sqrt(var + eps));
    const float mu = static_cast<float>(mean);
    for (int64_t c = 0; c < cols; ++c) yr[c] = (xr[c] - mu) * inv * gamma[c] + (beta ? beta[c] : 0.f);
  }
}

void sigmoid(const float* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = 1.f / (1.f + std::exp(-x[i]));
}

void vtanh(const float* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = std::tanh(x[i]);
}

void gelu(const float* x, float* y, int64_t n, bool tanh_approx) {
  for (int64_t i = 0; i < n; ++i) {
    const float v = x[i];
    if (tanh_approx) y[i] = 0.5f * v * (1.f + std::tanh(0.7978845608028654f * (v + 0.044715f * v * v * v)));
    else y[i] = 0.5f * v * (1.f + std::erf(v * 0.7071067811865476f));
  }
}

}  // namespace

const VectorMath kF32VectorMathPortable = {"f32_vmath_portable", softmax, layernorm, sigmoid, vtanh, gelu};

}  // namespace kiln::nn::kernels
