// The one visible list of operator families Kiln ships (explicit registration, no static
// initialisers). See ops/families.h.
#include "kiln/nn/op_registry.h"
#include "kiln/nn/ops/families.h"

namespace kiln::nn {

const OpRegistry& default_op_registry() {
  static const OpRegistry registry = [] {
    OpRegistry r;
    r.add(ops::binary_ops());
    r.add(ops::unary_ops());
    r.add(ops::cast_ops());
    r.add(ops::shape_ops());
    r.add(ops::tensor_ops());
    r.add(ops::gather_scatter_ops());
    r.add(ops::reduce_ops());
    r.add(ops::softmax_ops());
    r.add(ops::conv_ops());
    r.add(ops::pool_ops());
    r.add(ops::normalization_ops());
    r.add(ops::resize_ops());
    r.add(ops::matmul_ops());
    r.add(ops::rnn_ops());
    r.add(ops::quantize_ops());
    r.add(ops::signal_ops());
    r.add(ops::fast_dense_ops());
    r.add(ops::fast_conv_ops());
    r.add(ops::fast_row_ops());
    r.add(ops::fast_matmul_ops());
    r.add(ops::fast_rnn_ops());
    r.add(ops::fast_qconv_ops());
    r.add(ops::fast_qdense_ops());
    r.add(ops::fast_qelementwise_ops());
    return r;
  }();
  return registry;
}

}  // namespace kiln::nn
