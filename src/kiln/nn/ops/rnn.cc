// Not implemented yet: the rnn operator family.
#include "kiln/nn/ops/families.h"

namespace kiln::nn::ops {

std::span<const OpDef> rnn_ops() { return {}; }

}  // namespace kiln::nn::ops
