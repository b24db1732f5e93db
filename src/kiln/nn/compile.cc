#include "kiln/nn/compile.h"

#include <algorithm>
#include <ctime>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <set>

#include "kiln/core/thread_pool.h"
#include "kiln/nn/memory_planner.h"
#include "kiln/nn/op_registry.h"
#include "kiln/nn/optimize.h"

namespace kiln::nn {

struct CompiledModel::Impl {
  struct Step {
    const Kernel* kernel = nullptr;
    uint32_t in_begin = 0, in_count = 0, out_begin = 0, out_count = 0;
    void* scratch = nullptr;
    size_t scratch_bytes = 0;
  };
  struct Patch {
    uint32_t view;
    bool output;    // caller's output buffer (else caller's input buffer)
    uint32_t index;
  };
  enum class CopyFrom { kConstant, kInput, kOutput };
  struct OutputCopy {
    uint32_t output;
    CopyFrom from;
    const void* constant;
    uint32_t index;
    size_t bytes;
  };
  struct Free {
    void operator()(uint8_t* p) const { std::free(p); }
  };

  std::vector<TensorSpec> inputs, outputs;
  std::vector<Shape> shapes;          // concrete shape of every value, by value id (view spans point here)
  std::deque<Tensor> constants;       // stable addresses
  std::vector<KernelPtr> kernels;
  std::vector<Step> steps;
  std::vector<TensorView> views;
  std::vector<Patch> patches;
  std::vector<OutputCopy> copies;
  std::unique_ptr<uint8_t, Free> arena;
  size_t arena_bytes = 0;
  size_t constant_bytes = 0;
  std::vector<StepInfo> step_info;
  std::vector<std::string> step_names;
  std::unique_ptr<ThreadPool> pool;  // null with one thread: everything runs on the caller
  int folded = 0, removed = 0;
  int views_without_copy = 0;
  std::vector<std::string> notes;
};

CompiledModel::CompiledModel() : impl_(std::make_unique<Impl>()) {}
CompiledModel::~CompiledModel() = default;
CompiledModel::CompiledModel(CompiledModel&&) noexcept = default;
CompiledModel& CompiledModel::operator=(CompiledModel&&) noexcept = default;

const std::vector<TensorSpec>& CompiledModel::inputs() const { return impl_->inputs; }
const std::vector<TensorSpec>& CompiledModel::outputs() const { return impl_->outputs; }
size_t CompiledModel::arena_bytes() const { return impl_->arena_bytes; }
size_t CompiledModel::constant_bytes() const { return impl_->constant_bytes; }
const std::vector<StepInfo>& CompiledModel::steps() const { return impl_->step_info; }
int CompiledModel::folded_nodes() const { return impl_->folded; }
int CompiledModel::removed_nodes() const { return impl_->removed; }
int CompiledModel::view_nodes() const { return impl_->views_without_copy; }
const std::vector<std::string>& CompiledModel::notes() const { return impl_->notes; }

std::vector<Tensor> CompiledModel::make_outputs() const {
  std::vector<Tensor> out;
  out.reserve(impl_->outputs.size());
  for (const TensorSpec& s : impl_->outputs) out.emplace_back(s.dtype, s.shape);
  return out;
}

static bool same_shape(std::span<const int64_t> a, const Shape& b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin());
}

Status CompiledModel::run(std::span<const TensorView> inputs, std::span<const TensorView> outputs) {
  return run_impl(inputs, outputs, nullptr);
}

