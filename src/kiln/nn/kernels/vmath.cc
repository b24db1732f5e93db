#include "kiln/nn/kernels/vmath.h"

#include "kiln/core/cpu_features.h"

namespace kiln::nn::kernels {

std::vector<const VectorMath*> available_vector_math() {
  const CpuFeatures& f = cpu_features();
  std::vector<const VectorMath*> out;
  if (f.avx2 && f.fma) out.push_back(&kF32VectorMathAvx2);
  out.push_back(&kF32VectorMathPortable);
  return out;
}

const VectorMath& vector_math() {
  static const VectorMath* best = available_vector_math().front();
  return *best;
}

}  // namespace kiln::nn::kernels
