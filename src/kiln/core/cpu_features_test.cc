#include "kiln/core/cpu_features.h"

#include <gtest/gtest.h>

namespace kiln {
namespace {

TEST(CpuFeatures, ImpliedFeaturesAreConsistent) {
  CpuFeatures f = detect_cpu_features();
  // A wider ISA is only reported when the narrower one it builds on is usable.
  if (f.avx2) { EXPECT_TRUE(f.avx); }
  if (f.fma) { EXPECT_TRUE(f.avx); }
  if (f.avx512f) { EXPECT_TRUE(f.avx2); }
  if (f.avx512vnni) { EXPECT_TRUE(f.avx512f); }
  EXPECT_FALSE(f.summary().empty());
}

}  // namespace
}  // namespace kiln
