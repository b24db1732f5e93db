// Not implemented yet: the pool operator family.
#include "kiln/nn/ops/families.h"

namespace kiln::nn::ops {

std::span<const OpDef> pool_ops() { return {}; }

}  // namespace kiln::nn::ops
