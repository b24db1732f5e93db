// Folds an inference-mode BatchNormalization into the Conv or Gemm that feeds it:
//   y = (conv(x, W) + b - mean) * s + beta, s = gamma / sqrt(var + eps)
//     = conv(x, W * s) + (b - mean) * s + beta.
#include <cmath>

#include "kiln/nn/passes/passes.h"

namespace kiln::nn::passes {
namespace {

struct BnParams {
  std::vector<float> scale, shift;  // y = x * scale + shift, per channel
};

// The per-channel affine map of a BatchNormalization node, if it is foldable (float32 constant
// parameters, inference mode, only the first output used).
bool read_batchnorm(const GraphEditor& e, const Node& bn, int64_t channels, BnParams* out) {
  if (!bn.domain.empty() || bn.op_type != "BatchNormalization" || bn.inputs.size() < 5) return false;
  for (size_t i = 1; i < bn.outputs.size(); ++i)
    if (bn.outputs[i] >= 0 && (!e.uses(bn.outputs[i]).empty() || e.is_graph_output(bn.outputs[i]))) return false;
  if (const Attribute* t = bn.attribute("training_mode"); t && t->i != 0) return false;
  const Tensor* p[4];
  for (int i = 0; i < 4; ++i) {
    p[i] = e.constant(bn.inputs[1 + i]);
    if (!p[i] || p[i]->dtype() != DType::kFloat32 || p[i]->num_elements() != channels) return false;
  }
  const Attribute* eps_attr = bn.attribute("epsilon");
  const double eps = eps_attr && eps_attr->kind == Attribute::Kind::kFloat ? eps_attr->f : 1e-5;
  out->scale.resize(channels);
  out->shift.resize(channels);
  for (int64_t c = 0; c < channels; ++c) {
    double s = p[0]->data<float>()[c] / std::sqrt(static_cast<double>(p[3]->data<float>()[c]) + eps);
    out->scale[c] = static_cast<float>(s);
    out->shift[c] = static_cast<float>(p[1]->data<float>()[c] - p[2]->data<float>()[c] * s);
  }
  return true;
}

// Conv(X, W[, B]) with constant float W: returns the number of output channels, or 0.
int64_t conv_channels(const GraphEditor& e, const Node& conv) {
  if (!conv.domain.empty() || conv.op_type != "Conv" || conv.inputs.size() < 2) return 0;
  const Tensor* w = e.constant(conv.inputs[1]);
  if (!w || w->dtype() != DType::kFloat32 || w->rank() < 3) return 0;
  if (conv.inputs.size() > 2 && conv.inputs[2] >= 0) {
    const Tensor* b = e.constant(conv.inputs[2]);
    if (!b || b->dtype() != DType::kFloat32) return 0;
  }
  return w->shape()[0];
}

bool fold_into_conv(GraphEditor& e, int conv_index, const BnParams& bn) {
  Node conv = e.node(conv_index);
  const Tensor& w = *e.constant(conv.inputs[1]);
  const int64_t m = w.shape()[0], per = w.num_elements() / std::max<int64_t>(m, 1);
  Tensor nw(DType::kFloat32, w.shape());
  for (int64_t o = 0; o < m; ++o)
    for (int64_t i = 0; i < per; ++i) nw.data<float>()[o * per + i] = w.data<float>()[o * per + i] * bn.scale[o];
  Tensor nb(DType::kFloat32, {m});
  const Tensor* b = conv.inputs.size() > 2 && conv.inputs[2] >= 0 ? e.constant(conv.inputs[2]) : nullptr;
  for (int64_t o = 0; o < m; ++o) nb.data<float>()[o] = (b ? b->data<float>()[o] * bn.scale[o] : 0.f) + bn.shift[o];
  int wv = e.add_constant(conv.name + ".w_bn", std::move(nw));
  int bv = e.add_constant(conv.name + ".b_bn", std::move(nb));
  e.set_input(conv_index, 1, wv);
  if (e.node(conv_index).inputs.size() < 3) e.node(conv_index).inputs.resize(3, -1);
  e.set_input(conv_index, 2, bv);
  return true;
}

// Gemm(A, B, C) with constant B (and C absent or a constant row vector): returns N, or 0.
int64_t gemm_columns(const GraphEditor& e, const Node& g) {
  if (!g.domain.empty() || g.op_type != "Gemm" || g.inputs.size() < 2) return 0;
  const Tensor* b = e.constant(g.inputs[1]);
  if (!b || b->dtype() != DType::kFloat32 || b->rank() != 2) return 0;
  const Attribute* tb = g.attribute("transB");
  const int64_t n = tb && tb->i ? b->shape()[0] : b->shape()[1];
  if (g.inputs.size() > 2 && g.inputs[2] >= 0) {
    const Tensor* c = e.constant(g.inputs[2]);
    if (!c || c->dtype() != DType::kFloat32) return 0;
    if (c->num_elements() != n && c->num_elements() != 1) return 0;
    if (c->rank() == 2 && c->shape()[0] != 1) return 0;
  }
  return n;
}

bool fold_into_gemm(GraphEditor& e, int gemm_index, const BnParams& bn) {
  Node g = e.node(gemm_index);
  const Tensor& b = *e.constant(g.inputs[1]);
  const Attribute* tba = g.attribute("transB");
  const bool tb = tba && tba->i;
  const Attribute* aa = g.attribute("alpha");
  const Attribute* ba = g.attribute("beta");
  const float alpha = aa && aa->kind == Attribute::Kind::kFloat ? aa->f : 1.f;
  const float beta = ba && ba->kind == Attribute::Kind::kFloat ? ba->f : 1.f;
  const int64_t rows = b.shape()[0], cols = b.shape()[1], n = tb ? rows : cols;
  Tensor nb(DType::kFloat32, b.shape());
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c)
      nb.data<float>()[r * cols + c] = b.data<float>()[r * cols + c] * alpha * bn.scale[tb ? r : c];
  Tensor nc(DType::kFloat32, {n});
  const Tensor* c = g.inputs.size() > 2 && g.inputs[2] >= 0 ? e.constant(g.inputs[2]) : nullptr;
  for (int64_t j = 0; j < n; ++j) {
    float cj = c ? c->data<float>()[c->num_elements() == 1 ? 0 : j] * beta : 0.f;
    nc.data<float>()[j] = cj * bn.scale[j] + bn.shift[j];
  }
  int bv = e.add_constant(g.name + ".b_bn", std::move(nb));
  int cv = e.add_constant(g.name + ".c_bn", std::move(nc));
  e.set_input(gemm_index, 1, bv);
  if (e.node(gemm_index).inputs.size() < 3) e.node(gemm_index).inputs.resize(3, -1);
  e.set_input(gemm_index, 2, cv);
  Node& gn = e.node(gemm_index);
  gn.attributes.erase("alpha");
  gn.attributes.erase("beta");
  return true;
}

}  // namespace

Result<int> fold_batchnorm(GraphEditor& e) {
  int folded = 0;
  Graph& g = e.graph();
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    if (e.is_dead(static_cast<int>(i))) continue;
    const Node& bn = g.nodes[i];
    if (bn.op_type != "BatchNormalization" || !bn.domain.empty() || bn.inputs.empty() || bn.inputs[0] < 0) continue;
    int x = bn.inputs[0];
    int p = e.producer(x);
    if (p < 0 || !e.single_use(x)) continue;
    const Node& prod = g.nodes[p];
    BnParams params;
    if (int64_t m = conv_channels(e, prod); m > 0) {
      if (!read_batchnorm(e, bn, m, &params)) continue;
      fold_into_conv(e, p, params);
    } else if (int64_t n = gemm_columns(e, prod); n > 0) {
      if (e.shape(x).size() != 2 || !read_batchnorm(e, bn, n, &params)) continue;
      fold_into_gemm(e, p, params);
    } else {
      continue;
    }
    // The Conv/Gemm takes over the BatchNormalization's output (and its name).
    e.set_output(p, 0, g.nodes[i].outputs[0]);
    e.remove_node(static_cast<int>(i));
    ++folded;
  }
  return folded;
}

}  // namespace kiln::nn::passes
