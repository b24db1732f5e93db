// Not implemented yet: the normalization operator family.
#include "kiln/nn/ops/families.h"

namespace kiln::nn::ops {

std::span<const OpDef> normalization_ops() { return {}; }

}  // namespace kiln::nn::ops
