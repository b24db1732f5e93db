// ONNX protobuf -> kiln::nn::Graph. Everything in the file is untrusted.
#include <onnx/onnx_pb.h>
#include <onnx/shape_inference/implementation.h>

#include <algorithm>
#include <unordered_map>
#include <unordered_set>

#include "kiln/core/file_util.h"
#include "kiln/nn/internal/onnx_tensor.h"
#include "kiln/nn/model.h"
#include "kiln/nn/op_registry.h"

namespace kiln::nn {
namespace {

constexpr int64_t kMinIrVersion = 3;
constexpr int64_t kMaxIrVersion = 10;
// The newest opset Debian's ONNX library (1.12) can run shape inference for.
constexpr int kShapeInferenceMaxOpset = 17;

ValueType type_from_proto(const onnx::TypeProto& t, bool* is_tensor) {
  ValueType vt;
  *is_tensor = t.has_tensor_type();
  if (!t.has_tensor_type()) return vt;
  const auto& tt = t.tensor_type();
  vt.dtype = dtype_from_onnx(tt.elem_type());
  if (tt.has_shape()) {
    vt.has_shape = true;
    for (const auto& d : tt.shape().dim()) {
      Dim dim;
      if (d.has_dim_value() && d.dim_value() >= 0) dim.value = d.dim_value();
      else if (d.has_dim_param()) dim.param = d.dim_param();
      vt.dims.push_back(dim);
    }
  }
  return vt;
}

const char* type_case_name(const onnx::TypeProto& t) {
  switch (t.value_case()) {
    case onnx::TypeProto::kSequenceType: return "sequence";
    case onnx::TypeProto::kMapType: return "map";
    case onnx::TypeProto::kOptionalType: return "optional";
    case onnx::TypeProto::kSparseTensorType: return "sparse tensor";
    default: return "non-tensor";
  }
}

Result<Attribute> attribute_from_proto(const onnx::AttributeProto& a, const std::string& base_dir) {
  Attribute r;
  switch (a.type()) {
    case onnx::AttributeProto::FLOAT: r.kind = Attribute::Kind::kFloat; r.f = a.f(); break;
    case onnx::AttributeProto::INT: r.kind = Attribute::Kind::kInt; r.i = a.i(); break;
    case onnx::AttributeProto::STRING: r.kind = Attribute::Kind::kString; r.s = a.s(); break;
    case onnx::AttributeProto::TENSOR: {
      r.kind = Attribute::Kind::kTensor;
      Result<Tensor> t = internal::tensor_from_proto(a.t(), base_dir);
      if (!t.is_ok()) return t.status();
      r.t = std::move(t).value();
      break;
    }
    case onnx::AttributeProto::FLOATS:
      r.kind = Attribute::Kind::kFloats;
      r.floats.assign(a.floats().begin(), a.floats().end());
      break;
    case onnx::AttributeProto::INTS:
      r.kind = Attribute::Kind::kInts;
      r.ints.assign(a.ints().begin(), a.ints().end());
      break;
    case onnx::AttributeProto::STRINGS:
      r.kind = Attribute::Kind::kStrings;
      r.strings.assign(a.strings().begin(), a.strings().end());
      break;
    case onnx::AttributeProto::GRAPH: case onnx::AttributeProto::GRAPHS: r.kind = Attribute::Kind::kGraph; break;
    case onnx::AttributeProto::UNDEFINED: {
      // Old exporters leave `type` unset; infer it from the field that is filled.
      if (a.has_f()) { r.kind = Attribute::Kind::kFloat; r.f = a.f(); }
      else if (a.has_i()) { r.kind = Attribute::Kind::kInt; r.i = a.i(); }
      else if (a.has_s()) { r.kind = Attribute::Kind::kString; r.s = a.s(); }
      else if (a.ints_size()) { r.kind = Attribute::Kind::kInts; r.ints.assign(a.ints().begin(), a.ints().end()); }
      else if (a.floats_size()) { r.kind = Attribute::Kind::kFloats; r.floats.assign(a.floats().begin(), a.floats().end()); }
      else r.kind = Attribute::Kind::kOther;
      break;
    }
    default: r.kind = Attribute::Kind::kOther; break;
  }
  return r;
}

// Runs ONNX shape inference on a copy and returns the inferred value types by name.
// Debian's ONNX (1.12) knows opsets up to 17; newer models are left as declared.
void infer_types(const onnx::ModelProto& m, int default_opset,
                 std::unordered_map<std::string, ValueType>* out, std::vector<std::string>* notes) {
  if (default_opset > kShapeInferenceMaxOpset) {
    notes->push_back("ONNX shape inference skipped: opset " + std::to_string(default_opset) +
                     " is newer than the ONNX library's " + std::to_string(kShapeInferenceMaxOpset));
    return;
  }
  onnx::ModelProto copy = m;
  try {
    onnx::ShapeInferenceOptions opts;
    opts.check_type = false;
    opts.error_mode = 0;
    onnx::shape_inference::InferShapes(copy, onnx::OpSchemaRegistry::Instance(), opts);
  } catch (const std::exception& e) {
    notes->push_back(std::string("ONNX shape inference failed: ") + e.what());
    return;
  } catch (...) {
    notes->push_back("ONNX shape inference failed");
    return;
  }
  for (const auto& vi : copy.graph().value_info()) {
    bool is_tensor = false;
    ValueType t = type_from_proto(vi.type(), &is_tensor);
    if (is_tensor) (*out)[vi.name()] = t;
  }
}

class Importer {
 public:
  Importer(const LoadOptions& o, std::vector<std::string>* notes) : opts_(o), notes_(notes) {}

