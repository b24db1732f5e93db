// Not implemented yet: the matmul operator family.
#include "kiln/nn/ops/families.h"

namespace kiln::nn::ops {

std::span<const OpDef> matmul_ops() { return {}; }

}  // namespace kiln::nn::ops
