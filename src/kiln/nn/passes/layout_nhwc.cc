// Runs 2-D convolutions, pooling and the elementwise operations between them in channels-last
// (NHWC) layout, with layout changes only where the region meets the rest of the graph.
//
// Every original value keeps its NCHW meaning, shape and name. A converted node produces an NHWC
// twin of its output instead (`nhwc[v]`); the original value is re-created from the twin by a
// com.kiln.Transpose only if something still reads it in NCHW (an unconverted node or a graph
// output). Converted nodes read the NHWC twin of each input, creating it with a Transpose when
// the producer was not converted. Elementwise operations join the region only when one of their
// inputs already lives there, so a pure-NCHW part of the graph gets no transposes at all.
// Layout changes that only move size-1 dimensions (C = 1, or H = W = 1 after a global pool) are
// views without a copy.
#include <algorithm>
#include <map>
#include <set>
#include <cstring>

#include "kiln/nn/passes/attributes.h"
#include "kiln/nn/passes/nhwc_flatten.h"
#include "kiln/nn/passes/passes.h"

namespace kiln::nn::passes {
namespace {

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

const std::set<std::string> kUnary = {"Relu",  "Sigmoid", "HardSigmoid", "HardSwish", "LeakyRelu", "Tanh",  "Elu",
                                      "Selu",  "Softplus", "Softsign",   "Abs",       "Neg",       "Exp",   "Log",
                                      "Sqrt",  "Reciprocal", "Erf",      "Floor",     "Ceil",      "Round", "Mish",
                                      "Gelu",  "Clip"};
const std::set<std::string> kBinary = {"Add", "Sub", "Mul", "Div", "Max", "Min", "Sum", "Mean", "Pow", "PRelu"};

class Layout {
 public:
  explicit Layout(GraphEditor& e) : e_(e), g_(e.graph()) {}

  int run() {
    const size_t count = g_.nodes.size();
    for (size_t i = 0; i < count; ++i) {
      const Node n = g_.nodes[i];
      if (!n.domain.empty()) continue;
      bool done = false;
      if (n.op_type == "Conv") done = convert_conv(static_cast<int>(i), n);
      else if (n.op_type == "MaxPool" || n.op_type == "AveragePool") done = convert_pool(static_cast<int>(i), n);
      else if (n.op_type == "GlobalAveragePool") done = convert_global_pool(static_cast<int>(i), n);
      else if (kUnary.count(n.op_type) || kBinary.count(n.op_type)) done = convert_elementwise(static_cast<int>(i), n);
      else if (n.op_type == "Concat") done = convert_concat(static_cast<int>(i), n);
      else if (n.op_type == "Transpose") done = cancel_transpose(static_cast<int>(i), n);
      if (done) ++converted_;
    }
    for (const auto& [v, twin] : produced_) flatten_into_dense(v, twin);
    // Re-create, from their NHWC twins, the original values someone still reads in NCHW.
    for (const auto& [v, twin] : produced_) {
      bool read = e_.is_graph_output(v);
      for (const Use& u : e_.uses(v))
        if (!e_.is_dead(u.node)) read = true;
      if (read) add_transpose(twin, v, "nchw");
    }
    return converted_;
  }

 private:
  bool is_4d_float(int v) const {
    return v >= 0 && e_.dtype(v) == DType::kFloat32 && e_.value(v).type.has_shape && e_.shape(v).size() == 4;
  }

