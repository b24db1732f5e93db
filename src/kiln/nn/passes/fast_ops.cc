// Routes standard operators to their fast com.kiln versions when the case is one the fast kernel
// covers: Softmax/LogSoftmax over trailing axes, LayerNormalization with per-column scale and
// bias, GELU, MatMul of two runtime float32 operands, and the common LSTM. Everything else keeps
// its reference kernel.
#include <algorithm>

#include "kiln/nn/passes/attributes.h"
#include "kiln/nn/passes/passes.h"

namespace kiln::nn::passes {
namespace {

bool only_first_output_used(const GraphEditor& e, const Node& n) {
  for (size_t i = 1; i < n.outputs.size(); ++i)
    if (n.outputs[i] >= 0 && (!e.uses(n.outputs[i]).empty() || e.is_graph_output(n.outputs[i]))) return false;
  return true;
}

// Replaces node `i` by a com.kiln node of the same inputs and outputs.
int reroute(GraphEditor& e, int i, const std::string& op, const std::vector<int>& inputs, const std::vector<int>& outputs) {
  const std::string name = e.node(i).name;
  int n = e.add_node(op, "com.kiln", name, inputs, outputs);
  e.remove_node(i);
  return n;
}

}  // namespace

Result<int> fast_ops(GraphEditor& e) {
  int rerouted = 0;
  Graph& g = e.graph();
  const size_t count = g.nodes.size();
  for (size_t idx = 0; idx < count; ++idx) {
    const int i = static_cast<int>(idx);
    if (e.is_dead(i)) continue;
    const Node n = g.nodes[idx];
    if (!n.domain.empty() || n.inputs.empty() || n.inputs[0] < 0 || n.outputs.empty() || n.outputs[0] < 0) continue;
    if (e.dtype(n.inputs[0]) != DType::kFloat32) continue;
    const int64_t rank = static_cast<int64_t>(e.shape(n.inputs[0]).size());
    if (n.op_type == "Softmax" || n.op_type == "LogSoftmax") {
      if (rank == 0) continue;
      int64_t axis = int_attr(n, "axis", n.opset < 13 ? 1 : -1);
      if (axis < 0) axis += rank;
      if (axis < 0 || axis >= rank) continue;
      // Opset < 13 coerces to 2-D at `axis` (a trailing block); from 13 only the last axis is a
      // trailing block.
      if (n.opset >= 13 && axis != rank - 1) continue;
      int k = reroute(e, i, "Softmax", {n.inputs[0]}, {n.outputs[0]});
      e.node(k).attributes["axis"] = make_int(axis);
      e.node(k).attributes["log"] = make_int(n.op_type == "LogSoftmax");
      ++rerouted;
    } else if (n.op_type == "LayerNormalization") {
      if (!only_first_output_used(e, n) || n.inputs.size() < 2 || rank == 0) continue;
      int64_t axis = int_attr(n, "axis", -1);
      if (axis < 0) axis += rank;
      if (axis < 0 || axis >= rank) continue;
      const Shape xs = e.shape(n.inputs[0]);
      int64_t cols = 1;
      for (int64_t d = axis; d < rank; ++d) cols *= xs[d];
      auto per_column = [&](int v) {
        if (v < 0) return true;
        return e.dtype(v) == DType::kFloat32 && num_elements(e.shape(v)) == cols;
      };
      if (!per_column(n.inputs[1]) || (n.inputs.size() > 2 && !per_column(n.inputs[2]))) continue;
      int beta = n.inputs.size() > 2 ? n.inputs[2] : -1;
      const Attribute* eps = n.attribute("epsilon");
      int k = reroute(e, i, "LayerNorm", {n.inputs[0], n.inputs[1], beta}, {n.outputs[0]});
      e.node(k).attributes["axis"] = make_int(axis);
      if (eps) e.node(k).attributes["epsilon"] = *eps;
      ++rerouted;
    } else if (n.op_type == "Gelu") {
      const Attribute* a = n.attribute("approximate");
      int k = reroute(e, i, "Gelu", {n.inputs[0]}, {n.outputs[0]});
      if (a) e.node(k).attributes["approximate"] = *a;
      ++rerouted;
    } else if (n.op_type == "MatMul") {
      if (n.inputs.size() != 2 || n.inputs[1] < 0 || e.dtype(n.inputs[1]) != DType::kFloat32) continue;
      const Shape a = e.shape(n.inputs[0]), b = e.shape(n.inputs[1]);
      if (a.size() < 2 || b.size() < 2) continue;
      if (b.size() > 2 && (b.size() != a.size() || !std::equal(a.begin(), a.end() - 2, b.begin()))) continue;
      reroute(e, i, "MatMul", n.inputs, n.outputs);
      ++rerouted;
    } else if (n.op_type == "LSTM") {
      if (n.inputs.size() < 3 || !e.constant(n.inputs[1]) || !e.constant(n.inputs[2])) continue;
      if (n.inputs.size() > 3 && n.inputs[3] >= 0 && !e.constant(n.inputs[3])) continue;
      if ((n.inputs.size() > 4 && n.inputs[4] >= 0) || (n.inputs.size() > 7 && n.inputs[7] >= 0)) continue;
      if (n.attribute("activations") || n.attribute("clip") || int_attr(n, "input_forget", 0) != 0 ||
          int_attr(n, "layout", 0) != 0 || rank != 3)
        continue;
      int k = reroute(e, i, "LSTM", n.inputs, n.outputs);
      e.node(k).attributes = n.attributes;
      ++rerouted;
    }
  }
  return rerouted;
}

}  // namespace kiln::nn::passes
