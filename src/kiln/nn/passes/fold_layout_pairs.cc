// A layout change, a per-tensor Quantize or Dequantize, and the opposite layout change:
//
//   com.kiln.Transpose(to nchw) -> com.kiln.Quantize -> com.kiln.Transpose(to nhwc)
//
// becomes the Quantize alone on the first Transpose's input. Converting each value on its own is
// the same in either layout, so the two copies compute nothing. The pair appears where a float
// convolution (a layer `kiln quantize --exclude` left in float) feeds an integer one: the
// quantized pass, which runs first, gives the QConv an NHWC twin of the Quantize's NCHW output,
// and layout_nhwc later runs the float convolution in NHWC and transposes its output back for the
// Quantize. On KWS with its first convolution in float the two transposes were 13 of 36 us.
#include "kiln/nn/passes/attributes.h"
#include "kiln/nn/passes/passes.h"

namespace kiln::nn::passes {
namespace {

// The layout change a com.kiln.Transpose makes ("nhwc" or "nchw"), or "" for any other node.
std::string layout_change(const Node& n) {
  if (!is_kiln(n, "Transpose") || n.inputs.size() != 1 || n.outputs.size() != 1 || n.inputs[0] < 0 || n.outputs[0] < 0)
    return "";
  return string_attr(n, "to");
}

}  // namespace

Result<int> fold_layout_pairs(GraphEditor& e) {
  Graph& g = e.graph();
  int folded = 0;
  const size_t count = g.nodes.size();
  for (size_t i = 0; i < count; ++i) {
    const int back = static_cast<int>(i);
    if (e.is_dead(back)) continue;
    const std::string to = layout_change(g.nodes[i]);
    if (to != "nhwc" && to != "nchw") continue;
    const int q = g.nodes[i].inputs[0], out = g.nodes[i].outputs[0];
    const int cvt = e.producer(q);
    if (cvt < 0 || e.is_dead(cvt) || !e.single_use(q)) continue;
    const Node& c = g.nodes[static_cast<size_t>(cvt)];
    if (!(is_kiln(c, "Quantize") || is_kiln(c, "Dequantize")) || c.inputs.empty() || c.outputs.size() != 1 ||
        c.inputs[0] < 0)
      continue;
    const int v = c.inputs[0];
    const int front = e.producer(v);
    if (front < 0 || e.is_dead(front) || !e.single_use(v)) continue;
    const std::string from = layout_change(g.nodes[static_cast<size_t>(front)]);
    if (from.empty() || from == to) continue;
    const int twin = g.nodes[static_cast<size_t>(front)].inputs[0];
    e.set_input(cvt, 0, twin);
    e.set_output(cvt, 0, out);
    e.remove_node(front);
    e.remove_node(back);
    ++folded;
  }
  return folded;
}

}  // namespace kiln::nn::passes
