// Not implemented yet: the unary operator family.
#include "kiln/nn/ops/families.h"

namespace kiln::nn::ops {

std::span<const OpDef> unary_ops() { return {}; }

}  // namespace kiln::nn::ops