  // A classifier com.kiln.Dense on Flatten(v) where v lives in NHWC (the last pooling of a small
  // CNN): the Flatten reads the twin and the constant weights' K rows are permuted to match,
  // k = (h * W + w) * C + c taking the row of c * H * W + h * W + w, so that no layout transpose
  // runs before the classifier (the digits CNN: 5 steps instead of 6).
  void flatten_into_dense(int v, int twin) {
    if (e_.is_graph_output(v) || e_.uses(v).size() != 1) return;
    const Use fu = e_.uses(v)[0];
    const Node& fl = g_.nodes[static_cast<size_t>(fu.node)];
    if (e_.is_dead(fu.node) || !fl.domain.empty() || fl.op_type != "Flatten" || int_attr(fl, "axis", 1) != 1 ||
        fl.outputs.size() != 1 || fl.outputs[0] < 0 || !e_.single_use(fl.outputs[0]))
      return;
    const Use du = e_.uses(fl.outputs[0])[0];
    const Node& d = g_.nodes[static_cast<size_t>(du.node)];
    if (e_.is_dead(du.node) || d.domain != "com.kiln" || d.op_type != "Dense" || du.slot != 0 || d.inputs.size() < 2)
      return;
    const Tensor* w = e_.constant(d.inputs[1]);
    const Shape vs = e_.shape(v);  // N, C, H, W
    const int64_t C = vs[1], H = vs[2], W = vs[3], K = C * H * W;
    const bool trans_b = int_attr(d, "transB", 0) != 0;
    if (!w || w->dtype() != DType::kFloat32 || w->rank() != 2 || (trans_b ? w->shape()[1] : w->shape()[0]) != K) return;
    const int64_t cols = trans_b ? w->shape()[0] : w->shape()[1];
    Tensor p(DType::kFloat32, w->shape());
    const float* src = w->data<float>();
    float* dst = p.data<float>();
    permute_flatten_rows(src, dst, C, H, W, cols, trans_b);
    const int dense = du.node, old_flatten = fu.node;
    const std::string name = fl.name;
    const int flat = e_.add_value(e_.value(fl.outputs[0]).name + "_nhwc", DType::kFloat32, {vs[0], K});
    const int node = e_.add_node("Flatten", "", name + "_nhwc", {twin}, {flat});
    e_.node(node).attributes["axis"] = make_int(1);
    const int pw = e_.add_constant(g_.nodes[static_cast<size_t>(dense)].name + ".w_nhwc", std::move(p));
    e_.set_input(dense, 0, flat);
    e_.set_input(dense, 1, pw);
    e_.remove_node(old_flatten);
  }

  void add_transpose(int from, int to, const char* direction) {
    int t = e_.add_node("Transpose", "com.kiln", e_.value(to).name + "_" + direction, {from}, {to});
    e_.node(t).attributes["to"] = make_string(direction);
  }

  // The NHWC twin of NCHW value v, created on first request. A value that is itself an NHWC ->
  // NCHW Transpose (models converted from TensorFlow start with one) has its input as twin.
  int nhwc(int v) {
    auto it = twin_.find(v);
    if (it != twin_.end()) return it->second;
    const int p = e_.producer(v);
    if (p >= 0 && !e_.is_dead(p)) {
      const Node& t = g_.nodes[p];
      if (t.domain.empty() && t.op_type == "Transpose" && ints_attr(t, "perm", {}) == std::vector<int64_t>{0, 3, 1, 2} &&
          t.inputs.size() == 1 && t.inputs[0] >= 0) {
        twin_[v] = t.inputs[0];
        return t.inputs[0];
      }
    }
    int t = e_.add_value(e_.value(v).name + "_nhwc", e_.dtype(v), to_nhwc(e_.shape(v)));
    add_transpose(v, t, "nhwc");
    twin_[v] = t;
    return t;
  }

  // Output value v of a converted node gets an NHWC twin that the new node produces.
  int produce_nhwc(int v) {
    int t = e_.add_value(e_.value(v).name + "_nhwc", e_.dtype(v), to_nhwc(e_.shape(v)));
    twin_[v] = t;
    produced_[v] = t;
    return t;
  }

  bool native(int v) const { return produced_.count(v) > 0; }

  void retire(int node) { e_.remove_node(node); }

