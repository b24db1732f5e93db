// Not implemented yet: the tensor operator family.
#include "kiln/nn/ops/families.h"

namespace kiln::nn::ops {

std::span<const OpDef> tensor_ops() { return {}; }

}  // namespace kiln::nn::ops
