// Runs quantised models on integer kernels.
//
// A QDQ model (what ONNX Runtime's and tf2onnx's quantisers write) spells int8 arithmetic in
// float: DequantizeLinear -> Conv / Gemm / MatMul / pooling / Add / Mul -> QuantizeLinear, with
// the weights stored as int8 initializers behind their own DequantizeLinear. This pass finds those
// chains ("node units", as ONNX Runtime calls them) and replaces each by one com.kiln integer
// operator that reads the int8 tensor, accumulates in int32 and requantises straight to the next
// int8 tensor (ops/fast_qconv.cc, fast_qdense.cc, fast_qelementwise.cc):
//
//   DQ(x) -> Conv(DQ(W), DQ(b)) [-> Relu/Clip] -> Q     com.kiln.QConv (NHWC)
//     (x may be int16, a model input quantised to 16 bits: the QConv then reads the float tensor
//     before its QuantizeLinear and quantises it itself, kernels/qs16_conv.h)
//   DQ(x) -> Gemm / MatMul [+ bias Add] [-> Relu/Clip] -> Q  com.kiln.QDense (or float output)
//   DQ(x) -> MaxPool / AveragePool / GlobalAveragePool -> Q  com.kiln.QPool (NHWC)
//   DQ(a), DQ(b) -> Add / Mul [-> Relu/Clip] -> Q       com.kiln.QAdd / QMul
//   QLinearConv, QLinearMatMul with constant weights     com.kiln.QConv / QDense
//
// Convolutions run channels-last: int8 tensors get NHWC twins as in layout_nhwc.cc, with layout
// changes only where the int8 region meets the rest of the graph. Weights must be constant
// integers whose zero point can be folded into int8 (symmetric int8 weights always can). What is
// left runs as before: the remaining per-tensor QuantizeLinear / DequantizeLinear become the
// vectorised com.kiln.Quantize / Dequantize, the DequantizeLinear of unused constant weights are
// folded to float, and any operator between a DequantizeLinear and a QuantizeLinear without an
// integer kernel (Softmax, Sigmoid, ...) runs in float on the dequantised values; the notes list
// those nodes (`kiln info`).
//
// compile() keeps DequantizeLinear of constant weights unfolded during analysis so that this pass
// sees the integer weights and their scales.
#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "kiln/nn/kernels/qs16_conv.h"
#include "kiln/nn/ops/fused_activation.h"
#include "kiln/nn/passes/attributes.h"
#include "kiln/nn/passes/nhwc_flatten.h"
#include "kiln/nn/passes/passes.h"

namespace kiln::nn::passes {
namespace {

bool is_q8(DType t) { return t == DType::kInt8 || t == DType::kUInt8; }
bool is_op(const Node& n, const char* op) { return n.domain.empty() && n.op_type == op; }
Shape to_nhwc(const Shape& s) { return {s[0], s[2], s[3], s[1]}; }

// Explicit [top, left, bottom, right] pads of a 2-D window node, resolving auto_pad.
bool window_pads(const Node& n, int64_t in_h, int64_t in_w, int64_t kh, int64_t kw, const std::vector<int64_t>& s,
                 const std::vector<int64_t>& d, std::vector<int64_t>* pads) {
  const std::string ap = string_attr(n, "auto_pad");
  if (ap.empty() || ap == "NOTSET") {
    *pads = ints_attr(n, "pads", {0, 0, 0, 0});
    return pads->size() == 4;
  }
  if (ap == "VALID") {
    *pads = {0, 0, 0, 0};
    return true;
  }
  if (ap != "SAME_UPPER" && ap != "SAME_LOWER") return false;
  int64_t begin[2], end[2];
  const int64_t in[2] = {in_h, in_w}, k[2] = {kh, kw};
  for (int i = 0; i < 2; ++i) {
    const int64_t out = (in[i] + s[i] - 1) / s[i];
    const int64_t total = std::max<int64_t>(0, (out - 1) * s[i] + (k[i] - 1) * d[i] + 1 - in[i]);
    const int64_t small = total / 2, big = total - small;
    begin[i] = ap == "SAME_UPPER" ? small : big;
    end[i] = ap == "SAME_UPPER" ? big : small;
  }
  *pads = {begin[0], begin[1], end[0], end[1]};
  return true;
}

// A per-tensor quantisation: real = scale * (q - zero_point), q of `dtype` (int8 or uint8).
struct QParam {
  float scale = 1.f;
  int32_t zero_point = 0;
  DType dtype = DType::kUInt8;
  bool same(const QParam& o) const { return scale == o.scale && zero_point == o.zero_point && dtype == o.dtype; }
};

// Weights as int8 with the zero point removed, one scale per output channel.
struct QWeights {
  Tensor w;                 // int8, the original shape
  std::vector<float> scale; // per output channel (expanded when per tensor)
};

int32_t quantize_value(float v, const QParam& q) {
  const float lo = q.dtype == DType::kUInt8 ? 0.f : -128.f, hi = q.dtype == DType::kUInt8 ? 255.f : 127.f;
  float r = std::nearbyint(v / q.scale) + static_cast<float>(q.zero_point);
  if (std::isnan(r)) r = 0.f;
  return static_cast<int32_t>(std::min(std::max(r, lo), hi));
}

class QuantizedPass {
 public:
  QuantizedPass(GraphEditor& e, std::vector<std::string>* notes) : e_(e), g_(e.graph()), notes_(notes) {}

  Result<int> run() {
    hoist_quantize_over_transpose();
    sink_dequantize_below_shape_ops();
    const size_t count = g_.nodes.size();
    for (size_t i = 0; i < count; ++i) {
      if (e_.is_dead(static_cast<int>(i))) continue;
      const Node n = g_.nodes[i];
      if (!n.domain.empty()) continue;
      bool done = false;
      if (n.op_type == "Conv") done = fuse_conv(static_cast<int>(i), n);
      else if (n.op_type == "Gemm" || n.op_type == "MatMul") done = fuse_dense(static_cast<int>(i), n);
      else if (n.op_type == "QLinearConv") done = fuse_qlinear_conv(static_cast<int>(i), n);
      else if (n.op_type == "QLinearMatMul") done = fuse_qlinear_matmul(static_cast<int>(i), n);
      else if (n.op_type == "ConvInteger") done = fuse_conv_integer(static_cast<int>(i), n);
      else if (n.op_type == "MatMulInteger") done = fuse_matmul_integer(static_cast<int>(i), n);
      else if (n.op_type == "MaxPool" || n.op_type == "AveragePool" || n.op_type == "GlobalAveragePool")
        done = fuse_pool(static_cast<int>(i), n);
      else if (n.op_type == "Add" || n.op_type == "Mul") done = fuse_binary(static_cast<int>(i), n);
      else if (n.op_type == "Reshape" || n.op_type == "Flatten" || n.op_type == "Squeeze" || n.op_type == "Unsqueeze")
        done = fuse_shape_op(static_cast<int>(i), n);
      if (done) ++rewrites_;
    }
    // Re-create, from their NHWC twins, the int8 values someone may still read in NCHW (finish()
    // drops the transposes nobody reads).
    for (const auto& [v, twin] : produced_) {
      bool read = e_.is_graph_output(v);
      for (const Use& u : e_.uses(v))
        if (!e_.is_dead(u.node)) read = true;
      if (read) add_transpose(twin, v, "nchw");
    }
    report_fallbacks();
    fold_weight_dequantize();
    rewrites_ += fast_conversions();
    return rewrites_;
  }