  bool convert_conv(int index, const Node& n) {
    if (n.inputs.size() < 2 || !is_4d_float(n.inputs[0]) || n.outputs.empty() || n.outputs[0] < 0) return false;
    const Tensor* w = e_.constant(n.inputs[1]);
    if (!w || w->dtype() != DType::kFloat32 || w->rank() != 4) return false;
    if (n.inputs.size() > 2 && n.inputs[2] >= 0 && !e_.constant(n.inputs[2])) return false;
    const Shape x = e_.shape(n.inputs[0]);
    const std::vector<int64_t> s = ints_attr(n, "strides", {1, 1}), d = ints_attr(n, "dilations", {1, 1});
    if (s.size() != 2 || d.size() != 2) return false;
    // Adding values below may move the graph's value storage: copy what is needed from `w` now.
    const int64_t kh = w->shape()[2], kw = w->shape()[3];
    std::vector<int64_t> pads;
    if (!window_pads(n, x[2], x[3], kh, kw, s, d, &pads)) return false;
    const int bias = n.inputs.size() > 2 ? n.inputs[2] : -1;
    int node = e_.add_node("Conv", "com.kiln", n.name, {nhwc(n.inputs[0]), n.inputs[1], bias},
                           {produce_nhwc(n.outputs[0])});
    Node& c = e_.node(node);
    c.attributes["kernel_shape"] = make_ints({kh, kw});
    c.attributes["strides"] = make_ints(s);
    c.attributes["dilations"] = make_ints(d);
    c.attributes["pads"] = make_ints(pads);
    c.attributes["group"] = make_int(int_attr(n, "group", 1));
    retire(index);
    return true;
  }

  bool convert_pool(int index, const Node& n) {
    if (n.inputs.empty() || !is_4d_float(n.inputs[0]) || n.outputs.empty() || n.outputs[0] < 0) return false;
    for (size_t i = 1; i < n.outputs.size(); ++i)
      if (n.outputs[i] >= 0) return false;  // MaxPool Indices
    const Shape x = e_.shape(n.inputs[0]), y = e_.shape(n.outputs[0]);
    const std::vector<int64_t> k = ints_attr(n, "kernel_shape", {}), s = ints_attr(n, "strides", {1, 1}),
                               d = ints_attr(n, "dilations", {1, 1});
    if (k.size() != 2 || s.size() != 2 || d.size() != 2 || y.size() != 4) return false;
    std::vector<int64_t> pads;
    if (!window_pads(n, x[2], x[3], k[0], k[1], s, d, &pads)) return false;
    int node = e_.add_node("Pool", "com.kiln", n.name, {nhwc(n.inputs[0])}, {produce_nhwc(n.outputs[0])});
    Node& p = e_.node(node);
    p.attributes["kind"] = make_string(n.op_type == "MaxPool" ? "max" : "average");
    p.attributes["kernel_shape"] = make_ints(k);
    p.attributes["strides"] = make_ints(s);
    p.attributes["dilations"] = make_ints(d);
    p.attributes["pads"] = make_ints(pads);
    p.attributes["count_include_pad"] = make_int(int_attr(n, "count_include_pad", 0));
    p.attributes["output_hw"] = make_ints({y[2], y[3]});
    retire(index);
    return true;
  }

  bool convert_global_pool(int index, const Node& n) {
    if (n.inputs.empty() || !is_4d_float(n.inputs[0]) || n.outputs.empty() || n.outputs[0] < 0) return false;
    e_.add_node("GlobalAveragePool", "com.kiln", n.name, {nhwc(n.inputs[0])}, {produce_nhwc(n.outputs[0])});
    retire(index);
    return true;
  }

