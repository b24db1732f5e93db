// Not implemented yet: the quantize operator family.
#include "kiln/nn/ops/families.h"

namespace kiln::nn::ops {

std::span<const OpDef> quantize_ops() { return {}; }

}  // namespace kiln::nn::ops