 private:
  // QuantizeLinear(Transpose NHWC->NCHW (x)), as models converted from TensorFlow start: quantise
  // the NHWC tensor first and transpose the bytes, so that the integer convolutions read the NHWC
  // int8 tensor directly (nhwc() recognises the transpose) and no float transpose runs.
  void hoist_quantize_over_transpose() {
    const size_t count = g_.nodes.size();
    for (size_t i = 0; i < count; ++i) {
      if (e_.is_dead(static_cast<int>(i))) continue;
      const Node q = g_.nodes[i];
      if (!is_op(q, "QuantizeLinear") || q.inputs.size() < 2 || q.outputs.size() != 1 || q.outputs[0] < 0 ||
          !qdq_attrs_ok(q))
        continue;
      float scale;
      if (!scalar_scale(q.inputs[1], &scale) || !is_q8(e_.dtype(q.outputs[0]))) continue;
      const int t = q.inputs[0];
      if (t < 0 || !e_.single_use(t) || e_.producer(t) < 0 || e_.is_dead(e_.producer(t))) continue;
      const int tp = e_.producer(t);
      const Node tr = g_.nodes[tp];
      if (!is_op(tr, "Transpose") || tr.inputs.size() != 1 || tr.inputs[0] < 0 ||
          ints_attr(tr, "perm", {}) != std::vector<int64_t>{0, 3, 1, 2} || !is_4d(tr.inputs[0]))
        continue;
      const int x = tr.inputs[0];
      const int qx = e_.add_value(e_.value(q.outputs[0]).name + "_nhwc", e_.dtype(q.outputs[0]), e_.shape(x));
      std::vector<int> qin = q.inputs;
      qin[0] = x;
      const int nq = e_.add_node("QuantizeLinear", "", q.name, qin, {qx});
      e_.node(nq).attributes = q.attributes;
      const int nt = e_.add_node("Transpose", "", tr.name, {qx}, {q.outputs[0]});
      e_.node(nt).attributes = tr.attributes;
      e_.remove_node(static_cast<int>(i));
      e_.remove_node(tp);
    }
  }

  // DQ(q) -> Reshape / Flatten / Squeeze / Unsqueeze -> consumer: the shape op moves onto the int8
  // tensor and the DequantizeLinear after it (per-tensor parameters do not care about shape), so
  // that a Gemm after a Flatten sees DQ directly.
  void sink_dequantize_below_shape_ops() {
    const size_t count = g_.nodes.size();
    for (size_t i = 0; i < count; ++i) {
      if (e_.is_dead(static_cast<int>(i))) continue;
      const Node n = g_.nodes[i];
      if (!n.domain.empty() || n.inputs.empty() || n.outputs.size() != 1 || n.outputs[0] < 0) continue;
      if (n.op_type != "Reshape" && n.op_type != "Flatten" && n.op_type != "Squeeze" && n.op_type != "Unsqueeze")
        continue;
      for (size_t k = 1; k < n.inputs.size(); ++k)
        if (n.inputs[k] >= 0 && !e_.constant(n.inputs[k])) goto next;
      {
        QParam q;
        int src = -1;
        const int v = n.inputs[0];
        if (v < 0 || !e_.single_use(v) || !activation_dq(v, &q, &src)) continue;
        // Followed by a QuantizeLinear with the same parameters: fuse_shape_op makes the pair a
        // view of the int8 tensor instead (moving the DequantizeLinear would leave DQ -> Q).
        OutputQ oq;
        if (output_q(n.outputs[0], &oq) && oq.nodes.size() == 1 && oq.q.same(q)) continue;
        const Node dq = g_.nodes[e_.producer(v)];
        const int y = n.outputs[0];
        const int reshaped = e_.add_value(e_.value(y).name + "_int8", e_.dtype(src), e_.shape(y));
        std::vector<int> ins = n.inputs;
        ins[0] = src;
        const int sn = e_.add_node(n.op_type, "", n.name, ins, {reshaped});
        e_.node(sn).attributes = n.attributes;
        std::vector<int> dq_in = dq.inputs;
        dq_in[0] = reshaped;
        const int dn = e_.add_node("DequantizeLinear", "", dq.name + "_moved", dq_in, {y});
        e_.node(dn).attributes = dq.attributes;
        e_.remove_node(static_cast<int>(i));
        e_.remove_node(e_.producer(v));
      }
    next:;
    }
  }

  // ---- reading the quantisation parameters ----

  // A constant float32 scalar that is a usable scale (finite, > 0).
  bool scalar_scale(int v, float* out) const {
    const Tensor* t = e_.constant(v);
    if (!t || t->dtype() != DType::kFloat32 || t->num_elements() != 1 || t->rank() > 1) return false;
    const float s = t->data<float>()[0];
    if (!std::isfinite(s) || !(s > 0.f)) return false;
    *out = s;
    return true;
  }
  // A constant int8/uint8 scalar zero point; absent (-1) means uint8 0 unless `dtype` says otherwise.
  bool scalar_zero_point(int v, DType dtype, QParam* q) const {
    q->dtype = dtype;
    q->zero_point = 0;
    if (v < 0) return true;
    const Tensor* t = e_.constant(v);
    if (!t || !is_q8(t->dtype()) || t->num_elements() != 1 || t->rank() > 1) return false;
    q->dtype = t->dtype();
    q->zero_point = t->dtype() == DType::kInt8 ? t->data<int8_t>()[0] : t->data<uint8_t>()[0];
    return dtype == DType::kUndefined || dtype == q->dtype;
  }

  bool qdq_attrs_ok(const Node& n) const {
    if (int_attr(n, "block_size", 0) != 0) return false;
    const int64_t od = int_attr(n, "output_dtype", 0);
    return od == 0 || od == 2 || od == 3;  // uint8, int8
  }

  // The live DequantizeLinear producing `v` from a runtime int8/uint8 tensor with per-tensor
  // parameters. Gives the integer tensor and its parameters.
  bool activation_dq(int v, QParam* q, int* src) const {
    if (v < 0) return false;
    const int p = e_.producer(v);
    if (p < 0 || e_.is_dead(p)) return false;
    const Node& n = g_.nodes[p];
    if (!is_op(n, "DequantizeLinear") || n.inputs.size() < 2 || !qdq_attrs_ok(n)) return false;
    const int x = n.inputs[0];
    if (x < 0 || e_.constant(x) || !is_q8(e_.dtype(x))) return false;
    if (!scalar_scale(n.inputs[1], &q->scale)) return false;
    if (!scalar_zero_point(n.inputs.size() > 2 ? n.inputs[2] : -1, e_.dtype(x), q)) return false;
    *src = x;
    return true;
  }

  // The live DequantizeLinear producing `v` from a runtime int16 tensor with per-tensor parameters
  // (an input quantised to 16 bits: `kiln quantize --input-bits 16`).
  bool activation_dq16(int v, QParam* q, int* src) const {
    if (v < 0) return false;
    const int p = e_.producer(v);
    if (p < 0 || e_.is_dead(p)) return false;
    const Node& n = g_.nodes[p];
    if (!is_op(n, "DequantizeLinear") || n.inputs.size() != 3 || !qdq_attrs_ok(n)) return false;
    const int x = n.inputs[0];
    const Tensor* z = n.inputs[2] >= 0 ? e_.constant(n.inputs[2]) : nullptr;
    if (x < 0 || e_.constant(x) || e_.dtype(x) != DType::kInt16 || !z || z->dtype() != DType::kInt16 ||
        z->num_elements() != 1 || z->rank() > 1 || !scalar_scale(n.inputs[1], &q->scale))
      return false;
    q->dtype = DType::kInt16;
    q->zero_point = z->data<int16_t>()[0];
    *src = x;
    return true;
  }

