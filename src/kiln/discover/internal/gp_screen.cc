#include "kiln/discover/internal/gp_screen.h"

#include "kiln/core/cpu_features.h"

namespace kiln::discover::internal {

std::vector<const GpScreen*> available_gp_screens() {
  const CpuFeatures& f = cpu_features();
  std::vector<const GpScreen*> out;
  if (f.avx512f) out.push_back(&kF64GpScreenAvx512);
  if (f.avx2 && f.fma) out.push_back(&kF64GpScreenAvx2);
  out.push_back(&kF64GpScreenPortable);
  return out;
}

const GpScreen& gp_screen() {
  static const GpScreen* best = available_gp_screens().front();
  return *best;
}

}  // namespace kiln::discover::internal
