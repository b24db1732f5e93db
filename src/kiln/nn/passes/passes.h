// kiln/nn/passes/passes.h — the graph passes optimize_graph() runs, in order.
//
// Each pass rewrites the lowered graph (every value has a concrete type) through a GraphEditor
// and returns how many rewrites it made. A pass must leave the graph computing the same function:
// the conformance suite and the regression models run with optimisation on, and differential
// tests compare against the reference kernels with it off.
#pragma once

#include <string>
#include <vector>

#include "kiln/core/status.h"
#include "kiln/nn/graph_edit.h"

namespace kiln::nn::passes {

// Runs first. DequantizeLinear -> Conv/Gemm/MatMul/pooling/Add/Mul [-> Relu/Clip] -> QuantizeLinear
// chains and QLinearConv/QLinearMatMul become integer com.kiln ops (QConv, QDense, QPool, QAdd,
// QMul); what is left of the QDQ spelling runs on fast conversions. `notes` lists the nodes that
// still compute in float on dequantised values.
Result<int> quantized(GraphEditor& e, std::vector<std::string>* notes);
// After quantized, where the int8 kernels multiply unsigned activations (VNNI): the int8 tensors
// between integer operators become uint8 with zero point + 128 (the same real values), so that no
// convolution XORs its input first.
Result<int> unsigned_activations(GraphEditor& e, bool kernels_want_unsigned);
// Then: com.kiln Quantize -> QConv, where the convolution quantises its float input itself (few-
// channel stems, ops/fast_qconv.h), becomes that QConv reading the float tensor.
Result<int> fuse_input_quantize(GraphEditor& e);

// Conv -> BatchNormalization and Gemm -> BatchNormalization: scale the weights, shift the bias.
Result<int> fold_batchnorm(GraphEditor& e);
// Gemm with constant B, and MatMul with constant 2-D B (+ a bias Add): com.kiln.Dense.
Result<int> dense_layers(GraphEditor& e);
// 2-D Conv, MaxPool/AveragePool, GlobalAveragePool and the elementwise ops and Concats between
// them in channels-last layout (com.kiln.Conv/Pool/...), transposing only at the region's edges.
Result<int> layout_nhwc(GraphEditor& e);
// Decomposed LayerNorm and GELU (erf) chains become com.kiln.LayerNorm / com.kiln.Gelu.
Result<int> fuse_patterns(GraphEditor& e);
// Softmax, LayerNormalization, GELU, runtime MatMul and the common LSTM on fast kernels.
Result<int> fast_ops(GraphEditor& e);
// Relu/Clip/HardSwish/Sigmoid/LeakyRelu after com.kiln.Conv or com.kiln.Dense go into its
// epilogue, as does an Add of a same-shaped tensor (a residual connection) before them.
Result<int> fuse_epilogues(GraphEditor& e);
// The squeeze-and-excitation gate Mul(x, s [N,1,1,C]) read only by a 1x1 com.kiln.Conv becomes
// the conv's input_scale, where H*W exceeds the conv's output channels.
Result<int> fuse_channel_scale(GraphEditor& e);
// Last: Transpose -> per-tensor Quantize / Dequantize -> the opposite Transpose becomes the
// conversion alone, in the first Transpose's input layout.
Result<int> fold_layout_pairs(GraphEditor& e);

}  // namespace kiln::nn::passes