  // Integer weights from the DequantizeLinear producing `v` (constant input): per tensor, or per
  // channel along `axis` with `channels` entries. The zero point must fold into int8.
  bool dq_weights(int v, int64_t axis, int64_t channels, QWeights* out) const {
    if (v < 0) return false;
    const int p = e_.producer(v);
    if (p < 0 || e_.is_dead(p)) return false;
    const Node& n = g_.nodes[p];
    if (!is_op(n, "DequantizeLinear") || n.inputs.size() < 2 || !qdq_attrs_ok(n)) return false;
    const Tensor* w = e_.constant(n.inputs[0]);
    const Tensor* s = e_.constant(n.inputs[1]);
    const Tensor* z = n.inputs.size() > 2 && n.inputs[2] >= 0 ? e_.constant(n.inputs[2]) : nullptr;
    if (!w || !s || !is_q8(w->dtype()) || s->dtype() != DType::kFloat32) return false;
    if (n.inputs.size() > 2 && n.inputs[2] >= 0 && (!z || z->dtype() != w->dtype())) return false;
    const int64_t rank = static_cast<int64_t>(w->rank());
    const bool per_tensor = s->num_elements() == 1 && s->rank() <= 1;
    if (!per_tensor) {
      int64_t a = int_attr(n, "axis", 1);
      if (a < 0) a += rank;
      if (a != axis || s->rank() != 1 || s->num_elements() != channels || w->shape()[axis] != channels) return false;
      if (z && z->num_elements() != channels) return false;
    } else if (z && z->num_elements() != 1) {
      return false;
    }
    return integer_weights(*w, *s, z, axis, channels, out);
  }

  // w - zero_point as int8 (false when it does not fit), scales expanded to `channels` along
  // `axis`. Scale and zero point each hold one value or one per channel.
  static bool integer_weights(const Tensor& w, const Tensor& s, const Tensor* z, int64_t axis, int64_t channels,
                              QWeights* out) {
    const int64_t total = w.num_elements();
    if (s.num_elements() != 1 && s.num_elements() != channels) return false;
    if (z && z->num_elements() != 1 && z->num_elements() != channels) return false;
    int64_t inner = 1;
    for (size_t d = static_cast<size_t>(axis) + 1; d < w.rank(); ++d) inner *= w.shape()[d];
    out->w = Tensor(DType::kInt8, w.shape());
    out->scale.assign(static_cast<size_t>(channels), 0.f);
    for (int64_t c = 0; c < channels; ++c) {
      const float sc = s.data<float>()[s.num_elements() == 1 ? 0 : c];
      if (!std::isfinite(sc) || !(sc > 0.f)) return false;
      out->scale[c] = sc;
    }
    for (int64_t i = 0; i < total; ++i) {
      const int64_t c = (i / inner) % channels;
      const int64_t zi = z && z->num_elements() != 1 ? c : 0;
      const int32_t zp = !z ? 0 : z->dtype() == DType::kInt8 ? z->data<int8_t>()[zi] : z->data<uint8_t>()[zi];
      const int32_t q = w.dtype() == DType::kInt8 ? w.data<int8_t>()[i] : w.data<uint8_t>()[i];
      const int32_t v = q - zp;
      if (v < -128 || v > 127) return false;
      out->w.data<int8_t>()[i] = static_cast<int8_t>(v);
    }
    return true;
  }

  // The bias in accumulator units (x_scale * w_scale[c]): from a DequantizeLinear of int32 (used
  // as is when its scale is the product, as quantisers write it) or a float constant.
  bool bias_values(int v, int64_t channels, float xs, const std::vector<float>& ws, std::vector<int32_t>* out) const {
    out->assign(static_cast<size_t>(channels), 0);
    if (v < 0) return true;
    const int p = e_.producer(v);
    std::vector<double> real(static_cast<size_t>(channels));
    if (p >= 0 && !e_.is_dead(p) && is_op(g_.nodes[p], "DequantizeLinear")) {
      const Node& n = g_.nodes[p];
      const Tensor* b = e_.constant(n.inputs[0]);
      const Tensor* s = n.inputs.size() > 1 ? e_.constant(n.inputs[1]) : nullptr;
      const Tensor* z = n.inputs.size() > 2 && n.inputs[2] >= 0 ? e_.constant(n.inputs[2]) : nullptr;
      if (!b || !s || b->dtype() != DType::kInt32 || s->dtype() != DType::kFloat32 || b->num_elements() != channels)
        return false;
      if (n.inputs.size() > 2 && n.inputs[2] >= 0 && (!z || z->dtype() != DType::kInt32)) return false;
      if (s->num_elements() != 1 && s->num_elements() != channels) return false;
      for (int64_t c = 0; c < channels; ++c) {
        const float sb = s->data<float>()[s->num_elements() == 1 ? 0 : c];
        const int32_t zb = z ? z->data<int32_t>()[z->num_elements() == 1 ? 0 : c] : 0;
        const int32_t q = b->data<int32_t>()[c];
        if (sb == xs * ws[c] && zb == 0) {
          (*out)[c] = q;
          continue;
        }
        real[c] = (static_cast<double>(q) - zb) * sb;
        if (!to_accumulator(real[c], xs * ws[c], &(*out)[c])) return false;
      }
      return true;
    }
    const Tensor* b = e_.constant(v);
    if (!b || b->dtype() != DType::kFloat32 || b->num_elements() != channels) return false;
    for (int64_t c = 0; c < channels; ++c)
      if (!to_accumulator(b->data<float>()[c], xs * ws[c], &(*out)[c])) return false;
    return true;
  }
  static bool to_accumulator(double real, float unit, int32_t* out) {
    const double q = std::nearbyint(real / unit);
    if (!(std::fabs(q) < 2147483647.0)) return false;
    *out = static_cast<int32_t>(q);
    return true;
  }

  // Follows `v` through an optional Relu / Clip to a QuantizeLinear with per-tensor parameters.
  // Gives the Q's output value, its parameters, the clamp the activation adds (in the output's
  // own integer values) and the nodes to remove.
  struct OutputQ {
    int value = -1;
    QParam q;
    int32_t qmin = 0, qmax = 0;
    std::vector<int> nodes;
  };
  bool output_q(int v, OutputQ* out) const {
    out->nodes.clear();
    float lo = -std::numeric_limits<float>::infinity(), hi = std::numeric_limits<float>::infinity();
    for (int hops = 0; hops < 3; ++hops) {
      if (!e_.single_use(v)) return false;
      const Use u = e_.uses(v)[0];
      if (e_.is_dead(u.node)) return false;
      const Node& n = g_.nodes[u.node];
      if (is_op(n, "QuantizeLinear")) {
        if (u.slot != 0 || n.inputs.size() < 2 || !qdq_attrs_ok(n) || n.outputs.empty() || n.outputs[0] < 0)
          return false;
        if (!scalar_scale(n.inputs[1], &out->q.scale)) return false;
        const int zp = n.inputs.size() > 2 ? n.inputs[2] : -1;
        DType want = DType::kUndefined;
        if (zp < 0) {
          const int64_t od = int_attr(n, "output_dtype", 0);
          want = od == 3 ? DType::kInt8 : DType::kUInt8;
        }
        if (!scalar_zero_point(zp, want, &out->q)) return false;
        if (!is_q8(e_.dtype(n.outputs[0]))) return false;
        out->value = n.outputs[0];
        out->nodes.push_back(u.node);
        const bool u8 = out->q.dtype == DType::kUInt8;
        out->qmin = u8 ? 0 : -128;
        out->qmax = u8 ? 255 : 127;
        if (lo > -std::numeric_limits<float>::infinity()) out->qmin = std::max(out->qmin, quantize_value(lo, out->q));
        if (hi < std::numeric_limits<float>::infinity()) out->qmax = std::min(out->qmax, quantize_value(hi, out->q));
        return out->qmin <= out->qmax;
      }
      std::string act;
      std::vector<float> params;
      auto value_of = [&](size_t slot) -> const Value* {
        return slot < n.inputs.size() && n.inputs[slot] >= 0 ? &g_.values[n.inputs[slot]] : nullptr;
      };
      if (u.slot != 0 || n.outputs.empty() || n.outputs[0] < 0) return false;
      if (!ops::fusable_activation(n, value_of(1), value_of(2), &act, &params)) return false;
      if (act == "relu") {
        lo = std::max(lo, 0.f);
      } else if (act == "clip" && params.size() == 2) {
        lo = std::max(lo, params[0]);
        hi = std::min(hi, params[1]);
      } else {
        return false;
      }
      out->nodes.push_back(u.node);
      v = n.outputs[0];
    }
    return false;
  }

  // ---- building ----

