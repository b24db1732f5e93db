// Fuses what follows a com.kiln.Conv or com.kiln.Dense into its epilogue:
//   producer -> Add(other same-shaped tensor)     becomes producer(..., residual = other)
//   producer -> Relu / Clip / HardSwish / ...     becomes producer(activation = ...)
//   producer -> x * Sigmoid(x)                     becomes producer(activation = silu)
//   producer -> x * HardSigmoid(x; 1/6, 1/2)       becomes producer(activation = hardswish)
//                                                  (how PyTorch exports HardSwish below opset 14)
// The producer takes over the last fused node's output, so graph output names survive.
#include <cmath>

#include "kiln/nn/ops/fused_activation.h"
#include "kiln/nn/passes/passes.h"

namespace kiln::nn::passes {
namespace {

bool is_fusion_target(const Node& n) {
  return n.domain == "com.kiln" && (n.op_type == "Conv" || n.op_type == "Dense");
}

bool has_activation(const Node& n) {
  const Attribute* a = n.attribute("activation");
  return a && a->kind == Attribute::Kind::kString && !a->s.empty() && a->s != "none";
}

void set_activation(Node& n, const std::string& name, const std::vector<float>& params) {
  Attribute a;
  a.kind = Attribute::Kind::kString;
  a.s = name;
  n.attributes["activation"] = a;
  if (!params.empty()) {
    Attribute p;
    p.kind = Attribute::Kind::kFloats;
    p.floats = params;
    n.attributes["activation_params"] = p;
  }
}

}  // namespace

Result<int> fuse_epilogues(GraphEditor& e) {
  int fused = 0;
  Graph& g = e.graph();
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    if (e.is_dead(static_cast<int>(i)) || !is_fusion_target(g.nodes[i])) continue;
    const int residual_slot = 3;
    for (;;) {
      int out = g.nodes[i].outputs[0];
      if (!e.single_use(out)) break;
      const Use u = e.uses(out)[0];
      if (e.is_dead(u.node)) break;
      const Node next = g.nodes[u.node];
      // Bias add: a constant that adds one value per output channel (the last dimension of an
      // NHWC Conv or a Dense output) folds into the bias, before any activation or residual.
      if (next.domain.empty() && next.op_type == "Add" && next.inputs.size() == 2 && !has_activation(g.nodes[i]) &&
          (g.nodes[i].inputs.size() <= residual_slot || g.nodes[i].inputs[residual_slot] < 0)) {
        const int other = next.inputs[1 - u.slot];
        const Tensor* c = e.constant(other);
        const Shape out_shape = e.shape(out);
        const int64_t channels = out_shape.empty() ? 0 : out_shape.back();
        bool per_channel = c && c->dtype() == DType::kFloat32 && channels > 0 &&
                           (c->num_elements() == channels || c->num_elements() == 1) &&
                           c->rank() <= out_shape.size() && e.shape(next.outputs[0]) == out_shape;
        for (size_t d = 0; per_channel && c->rank() > 0 && d + 1 < c->rank(); ++d) per_channel = c->shape()[d] == 1;
        if (per_channel) {
          Node& prod = g.nodes[i];
          const int bias_slot = 2;
          Tensor bias(DType::kFloat32, {channels});
          const Tensor* old = prod.inputs.size() > bias_slot && prod.inputs[bias_slot] >= 0 ? e.constant(prod.inputs[bias_slot]) : nullptr;
          for (int64_t j = 0; j < channels; ++j)
            bias.data<float>()[j] = (old ? old->data<float>()[j] : 0.f) + c->data<float>()[c->num_elements() == 1 ? 0 : j];
          const std::string hint = prod.name + ".bias";
          int bv = e.add_constant(hint, std::move(bias));
          if (g.nodes[i].inputs.size() <= bias_slot) g.nodes[i].inputs.resize(bias_slot + 1, -1);
          e.set_input(static_cast<int>(i), bias_slot, bv);
          e.set_output(static_cast<int>(i), 0, next.outputs[0]);
          e.remove_node(u.node);
          ++fused;
          continue;
        }
      }
      // Residual add: only before any activation, with a tensor of the output's exact shape that
      // does not itself depend on this node.
      if (next.domain.empty() && next.op_type == "Add" && next.inputs.size() == 2 && !has_activation(g.nodes[i]) &&
          (g.nodes[i].inputs.size() <= residual_slot || g.nodes[i].inputs[residual_slot] < 0)) {
        int other = next.inputs[1 - u.slot];
        if (other < 0 || other == out || e.shape(other) != e.shape(out) || e.dtype(other) != DType::kFloat32 ||
            e.depends_on(other, static_cast<int>(i)))
          break;
        if (g.nodes[i].inputs.size() <= residual_slot) g.nodes[i].inputs.resize(residual_slot + 1, -1);
        e.set_input(static_cast<int>(i), residual_slot, other);
        e.set_output(static_cast<int>(i), 0, next.outputs[0]);
        e.remove_node(u.node);
        ++fused;
        continue;
      }
      if (has_activation(g.nodes[i])) break;
      std::string act;
      std::vector<float> params;
      auto value_of = [&](size_t slot) -> const Value* {
        return slot < next.inputs.size() && next.inputs[slot] >= 0 ? &g.values[next.inputs[slot]] : nullptr;
      };
      if (ops::fusable_activation(next, value_of(1), value_of(2), &act, &params) && u.slot == 0) {
        set_activation(g.nodes[i], act, params);
        e.set_output(static_cast<int>(i), 0, next.outputs[0]);
        e.remove_node(u.node);
        ++fused;
        continue;
      }
      break;
    }
    // x * Sigmoid(x) (SiLU / Swish, as EfficientNet exports it) and x * HardSigmoid(x) with
    // alpha 1/6, beta 1/2 (HardSwish, as MobileNetV3 exports it): the output has two uses.
    int out = g.nodes[i].outputs[0];
    if (has_activation(g.nodes[i]) || e.is_graph_output(out) || e.uses(out).size() != 2) continue;
    const Use a = e.uses(out)[0], b = e.uses(out)[1];
    if (e.is_dead(a.node) || e.is_dead(b.node)) continue;
    const Node& na = g.nodes[a.node];
    const Node& nb = g.nodes[b.node];
    auto is_gate = [](const Node& n) { return n.op_type == "Sigmoid" || n.op_type == "HardSigmoid"; };
    const Node* sig = is_gate(na) ? &na : is_gate(nb) ? &nb : nullptr;
    const Node* mul = na.op_type == "Mul" ? &na : nb.op_type == "Mul" ? &nb : nullptr;
    if (!sig || !mul || !sig->domain.empty() || !mul->domain.empty()) continue;
    const int sig_node = sig == &na ? a.node : b.node, mul_node = mul == &na ? a.node : b.node;
    int s = sig->outputs[0];
    if (!e.single_use(s) || e.uses(s)[0].node != mul_node) continue;
    if (!((mul->inputs[0] == out && mul->inputs[1] == s) || (mul->inputs[1] == out && mul->inputs[0] == s))) continue;
    std::string act = "silu";
    if (sig->op_type == "HardSigmoid") {
      const Attribute* al = sig->attribute("alpha");
      const Attribute* be = sig->attribute("beta");
      const float alpha = al ? al->f : 0.2f, beta = be ? be->f : 0.5f;
      if (std::fabs(alpha - 1.f / 6.f) > 1e-6f || std::fabs(beta - 0.5f) > 1e-6f) continue;
      act = "hardswish";
    }
    set_activation(g.nodes[i], act, {});
    e.set_output(static_cast<int>(i), 0, mul->outputs[0]);
    e.remove_node(sig_node);
    e.remove_node(mul_node);
    ++fused;
  }
  return fused;
}

}  // namespace kiln::nn::passes
