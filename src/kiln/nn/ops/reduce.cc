// Not implemented yet: the reduce operator family.
#include "kiln/nn/ops/families.h"

namespace kiln::nn::ops {

std::span<const OpDef> reduce_ops() { return {}; }

}  // namespace kiln::nn::ops