// CPU time of the calling thread: a per-step profile that other processes on a busy machine do
// not distort (it leaves out time spent in pool workers).
static double thread_cpu_us() {
  timespec t{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return t.tv_sec * 1e6 + t.tv_nsec * 1e-3;
}

Status CompiledModel::run_profiled(std::span<const TensorView> inputs, std::span<const TensorView> outputs,
                                   std::vector<double>& step_us) {
  if (step_us.size() != impl_->steps.size()) step_us.assign(impl_->steps.size(), 0.0);
  return run_impl(inputs, outputs, step_us.data());
}

Status CompiledModel::run_impl(std::span<const TensorView> inputs, std::span<const TensorView> outputs,
                               double* step_us) {
  Impl& im = *impl_;
  if (inputs.size() != im.inputs.size())
    return Status::invalid("run() got ", inputs.size(), " inputs, the model has ", im.inputs.size());
  if (outputs.size() != im.outputs.size())
    return Status::invalid("run() got ", outputs.size(), " outputs, the model has ", im.outputs.size());
  for (size_t i = 0; i < inputs.size(); ++i) {
    const TensorSpec& s = im.inputs[i];
    if (inputs[i].dtype != s.dtype || !same_shape(inputs[i].shape, s.shape) ||
        (inputs[i].data == nullptr && num_elements(s.shape) > 0))
      return Status::invalid("input '", s.name, "' must be ", dtype_name(s.dtype), shape_to_string(s.shape),
                             ", got ", dtype_name(inputs[i].dtype), shape_to_string(inputs[i].shape),
                             inputs[i].data ? "" : " with no data");
  }
  for (size_t i = 0; i < outputs.size(); ++i) {
    const TensorSpec& s = im.outputs[i];
    if (outputs[i].dtype != s.dtype || !same_shape(outputs[i].shape, s.shape) ||
        (outputs[i].data == nullptr && num_elements(s.shape) > 0))
      return Status::invalid("output '", s.name, "' must be ", dtype_name(s.dtype), shape_to_string(s.shape),
                             ", got ", dtype_name(outputs[i].dtype), shape_to_string(outputs[i].shape),
                             outputs[i].data ? "" : " with no data");
  }
  for (const Impl::Patch& p : im.patches)
    im.views[p.view].data = p.output ? outputs[p.index].data : inputs[p.index].data;
  const TensorView* views = im.views.data();
  for (size_t s = 0; s < im.steps.size(); ++s) {
    const Impl::Step& st = im.steps[s];
    KernelContext ctx;
    ctx.inputs = std::span<const TensorView>(views + st.in_begin, st.in_count);
    ctx.outputs = std::span<const TensorView>(views + st.out_begin, st.out_count);
    ctx.scratch = st.scratch;
    ctx.scratch_bytes = st.scratch_bytes;
    ctx.pool = im.pool.get();
    if (step_us) {
      const double t0 = thread_cpu_us();
      Status status = st.kernel->run(ctx);
      step_us[s] += thread_cpu_us() - t0;
      if (!status.is_ok()) return status.with_context("node '" + im.step_names[s] + "'");
      continue;
    }
    Status status = st.kernel->run(ctx);
    if (!status.is_ok()) return status.with_context("node '" + im.step_names[s] + "'");
  }
  for (const Impl::OutputCopy& c : im.copies) {
    const void* src = c.from == Impl::CopyFrom::kConstant ? c.constant
                      : c.from == Impl::CopyFrom::kInput  ? inputs[c.index].data
                                                          : outputs[c.index].data;
    if (c.bytes) std::memmove(outputs[c.output].data, src, c.bytes);
  }
  return Status::ok();
}

std::vector<std::string> graph_inputs_feeding(const Graph& g, int value) {
  std::set<int> seen;
  std::vector<int> stack = {value};
  std::vector<std::string> names;
  while (!stack.empty()) {
    int v = stack.back();
    stack.pop_back();
    if (v < 0 || !seen.insert(v).second) continue;
    if (std::find(g.inputs.begin(), g.inputs.end(), v) != g.inputs.end()) names.push_back(g.values[v].name);
    int p = g.values[v].producer;
    if (p >= 0)
      for (int in : g.nodes[p].inputs) stack.push_back(in);
  }
  std::sort(names.begin(), names.end());
  return names;
}

namespace {

int64_t product(std::span<const int64_t> s, size_t from = 0) {
  int64_t p = 1;
  for (size_t i = from; i < s.size(); ++i) p *= s[i];
  return p;
}

// Multiply-accumulates of the compute-heavy operators, from concrete shapes.
int64_t estimate_macs(const Node& n, const std::vector<TensorInfo>& in, const std::vector<TensorInfo>& out) {
  const std::string& op = n.op_type;
  auto has = [&](size_t i) { return i < in.size() && in[i].dtype != DType::kUndefined; };
  if ((op == "Conv" || op == "ConvInteger" || op == "QLinearConv" || op == "QConv") && !out.empty()) {
    size_t w = op == "QLinearConv" || op == "QConv" ? 3 : 1;
    if (!has(w) || in[w].rank() < 3) return 0;
    return num_elements(out[0].shape) * product(in[w].shape, 1);
  }
  if (op == "ConvTranspose" && has(1) && in[1].rank() >= 3) return num_elements(in[0].shape) * product(in[1].shape, 1);
  if (op == "Gemm" && has(0) && has(1) && in[0].rank() == 2 && !out.empty() && out[0].rank() == 2)
    return out[0].shape[0] * out[0].shape[1] * (n.attribute("transA") && n.attribute("transA")->i ? in[0].shape[0] : in[0].shape[1]);
  if ((op == "MatMul" || op == "MatMulInteger" || op == "QLinearMatMul" || op == "Dense" ||
       op == "QDense") && !out.empty() && has(0) &&
      in[0].rank() >= 1)
    return num_elements(out[0].shape) * in[0].shape.back();
  if ((op == "LSTM" || op == "GRU" || op == "RNN") && has(0) && has(1) && has(2) && in[0].rank() == 3 && in[1].rank() == 3) {
    int64_t gates = op == "LSTM" ? 4 : op == "GRU" ? 3 : 1;
    int64_t hidden = in[1].shape[1] / gates;
    return in[0].shape[0] * in[0].shape[1] * in[1].shape[0] * gates * hidden * (in[0].shape[2] + hidden);
  }
  return 0;
}

bool is_removable(const Node& n) {
  if (!n.domain.empty() || n.inputs.empty() || n.inputs[0] < 0 || n.outputs.empty() || n.outputs[0] < 0) return false;
  if (n.op_type == "Identity") return true;
  if (n.op_type == "Dropout") {
    bool mask_used = n.outputs.size() > 1 && n.outputs[1] >= 0;
    bool training = n.inputs.size() > 2 && n.inputs[2] >= 0;  // training_mode given: let the kernel decide
    return !mask_used && !training;
  }
  return false;
}

class Compiler {
 public:
  Compiler(const Graph& g, const CompileOptions& o, CompiledModel::Impl& im) : g_(g), opts_(o), im_(im) {}

  // Before the optimisation passes, DequantizeLinear nodes of constant integer weights that feed
  // Conv / Gemm / MatMul (or a bias Add) directly stay in the graph, so that the quantized pass
  // (passes/quantized.cc) sees the integer weights and their scales; it folds what it does not use.
  void keep_weight_dequantize(bool on) { keep_weight_dq_ = on; }

  // Binds inputs and prepares every node, folding what is constant, then builds the plan.
  Status run() {
    KILN_RETURN_IF_ERROR(analyze());
    KILN_RETURN_IF_ERROR(check_outputs());
    eliminate_dead_steps();
    return build_plan();
  }

  // Binds inputs and prepares every node, folding what is constant: afterwards every value has
  // a concrete type, and lower() can describe the graph that is left.
  Status analyze() {
    const size_t nv = g_.values.size();
    info_.resize(nv);
    constant_.assign(nv, nullptr);
    alias_.resize(nv);
    for (size_t v = 0; v < nv; ++v) alias_[v] = static_cast<int>(v);
    for (size_t v = 0; v < nv; ++v) {
      if (!g_.values[v].constant) continue;
      im_.constants.push_back(*g_.values[v].constant);
      const Tensor& t = im_.constants.back();
      constant_[v] = &t;
      info_[v] = TensorInfo{t.dtype(), t.shape()};
    }
    KILN_RETURN_IF_ERROR(bind_inputs());
    folded_.assign(g_.nodes.size(), false);
    removed_.assign(g_.nodes.size(), false);
    find_weight_dequantize();
    for (size_t i = 0; i < g_.nodes.size(); ++i) KILN_RETURN_IF_ERROR(prepare_node(static_cast<int>(i)));
    return Status::ok();
  }

  // The graph after analyze(): folded nodes are gone (their outputs are initializers), removed
  // nodes are bypassed, inputs bound to values are constants, and every value's type is the
  // concrete one. Graph passes work on this.
  Graph lower() const {
    Graph out;
    out.opsets = g_.opsets;
    out.ir_version = g_.ir_version;
    out.producer = g_.producer;
    const size_t nv = g_.values.size();
    std::vector<bool> is_output(nv, false);
    for (int v : g_.outputs) is_output[v] = true;
    std::vector<bool> used(nv, false);
    for (int v : g_.outputs) used[v] = true;
    for (size_t i = 0; i < g_.nodes.size(); ++i) {
      if (folded_[i]) continue;
      if (removed_[i]) {
        if (is_output[g_.nodes[i].outputs[0]]) used[resolve(g_.nodes[i].inputs[0])] = true;
        continue;
      }
      for (int v : g_.nodes[i].inputs)
        if (v >= 0) used[resolve(v)] = true;
    }
    out.values.resize(nv);
    for (size_t v = 0; v < nv; ++v) {
      Value& nvv = out.values[v];
      nvv.name = g_.values[v].name;
      nvv.type.dtype = info_[v].dtype;
      if (info_[v].dtype != DType::kUndefined) {
        nvv.type.has_shape = true;
        for (int64_t d : info_[v].shape) nvv.type.dims.push_back(Dim{d, {}});
      } else {
        nvv.type = g_.values[v].type;
      }
      if (constant_[v] && used[v]) nvv.constant = *constant_[v];
    }
    for (int v : g_.inputs)
      if (input_index_.count(v)) out.inputs.push_back(v);
    for (size_t i = 0; i < g_.nodes.size(); ++i) {
      if (folded_[i]) continue;
      const Node& n = g_.nodes[i];
      if (removed_[i]) {
        if (!is_output[n.outputs[0]]) continue;
        Node id;
        id.name = n.name;
        id.op_type = "Identity";
        id.opset = g_.opsets.count("") ? g_.opsets.at("") : 13;
        id.inputs = {resolve(n.inputs[0])};
        id.outputs = {n.outputs[0]};
        out.nodes.push_back(std::move(id));
        continue;
      }
      Node copy = n;
      for (int& v : copy.inputs) v = resolve(v);
      out.nodes.push_back(std::move(copy));
    }
    for (size_t i = 0; i < out.nodes.size(); ++i)
      for (int v : out.nodes[i].outputs)
        if (v >= 0) out.values[v].producer = static_cast<int>(i);
    out.outputs = g_.outputs;
    return out;
  }

 private:
  struct Pending {
    int node;
    KernelPtr kernel;
    std::vector<int> inputs;   // resolved value ids, -1 for omitted
    std::vector<int> outputs;  // value ids, -1 for omitted
    size_t scratch = 0;
    int64_t macs = 0;
    int alias_input = -1;  // the output may be a view of this input (no copy)
    bool live = true;
  };

  int resolve(int v) const {
    while (v >= 0 && alias_[v] != v) v = alias_[v];
    return v;
  }

  Status bind_inputs() {
    std::set<std::string> names;
    for (int v : g_.inputs) names.insert(g_.values[v].name);
    auto known = [&]() {
      std::string s;
      for (const std::string& n : names) s += (s.empty() ? "'" : ", '") + n + "'";
      return s.empty() ? std::string("none") : s;
    };
    for (const auto& [name, shape] : opts_.input_shapes)
      if (!names.count(name)) return Status::invalid("no model input is named '", name, "' (inputs: ", known(), ")");
    for (const auto& [name, t] : opts_.input_values)
      if (!names.count(name)) return Status::invalid("no model input is named '", name, "' (inputs: ", known(), ")");

    for (int v : g_.inputs) {
      const Value& val = g_.values[v];
      const ValueType& decl = val.type;
      if (decl.dtype == DType::kUndefined) return Status::invalid("input '", val.name, "' has no declared dtype");
      auto bound = opts_.input_values.find(val.name);
      Shape shape;
      if (bound != opts_.input_values.end()) {
        if (bound->second.dtype() != decl.dtype)
          return Status::invalid("value bound to input '", val.name, "' has dtype ", dtype_name(bound->second.dtype()),
                                 ", the model declares ", dtype_name(decl.dtype));
        shape = bound->second.shape();
      } else {
        auto given = opts_.input_shapes.find(val.name);
        if (given != opts_.input_shapes.end()) {
          shape = given->second;
        } else {
          if (!decl.has_shape)
            return Status::invalid("input '", val.name, "' has no declared shape; give its shape when compiling");
          for (size_t d = 0; d < decl.dims.size(); ++d) {
            if (decl.dims[d].known()) {
              shape.push_back(decl.dims[d].value);
            } else if (opts_.default_dim >= 0) {
              shape.push_back(opts_.default_dim);
            } else {
              return Status::invalid("input '", val.name, "' dimension ", d,
                                     decl.dims[d].param.empty() ? std::string(" is dynamic")
                                                                : " ('" + decl.dims[d].param + "') is dynamic",
                                     "; give the input's shape when compiling (declared ", decl.to_string(), ")");
            }
          }
        }
      }
      if (decl.has_shape && opts_.check_declared_input_shapes) {
        bool ok = decl.dims.size() == shape.size();
        for (size_t d = 0; ok && d < shape.size(); ++d)
          if (decl.dims[d].known() && decl.dims[d].value != shape[d]) ok = false;
        if (!ok)
          return Status::invalid("input '", val.name, "' must have shape ", decl.to_string(), ", got ",
                                 shape_to_string(shape));
      }
      Result<int64_t> n = checked_num_elements(shape, dtype_size(decl.dtype), opts_.max_tensor_bytes);
      if (!n.is_ok()) return n.status().with_context("input '" + val.name + "'");
      info_[v] = TensorInfo{decl.dtype, shape};
      if (bound != opts_.input_values.end()) {
        im_.constants.push_back(bound->second);
        constant_[v] = &im_.constants.back();
      } else {
        input_index_[v] = static_cast<int>(im_.inputs.size());
        im_.inputs.push_back(TensorSpec{val.name, decl.dtype, shape});
      }
    }
    return Status::ok();
  }

  void find_weight_dequantize() {
    keep_dq_.assign(g_.nodes.size(), false);
    if (!keep_weight_dq_) return;
    std::vector<int> readers(g_.values.size(), 0), fusable(g_.values.size(), 0);
    for (const Node& n : g_.nodes) {
      const bool ok = n.domain.empty() && (n.op_type == "Conv" || n.op_type == "Gemm" || n.op_type == "MatMul" ||
                                           n.op_type == "Add");
      for (int v : n.inputs)
        if (v >= 0) {
          ++readers[v];
          if (ok) ++fusable[v];
        }
    }
    for (int v : g_.outputs) ++readers[v];
    for (size_t i = 0; i < g_.nodes.size(); ++i) {
      const Node& n = g_.nodes[i];
      if (!n.domain.empty() || n.op_type != "DequantizeLinear" || n.outputs.empty() || n.outputs[0] < 0) continue;
      const int y = n.outputs[0];
      keep_dq_[i] = readers[y] > 0 && readers[y] == fusable[y];
    }
  }

  Status prepare_node(int index) {
    const Node& n = g_.nodes[index];
    auto where = [&]() { return "node '" + n.name + "' (" + n.op_type + ")"; };
    if (is_removable(n)) {
      int src = resolve(n.inputs[0]);
      alias_[n.outputs[0]] = src;
      info_[n.outputs[0]] = info_[src];
      removed_[index] = true;
      ++im_.removed;
      return Status::ok();
    }
    const OpDef* def = default_op_registry().find(n.domain, n.op_type, n.opset);
    if (!def)
      return Status::unsupported("operator ", n.op_type, " (domain ", n.domain.empty() ? "ai.onnx" : n.domain,
                                 ", opset ", n.opset, ") in ", where(), " is not supported by Kiln");
    // A node whose outputs are all omitted has no effect: it is dropped, never run (its kernel
    // would have nowhere to write).
    bool any_output = false;
    for (int o : n.outputs) any_output |= o >= 0;
    if (!any_output) {
      folded_[index] = true;
      return Status::ok();
    }
    std::vector<TensorInfo> ins;
    std::vector<const Tensor*> consts;
    std::vector<int> resolved;
    bool all_const = true;
    for (int v : n.inputs) {
      int r = resolve(v);
      resolved.push_back(r);
      if (r < 0) {
        ins.emplace_back();
        consts.push_back(nullptr);
        continue;
      }
      if (info_[r].dtype == DType::kUndefined)
        return Status::internal(where(), " reads '", g_.values[r].name, "' before it has a type");
      ins.push_back(info_[r]);
      consts.push_back(constant_[r]);
      if (!constant_[r]) all_const = false;
    }
    PrepareContext ctx(n, ins, consts);
    ctx.set_threads(opts_.threads);
    Result<KernelPtr> k = def->prepare(ctx);
    Status err = !ctx.sticky_error().is_ok() ? ctx.sticky_error() : k.status();
    if (!err.is_ok()) {
      if (err.code() == StatusCode::kNeedsValue && opts_.needs_values && ctx.needed_input() >= 0 &&
          static_cast<size_t>(ctx.needed_input()) < resolved.size())
        *opts_.needs_values = graph_inputs_feeding(g_, resolved[ctx.needed_input()]);
      return err.with_context(where());
    }
    KernelPtr kernel = std::move(k).value();
    if (!kernel) return Status::internal(where(), ": prepare returned no kernel");
    std::vector<TensorInfo> outs = ctx.outputs();
    for (size_t j = 0; j < n.outputs.size(); ++j) {
      if (n.outputs[j] < 0) continue;
      if (outs[j].dtype == DType::kUndefined)
        return Status::unsupported(where(), ": output ", j, " is not produced by Kiln's implementation");
      Result<int64_t> cnt = checked_num_elements(outs[j].shape, dtype_size(outs[j].dtype), opts_.max_tensor_bytes);
      if (!cnt.is_ok()) return cnt.status().with_context(where() + " output '" + g_.values[n.outputs[j]].name + "'");
      info_[n.outputs[j]] = outs[j];
    }
    if (opts_.fold_constants && (all_const || def->shape_only) && !keep_dq_[index]) {
      folded_[index] = true;
      return fold(n, *kernel, resolved, ctx.scratch_bytes());
    }
    Pending p;
    p.node = index;
    p.macs = estimate_macs(n, ins, outs);
    p.kernel = std::move(kernel);
    p.inputs = std::move(resolved);
    p.outputs = n.outputs;
    p.scratch = ctx.scratch_bytes();
    p.alias_input = ctx.output_alias();
    pending_.push_back(std::move(p));
    return Status::ok();
  }

  // Evaluates a node whose inputs are all known, now, and turns its outputs into constants.
  Status fold(const Node& n, const Kernel& kernel, const std::vector<int>& inputs, size_t scratch_bytes) {
    std::vector<TensorView> in_views, out_views;
    for (int r : inputs) {
      if (r < 0) {
        in_views.emplace_back();
        continue;
      }
      TensorView v{info_[r].dtype, info_[r].shape, nullptr};
      if (constant_[r]) v.data = const_cast<void*>(constant_[r]->raw());
      in_views.push_back(v);
    }
    std::vector<Tensor*> made;
    for (int o : n.outputs) {
      if (o < 0) {
        out_views.emplace_back();
        continue;
      }
      im_.constants.emplace_back(info_[o].dtype, info_[o].shape);
      Tensor& t = im_.constants.back();
      constant_[o] = &t;
      out_views.push_back(TensorView{t.dtype(), t.shape(), t.raw()});
    }
    std::vector<uint8_t> scratch(scratch_bytes + 64);
    KernelContext ctx;
    ctx.inputs = in_views;
    ctx.outputs = out_views;
    ctx.scratch = scratch_bytes ? reinterpret_cast<void*>((reinterpret_cast<uintptr_t>(scratch.data()) + 63) & ~uintptr_t{63}) : nullptr;
    ctx.scratch_bytes = scratch_bytes;
    Status s = kernel.run(ctx);
    if (!s.is_ok()) return s.with_context("node '" + n.name + "' (" + n.op_type + ", evaluated at compile time)");
    ++im_.folded;
    return Status::ok();
  }

  Status check_outputs() {
    for (int v : g_.outputs) {
      int r = resolve(v);
      if (info_[r].dtype == DType::kUndefined)
        return Status::internal("graph output '", g_.values[v].name, "' has no type after compilation");
      const ValueType& decl = g_.values[v].type;
      if (decl.dtype != DType::kUndefined && decl.dtype != info_[r].dtype)
        im_.notes.push_back("output '" + g_.values[v].name + "' is declared " + dtype_name(decl.dtype) +
                            " but computes " + dtype_name(info_[r].dtype));
      if (decl.has_shape) {
        bool ok = decl.dims.size() == info_[r].shape.size();
        for (size_t d = 0; ok && d < decl.dims.size(); ++d)
          if (decl.dims[d].known() && decl.dims[d].value != info_[r].shape[d]) ok = false;
        if (!ok)
          im_.notes.push_back("output '" + g_.values[v].name + "' is declared " + decl.to_string() +
                              " but computes " + shape_to_string(info_[r].shape));
      }
    }
    return Status::ok();
  }

  void eliminate_dead_steps() {
    std::vector<bool> needed(g_.values.size(), false);
    for (int v : g_.outputs) needed[resolve(v)] = true;
    for (size_t i = pending_.size(); i-- > 0;) {
      Pending& p = pending_[i];
      bool any = false;
      for (int o : p.outputs)
        if (o >= 0 && needed[o]) any = true;
      p.live = any;
      if (!any) {
        ++im_.removed;
        continue;
      }
      for (int in : p.inputs)
        if (in >= 0) needed[in] = true;
    }
  }

  Status build_plan() {
    const size_t nv = g_.values.size();
    // Which caller buffer a value lives in, if any.
    std::vector<int> output_slot(nv, -1);
    std::vector<int> producer_step(nv, -1);
    std::vector<Pending*> live;
    for (Pending& p : pending_)
      if (p.live) live.push_back(&p);
    for (size_t s = 0; s < live.size(); ++s)
      for (int o : live[s]->outputs)
        if (o >= 0) producer_step[o] = static_cast<int>(s);

    for (size_t o = 0; o < g_.outputs.size(); ++o) {
      int r = resolve(g_.outputs[o]);
      im_.outputs.push_back(TensorSpec{g_.values[g_.outputs[o]].name, info_[r].dtype, info_[r].shape});
      size_t bytes = static_cast<size_t>(num_elements(info_[r].shape)) * dtype_size(info_[r].dtype);
      if (producer_step[r] >= 0 && output_slot[r] < 0) {
        output_slot[r] = static_cast<int>(o);
      } else if (producer_step[r] >= 0) {
        im_.copies.push_back({static_cast<uint32_t>(o), CompiledModel::Impl::CopyFrom::kOutput, nullptr,
                              static_cast<uint32_t>(output_slot[r]), bytes});
      } else if (constant_[r]) {
        im_.copies.push_back({static_cast<uint32_t>(o), CompiledModel::Impl::CopyFrom::kConstant, constant_[r]->raw(),
                              0, bytes});
      } else if (input_index_.count(r)) {
        im_.copies.push_back({static_cast<uint32_t>(o), CompiledModel::Impl::CopyFrom::kInput, nullptr,
                              static_cast<uint32_t>(input_index_[r]), bytes});
      } else {
        return Status::internal("graph output '", g_.values[g_.outputs[o]].name, "' has no source");
      }
    }

    // Steps whose output may share its input's memory (Reshape, Flatten, a layout change that
    // only moves size-1 dimensions) become views and are not run: the output's storage is its
    // input's. A graph output cannot be a view: it must land in the caller's buffer.
    std::vector<int> storage(nv);
    for (size_t v = 0; v < nv; ++v) storage[v] = static_cast<int>(v);
    auto find = [&](int v) {
      while (storage[v] != v) v = storage[v];
      return v;
    };
    std::vector<int> emitted_index(live.size(), -1);
    int emitted = 0;
    for (size_t s = 0; s < live.size(); ++s) {
      const Pending& p = *live[s];
      if (p.alias_input >= 0 && static_cast<size_t>(p.alias_input) < p.inputs.size() && !p.outputs.empty()) {
        int in = p.inputs[p.alias_input], out = p.outputs[0];
        if (in >= 0 && out >= 0 && output_slot[out] < 0 && info_[in].dtype == info_[out].dtype) {
          storage[out] = find(in);
          ++im_.views_without_copy;
          continue;
        }
      }
      emitted_index[s] = emitted++;
    }

    // Lifetimes of arena buffers (one per storage root) and of scratch, in emitted steps.
    std::vector<BufferRequest> requests;
    std::vector<int> request_of_value(nv, -1);
    std::vector<int> request_of_scratch(live.size(), -1);
    auto in_arena = [&](int r) { return !constant_[r] && !input_index_.count(r) && output_slot[r] < 0; };
    for (size_t s = 0; s < live.size(); ++s) {
      if (emitted_index[s] < 0) continue;
      const int e = emitted_index[s];
      for (int o : live[s]->outputs) {
        if (o < 0 || find(o) != o || !in_arena(o)) continue;
        request_of_value[o] = static_cast<int>(requests.size());
        size_t bytes = static_cast<size_t>(num_elements(info_[o].shape)) * dtype_size(info_[o].dtype);
        requests.push_back({bytes, e, e});
      }
      if (live[s]->scratch) {
        request_of_scratch[s] = static_cast<int>(requests.size());
        requests.push_back({live[s]->scratch, e, e});
      }
    }
    for (size_t s = 0; s < live.size(); ++s) {
      if (emitted_index[s] < 0) continue;
      for (int in : live[s]->inputs) {
        if (in < 0) continue;
        int r = find(in);
        if (request_of_value[r] >= 0)
          requests[request_of_value[r]].last = std::max(requests[request_of_value[r]].last, emitted_index[s]);
      }
    }
    MemoryPlan plan = plan_memory(requests);
    im_.arena_bytes = plan.arena_bytes;
    size_t alloc = plan.arena_bytes + 64;
    uint8_t* arena = static_cast<uint8_t*>(std::aligned_alloc(64, (alloc + 63) / 64 * 64));
    if (!arena) return Status::internal("cannot allocate an arena of ", alloc, " bytes");
    std::memset(arena, 0, alloc);
    im_.arena.reset(arena);

    im_.shapes.resize(nv);
    for (size_t v = 0; v < nv; ++v) im_.shapes[v] = info_[v].shape;
    auto make_view = [&](int v) -> TensorView {
      if (v < 0) return TensorView{};
      TensorView tv{info_[v].dtype, im_.shapes[v], nullptr};
      const int r = find(v);
      uint32_t view_index = static_cast<uint32_t>(im_.views.size());
      if (constant_[r]) tv.data = const_cast<void*>(constant_[r]->raw());
      else if (request_of_value[r] >= 0) tv.data = arena + plan.offsets[request_of_value[r]];
      else if (output_slot[r] >= 0) im_.patches.push_back({view_index, true, static_cast<uint32_t>(output_slot[r])});
      else if (input_index_.count(r)) im_.patches.push_back({view_index, false, static_cast<uint32_t>(input_index_[r])});
      return tv;
    };
    std::set<const Tensor*> used_constants;
    for (size_t s = 0; s < live.size(); ++s) {
      if (emitted_index[s] < 0) continue;
      Pending& p = *live[s];
      CompiledModel::Impl::Step st;
      st.kernel = p.kernel.get();
      st.in_begin = static_cast<uint32_t>(im_.views.size());
      for (int in : p.inputs) {
        im_.views.push_back(make_view(in));
        if (in >= 0 && constant_[find(in)]) used_constants.insert(constant_[find(in)]);
      }
      st.in_count = static_cast<uint32_t>(p.inputs.size());
      st.out_begin = static_cast<uint32_t>(im_.views.size());
      for (int o : p.outputs) im_.views.push_back(make_view(o));
      st.out_count = static_cast<uint32_t>(p.outputs.size());
      if (request_of_scratch[s] >= 0) {
        st.scratch = arena + plan.offsets[request_of_scratch[s]];
        st.scratch_bytes = p.scratch;
      }
      im_.steps.push_back(st);
      const Node& n = g_.nodes[p.node];
      im_.step_info.push_back(StepInfo{n.name, n.op_type, p.kernel->impl_name(), p.macs});
      im_.step_names.push_back(n.name + "' (" + n.op_type);
      im_.kernels.push_back(std::move(p.kernel));
    }
    // Graph outputs copied from a value that is a view read through its storage root.
    for (auto& c : im_.copies) {
      if (c.from != CompiledModel::Impl::CopyFrom::kConstant) continue;
      used_constants.insert(nullptr);
    }
    for (const Tensor* t : used_constants)
      if (t) im_.constant_bytes += t->byte_size();
    return Status::ok();
  }

  const Graph& g_;
  const CompileOptions& opts_;
  CompiledModel::Impl& im_;
  std::vector<TensorInfo> info_;
  std::vector<const Tensor*> constant_;
  std::vector<int> alias_;
  std::map<int, int> input_index_;
  std::vector<Pending> pending_;
  std::vector<bool> folded_, removed_;
  bool keep_weight_dq_ = false;
  std::vector<bool> keep_dq_;
};

}  // namespace

Result<CompiledModel> compile(const Model& model, const CompileOptions& options) {
  CompiledModel cm;
  if (!options.optimize) {
    Compiler c(model.graph(), options, *cm.impl_);
    KILN_RETURN_IF_ERROR(c.run());
    return cm;
  }
  // Analyse the model as given (binding shapes, folding constants), rewrite the lowered graph
  // with the optimisation passes, then compile the result.
  CompiledModel::Impl analysis;
  Compiler a(model.graph(), options, analysis);
  a.keep_weight_dequantize(true);
  KILN_RETURN_IF_ERROR(a.analyze());
  Graph lowered = a.lower();
  KILN_RETURN_IF_ERROR(optimize_graph(lowered, options, &cm.impl_->notes));
  CompileOptions final_options;
  final_options.threads = options.threads;
  final_options.max_tensor_bytes = options.max_tensor_bytes;
  if (options.threads > 1) cm.impl_->pool = std::make_unique<ThreadPool>(options.threads);
  Compiler c(lowered, final_options, *cm.impl_);
  Status s = c.run();
  if (!s.is_ok()) return Status::internal("optimised graph failed to compile: ", s.message());
  cm.impl_->folded += analysis.folded;
  cm.impl_->removed += analysis.removed;
  return cm;
}

Result<CompiledModel> compile_for_inputs(const Model& model, const std::map<std::string, const Tensor*>& inputs,
                                         CompileOptions options) {
  std::vector<std::string> needs;
  options.needs_values = &needs;
  for (const auto& [name, t] : inputs)
    if (!options.input_values.count(name)) options.input_shapes[name] = t->shape();
  for (size_t attempt = 0;; ++attempt) {
    needs.clear();
    Result<CompiledModel> cm = compile(model, options);
    if (cm.is_ok() || cm.status().code() != StatusCode::kNeedsValue || attempt > model.graph().inputs.size()) return cm;
    bool bound_any = false;
    for (const std::string& n : needs) {
      auto it = inputs.find(n);
      if (it == inputs.end() || options.input_values.count(n)) continue;
      options.input_values[n] = *it->second;
      options.input_shapes.erase(n);
      bound_any = true;
    }
    if (!bound_any) return cm;
  }
}

}  // namespace kiln::nn