  // A constant operand of a converted elementwise node, re-laid out for NHWC broadcasting.
  int permuted_constant(int v) {
    auto it = permuted_.find(v);
    if (it != permuted_.end()) return it->second;
    const Tensor& t = *e_.constant(v);
    Shape s4 = t.shape();
    while (s4.size() < 4) s4.insert(s4.begin(), 1);
    Tensor out(t.dtype(), to_nhwc(s4));
    const size_t es = dtype_size(t.dtype());
    const int64_t n = s4[0], c = s4[1], h = s4[2], w = s4[3];
    const char* src = static_cast<const char*>(t.raw());
    char* dst = static_cast<char*>(out.raw());
    for (int64_t a = 0; a < n; ++a)
      for (int64_t ch = 0; ch < c; ++ch)
        for (int64_t y = 0; y < h; ++y)
          for (int64_t x = 0; x < w; ++x)
            std::memcpy(dst + (((a * h + y) * w + x) * c + ch) * es, src + (((a * c + ch) * h + y) * w + x) * es, es);
    int id = e_.add_constant(e_.value(v).name + "_nhwc", std::move(out));
    permuted_[v] = id;
    return id;
  }

  bool convert_elementwise(int index, const Node& n) {
    if (n.outputs.size() != 1 || n.outputs[0] < 0 || !is_4d_float(n.outputs[0])) return false;
    bool any_native = false;
    for (size_t i = 0; i < n.inputs.size(); ++i) {
      int v = n.inputs[i];
      if (v < 0) continue;
      if (native(v)) {
        any_native = true;
        continue;
      }
      const Tensor* c = e_.constant(v);
      // Clip's bounds (inputs 1 and 2) are scalars: layout-free.
      if (c && c->rank() <= 4) continue;
      if (is_4d_float(v) || (e_.value(v).type.has_shape && e_.shape(v).size() == 4)) continue;
      return false;
    }
    if (!any_native) return false;
    std::vector<int> inputs;
    for (int v : n.inputs) {
      if (v < 0) inputs.push_back(-1);
      else if (e_.constant(v)) inputs.push_back(e_.constant(v)->num_elements() == 1 ? v : permuted_constant(v));
      else inputs.push_back(nhwc(v));
    }
    int node = e_.add_node(n.op_type, "", n.name, inputs, {produce_nhwc(n.outputs[0])});
    e_.node(node).opset = n.opset;
    e_.node(node).attributes = n.attributes;
    retire(index);
    return true;
  }

  // Transpose(perm 0,2,3,1) of a value the region produces in NHWC: its output is that twin.
  bool cancel_transpose(int index, const Node& n) {
    if (n.inputs.size() != 1 || n.inputs[0] < 0 || !native(n.inputs[0]) || n.outputs.size() != 1) return false;
    if (ints_attr(n, "perm", {}) != std::vector<int64_t>{0, 2, 3, 1} || e_.is_graph_output(n.outputs[0])) return false;
    e_.replace_uses(n.outputs[0], twin_.at(n.inputs[0]));
    retire(index);
    return true;
  }

  bool convert_concat(int index, const Node& n) {
    if (n.outputs.size() != 1 || n.outputs[0] < 0 || !is_4d_float(n.outputs[0])) return false;
    int64_t axis = int_attr(n, "axis", 1);
    if (axis != 1 && axis != -3) return false;
    bool any_native = false;
    for (int v : n.inputs) {
      if (v < 0 || !is_4d_float(v)) return false;
      any_native |= native(v);
    }
    if (!any_native) return false;
    std::vector<int> inputs;
    for (int v : n.inputs) inputs.push_back(nhwc(v));
    int node = e_.add_node("Concat", "", n.name, inputs, {produce_nhwc(n.outputs[0])});
    e_.node(node).opset = n.opset;
    e_.node(node).attributes["axis"] = make_int(3);
    retire(index);
    return true;
  }

  GraphEditor& e_;
  Graph& g_;
  std::map<int, int> twin_;      // NCHW value -> its NHWC twin
  std::map<int, int> produced_;  // values whose NHWC twin a converted node produces
  std::map<int, int> permuted_;  // constants re-laid out for NHWC broadcasting
  int converted_ = 0;
};

}  // namespace

Result<int> layout_nhwc(GraphEditor& e) { return Layout(e).run(); }

}  // namespace kiln::nn::passes