  Result<Graph> run(const onnx::ModelProto& m) {
    Graph g;
    g.ir_version = m.ir_version();
    g.producer = m.producer_name();
    if (!m.producer_version().empty()) g.producer += " " + m.producer_version();
    if (g.ir_version < kMinIrVersion || g.ir_version > kMaxIrVersion)
      return Status::unsupported("model IR version ", g.ir_version, " is not supported (Kiln reads IR versions ",
                                 kMinIrVersion, " to ", kMaxIrVersion, ")");
    for (const auto& o : m.opset_import()) {
      std::string d = o.domain() == "ai.onnx" ? "" : o.domain();
      if (o.version() < 1 || o.version() > 1000)
        return Status::invalid("opset import of domain '", d, "' has version ", o.version());
      g.opsets[d] = static_cast<int>(o.version());
    }
    // A model may use only other domains; then it imports no default-domain opset.
    int opset = g.opsets.count("") ? g.opsets[""] : 0;
    if (opset > kMaxOnnxOpset)
      return Status::unsupported("model imports opset ", opset, " of ai.onnx; Kiln supports opsets up to ",
                                 kMaxOnnxOpset);
    if (!m.has_graph()) return Status::invalid("model has no graph");
    const onnx::GraphProto& gp = m.graph();

    std::unordered_map<std::string, ValueType> inferred;
    if (opts_.shape_inference) infer_types(m, opset, &inferred, notes_);

    // Initializers first: they are constants, and (IR < 4) may also be listed as inputs.
    for (const auto& init : gp.initializer()) {
      if (init.name().empty()) return Status::invalid("an initializer has no name");
      if (names_.count(init.name())) return Status::invalid("initializer '", init.name(), "' is defined twice");
      Result<Tensor> t = internal::tensor_from_proto(init, opts_.base_dir);
      if (!t.is_ok()) return t.status().with_context("initializer '" + init.name() + "'");
      Value v;
      v.name = init.name();
      v.type.dtype = t->dtype();
      v.type.has_shape = true;
      for (int64_t d : t->shape()) v.type.dims.push_back(Dim{d, {}});
      v.constant = std::move(t).value();
      add_value(g, std::move(v));
    }
    if (gp.sparse_initializer_size() > 0) return Status::unsupported("sparse initializers are not supported");

    for (const auto& in : gp.input()) {
      if (in.name().empty()) return Status::invalid("a graph input has no name");
      if (names_.count(in.name())) {
        if (g.values[names_[in.name()]].constant) continue;  // initializer with a default value
        return Status::invalid("graph input '", in.name(), "' is defined twice");
      }
      bool is_tensor = false;
      ValueType t = type_from_proto(in.type(), &is_tensor);
      if (!is_tensor)
        return Status::unsupported("graph input '", in.name(), "' is a ", type_case_name(in.type()),
                                   "; Kiln supports tensor inputs only");
      if (in.type().tensor_type().elem_type() == onnx::TensorProto::STRING)
        return Status::unsupported("graph input '", in.name(), "' has dtype string, which Kiln does not support");
      if (!dtype_is_supported(t.dtype))
        return Status::unsupported("graph input '", in.name(), "' has dtype ", dtype_name(t.dtype),
                                   ", which Kiln does not support");
      Value v;
      v.name = in.name();
      v.type = t;
      g.inputs.push_back(add_value(g, std::move(v)));
    }

    // Nodes: create output values, resolve inputs after all outputs are known (the file's
    // order need not be topological), then sort.
    std::vector<Node> nodes;
    nodes.reserve(gp.node_size());
    for (int i = 0; i < gp.node_size(); ++i) {
      const auto& np = gp.node(i);
      Node n;
      n.op_type = np.op_type();
      n.domain = np.domain() == "ai.onnx" ? "" : np.domain();
      n.name = np.name().empty() ? n.op_type + "_" + std::to_string(i) : np.name();
      if (n.op_type.empty()) return Status::invalid("node #", i, " ('", n.name, "') has no op_type");
      auto os = g.opsets.find(n.domain);
      if (os == g.opsets.end())
        return Status::invalid("node '", n.name, "' (", n.op_type, ") uses domain '", n.domain,
                               "', which the model does not import");
      n.opset = os->second;
      for (const auto& a : np.attribute()) {
        if (a.name().empty()) return Status::invalid("node '", n.name, "' has an attribute without a name");
        Result<Attribute> attr = attribute_from_proto(a, opts_.base_dir);
        if (!attr.is_ok()) return attr.status().with_context("node '" + n.name + "' attribute '" + a.name() + "'");
        n.attributes[a.name()] = std::move(attr).value();
      }
      for (const auto& out : np.output()) {
        if (out.empty()) {
          n.outputs.push_back(-1);
          continue;
        }
        if (names_.count(out))
          return Status::invalid("value '", out, "' is produced by node '", n.name,
                                 "' but is already defined elsewhere (ONNX graphs are single-assignment)");
        Value v;
        v.name = out;
        v.producer = i;
        auto it = inferred.find(out);
        if (it != inferred.end()) v.type = it->second;
        n.outputs.push_back(add_value(g, std::move(v)));
      }
      nodes.push_back(std::move(n));
    }
    for (int i = 0; i < gp.node_size(); ++i) {
      for (const auto& in : gp.node(i).input()) {
        if (in.empty()) {
          nodes[i].inputs.push_back(-1);
          continue;
        }
        auto it = names_.find(in);
        if (it == names_.end())
          return Status::invalid("node '", nodes[i].name, "' (", nodes[i].op_type, ") reads '", in,
                                 "', which is not a graph input, an initializer or a node output");
        nodes[i].inputs.push_back(it->second);
      }
    }
    // value_info: declared types of intermediate values (prefer them over nothing).
    for (const auto& vi : gp.value_info()) {
      auto it = names_.find(vi.name());
      if (it == names_.end()) continue;
      bool is_tensor = false;
      ValueType t = type_from_proto(vi.type(), &is_tensor);
      Value& v = g.values[it->second];
      if (is_tensor && !v.constant && (v.type.dtype == DType::kUndefined || !v.type.has_shape)) v.type = t;
    }
    for (const auto& out : gp.output()) {
      auto it = names_.find(out.name());
      if (it == names_.end())
        return Status::invalid("graph output '", out.name(), "' is not produced by any node, input or initializer");
      bool is_tensor = false;
      ValueType t = type_from_proto(out.type(), &is_tensor);
      if (!is_tensor)
        return Status::unsupported("graph output '", out.name(), "' is a ", type_case_name(out.type()),
                                   "; Kiln supports tensor outputs only");
      if (out.type().tensor_type().elem_type() == onnx::TensorProto::STRING)
        return Status::unsupported("graph output '", out.name(), "' has dtype string, which Kiln does not support");
      Value& v = g.values[it->second];
      if (!v.constant) {
        if (t.dtype != DType::kUndefined) v.type.dtype = t.dtype;
        if (t.has_shape) v.type = ValueType{v.type.dtype, true, t.dims};
      }
      g.outputs.push_back(it->second);
    }
    if (g.outputs.empty()) return Status::invalid("graph has no outputs");

    KILN_RETURN_IF_ERROR(topo_sort(g, std::move(nodes)));
    if (opts_.require_supported_ops) KILN_RETURN_IF_ERROR(check_ops(g));
    return g;
  }

