// Not implemented yet: the cast operator family.
#include "kiln/nn/ops/families.h"

namespace kiln::nn::ops {

std::span<const OpDef> cast_ops() { return {}; }

}  // namespace kiln::nn::ops
