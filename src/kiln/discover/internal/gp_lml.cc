#include "kiln/discover/internal/gp_lml.h"

#include "kiln/core/cpu_features.h"

namespace kiln::discover::internal {

std::vector<const GpLml*> available_gp_lmls() {
  const CpuFeatures& f = cpu_features();
  std::vector<const GpLml*> out;
  if (f.avx512f) out.push_back(&kF64GpLmlAvx512);
  if (f.avx2 && f.fma) out.push_back(&kF64GpLmlAvx2);
  out.push_back(&kF64GpLmlPortable);
  return out;
}

const GpLml& gp_lml() {
  static const GpLml* best = available_gp_lmls().front();
  return *best;
}

}  // namespace kiln::discover::internal