  int scalar_float_constant(const std::string& hint, float v) {
    Tensor t(DType::kFloat32, {});
    t.data<float>()[0] = v;
    return e_.add_constant(hint, std::move(t));
  }
  int zero_point_constant(const std::string& hint, const QParam& q) {
    Tensor t(q.dtype, {});
    if (q.dtype == DType::kInt8) t.data<int8_t>()[0] = static_cast<int8_t>(q.zero_point);
    else if (q.dtype == DType::kInt16) t.data<int16_t>()[0] = static_cast<int16_t>(q.zero_point);
    else t.data<uint8_t>()[0] = static_cast<uint8_t>(q.zero_point);
    return e_.add_constant(hint, std::move(t));
  }
  int vector_constant(const std::string& hint, const std::vector<float>& v) {
    Tensor t(DType::kFloat32, {static_cast<int64_t>(v.size())});
    std::copy(v.begin(), v.end(), t.data<float>());
    return e_.add_constant(hint, std::move(t));
  }
  int int32_constant(const std::string& hint, const std::vector<int32_t>& v) {
    Tensor t(DType::kInt32, {static_cast<int64_t>(v.size())});
    std::copy(v.begin(), v.end(), t.data<int32_t>());
    return e_.add_constant(hint, std::move(t));
  }

  void add_transpose(int from, int to, const char* direction) {
    int t = e_.add_node("Transpose", "com.kiln", e_.value(to).name + "_" + direction, {from}, {to});
    e_.node(t).attributes["to"] = make_string(direction);
  }

  // The NHWC twin of int8 NCHW value v, created on first request. A value that is an NHWC -> NCHW
  // Transpose (models converted from TensorFlow) has its input as twin.
  int nhwc(int v) {
    auto it = twin_.find(v);
    if (it != twin_.end()) return it->second;
    const int p = e_.producer(v);
    if (p >= 0 && !e_.is_dead(p)) {
      const Node& t = g_.nodes[p];
      if (is_op(t, "Transpose") && ints_attr(t, "perm", {}) == std::vector<int64_t>{0, 3, 1, 2} &&
          t.inputs.size() == 1 && t.inputs[0] >= 0) {
        twin_[v] = t.inputs[0];
        return t.inputs[0];
      }
    }
    const int t = e_.add_value(e_.value(v).name + "_nhwc", e_.dtype(v), to_nhwc(e_.shape(v)));
    add_transpose(v, t, "nhwc");
    twin_[v] = t;
    return t;
  }
  int produce_nhwc(int v) {
    const int t = e_.add_value(e_.value(v).name + "_nhwc", e_.dtype(v), to_nhwc(e_.shape(v)));
    twin_[v] = t;
    produced_[v] = t;
    return t;
  }
  bool native(int v) const { return produced_.count(v) > 0; }
  bool is_4d(int v) const { return v >= 0 && e_.value(v).type.has_shape && e_.shape(v).size() == 4; }

  void retire(int node, const std::vector<int>& also) {
    e_.remove_node(node);
    for (int n : also) e_.remove_node(n);
  }

  // Attributes of an integer output: the clamp of a fused activation.
  static void set_clamp(Node& n, const OutputQ& o) {
    n.attributes["qmin"] = make_int(o.qmin);
    n.attributes["qmax"] = make_int(o.qmax);
  }

  // ---- the node units ----

  struct ConvGeometry {
    std::vector<int64_t> strides, dilations, pads;
    int64_t group = 1, kh = 1, kw = 1;
  };
  bool conv_geometry(const Node& n, const Shape& x, const Shape& w, ConvGeometry* g) const {
    if (x.size() != 4 || w.size() != 4) return false;
    g->strides = ints_attr(n, "strides", {1, 1});
    g->dilations = ints_attr(n, "dilations", {1, 1});
    g->group = int_attr(n, "group", 1);
    g->kh = w[2];
    g->kw = w[3];
    if (g->strides.size() != 2 || g->dilations.size() != 2 || g->group < 1) return false;
    return window_pads(n, x[2], x[3], g->kh, g->kw, g->strides, g->dilations, &g->pads);
  }

  int add_qconv(const std::string& name, int x_src, const QParam& xq, const QWeights& w, const std::vector<int32_t>& bias,
                const ConvGeometry& geo, const OutputQ* oq, int out_nhwc) {
    const int xs = scalar_float_constant(name + ".x_scale", xq.scale);
    const int xz = zero_point_constant(name + ".x_zero_point", xq);
    const int wv = e_.add_constant(name + ".w_int8", w.w);
    const int ws = vector_constant(name + ".w_scale", w.scale);
    const int ys = oq ? scalar_float_constant(name + ".y_scale", oq->q.scale) : -1;
    const int yz = oq ? zero_point_constant(name + ".y_zero_point", oq->q) : -1;
    const int b = int32_constant(name + ".bias_int32", bias);
    const int node = e_.add_node("QConv", "com.kiln", name, {nhwc(x_src), xs, xz, wv, ws, ys, yz, b}, {out_nhwc});
    Node& c = e_.node(node);
    c.attributes["kernel_shape"] = make_ints({geo.kh, geo.kw});
    c.attributes["strides"] = make_ints(geo.strides);
    c.attributes["dilations"] = make_ints(geo.dilations);
    c.attributes["pads"] = make_ints(geo.pads);
    c.attributes["group"] = make_int(geo.group);
    if (oq) set_clamp(c, *oq);
    return node;
  }

  bool fuse_conv(int index, const Node& n) {
    if (n.inputs.size() < 2 || n.outputs.size() != 1 || n.outputs[0] < 0) return false;
    QParam xq;
    int x_src = -1;
    if (!activation_dq(n.inputs[0], &xq, &x_src)) {
      if (!activation_dq16(n.inputs[0], &xq, &x_src)) return false;
      x_src = float_source(x_src, xq);
    }
    if (!is_4d(x_src)) return false;
    const Shape xs = e_.shape(x_src);
    const int y = n.outputs[0];
    if (!is_4d(y)) return false;
    const int64_t m = e_.shape(y)[1];
    QWeights w;
    if (!dq_weights(n.inputs[1], 0, m, &w)) return note_fallback(n, "its weights are not a DequantizeLinear of constant int8");
    ConvGeometry geo;
    if (!conv_geometry(n, xs, w.w.shape(), &geo)) return false;
    std::vector<int32_t> bias;
    if (!bias_values(n.inputs.size() > 2 ? n.inputs[2] : -1, m, xq.scale, w.scale, &bias))
      return note_fallback(n, "its bias cannot be expressed in int32");
    if (xq.dtype == DType::kInt16) {
      if (geo.group != 1 || geo.dilations[1] != 1)
        return note_fallback(n, "int16 activations need one group and no column dilation");
      if (!q16_sums_fit(w, true, bias, xq.zero_point)) return note_fallback(n, "its int16 sums could overflow int32");
    }
    OutputQ oq;
    if (output_q(y, &oq)) {
      add_qconv(n.name, x_src, xq, w, bias, geo, &oq, produce_nhwc(oq.value));
      retire(index, oq.nodes);
      return true;
    }
    // Float output (the result feeds float operators): dequantised in the epilogue, NHWC, then
    // back to the model's NCHW value.
    const int twin = e_.add_value(e_.value(y).name + "_nhwc", DType::kFloat32, to_nhwc(e_.shape(y)));
    add_qconv(n.name, x_src, xq, w, bias, geo, nullptr, twin);
    add_transpose(twin, y, "nchw");
    retire(index, {});
    return true;
  }

