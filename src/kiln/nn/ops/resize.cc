// Not implemented yet: the resize operator family.
#include "kiln/nn/ops/families.h"

namespace kiln::nn::ops {

std::span<const OpDef> resize_ops() { return {}; }

}  // namespace kiln::nn::ops
