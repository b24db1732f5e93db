// kiln/nn/ops/fused_activation.h — the activation attributes that graph passes attach to
// com.kiln nodes (Conv, Dense, ...) when they fuse a following Relu/Clip/HardSwish/...
//
//   activation        string: "relu", "clip", "hardswish", "sigmoid", "silu", "leakyrelu"
//   activation_params floats: [lo, hi] for clip, [alpha] for leakyrelu, [alpha, beta] for hardsigmoid
#pragma once

#include <string>

#include "kiln/core/status.h"
#include "kiln/nn/kernel.h"
#include "kiln/nn/kernels/gemm.h"

namespace kiln::nn::ops {

// Reads the activation attributes of a com.kiln node into `p` (act, lo, hi, alpha).
Status read_fused_activation(PrepareContext& ctx, kernels::GemmParams* p);

// The activation a standard ONNX node computes, if it is one that can be fused into a producer's
// epilogue (Relu, Clip with constant bounds, HardSwish, Sigmoid, LeakyRelu; x*Sigmoid(x) is
// found by the pass). Returns false otherwise.
bool fusable_activation(const Node& n, const Value* min_value, const Value* max_value, std::string* name,
                        std::vector<float>* params);

}  // namespace kiln::nn::ops