  // Whether the int16 kernels' sums stay exact for weights `w` (2-D [K, N], or with
  // `channels_first` [N, ...] with one row of K per output channel, as Conv and transB Gemm
  // weights are) and `bias` (kernels/qs16_conv.h, q16_sums_fit).
  static bool q16_sums_fit(const QWeights& w, bool channels_first, const std::vector<int32_t>& bias, int32_t zero_point) {
    const int64_t n = static_cast<int64_t>(bias.size()), k = w.w.num_elements() / std::max<int64_t>(n, 1);
    const int8_t* src = w.w.data<int8_t>();
    std::vector<int8_t> mat(static_cast<size_t>(k * n));  // [K][N]
    for (int64_t kk = 0; kk < k; ++kk)
      for (int64_t j = 0; j < n; ++j) mat[static_cast<size_t>(kk * n + j)] = channels_first ? src[j * k + kk] : src[kk * n + j];
    return kernels::q16_sums_fit(mat.data(), k, n, bias.data(), zero_point);
  }

  // The float tensor a QuantizeLinear with the parameters `q` turned into int16 value v, when
  // there is one: the int16 QConv quantises while it copies its input (ops/fast_qconv.cc), so the
  // int16 tensor need not exist. Otherwise v.
  int float_source(int v, const QParam& q) const {
    const int p = e_.producer(v);
    if (p < 0 || e_.is_dead(p)) return v;
    const Node& n = g_.nodes[p];
    if (!is_op(n, "QuantizeLinear") || n.inputs.size() != 3 || n.inputs[0] < 0 || !qdq_attrs_ok16(n) ||
        e_.dtype(n.inputs[0]) != DType::kFloat32)
      return v;
    float scale = 0.f;
    const Tensor* z = n.inputs[2] >= 0 ? e_.constant(n.inputs[2]) : nullptr;
    if (!scalar_scale(n.inputs[1], &scale) || scale != q.scale || !z || z->dtype() != DType::kInt16 ||
        z->num_elements() != 1 || z->data<int16_t>()[0] != q.zero_point)
      return v;
    return n.inputs[0];
  }
  bool qdq_attrs_ok16(const Node& n) const {
    const int64_t od = int_attr(n, "output_dtype", 0);
    return int_attr(n, "block_size", 0) == 0 && (od == 0 || od == 5);  // int16
  }

  bool fuse_qlinear_conv(int index, const Node& n) {
    if (n.inputs.size() < 8 || n.outputs.size() != 1 || n.outputs[0] < 0) return false;
    const int x = n.inputs[0];
    if (!is_4d(x) || !is_q8(e_.dtype(x)) || e_.constant(x)) return false;
    QParam xq, yq;
    if (!scalar_scale(n.inputs[1], &xq.scale) || !scalar_zero_point(n.inputs[2], e_.dtype(x), &xq)) return false;
    if (!scalar_scale(n.inputs[6], &yq.scale) || !scalar_zero_point(n.inputs[7], DType::kUndefined, &yq)) return false;
    const Tensor* wt = e_.constant(n.inputs[3]);
    const Tensor* ws = e_.constant(n.inputs[4]);
    const Tensor* wz = e_.constant(n.inputs[5]);
    const int y = n.outputs[0];
    if (!wt || !ws || !wz || !is_q8(wt->dtype()) || wz->dtype() != wt->dtype() || ws->dtype() != DType::kFloat32 ||
        wt->rank() != 4 || !is_4d(y))
      return false;
    const int64_t m = wt->shape()[0];
    const bool per_tensor = ws->num_elements() == 1 && ws->rank() <= 1;
    if (!per_tensor && (ws->rank() != 1 || ws->num_elements() != m)) return false;
    if (wz->num_elements() != 1 && wz->num_elements() != m) return false;
    QWeights w;
    if (!integer_weights(*wt, *ws, wz, 0, m, &w)) return false;
    std::vector<int32_t> bias(static_cast<size_t>(m), 0);
    if (n.inputs.size() > 8 && n.inputs[8] >= 0) {
      const Tensor* b = e_.constant(n.inputs[8]);
      if (!b || b->dtype() != DType::kInt32 || b->num_elements() != m) return false;
      std::copy(b->data<int32_t>(), b->data<int32_t>() + m, bias.begin());
    }
    ConvGeometry geo;
    if (!conv_geometry(n, e_.shape(x), wt->shape(), &geo)) return false;
    OutputQ oq;
    oq.q = yq;
    oq.qmin = yq.dtype == DType::kUInt8 ? 0 : -128;
    oq.qmax = yq.dtype == DType::kUInt8 ? 255 : 127;
    add_qconv(n.name, x, xq, w, bias, geo, &oq, produce_nhwc(y));
    retire(index, {});
    return true;
  }

  int add_qdense(const std::string& name, int x_src, const QParam& xq, const QWeights& w, bool transposed,
                 const std::vector<int32_t>& bias, const OutputQ* oq, int out) {
    const int xs = scalar_float_constant(name + ".x_scale", xq.scale);
    const int xz = zero_point_constant(name + ".x_zero_point", xq);
    const int wv = e_.add_constant(name + ".w_int8", w.w);
    const int ws = vector_constant(name + ".w_scale", w.scale);
    const int ys = oq ? scalar_float_constant(name + ".y_scale", oq->q.scale) : -1;
    const int yz = oq ? zero_point_constant(name + ".y_zero_point", oq->q) : -1;
    const int b = int32_constant(name + ".bias_int32", bias);
    const int node = e_.add_node("QDense", "com.kiln", name, {x_src, xs, xz, wv, ws, ys, yz, b}, {out});
    Node& d = e_.node(node);
    d.attributes["transB"] = make_int(transposed ? 1 : 0);
    if (oq) set_clamp(d, *oq);
    return node;
  }

  // A classifier on Flatten(q) where q is an int8 NCHW tensor that an integer node produced in NHWC
  // (the last pooling of a small CNN): the Flatten reads the NHWC twin instead and the weights' K
  // rows are permuted to match, k = (h * W + w) * C + c taking the row of c * H * W + h * W + w, so
  // that no layout transpose runs before the classifier. *x_src and w->w are updated in place.
  void nhwc_flatten(int* x_src, QWeights* w, bool trans_b) {
    const int f = e_.producer(*x_src);
    if (f < 0 || e_.is_dead(f)) return;
    const Node& fl = g_.nodes[f];
    if (!is_op(fl, "Flatten") || fl.inputs.size() != 1 || int_attr(fl, "axis", 1) != 1) return;
    const int q = fl.inputs[0];
    if (q < 0 || !is_4d(q) || !native(q)) return;
    const Shape qs = e_.shape(q);  // N, C, H, W
    const int64_t C = qs[1], H = qs[2], W = qs[3], K = C * H * W;
    const Shape ws = w->w.shape();
    if (ws.size() != 2 || (trans_b ? ws[1] : ws[0]) != K) return;
    const int64_t cols = trans_b ? ws[0] : ws[1];
    Tensor p(DType::kInt8, ws);
    const int8_t* src = w->w.data<int8_t>();
    int8_t* dst = p.data<int8_t>();
    permute_flatten_rows(src, dst, C, H, W, cols, trans_b);
    const int twin = nhwc(q);
    const int flat = e_.add_value(e_.value(*x_src).name + "_nhwc", e_.dtype(*x_src), {qs[0], K});
    const int node = e_.add_node("Flatten", "", g_.nodes[f].name + "_nhwc", {twin}, {flat});
    e_.node(node).attributes["axis"] = make_int(1);
    w->w = std::move(p);
    *x_src = flat;
  }

