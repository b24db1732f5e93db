// Not implemented yet: the conv operator family.
#include "kiln/nn/ops/families.h"

namespace kiln::nn::ops {

std::span<const OpDef> conv_ops() { return {}; }

}  // namespace kiln::nn::ops
