// Differential tests: every vector-math implementation against plain double-precision loops.
#include "kiln/nn/kernels/vmath.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

namespace kiln::nn::kernels {
namespace {

std::vector<float> inputs(size_t n, float scale, std::mt19937& rng) {
  std::normal_distribution<float> d(0.f, scale);
  std::vector<float> v(n);
  for (float& x : v) x = d(rng);
  return v;
}

TEST(VectorMath, ElementwiseFunctionsAreAccurate) {
  std::mt19937 rng(41);
  for (const VectorMath* vm : available_vector_math()) {
    for (int64_t n : {1, 7, 8, 9, 100}) {
      for (float scale : {0.01f, 0.3f, 3.f, 30.f}) {
        auto x = inputs(n, scale, rng);
        std::vector<float> y(n + 4, 99.f);
        vm->sigmoid(x.data(), y.data(), n);
        for (int64_t i = 0; i < n; ++i)
          ASSERT_NEAR(y[i], 1.0 / (1.0 + std::exp(-double(x[i]))), 2e-7 + 1e-6 * y[i]) << vm->name << " sigmoid";
        vm->tanh(x.data(), y.data(), n);
        for (int64_t i = 0; i < n; ++i) {
          double want = std::tanh(double(x[i]));
          ASSERT_NEAR(y[i], want, 1e-6 * std::fabs(want) + 1e-9) << vm->name << " tanh(" << x[i] << ")";
        }
        for (bool approx : {false, true}) {
          vm->gelu(x.data(), y.data(), n, approx);
          for (int64_t i = 0; i < n; ++i) {
            double v = x[i];
            double want = approx ? 0.5 * v * (1 + std::tanh(0.7978845608028654 * (v + 0.044715 * v * v * v)))
                                 : 0.5 * v * (1 + std::erf(v / std::sqrt(2.0)));
            ASSERT_NEAR(y[i], want, 2e-6 * (1 + std::fabs(want))) << vm->name << " gelu";
          }
        }
        for (int i = 0; i < 4; ++i) ASSERT_EQ(y[n + i], 99.f) << "wrote past the end";
      }
    }
  }
}

TEST(VectorMath, SoftmaxAndLayerNormMatchDoubleLoops) {
  std::mt19937 rng(42);
  for (const VectorMath* vm : available_vector_math()) {
    for (int64_t cols : {1, 5, 8, 13, 64, 100}) {
      const int64_t rows = 3;
      auto x = inputs(rows * cols, 4.f, rng);
      std::vector<float> y(rows * cols);
      for (bool log : {false, true}) {
        vm->softmax(x.data(), y.data(), rows, cols, log);
        for (int64_t r = 0; r < rows; ++r) {
          double m = -1e30, s = 0;
          for (int64_t c = 0; c < cols; ++c) m = std::max(m, double(x[r * cols + c]));
          for (int64_t c = 0; c < cols; ++c) s += std::exp(x[r * cols + c] - m);
          for (int64_t c = 0; c < cols; ++c) {
            double want = log ? x[r * cols + c] - m - std::log(s) : std::exp(x[r * cols + c] - m) / s;
            ASSERT_NEAR(y[r * cols + c], want, 1e-6 * (1 + std::fabs(want))) << vm->name << " softmax log=" << log;
          }
        }
      }
      auto gamma = inputs(cols, 1.f, rng), beta = inputs(cols, 1.f, rng);
      vm->layernorm(x.data(), gamma.data(), beta.data(), 1e-5f, y.data(), rows, cols);
      for (int64_t r = 0; r < rows; ++r) {
        double mean = 0, var = 0;
        for (int64_t c = 0; c < cols; ++c) mean += x[r * cols + c];
        mean /= cols;
        for (int64_t c = 0; c < cols; ++c) var += (x[r * cols + c] - mean) * (x[r * cols + c] - mean);
        var /= cols;
        for (int64_t c = 0; c < cols; ++c) {
          double want = (x[r * cols + c] - mean) / std::sqrt(var + 1e-5) * gamma[c] + beta[c];
          ASSERT_NEAR(y[r * cols + c], want, 1e-5 * (1 + std::fabs(want))) << vm->name << " layernorm";
        }
      }
    }
  }
}

}  // namespace
}  // namespace kiln::nn::kernels