  bool fuse_dense(int index, const Node& n) {
    if (n.inputs.size() < 2 || n.outputs.size() != 1 || n.outputs[0] < 0) return false;
    QParam xq;
    int x_src = -1;
    if (!activation_dq(n.inputs[0], &xq, &x_src)) {
      if (!activation_dq16(n.inputs[0], &xq, &x_src)) return false;
      x_src = float_source(x_src, xq);
    }
    const Shape xs = e_.shape(x_src);
    const bool gemm = n.op_type == "Gemm";
    bool trans_b = false;
    if (gemm) {
      if (int_attr(n, "transA", 0) != 0 || float_attr(n, "alpha", 1.f) != 1.f || xs.size() != 2) return false;
      trans_b = int_attr(n, "transB", 0) != 0;
    } else if (xs.empty()) {
      return false;
    }
    int y = n.outputs[0];
    const Shape ys = e_.shape(y);
    if (ys.empty()) return false;
    const int64_t cols = ys.back();
    QWeights w;
    if (!dq_weights(n.inputs[1], trans_b ? 0 : 1, cols, &w) || w.w.rank() != 2)
      return note_fallback(n, "its weights are not a 2-D DequantizeLinear of constant int8");
    nhwc_flatten(&x_src, &w, trans_b);
    int bias_value = -1;
    std::vector<int> extra;
    if (gemm && n.inputs.size() > 2 && n.inputs[2] >= 0) {
      if (float_attr(n, "beta", 1.f) != 1.f) return false;
      const Shape bs = e_.shape(n.inputs[2]);
      if (num_elements(bs) != cols || (bs.size() == 2 && bs[0] != 1) || bs.size() > 2) return false;
      bias_value = n.inputs[2];
    } else if (!gemm && e_.single_use(y)) {
      // MatMul followed by a bias Add of a constant row vector.
      const Use u = e_.uses(y)[0];
      const Node& add = g_.nodes[u.node];
      if (!e_.is_dead(u.node) && is_op(add, "Add") && add.inputs.size() == 2 && add.outputs.size() == 1) {
        const int other = add.inputs[1 - u.slot];
        const Tensor* c = e_.constant(other);
        const int dq = other >= 0 ? e_.producer(other) : -1;
        const bool dq_bias = dq >= 0 && !e_.is_dead(dq) && is_op(g_.nodes[dq], "DequantizeLinear") &&
                             e_.constant(g_.nodes[dq].inputs[0]);
        if ((c || dq_bias) && num_elements(e_.shape(other)) == cols && e_.shape(add.outputs[0]) == ys) {
          bias_value = other;
          extra.push_back(u.node);
          y = add.outputs[0];
        }
      }
    }
    std::vector<int32_t> bias;
    if (!bias_values(bias_value, cols, xq.scale, w.scale, &bias))
      return note_fallback(n, "its bias cannot be expressed in int32");
    if (xq.dtype == DType::kInt16 && !q16_sums_fit(w, trans_b, bias, xq.zero_point))
      return note_fallback(n, "its int16 sums could overflow int32");
    OutputQ oq;
    if (output_q(y, &oq)) {
      extra.insert(extra.end(), oq.nodes.begin(), oq.nodes.end());
      add_qdense(n.name, x_src, xq, w, trans_b, bias, &oq, oq.value);
    } else {
      add_qdense(n.name, x_src, xq, w, trans_b, bias, nullptr, y);
    }
    retire(index, extra);
    return true;
  }

  bool fuse_qlinear_matmul(int index, const Node& n) {
    if (n.inputs.size() < 8 || n.outputs.size() != 1 || n.outputs[0] < 0) return false;
    const int a = n.inputs[0];
    if (a < 0 || e_.constant(a) || !is_q8(e_.dtype(a)) || e_.shape(a).size() < 2) return false;
    QParam aq, yq;
    if (!scalar_scale(n.inputs[1], &aq.scale) || !scalar_zero_point(n.inputs[2], e_.dtype(a), &aq)) return false;
    if (!scalar_scale(n.inputs[6], &yq.scale) || !scalar_zero_point(n.inputs[7], DType::kUndefined, &yq)) return false;
    const Tensor* b = e_.constant(n.inputs[3]);
    const Tensor* bs = e_.constant(n.inputs[4]);
    const Tensor* bz = e_.constant(n.inputs[5]);
    if (!b || !bs || !bz || !is_q8(b->dtype()) || bz->dtype() != b->dtype() || bs->dtype() != DType::kFloat32 ||
        b->rank() != 2)
      return false;
    const int64_t cols = b->shape()[1];
    const bool per_tensor = bs->num_elements() == 1 && bs->rank() <= 1;
    if (!per_tensor && (bs->rank() != 1 || bs->num_elements() != cols)) return false;
    if (bz->num_elements() != 1 && (bz->rank() != 1 || bz->num_elements() != cols)) return false;
    QWeights w;
    if (!integer_weights(*b, *bs, bz, 1, cols, &w)) return false;
    OutputQ oq;
    oq.q = yq;
    oq.qmin = yq.dtype == DType::kUInt8 ? 0 : -128;
    oq.qmax = yq.dtype == DType::kUInt8 ? 255 : 127;
    add_qdense(n.name, a, aq, w, false, std::vector<int32_t>(static_cast<size_t>(cols), 0), &oq, n.outputs[0]);
    retire(index, {});
    return true;
  }

  // ConvInteger / MatMulInteger with constant weights: the same integer kernels, returning the
  // int32 sums (what dynamically quantised models feed to their float rescaling).
  static Tensor ones(int64_t n) {
    Tensor t(DType::kFloat32, {n});
    std::fill(t.data<float>(), t.data<float>() + n, 1.f);
    return t;
  }
  bool fuse_conv_integer(int index, const Node& n) {
    if (n.inputs.size() < 2 || n.outputs.size() != 1 || n.outputs[0] < 0) return false;
    const int x = n.inputs[0], y = n.outputs[0];
    if (!is_4d(x) || !is_4d(y) || !is_q8(e_.dtype(x)) || e_.constant(x)) return false;
    QParam xq;
    if (!scalar_zero_point(n.inputs.size() > 2 ? n.inputs[2] : -1, e_.dtype(x), &xq)) return false;
    xq.scale = 1.f;
    const Tensor* wt = e_.constant(n.inputs[1]);
    if (!wt || !is_q8(wt->dtype()) || wt->rank() != 4) return false;
    const bool has_wz = n.inputs.size() > 3 && n.inputs[3] >= 0;
    const Tensor* wz = has_wz ? e_.constant(n.inputs[3]) : nullptr;
    if (has_wz && (!wz || wz->dtype() != wt->dtype())) return false;
    const int64_t m = wt->shape()[0];
    QWeights w;
    if (!integer_weights(*wt, ones(1), wz, 0, m, &w)) return false;
    ConvGeometry geo;
    if (!conv_geometry(n, e_.shape(x), wt->shape(), &geo)) return false;
    const int twin = e_.add_value(e_.value(y).name + "_nhwc", DType::kInt32, to_nhwc(e_.shape(y)));
    const int node = add_qconv(n.name, x, xq, w, std::vector<int32_t>(static_cast<size_t>(m), 0), geo, nullptr, twin);
    e_.node(node).attributes["int32_output"] = make_int(1);
    add_transpose(twin, y, "nchw");
    retire(index, {});
    return true;
  }
  bool fuse_matmul_integer(int index, const Node& n) {
    if (n.inputs.size() < 2 || n.outputs.size() != 1 || n.outputs[0] < 0) return false;
    const int a = n.inputs[0];
    if (a < 0 || e_.constant(a) || !is_q8(e_.dtype(a)) || e_.shape(a).size() < 2) return false;
    QParam aq;
    // A's zero point: a constant, or a runtime single value of A's type (the y_zero_point of a
    // DynamicQuantizeLinear), which the QDense then takes out of its sums at run time.
    const int az = n.inputs.size() > 2 ? n.inputs[2] : -1;
    const bool runtime_zero = az >= 0 && !e_.constant(az);
    if (runtime_zero) {
      if (e_.dtype(az) != e_.dtype(a) || !e_.value(az).type.has_shape || num_elements(e_.shape(az)) != 1) return false;
      aq.dtype = e_.dtype(a);
    } else if (!scalar_zero_point(az, e_.dtype(a), &aq)) {
      return false;
    }
    aq.scale = 1.f;
    const Tensor* b = e_.constant(n.inputs[1]);
    if (!b || !is_q8(b->dtype()) || b->rank() != 2) return false;
    const bool has_bz = n.inputs.size() > 3 && n.inputs[3] >= 0;
    const Tensor* bz = has_bz ? e_.constant(n.inputs[3]) : nullptr;
    if (has_bz && (!bz || bz->dtype() != b->dtype() || bz->rank() > 1)) return false;
    const int64_t cols = b->shape()[1];
    QWeights w;
    if (!integer_weights(*b, ones(1), bz, 1, cols, &w)) return false;
    // Dynamic quantisation goes on: Cast(to float) -> Mul by x_scale * w_scale (one value, or one
    // per column). The QDense then writes float(sum) * multiplier itself, the same float operations.
    std::vector<int> tail;
    int out = n.outputs[0], multiplier = -1;
    if (runtime_zero) float_tail(n.outputs[0], cols, &tail, &out, &multiplier);
    const int node = add_qdense(n.name, a, aq, w, false, std::vector<int32_t>(static_cast<size_t>(cols), 0), nullptr,
                                out);
    e_.node(node).attributes["int32_output"] = make_int(1);
    if (runtime_zero) e_.set_input(node, 2, az);
    if (multiplier >= 0) {
      e_.node(node).inputs.push_back(-1);  // the slot after bias
      e_.set_input(node, 8, multiplier);
    }
    retire(index, tail);
    return true;
  }
  // v (int32 sums, [..., cols]) -> Cast(to float) -> Mul(·, m) with m one float or `cols` floats
  // (broadcast along the last axis): the two nodes, the Mul's output and m.
  void float_tail(int v, int64_t cols, std::vector<int>* nodes, int* out, int* multiplier) const {
    if (!e_.single_use(v)) return;
    const Use cu = e_.uses(v)[0];
    const Node& cast = g_.nodes[static_cast<size_t>(cu.node)];
    if (e_.is_dead(cu.node) || !is_op(cast, "Cast") || int_attr(cast, "to", 0) != 1 || cast.outputs.size() != 1 ||
        cast.outputs[0] < 0 || !e_.single_use(cast.outputs[0]))
      return;
    const Use mu = e_.uses(cast.outputs[0])[0];
    const Node& mul = g_.nodes[static_cast<size_t>(mu.node)];
    if (e_.is_dead(mu.node) || !is_op(mul, "Mul") || mul.inputs.size() != 2 || mul.outputs.size() != 1 ||
        mul.outputs[0] < 0)
      return;
    const int m = mul.inputs[mu.slot == 0 ? 1 : 0];
    if (m < 0 || m == cast.outputs[0] || e_.dtype(m) != DType::kFloat32 || !e_.value(m).type.has_shape) return;
    const Shape ms = e_.shape(m);
    const int64_t count = num_elements(ms);
    if ((count != 1 && (count != cols || ms.empty() || ms.back() != cols)) || e_.shape(mul.outputs[0]) != e_.shape(v))
      return;
    if (e_.producer(m) >= 0 && e_.depends_on(m, e_.producer(v))) return;
    *nodes = {cu.node, mu.node};
    *out = mul.outputs[0];
    *multiplier = m;
  }

