// QuantizeLinear -> QConv where the convolution quantises a float input itself (ops/fast_qconv.h:
// few-channel stems copy their input into a padded buffer anyway): the QConv reads the float
// tensor and quantises each row into that buffer, so the int8 tensor between them and its copy
// go. Runs after unsigned_activations, whose zero points the QConv then already holds.
#include <cstring>

#include "kiln/nn/ops/fast_qconv.h"
#include "kiln/nn/passes/attributes.h"
#include "kiln/nn/passes/passes.h"

namespace kiln::nn::passes {
namespace {

// Both inputs are constant scalars of one dtype holding the same bytes.
bool same_scalar(const GraphEditor& e, int a, int b) {
  const Tensor* x = a >= 0 ? e.constant(a) : nullptr;
  const Tensor* y = b >= 0 ? e.constant(b) : nullptr;
  return x && y && x->dtype() == y->dtype() && x->num_elements() == 1 && y->num_elements() == 1 &&
         x->byte_size() == y->byte_size() && std::memcmp(x->raw(), y->raw(), x->byte_size()) == 0;
}

}  // namespace

Result<int> fuse_input_quantize(GraphEditor& e) {
  Graph& g = e.graph();
  int fused = 0;
  const size_t count = g.nodes.size();
  for (size_t i = 0; i < count; ++i) {
    if (e.is_dead(static_cast<int>(i))) continue;
    const Node& q = g.nodes[i];
    if (!is_kiln(q, "Quantize") || q.inputs.size() != 3 || q.outputs.size() != 1 || q.outputs[0] < 0) continue;
    const int v = q.outputs[0];
    if (!e.single_use(v) || e.dtype(q.inputs[0]) != DType::kFloat32) continue;
    const Use u = e.uses(v)[0];
    const Node& c = g.nodes[static_cast<size_t>(u.node)];
    if (!is_kiln(c, "QConv") || u.slot != 0 || c.inputs.size() < 3) continue;
    if (!same_scalar(e, q.inputs[1], c.inputs[1]) || !same_scalar(e, q.inputs[2], c.inputs[2])) continue;
    const Shape x = e.shape(v);
    const std::vector<int64_t> kernel = ints_attr(c, "kernel_shape", {}), dilations = ints_attr(c, "dilations", {1, 1});
    if (x.size() != 4 || kernel.size() != 2 || dilations.size() != 2 ||
        !ops::qconv_row_taps(x[3], int_attr(c, "group", 1), kernel[1], dilations[1]))
      continue;
    e.set_input(u.node, 0, q.inputs[0]);
    e.remove_node(static_cast<int>(i));
    ++fused;
  }
  return fused;
}

}  // namespace kiln::nn::passes
