// Not implemented yet: the gather_scatter operator family.
#include "kiln/nn/ops/families.h"

namespace kiln::nn::ops {

std::span<const OpDef> gather_scatter_ops() { return {}; }

}  // namespace kiln::nn::ops