  bool fuse_pool(int index, const Node& n) {
    if (n.inputs.empty() || n.outputs.empty() || n.outputs[0] < 0) return false;
    for (size_t i = 1; i < n.outputs.size(); ++i)
      if (n.outputs[i] >= 0 && (!e_.uses(n.outputs[i]).empty() || e_.is_graph_output(n.outputs[i]))) return false;
    QParam xq;
    int x_src = -1;
    if (!activation_dq(n.inputs[0], &xq, &x_src) || !is_4d(x_src)) return false;
    OutputQ oq;
    if (!output_q(n.outputs[0], &oq) || !is_4d(oq.value)) return false;
    const Shape x = e_.shape(x_src), y = e_.shape(oq.value);
    std::vector<int64_t> k, s = {1, 1}, d = {1, 1}, pads = {0, 0, 0, 0};
    if (n.op_type == "GlobalAveragePool") {
      k = {x[2], x[3]};
    } else {
      k = ints_attr(n, "kernel_shape", {});
      s = ints_attr(n, "strides", {1, 1});
      d = ints_attr(n, "dilations", {1, 1});
      if (k.size() != 2 || s.size() != 2 || d.size() != 2) return false;
      if (!window_pads(n, x[2], x[3], k[0], k[1], s, d, &pads)) return false;
    }
    const std::string name = n.name;
    const int xs = scalar_float_constant(name + ".x_scale", xq.scale);
    const int xz = zero_point_constant(name + ".x_zero_point", xq);
    const int ys = scalar_float_constant(name + ".y_scale", oq.q.scale);
    const int yz = zero_point_constant(name + ".y_zero_point", oq.q);
    const int node = e_.add_node("QPool", "com.kiln", name, {nhwc(x_src), xs, xz, ys, yz}, {produce_nhwc(oq.value)});
    Node& p = e_.node(node);
    p.attributes["kind"] = make_string(n.op_type == "MaxPool" ? "max" : "average");
    p.attributes["kernel_shape"] = make_ints(k);
    p.attributes["strides"] = make_ints(s);
    p.attributes["dilations"] = make_ints(d);
    p.attributes["pads"] = make_ints(pads);
    p.attributes["count_include_pad"] = make_int(int_attr(n, "count_include_pad", 0));
    p.attributes["output_hw"] = make_ints({y[2], y[3]});
    set_clamp(p, oq);
    retire(index, oq.nodes);
    return true;
  }

  bool fuse_binary(int index, const Node& n) {
    if (n.inputs.size() != 2 || n.outputs.size() != 1 || n.outputs[0] < 0) return false;
    QParam aq, bq;
    int a = -1, b = -1;
    if (!activation_dq(n.inputs[0], &aq, &a) || !activation_dq(n.inputs[1], &bq, &b)) return false;
    OutputQ oq;
    if (!output_q(n.outputs[0], &oq)) return false;
    const Shape sa = e_.shape(a), sb = e_.shape(b), sy = e_.shape(oq.value);
    // Same shapes, or one operand a single value.
    const bool same = sa == sb && sa == sy;
    if (!same && !(num_elements(sb) == 1 && sa == sy) && !(num_elements(sa) == 1 && sb == sy)) return false;
    // Both in NHWC when either already lives there (and both are 4-D), else as the model has them.
    const bool in_nhwc = is_4d(oq.value) && ((native(a) && (is_4d(b) || num_elements(sb) == 1)) ||
                                             (native(b) && (is_4d(a) || num_elements(sa) == 1)));
    auto operand = [&](int v) { return in_nhwc && is_4d(v) && num_elements(e_.shape(v)) > 1 ? nhwc(v) : v; };
    const std::string name = n.name;
    const int ia = operand(a), ib = operand(b);
    const int as = scalar_float_constant(name + ".a_scale", aq.scale);
    const int az = zero_point_constant(name + ".a_zero_point", aq);
    const int bs = scalar_float_constant(name + ".b_scale", bq.scale);
    const int bz = zero_point_constant(name + ".b_zero_point", bq);
    const int ys = scalar_float_constant(name + ".y_scale", oq.q.scale);
    const int yz = zero_point_constant(name + ".y_zero_point", oq.q);
    const int out = in_nhwc ? produce_nhwc(oq.value) : oq.value;
    const int node = e_.add_node(n.op_type == "Add" ? "QAdd" : "QMul", "com.kiln", name, {ia, as, az, ib, bs, bz, ys, yz},
                                 {out});
    set_clamp(e_.node(node), oq);
    retire(index, oq.nodes);
    return true;
  }

  // DQ -> Reshape / Flatten / Squeeze / Unsqueeze -> Q with the same parameters (what a quantiser
  // writes around a Flatten before a classifier): the same node on the int8 tensor, a view.
  bool fuse_shape_op(int index, const Node& n) {
    if (n.inputs.empty() || n.outputs.size() != 1 || n.outputs[0] < 0) return false;
    QParam xq;
    int x_src = -1;
    if (!activation_dq(n.inputs[0], &xq, &x_src)) return false;
    OutputQ oq;
    if (!output_q(n.outputs[0], &oq) || oq.nodes.size() != 1 || !oq.q.same(xq)) return false;
    std::vector<int> inputs = n.inputs;
    inputs[0] = x_src;
    const int node = e_.add_node(n.op_type, "", n.name, inputs, {oq.value});
    e_.node(node).attributes = n.attributes;
    e_.node(node).opset = n.opset;
    retire(index, oq.nodes);
    return true;
  }

