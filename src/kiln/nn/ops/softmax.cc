// Not implemented yet: the softmax operator family.
#include "kiln/nn/ops/families.h"

namespace kiln::nn::ops {

std::span<const OpDef> softmax_ops() { return {}; }

}  // namespace kiln::nn::ops
