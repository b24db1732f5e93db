// Gemm with a constant B, and MatMul with a constant 2-D B (plus a following bias Add), become
// com.kiln.Dense: weights packed once, bias and activation fused in the GEMM epilogue.
#include "kiln/nn/passes/attributes.h"
#include "kiln/nn/passes/passes.h"

namespace kiln::nn::passes {
namespace {

// A constant that adds the same value to every row: shape [N], [1, N], [1, 1, N], ... or a scalar.
const Tensor* row_bias(const GraphEditor& e, int v, int64_t n) {
  const Tensor* t = e.constant(v);
  if (!t || t->dtype() != DType::kFloat32) return nullptr;
  if (t->num_elements() != n && t->num_elements() != 1) return nullptr;
  for (size_t d = 0; d + 1 < t->rank(); ++d)
    if (t->shape()[d] != 1) return nullptr;
  return t;
}

Tensor expand_bias(const Tensor& t, int64_t n, float scale) {
  Tensor b(DType::kFloat32, {n});
  for (int64_t j = 0; j < n; ++j) b.data<float>()[j] = t.data<float>()[t.num_elements() == 1 ? 0 : j] * scale;
  return b;
}

}  // namespace

Result<int> dense_layers(GraphEditor& e) {
  int rewritten = 0;
  Graph& g = e.graph();
  const size_t count = g.nodes.size();
  for (size_t i = 0; i < count; ++i) {
    if (e.is_dead(static_cast<int>(i))) continue;
    const Node n = g.nodes[i];
    if (!n.domain.empty() || n.outputs.empty() || n.outputs[0] < 0) continue;
    if (n.op_type == "Gemm") {
      if (n.inputs.size() < 2 || int_attr(n, "transA", 0) != 0) continue;
      const Tensor* b = e.constant(n.inputs[1]);
      if (!b || b->dtype() != DType::kFloat32 || b->rank() != 2 || e.dtype(n.inputs[0]) != DType::kFloat32) continue;
      if (e.constant(n.inputs[0])) continue;
      const bool tb = int_attr(n, "transB", 0) != 0;
      const int64_t cols = tb ? b->shape()[0] : b->shape()[1];
      const float alpha = float_attr(n, "alpha", 1.f), beta = float_attr(n, "beta", 1.f);
      int bias = -1;
      if (n.inputs.size() > 2 && n.inputs[2] >= 0 && beta != 0.f) {
        const Tensor* c = row_bias(e, n.inputs[2], cols);
        if (!c) continue;
        bias = e.add_constant(n.name + ".bias", expand_bias(*c, cols, beta));
      }
      int w = n.inputs[1];
      if (alpha != 1.f) {
        Tensor scaled = *e.constant(n.inputs[1]);  // `b` may dangle: add_constant moved the values
        for (int64_t k = 0; k < scaled.num_elements(); ++k) scaled.data<float>()[k] *= alpha;
        w = e.add_constant(n.name + ".w", std::move(scaled));
      }
      int d = e.add_node("Dense", "com.kiln", n.name, {n.inputs[0], w, bias}, {n.outputs[0]});
      Attribute t;
      t.kind = Attribute::Kind::kInt;
      t.i = tb ? 1 : 0;
      e.node(d).attributes["transB"] = t;
      e.remove_node(static_cast<int>(i));
      ++rewritten;
    } else if (n.op_type == "MatMul") {
      if (n.inputs.size() != 2) continue;
      const Tensor* b = e.constant(n.inputs[1]);
      if (!b || b->dtype() != DType::kFloat32 || b->rank() != 2 || e.dtype(n.inputs[0]) != DType::kFloat32) continue;
      if (e.constant(n.inputs[0])) continue;
      const int64_t cols = b->shape()[1];
      int out = n.outputs[0];
      int bias = -1;
      // A following Add of a row vector becomes the bias.
      if (e.single_use(out)) {
        const Use u = e.uses(out)[0];
        const Node& add = g.nodes[u.node];
        if (add.domain.empty() && add.op_type == "Add" && add.inputs.size() == 2 && !e.is_dead(u.node)) {
          int other = add.inputs[1 - u.slot];
          const Tensor* c = row_bias(e, other, cols);
          if (c && e.shape(add.outputs[0]) == e.shape(out)) {
            bias = e.add_constant(n.name + ".bias", expand_bias(*c, cols, 1.f));
            out = add.outputs[0];
            e.remove_node(u.node);
          }
        }
      }
      e.add_node("Dense", "com.kiln", n.name, {n.inputs[0], n.inputs[1], bias}, {out});
      e.remove_node(static_cast<int>(i));
      ++rewritten;
    }
  }
  return rewritten;
}

}  // namespace kiln::nn::passes