  // ---- what is left ----

  bool note_fallback(const Node& n, const std::string& why) {
    fallback_reason_[n.name] = why;
    return false;
  }

  // Nodes that still compute in float between a DequantizeLinear of a runtime tensor and a
  // QuantizeLinear: the user should know they run dequantised.
  void report_fallbacks() {
    std::vector<std::string> items;
    for (size_t i = 0; i < g_.nodes.size(); ++i) {
      if (e_.is_dead(static_cast<int>(i))) continue;
      const Node& n = g_.nodes[i];
      if (!n.domain.empty() || n.op_type == "QuantizeLinear" || n.op_type == "DequantizeLinear") continue;
      bool from_dq = false, to_q = false;
      for (int v : n.inputs) {
        QParam q;
        int src;
        if (activation_dq(v, &q, &src)) from_dq = true;
      }
      for (int v : n.outputs) {
        if (v < 0) continue;
        for (const Use& u : e_.uses(v))
          if (!e_.is_dead(u.node) && is_op(g_.nodes[u.node], "QuantizeLinear")) to_q = true;
      }
      if (!from_dq && !to_q) continue;
      auto why = fallback_reason_.find(n.name);
      items.push_back(n.op_type + " '" + n.name + "'" +
                      (why != fallback_reason_.end() ? " (" + why->second + ")" : std::string(" (no integer kernel)")));
    }
    if (!notes_ || items.empty()) return;
    std::string s = "quantized: " + std::to_string(items.size()) +
                    (items.size() == 1 ? " node runs" : " nodes run") + " in float on dequantised values: ";
    for (size_t i = 0; i < items.size(); ++i) {
      if (i == 8) {
        s += ", ... (" + std::to_string(items.size() - 8) + " more)";
        break;
      }
      s += (i ? ", " : "") + items[i];
    }
    notes_->push_back(s);
  }

  // DequantizeLinear of constants that no integer kernel took: fold to float constants, as
  // compile() would have, so that the float passes see constant weights.
  void fold_weight_dequantize() {
    for (size_t i = 0; i < g_.nodes.size(); ++i) {
      if (e_.is_dead(static_cast<int>(i))) continue;
      const Node n = g_.nodes[i];
      if (!is_op(n, "DequantizeLinear") || n.outputs.empty() || n.outputs[0] < 0) continue;
      const int y = n.outputs[0];
      if (e_.is_graph_output(y)) continue;
      bool live = false;
      for (const Use& u : e_.uses(y))
        if (!e_.is_dead(u.node)) live = true;
      if (!live) continue;
      const Tensor* x = e_.constant(n.inputs[0]);
      const Tensor* s = n.inputs.size() > 1 ? e_.constant(n.inputs[1]) : nullptr;
      const Tensor* z = n.inputs.size() > 2 && n.inputs[2] >= 0 ? e_.constant(n.inputs[2]) : nullptr;
      if (!x || !s || s->dtype() != DType::kFloat32 || (n.inputs.size() > 2 && n.inputs[2] >= 0 && !z)) continue;
      if (int_attr(n, "block_size", 0) != 0) continue;
      const int64_t total = x->num_elements();
      int64_t channels = s->num_elements(), inner = 1;
      if (!(channels == 1 && s->rank() <= 1)) {
        int64_t axis = int_attr(n, "axis", 1);
        if (axis < 0) axis += static_cast<int64_t>(x->rank());
        if (axis < 0 || axis >= static_cast<int64_t>(x->rank()) || x->shape()[axis] != channels) continue;
        for (size_t d = static_cast<size_t>(axis) + 1; d < x->rank(); ++d) inner *= x->shape()[d];
      } else {
        channels = 1;
        inner = total;
      }
      auto value = [](const Tensor& t, int64_t i) -> int64_t {
        switch (t.dtype()) {
          case DType::kInt8: return t.data<int8_t>()[i];
          case DType::kUInt8: return t.data<uint8_t>()[i];
          case DType::kInt16: return t.data<int16_t>()[i];
          case DType::kUInt16: return t.data<uint16_t>()[i];
          case DType::kInt32: return t.data<int32_t>()[i];
          default: return 0;
        }
      };
      if (x->dtype() != DType::kInt8 && x->dtype() != DType::kUInt8 && x->dtype() != DType::kInt16 &&
          x->dtype() != DType::kUInt16 && x->dtype() != DType::kInt32)
        continue;
      Tensor out(DType::kFloat32, x->shape());
      for (int64_t k = 0; k < total; ++k) {
        const int64_t c = channels == 1 ? 0 : (k / inner) % channels;
        const int64_t zp = z ? value(*z, z->num_elements() == 1 ? 0 : c) : 0;
        out.data<float>()[k] = static_cast<float>(value(*x, k) - zp) * s->data<float>()[c];
      }
      const int cv = e_.add_constant(e_.value(y).name, std::move(out));
      e_.replace_uses(y, cv);
      e_.remove_node(static_cast<int>(i));
    }
  }

  // Per-tensor QuantizeLinear / DequantizeLinear of runtime tensors on the vectorised kernels.
  int fast_conversions() {
    int count = 0;
    const size_t n_nodes = g_.nodes.size();
    for (size_t i = 0; i < n_nodes; ++i) {
      if (e_.is_dead(static_cast<int>(i))) continue;
      const Node n = g_.nodes[i];
      if (is_op(n, "DynamicQuantizeLinear") && n.inputs.size() == 1 && n.inputs[0] >= 0 &&
          !e_.constant(n.inputs[0]) && e_.dtype(n.inputs[0]) == DType::kFloat32 && !n.outputs.empty() &&
          n.outputs[0] >= 0) {
        e_.add_node("DynamicQuantize", "com.kiln", n.name, {n.inputs[0]}, n.outputs);
        e_.remove_node(static_cast<int>(i));
        ++count;
        continue;
      }
      if (n.outputs.empty() || n.outputs[0] < 0 || n.inputs.size() < 2 || !qdq_attrs_ok(n)) continue;
      const int x = n.inputs[0];
      if (x < 0 || e_.constant(x)) continue;
      QParam q;
      if (!scalar_scale(n.inputs[1], &q.scale)) continue;
      const int zp = n.inputs.size() > 2 ? n.inputs[2] : -1;
      if (is_op(n, "QuantizeLinear")) {
        if (e_.dtype(x) != DType::kFloat32 || !is_q8(e_.dtype(n.outputs[0]))) continue;
        if (!scalar_zero_point(zp, e_.dtype(n.outputs[0]), &q)) continue;
      } else if (is_op(n, "DequantizeLinear")) {
        if (!is_q8(e_.dtype(x)) || !scalar_zero_point(zp, e_.dtype(x), &q)) continue;
      } else {
        continue;
      }
      const bool quantize = n.op_type == "QuantizeLinear";
      const int s = scalar_float_constant(n.name + ".scale", q.scale);
      const int z = zero_point_constant(n.name + ".zero_point", q);
      e_.add_node(quantize ? "Quantize" : "Dequantize", "com.kiln", n.name, {x, s, z}, {n.outputs[0]});
      e_.remove_node(static_cast<int>(i));
      ++count;
    }
    return count;
  }

  GraphEditor& e_;
  Graph& g_;
  std::vector<std::string>* notes_;
  std::map<int, int> twin_;      // int8 NCHW value -> its NHWC twin
  std::map<int, int> produced_;  // values whose NHWC twin an integer node produces
  std::map<std::string, std::string> fallback_reason_;
  int rewrites_ = 0;
};

}  // namespace

Result<int> quantized(GraphEditor& e, std::vector<std::string>* notes) { return QuantizedPass(e, notes).run(); }

}  // namespace kiln::nn::passes
