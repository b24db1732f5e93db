// Recognises operators that exporters write out as chains of primitives and replaces each chain
// with one fast node:
//   LayerNorm (opset < 17 exports):  d = x - ReduceMean(x); y = d / Sqrt(ReduceMean(d^2) + eps)
//                                    [* gamma] [+ beta]                     -> com.kiln.LayerNorm
//   GELU (erf form, PyTorch < opset 20): 0.5 * x * (1 + Erf(x / sqrt(2)))    -> com.kiln.Gelu
// The reduction must be over the last axis and gamma/beta per-column constants. Every
// intermediate must have no other reader, so nothing else depends on the values that disappear.
#include <cmath>

#include "kiln/nn/passes/attributes.h"
#include "kiln/nn/passes/passes.h"

namespace kiln::nn::passes {
namespace {

const Node* producer_node(const GraphEditor& e, int v) {
  int p = v >= 0 ? e.producer(v) : -1;
  return p >= 0 && !e.is_dead(p) ? &e.graph().nodes[p] : nullptr;
}

bool is_op(const Node* n, const char* op) { return n && n->domain.empty() && n->op_type == op; }

// The only reader of value v, if there is exactly one (and v is not a graph output).
int sole_reader(const GraphEditor& e, int v) {
  if (v < 0 || !e.single_use(v)) return -1;
  int r = e.uses(v)[0].node;
  return e.is_dead(r) ? -1 : r;
}

bool scalar_value(const GraphEditor& e, int v, float* out) {
  const Tensor* t = e.constant(v);
  if (!t || t->num_elements() != 1 || t->dtype() != DType::kFloat32) return false;
  *out = t->data<float>()[0];
  return true;
}

// ReduceMean over exactly the last axis with keepdims=1 (axes as attribute or constant input).
bool reduces_last_axis(const GraphEditor& e, const Node& n, int64_t rank) {
  if (!is_op(&n, "ReduceMean") || n.inputs.empty()) return false;
  const Attribute* kd = n.attribute("keepdims");
  if (kd && kd->i == 0) return false;
  std::vector<int64_t> axes;
  if (const Attribute* a = n.attribute("axes"); a && a->kind == Attribute::Kind::kInts) axes = a->ints;
  else if (n.inputs.size() > 1 && n.inputs[1] >= 0 && e.constant(n.inputs[1]))
    for (int64_t i = 0; i < e.constant(n.inputs[1])->num_elements(); ++i)
      axes.push_back(element_as_int64(e.constant(n.inputs[1])->view(), i));
  return axes.size() == 1 && (axes[0] == -1 || axes[0] == rank - 1);
}

// The other operand of a binary node, given one of them.
int other_input(const Node& n, int v) {
  if (n.inputs.size() != 2) return -1;
  return n.inputs[0] == v ? n.inputs[1] : n.inputs[1] == v ? n.inputs[0] : -1;
}

bool fuse_layernorm(GraphEditor& e, int div_index) {
  Graph& g = e.graph();
  const Node div = g.nodes[div_index];
  if (!is_op(&div, "Div") || div.inputs.size() != 2) return false;
  const int d = div.inputs[0], s = div.inputs[1];
  const Node* sub = producer_node(e, d);
  const Node* sqrt = producer_node(e, s);
  if (!is_op(sub, "Sub") || !is_op(sqrt, "Sqrt") || sub->inputs.size() != 2) return false;
  const int x = sub->inputs[0], mean = sub->inputs[1];
  if (x < 0 || e.dtype(x) != DType::kFloat32) return false;
  const Shape xs = e.shape(x);
  const int64_t rank = static_cast<int64_t>(xs.size());
  if (rank == 0) return false;
  const Node* rm1 = producer_node(e, mean);
  if (!rm1 || !reduces_last_axis(e, *rm1, rank) || rm1->inputs[0] != x) return false;
  const Node* add = producer_node(e, sqrt->inputs[0]);
  if (!is_op(add, "Add")) return false;
  float eps = 0;
  const Node* rm2 = nullptr;
  for (int slot = 0; slot < 2; ++slot)
    if (scalar_value(e, add->inputs[1 - slot], &eps)) rm2 = producer_node(e, add->inputs[slot]);
  if (!rm2 || !reduces_last_axis(e, *rm2, rank)) return false;
  const Node* sq = producer_node(e, rm2->inputs[0]);
  float two = 0;
  const bool squares_d = (is_op(sq, "Pow") && sq->inputs[0] == d && scalar_value(e, sq->inputs[1], &two) && two == 2.f) ||
                         (is_op(sq, "Mul") && sq->inputs.size() == 2 && sq->inputs[0] == d && sq->inputs[1] == d);
  if (!squares_d) return false;
  // The mean, variance and square have no other reader; d is read by the square and the Div only.
  if (!e.single_use(mean) || !e.single_use(rm2->outputs[0]) || !e.single_use(sq->outputs[0]) ||
      !e.single_use(add->outputs[0]) || !e.single_use(s))
    return false;
  for (const Use& u : e.uses(d))
    if (u.node != div_index && u.node != e.producer(sq->outputs[0])) return false;
  if (e.is_graph_output(d)) return false;
  // Optional affine tail: * gamma, + beta (per-column constants).
  const int64_t cols = xs.back();
  int out = div.outputs[0], gamma = -1, beta = -1;
  std::vector<int> tail;
  if (int r = sole_reader(e, out); r >= 0 && is_op(&g.nodes[r], "Mul")) {
    int o = other_input(g.nodes[r], out);
    if (o >= 0 && e.constant(o) && e.constant(o)->dtype() == DType::kFloat32 && e.constant(o)->num_elements() == cols) {
      gamma = o;
      tail.push_back(r);
      out = g.nodes[r].outputs[0];
      if (int r2 = sole_reader(e, out); r2 >= 0 && is_op(&g.nodes[r2], "Add")) {
        int o2 = other_input(g.nodes[r2], out);
        if (o2 >= 0 && e.constant(o2) && e.constant(o2)->dtype() == DType::kFloat32 &&
            e.constant(o2)->num_elements() == cols) {
          beta = o2;
          tail.push_back(r2);
          out = g.nodes[r2].outputs[0];
        }
      }
    }
  }
  if (gamma < 0) {
    Tensor ones(DType::kFloat32, {cols});
    for (int64_t i = 0; i < cols; ++i) ones.data<float>()[i] = 1.f;
    gamma = e.add_constant(div.name + ".gamma", std::move(ones));
  }
  // Collect node indices before adding anything (adding may move the node storage).
  const int ids[] = {e.producer(mean), e.producer(d), e.producer(sq->outputs[0]), e.producer(rm2->outputs[0]),
                     e.producer(add->outputs[0]), e.producer(s), div_index};
  const std::string name = div.name;
  int n = e.add_node("LayerNorm", "com.kiln", name, {x, gamma, beta}, {out});
  e.node(n).attributes["axis"] = make_int(rank - 1);
  Attribute a;
  a.kind = Attribute::Kind::kFloat;
  a.f = eps;
  e.node(n).attributes["epsilon"] = a;
  for (int id : ids) e.remove_node(id);
  for (int id : tail) e.remove_node(id);
  return true;
}

bool near(float a, float b) { return std::fabs(a - b) <= 1e-4f * std::fabs(b); }

bool fuse_gelu(GraphEditor& e, int erf_index) {
  Graph& g = e.graph();
  const Node erf = g.nodes[erf_index];
  if (!is_op(&erf, "Erf") || erf.inputs.size() != 1) return false;
  const Node* scale = producer_node(e, erf.inputs[0]);
  if (!scale || scale->inputs.size() != 2 || !e.single_use(erf.inputs[0])) return false;
  float c = 0;
  if (!scalar_value(e, scale->inputs[1], &c)) return false;
  const bool ok_scale = (is_op(scale, "Div") && near(c, 1.41421356f)) || (is_op(scale, "Mul") && near(c, 0.70710678f));
  if (!ok_scale) return false;
  const int x = scale->inputs[0];
  if (x < 0 || e.dtype(x) != DType::kFloat32) return false;
  const int plus = sole_reader(e, erf.outputs[0]);
  float one = 0;
  if (plus < 0 || !is_op(&g.nodes[plus], "Add") || !scalar_value(e, other_input(g.nodes[plus], erf.outputs[0]), &one) ||
      one != 1.f)
    return false;
  const int m1 = sole_reader(e, g.nodes[plus].outputs[0]);
  if (m1 < 0 || !is_op(&g.nodes[m1], "Mul")) return false;
  const int o = other_input(g.nodes[m1], g.nodes[plus].outputs[0]);
  float half = 0;
  std::vector<int> removed = {e.producer(erf.inputs[0]), erf_index, plus, m1};
  int out = -1;
  if (o == x) {
    // x * (1 + erf) * 0.5
    const int m2 = sole_reader(e, g.nodes[m1].outputs[0]);
    if (m2 < 0 || !is_op(&g.nodes[m2], "Mul") || !scalar_value(e, other_input(g.nodes[m2], g.nodes[m1].outputs[0]), &half) ||
        half != 0.5f)
      return false;
    removed.push_back(m2);
    out = g.nodes[m2].outputs[0];
  } else {
    // (0.5 * x) * (1 + erf)
    const Node* hx = producer_node(e, o);
    if (!is_op(hx, "Mul") || other_input(*hx, x) < 0 || !scalar_value(e, other_input(*hx, x), &half) || half != 0.5f ||
        !e.single_use(o))
      return false;
    removed.push_back(e.producer(o));
    out = g.nodes[m1].outputs[0];
  }
  // x feeds the scale and the product only (it may have other readers; it survives).
  const Shape shape = e.shape(x);
  if (e.shape(out) != shape) return false;
  e.add_node("Gelu", "com.kiln", erf.name, {x}, {out});
  for (int id : removed) e.remove_node(id);
  return true;
}

}  // namespace

Result<int> fuse_patterns(GraphEditor& e) {
  int fused = 0;
  const size_t count = e.graph().nodes.size();
  for (size_t i = 0; i < count; ++i) {
    if (e.is_dead(static_cast<int>(i))) continue;
    const std::string& op = e.graph().nodes[i].op_type;
    if (op == "Div" && fuse_layernorm(e, static_cast<int>(i))) ++fused;
    else if (op == "Erf" && fuse_gelu(e, static_cast<int>(i))) ++fused;
  }
  return fused;
}

}  // namespace kiln::nn::passes
