// kiln/nn/graph_edit.h — small tools for graph passes: who reads a value, new values and
// constants with unique names, and re-sorting / pruning after a rewrite.
//
// Passes run on the lowered graph (optimize.h), where every value has a concrete type.
//
//   GraphEditor e(g);
//   for (const Use& u : e.uses(v)) ...;                       // (node, input slot) pairs
//   int w = e.add_constant("conv1.w_folded", std::move(t));   // an initializer
//   e.replace_uses(old_value, new_value);
//   KILN_RETURN_IF_ERROR(e.finish());                         // prune dead nodes, topo-sort
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "kiln/core/status.h"
#include "kiln/core/tensor.h"
#include "kiln/nn/ir.h"

namespace kiln::nn {

struct Use {
  int node;
  int slot;
};

class GraphEditor {
 public:
  explicit GraphEditor(Graph& g);

  Graph& graph() { return g_; }
  const Graph& graph() const { return g_; }
  const Value& value(int v) const { return g_.values[v]; }
  Shape shape(int v) const { return g_.values[v].type.static_shape(); }
  DType dtype(int v) const { return g_.values[v].type.dtype; }
  const Tensor* constant(int v) const { return v >= 0 && g_.values[v].constant ? &*g_.values[v].constant : nullptr; }

  // Consumers of `v` (kept up to date by the editing functions below).
  const std::vector<Use>& uses(int v) const { return uses_[v]; }
  bool is_graph_output(int v) const;
  // True when `v` has exactly one consumer node and is not a graph output.
  bool single_use(int v) const { return uses_[v].size() == 1 && !is_graph_output(v); }
  // The node producing `v`, or -1.
  int producer(int v) const { return g_.values[v].producer; }

  // Adding values or nodes may move the graph's storage: pointers and references obtained from
  // value(), constant() or node() before the call must not be used after it.
  int add_value(const std::string& name_hint, DType dtype, const Shape& shape);
  int add_constant(const std::string& name_hint, Tensor t);
  // Appends a node (opset taken from the graph's import of `domain`, or 1). Returns its index.
  int add_node(const std::string& op_type, const std::string& domain, const std::string& name_hint,
               std::vector<int> inputs, std::vector<int> outputs);
  Node& node(int i) { return g_.nodes[i]; }
  // Rewires every consumer of `from` to read `to`. Graph outputs keep their value (and name):
  // a pass that removes the producer of a graph output must make another node produce it, with
  // set_output().
  void replace_uses(int from, int to);
  // Makes `node` produce `value` as its output `slot` (the usual way to fuse a node into its
  // producer: the producer takes over the consumer's output, so names the user sees survive).
  void set_output(int node, int slot, int value);
  // Changes one input of a node.
  void set_input(int node, int slot, int value);
  // Marks a node dead; finish() removes it.
  void remove_node(int node) { dead_[node] = true; }
  bool is_dead(int node) const { return dead_[node]; }
  // True when `target` is reachable from value `from` following producers backwards.
  bool depends_on(int from, int target_node) const;

  // Removes dead nodes and nodes whose outputs nobody reads, then sorts topologically.
  Status finish();

 private:
  std::string unique_name(const std::string& hint);

  Graph& g_;
  std::vector<std::vector<Use>> uses_;
  std::vector<bool> dead_;
  int counter_ = 0;
};

}  // namespace kiln::nn
