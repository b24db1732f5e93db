#include "kiln/nn/graph_edit.h"

#include <algorithm>
#include <set>
#include <unordered_set>

namespace kiln::nn {

GraphEditor::GraphEditor(Graph& g) : g_(g) {
  uses_.assign(g_.values.size(), {});
  dead_.assign(g_.nodes.size(), false);
  for (size_t i = 0; i < g_.nodes.size(); ++i)
    for (size_t s = 0; s < g_.nodes[i].inputs.size(); ++s) {
      int v = g_.nodes[i].inputs[s];
      if (v >= 0) uses_[v].push_back({static_cast<int>(i), static_cast<int>(s)});
    }
}

bool GraphEditor::is_graph_output(int v) const {
  return std::find(g_.outputs.begin(), g_.outputs.end(), v) != g_.outputs.end();
}

std::string GraphEditor::unique_name(const std::string& hint) {
  for (;;) {
    std::string n = hint + "__kiln" + std::to_string(counter_++);
    if (g_.find_value(n) < 0) return n;
  }
}

int GraphEditor::add_value(const std::string& name_hint, DType dtype, const Shape& shape) {
  Value v;
  v.name = unique_name(name_hint);
  v.type.dtype = dtype;
  v.type.has_shape = true;
  for (int64_t d : shape) v.type.dims.push_back(Dim{d, {}});
  g_.values.push_back(std::move(v));
  uses_.emplace_back();
  return static_cast<int>(g_.values.size() - 1);
}

int GraphEditor::add_constant(const std::string& name_hint, Tensor t) {
  int v = add_value(name_hint, t.dtype(), t.shape());
  g_.values[v].constant = std::move(t);
  return v;
}

int GraphEditor::add_node(const std::string& op_type, const std::string& domain, const std::string& name_hint,
                          std::vector<int> inputs, std::vector<int> outputs) {
  Node n;
  n.op_type = op_type;
  n.domain = domain;
  n.name = name_hint;
  auto it = g_.opsets.find(domain);
  n.opset = it != g_.opsets.end() ? it->second : 1;
  if (domain == "com.kiln") n.opset = 1;
  n.inputs = std::move(inputs);
  n.outputs = std::move(outputs);
  int index = static_cast<int>(g_.nodes.size());
  for (size_t s = 0; s < n.inputs.size(); ++s)
    if (n.inputs[s] >= 0) uses_[n.inputs[s]].push_back({index, static_cast<int>(s)});
  for (int o : n.outputs)
    if (o >= 0) g_.values[o].producer = index;
  g_.nodes.push_back(std::move(n));
  dead_.push_back(false);
  return index;
}

void GraphEditor::replace_uses(int from, int to) {
  std::vector<Use> moved = uses_[from];
  for (const Use& u : moved) {
    g_.nodes[u.node].inputs[u.slot] = to;
    uses_[to].push_back(u);
  }
  uses_[from].clear();
}

void GraphEditor::set_output(int node, int slot, int value) {
  g_.nodes[node].outputs[slot] = value;
  g_.values[value].producer = node;
}

void GraphEditor::set_input(int node, int slot, int value) {
  int old = g_.nodes[node].inputs[slot];
  if (old >= 0) {
    auto& u = uses_[old];
    u.erase(std::remove_if(u.begin(), u.end(), [&](const Use& x) { return x.node == node && x.slot == slot; }),
            u.end());
  }
  g_.nodes[node].inputs[slot] = value;
  if (value >= 0) uses_[value].push_back({node, slot});
}

bool GraphEditor::depends_on(int from, int target_node) const {
  std::vector<int> stack = {from};
  std::unordered_set<int> seen;
  while (!stack.empty()) {
    int v = stack.back();
    stack.pop_back();
    if (v < 0 || !seen.insert(v).second) continue;
    int p = g_.values[v].producer;
    if (p < 0) continue;
    if (p == target_node) return true;
    for (int in : g_.nodes[p].inputs) stack.push_back(in);
  }
  return false;
}

Status GraphEditor::finish() {
  // Liveness from the outputs backwards: a node stays if one of its outputs is needed.
  const size_t nn = g_.nodes.size();
  std::vector<bool> needed(g_.values.size(), false);
  for (int v : g_.outputs) needed[v] = true;
  // Producers may be stale after edits; recompute them from live nodes.
  for (Value& v : g_.values) v.producer = -1;
  for (size_t i = 0; i < nn; ++i)
    if (!dead_[i])
      for (int o : g_.nodes[i].outputs)
        if (o >= 0) g_.values[o].producer = static_cast<int>(i);
  // Kahn's algorithm over live nodes, then prune unneeded ones in reverse order.
  std::vector<int> pending(nn, 0);
  std::vector<std::vector<int>> users(g_.values.size());
  for (size_t i = 0; i < nn; ++i) {
    if (dead_[i]) continue;
    for (int v : g_.nodes[i].inputs) {
      if (v < 0) continue;
      if (g_.values[v].producer >= 0) {
        ++pending[i];
        users[v].push_back(static_cast<int>(i));
      } else if (!g_.values[v].constant && std::find(g_.inputs.begin(), g_.inputs.end(), v) == g_.inputs.end()) {
        return Status::internal("graph pass left node '", g_.nodes[i].name, "' reading '", g_.values[v].name,
                                "', which nothing produces");
      }
    }
  }
  std::vector<int> order, ready;
  for (size_t i = 0; i < nn; ++i)
    if (!dead_[i] && pending[i] == 0) ready.push_back(static_cast<int>(i));
  size_t head = 0;
  while (head < ready.size()) {
    int i = ready[head++];
    order.push_back(i);
    for (int v : g_.nodes[i].outputs)
      if (v >= 0)
        for (int u : users[v])
          if (--pending[u] == 0) ready.push_back(u);
    std::sort(ready.begin() + head, ready.end());
  }
  size_t live = 0;
  for (size_t i = 0; i < nn; ++i) live += !dead_[i];
  if (order.size() != live) return Status::internal("graph pass created a cycle");
  std::vector<bool> keep(nn, false);
  for (auto it = order.rbegin(); it != order.rend(); ++it) {
    const Node& n = g_.nodes[*it];
    bool any = false;
    for (int o : n.outputs)
      if (o >= 0 && needed[o]) any = true;
    if (!any) continue;
    keep[*it] = true;
    for (int v : n.inputs)
      if (v >= 0) needed[v] = true;
  }
  std::vector<Node> nodes;
  for (int i : order)
    if (keep[i]) nodes.push_back(std::move(g_.nodes[i]));
  g_.nodes = std::move(nodes);
  for (Value& v : g_.values) {
    v.producer = -1;
  }
  for (size_t i = 0; i < g_.nodes.size(); ++i)
    for (int o : g_.nodes[i].outputs)
      if (o >= 0) g_.values[o].producer = static_cast<int>(i);
  // Constants nobody reads any more (weights replaced by folded copies) are dropped.
  for (size_t v = 0; v < g_.values.size(); ++v)
    if (!needed[v] && g_.values[v].constant) g_.values[v].constant.reset();
  // Rebuild the use lists for anyone who keeps editing.
  uses_.assign(g_.values.size(), {});
  dead_.assign(g_.nodes.size(), false);
  for (size_t i = 0; i < g_.nodes.size(); ++i)
    for (size_t s = 0; s < g_.nodes[i].inputs.size(); ++s) {
      int v = g_.nodes[i].inputs[s];
      if (v >= 0) uses_[v].push_back({static_cast<int>(i), static_cast<int>(s)});
    }
  return Status::ok();
}

}  // namespace kiln::nn
