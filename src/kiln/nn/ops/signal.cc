// Not implemented yet: the signal operator family.
#include "kiln/nn/ops/families.h"

namespace kiln::nn::ops {

std::span<const OpDef> signal_ops() { return {}; }

}  // namespace kiln::nn::ops
