// kiln/nn/ops/families.h — the operator families; op_table.cc lists them all.
//
// Each family lives in its own file and exposes one constexpr table of OpDefs. Adding an
// operator means adding a prepare function and one row to its family's table.
#pragma once

#include <span>

#include "kiln/nn/op_registry.h"

namespace kiln::nn::ops {

std::span<const OpDef> binary_ops();          // elementwise_binary.cc: Add Sub ... Where PRelu
std::span<const OpDef> unary_ops();           // elementwise_unary.cc: Abs Exp Relu Sigmoid Clip ...
std::span<const OpDef> cast_ops();            // cast.cc: Cast CastLike
std::span<const OpDef> shape_ops();           // shape_ops.cc: Shape Size Reshape Flatten Squeeze Unsqueeze ...
std::span<const OpDef> tensor_ops();          // tensor_ops.cc: Transpose Concat Split Slice Expand Tile Pad ...
std::span<const OpDef> gather_scatter_ops();  // gather_scatter.cc: Gather GatherElements GatherND Scatter*
std::span<const OpDef> reduce_ops();          // reduce.cc: Reduce* ArgMax ArgMin TopK Hardmax
std::span<const OpDef> softmax_ops();         // softmax.cc: Softmax LogSoftmax and the loss functions
std::span<const OpDef> conv_ops();            // conv.cc: Conv ConvTranspose
std::span<const OpDef> pool_ops();            // pool.cc: AveragePool MaxPool Global*Pool LpPool MaxUnpool
std::span<const OpDef> normalization_ops();   // normalization.cc: BatchNormalization LayerNormalization ...
std::span<const OpDef> resize_ops();          // resize.cc: Resize Upsample
std::span<const OpDef> matmul_ops();          // matmul.cc: MatMul Gemm Einsum Det
std::span<const OpDef> rnn_ops();             // rnn.cc: RNN GRU LSTM
std::span<const OpDef> quantize_ops();        // quantize.cc: QuantizeLinear DequantizeLinear QLinear* *Integer
std::span<const OpDef> signal_ops();          // signal.cc: HannWindow HammingWindow BlackmanWindow DFT

// Fast operators in the com.kiln domain, created by the graph passes (optimize.h), never by users.
std::span<const OpDef> fast_dense_ops();      // fast_dense.cc: Dense (packed-weight GEMM + epilogue)
std::span<const OpDef> fast_conv_ops();       // fast_conv.cc: NHWC Conv, Pool, GlobalAveragePool, Transpose
std::span<const OpDef> fast_row_ops();        // fast_rows.cc: Softmax, LayerNorm, Gelu
std::span<const OpDef> fast_matmul_ops();     // fast_matmul.cc: MatMul with a runtime B
std::span<const OpDef> fast_rnn_ops();        // fast_rnn.cc: LSTM
std::span<const OpDef> fast_qconv_ops();      // fast_qconv.cc: int8 NHWC QConv (incl. depthwise), QPool
std::span<const OpDef> fast_qdense_ops();     // fast_qdense.cc: int8 QDense
std::span<const OpDef> fast_qelementwise_ops();  // fast_qelementwise.cc: QAdd QMul Quantize Dequantize,
                                                  // com.microsoft QLinearAdd QLinearMul

}  // namespace kiln::nn::ops
