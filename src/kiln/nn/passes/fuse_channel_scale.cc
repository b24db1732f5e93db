// Folds a per-channel scale of a 1x1 convolution's input into the convolution:
//   Mul(x [N,H,W,C], s [N,1,1,C]) -> com.kiln.Conv 1x1 (group 1)
// becomes com.kiln.Conv(x, W, B, residual, input_scale = s). This is the squeeze-and-excitation
// gate of EfficientNet and MobileNetV3, whose output is read only by the projection conv: the
// conv then scales its K x M weights per run (one row per input channel) instead of the Mul
// writing and the conv re-reading an H x W x C tensor. It pays when H*W > M, so only those layers
// are rewritten (the late 7x7 stages keep their Mul).
#include "kiln/nn/passes/passes.h"

namespace kiln::nn::passes {
namespace {

constexpr size_t kScaleSlot = 4;

bool is_pointwise_conv(const Node& n) {
  if (n.domain != "com.kiln" || n.op_type != "Conv") return false;
  const Attribute* k = n.attribute("kernel_shape");
  const Attribute* s = n.attribute("strides");
  const Attribute* p = n.attribute("pads");
  const Attribute* g = n.attribute("group");
  auto all = [](const Attribute* a, int64_t v) {
    if (!a) return true;
    for (int64_t x : a->ints)
      if (x != v) return false;
    return true;
  };
  return k && k->ints.size() == 2 && all(k, 1) && all(s, 1) && all(p, 0) && (!g || g->i == 1);
}

}  // namespace

Result<int> fuse_channel_scale(GraphEditor& e) {
  int fused = 0;
  Graph& g = e.graph();
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    if (e.is_dead(static_cast<int>(i)) || !is_pointwise_conv(g.nodes[i])) continue;
    Node& conv = g.nodes[i];
    if (conv.inputs.size() > kScaleSlot && conv.inputs[kScaleSlot] >= 0) continue;
    const int in = conv.inputs[0];
    const int mul_node = e.producer(in);
    if (mul_node < 0 || e.is_dead(mul_node) || !e.single_use(in)) continue;
    const Node& mul = g.nodes[mul_node];
    if (!mul.domain.empty() || mul.op_type != "Mul" || mul.inputs.size() != 2) continue;
    const Shape y = e.shape(conv.outputs[0]);
    for (int side = 0; side < 2; ++side) {
      const int x = mul.inputs[side], s = mul.inputs[1 - side];
      if (x < 0 || s < 0 || e.dtype(x) != DType::kFloat32 || e.dtype(s) != DType::kFloat32) continue;
      const Shape xs = e.shape(x), ss = e.shape(s);
      if (xs.size() != 4 || ss.size() != 4 || xs != e.shape(in) || y.size() != 4) continue;
      if (ss[0] != xs[0] || ss[1] != 1 || ss[2] != 1 || ss[3] != xs[3]) continue;
      if (xs[1] * xs[2] <= y[3]) break;  // scaling the weights would cost more than the Mul
      if (conv.inputs.size() <= kScaleSlot) conv.inputs.resize(kScaleSlot + 1, -1);
      e.set_input(static_cast<int>(i), 0, x);
      e.set_input(static_cast<int>(i), kScaleSlot, s);
      e.remove_node(mul_node);
      ++fused;
      break;
    }
  }
  return fused;
}

}  // namespace kiln::nn::passes