 private:
  int add_value(Graph& g, Value v) {
    int id = static_cast<int>(g.values.size());
    names_[v.name] = id;
    g.values.push_back(std::move(v));
    return id;
  }

  Status topo_sort(Graph& g, std::vector<Node> nodes) {
    size_t n = nodes.size();
    std::vector<int> pending(n, 0);
    std::vector<std::vector<int>> users(g.values.size());
    for (size_t i = 0; i < n; ++i) {
      for (int v : nodes[i].inputs) {
        if (v < 0) continue;
        if (g.values[v].producer >= 0) {
          ++pending[i];
          users[v].push_back(static_cast<int>(i));
        }
      }
    }
    std::vector<int> ready, order;
    for (size_t i = 0; i < n; ++i)
      if (pending[i] == 0) ready.push_back(static_cast<int>(i));
    // Keep the file's order among ready nodes: deterministic and close to what the exporter wrote.
    size_t head = 0;
    while (head < ready.size()) {
      int i = ready[head++];
      order.push_back(i);
      for (int v : nodes[i].outputs) {
        if (v < 0) continue;
        for (int u : users[v])
          if (--pending[u] == 0) ready.push_back(u);
      }
      std::sort(ready.begin() + head, ready.end());
    }
    if (order.size() != n) {
      for (size_t i = 0; i < n; ++i)
        if (pending[i] > 0)
          return Status::invalid("graph has a cycle through node '", nodes[i].name, "' (", nodes[i].op_type, ")");
    }
    std::vector<int> new_index(n);
    for (size_t k = 0; k < n; ++k) new_index[order[k]] = static_cast<int>(k);
    g.nodes.clear();
    g.nodes.reserve(n);
    for (int i : order) g.nodes.push_back(std::move(nodes[i]));
    for (Value& v : g.values)
      if (v.producer >= 0) v.producer = new_index[v.producer];
    return Status::ok();
  }

