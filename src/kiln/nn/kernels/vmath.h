// kiln/nn/kernels/vmath.h — vectorised row operations and transcendental functions: softmax,
// layer normalisation, sigmoid, tanh, GELU. One implementation per instruction set, chosen once.
//
// exp() is a degree-6 polynomial after range reduction (Cephes), accurate to a few ulp; tanh
// switches to an odd polynomial near zero where the exp form would lose relative precision.
//
//   const VectorMath& vm = vector_math();
//   vm.softmax(x, y, rows, cols, /*log=*/false);
#pragma once

#include <cstdint>
#include <vector>

namespace kiln::nn::kernels {

struct VectorMath {
  const char* name;
  // Row-wise softmax (or log-softmax) of a rows x cols matrix; x and y may alias.
  void (*softmax)(const float* x, float* y, int64_t rows, int64_t cols, bool log);
  // Row-wise (x - mean) / sqrt(var + eps) * gamma + beta; beta may be null.
  void (*layernorm)(const float* x, const float* gamma, const float* beta, float eps, float* y, int64_t rows,
                    int64_t cols);
  void (*sigmoid)(const float* x, float* y, int64_t n);
  void (*tanh)(const float* x, float* y, int64_t n);
  // GELU, exact (erf) when `tanh_approx` is false.
  void (*gelu)(const float* x, float* y, int64_t n, bool tanh_approx);
};

const VectorMath& vector_math();
std::vector<const VectorMath*> available_vector_math();

extern const VectorMath kF32VectorMathAvx2;
extern const VectorMath kF32VectorMathPortable;

}  // namespace kiln::nn::kernels