  Status check_ops(const Graph& g) {
    const OpRegistry& reg = default_op_registry();
    for (const Node& n : g.nodes) {
      if (reg.find(n.domain, n.op_type, n.opset)) continue;
      std::string dom = n.domain.empty() ? "ai.onnx" : n.domain;
      if (const OpDef* any = reg.find_any(n.domain, n.op_type))
        return Status::unsupported("operator ", n.op_type, " (domain ", dom, ") at opset ", n.opset, " in node '",
                                   n.name, "' is not supported; Kiln implements it for opsets ", any->min_opset,
                                   " to ", any->max_opset);
      return Status::unsupported("operator ", n.op_type, " (domain ", dom, ", opset ", n.opset, ") in node '", n.name,
                                 "' is not supported by Kiln");
    }
    return Status::ok();
  }

  const LoadOptions& opts_;
  std::vector<std::string>* notes_;
  std::unordered_map<std::string, int> names_;
};

}  // namespace

Result<Model> Model::load_bytes(std::string_view bytes, const LoadOptions& options) {
  onnx::ModelProto proto;
  if (bytes.size() > static_cast<size_t>(INT32_MAX))
    return Status::unsupported("model is larger than 2 GiB; store its weights as external data");
  if (!proto.ParseFromArray(bytes.data(), static_cast<int>(bytes.size())))
    return Status::invalid("not a valid ONNX model: the protobuf could not be parsed (", bytes.size(),
                           " bytes; truncated or not an .onnx file?)");
  Model m;
  Importer imp(options, &m.notes_);
  Result<Graph> g = imp.run(proto);
  if (!g.is_ok()) return g.status();
  m.graph_ = std::move(g).value();
  return m;
}

Result<Model> Model::load(const std::string& path, LoadOptions options) {
  KILN_ASSIGN_OR_RETURN(std::string bytes, read_file(path));
  if (options.base_dir.empty()) {
    size_t slash = path.rfind('/');
    options.base_dir = slash == std::string::npos ? "." : path.substr(0, slash);
    if (options.base_dir.empty()) options.base_dir = "/";
  }
  Result<Model> m = load_bytes(bytes, options);
  if (!m.is_ok()) return m.status().with_context(path);
  return m;
}

}  // namespace kiln::nn
