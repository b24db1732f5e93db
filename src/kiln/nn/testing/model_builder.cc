#include "kiln/nn/testing/model_builder.h"

#include <onnx/onnx_pb.h>

#include <cstring>

namespace kiln::nn::testing {

struct ModelBuilder::State {
  onnx::ModelProto m;
};

static void fill_tensor(onnx::TensorProto* p, const std::string& name, const Tensor& t) {
  p->set_name(name);
  p->set_data_type(static_cast<int>(t.dtype()));
  for (int64_t d : t.shape()) p->add_dims(d);
  p->set_raw_data(std::string(static_cast<const char*>(t.raw()), t.byte_size()));
}

static void fill_value_info(onnx::ValueInfoProto* v, const std::string& name, DType dtype,
                            const std::vector<int64_t>* dims) {
  v->set_name(name);
  auto* tt = v->mutable_type()->mutable_tensor_type();
  tt->set_elem_type(static_cast<int>(dtype));
  if (dims) {
    auto* shape = tt->mutable_shape();
    for (int64_t d : *dims) {
      auto* dim = shape->add_dim();
      if (d >= 0) dim->set_dim_value(d);
      else dim->set_dim_param("N");
    }
  }
}

ModelBuilder::ModelBuilder(int opset, int64_t ir_version) : s_(new State) {
  s_->m.set_ir_version(ir_version);
  s_->m.set_producer_name("kiln-test");
  auto* o = s_->m.add_opset_import();
  o->set_domain("");
  o->set_version(opset);
  s_->m.mutable_graph()->set_name("test");
}

ModelBuilder::~ModelBuilder() { delete s_; }

ModelBuilder& ModelBuilder::opset(const std::string& domain, int version) {
  for (auto& o : *s_->m.mutable_opset_import())
    if (o.domain() == domain) {
      o.set_version(version);
      return *this;
    }
  auto* o = s_->m.add_opset_import();
  o->set_domain(domain);
  o->set_version(version);
  return *this;
}

ModelBuilder& ModelBuilder::input(const std::string& name, DType dtype, const std::vector<int64_t>& dims) {
  fill_value_info(s_->m.mutable_graph()->add_input(), name, dtype, &dims);
  return *this;
}

ModelBuilder& ModelBuilder::output(const std::string& name, DType dtype) {
  fill_value_info(s_->m.mutable_graph()->add_output(), name, dtype, nullptr);
  return *this;
}

ModelBuilder& ModelBuilder::output(const std::string& name, DType dtype, const std::vector<int64_t>& dims) {
  fill_value_info(s_->m.mutable_graph()->add_output(), name, dtype, &dims);
  return *this;
}

ModelBuilder& ModelBuilder::initializer(const std::string& name, const Tensor& value) {
  fill_tensor(s_->m.mutable_graph()->add_initializer(), name, value);
  return *this;
}

ModelBuilder& ModelBuilder::node(const std::string& op_type, const std::vector<std::string>& inputs,
                                 const std::vector<std::string>& outputs, const std::vector<Attr>& attrs,
                                 const std::string& domain) {
  auto* n = s_->m.mutable_graph()->add_node();
  n->set_op_type(op_type);
  n->set_domain(domain);
  n->set_name(op_type + "_" + std::to_string(s_->m.graph().node_size()));
  for (const auto& i : inputs) n->add_input(i);
  for (const auto& o : outputs) n->add_output(o);
  for (const Attr& a : attrs) {
    auto* p = n->add_attribute();
    p->set_name(a.name);
    switch (a.kind) {
      case Attr::Kind::kInt: p->set_type(onnx::AttributeProto::INT); p->set_i(a.value_i); break;
      case Attr::Kind::kFloat: p->set_type(onnx::AttributeProto::FLOAT); p->set_f(a.value_f); break;
      case Attr::Kind::kString: p->set_type(onnx::AttributeProto::STRING); p->set_s(a.value_s); break;
      case Attr::Kind::kInts:
        p->set_type(onnx::AttributeProto::INTS);
        for (int64_t v : a.value_ints) p->add_ints(v);
        break;
      case Attr::Kind::kFloats:
        p->set_type(onnx::AttributeProto::FLOATS);
        for (float v : a.value_floats) p->add_floats(v);
        break;
      case Attr::Kind::kStrings:
        p->set_type(onnx::AttributeProto::STRINGS);
        for (const auto& v : a.value_strings) p->add_strings(v);
        break;
      case Attr::Kind::kTensor:
        p->set_type(onnx::AttributeProto::TENSOR);
        fill_tensor(p->mutable_t(), "", a.value_t);
        break;
    }
  }
  return *this;
}

std::string ModelBuilder::serialize() const { return s_->m.SerializeAsString(); }

Result<Model> ModelBuilder::build(bool require_supported_ops) const {
  LoadOptions o;
  o.require_supported_ops = require_supported_ops;
  return Model::load_bytes(serialize(), o);
}

Result<std::vector<Tensor>> run_once(const Model& m, const std::vector<Tensor>& inputs) {
  CompileOptions opts;
  const Graph& g = m.graph();
  if (inputs.size() != g.inputs.size())
    return Status::invalid("run_once: got ", inputs.size(), " inputs, model has ", g.inputs.size());
  for (size_t i = 0; i < inputs.size(); ++i) opts.input_shapes[g.values[g.inputs[i]].name] = inputs[i].shape();
  KILN_ASSIGN_OR_RETURN(CompiledModel cm, compile(m, opts));
  std::vector<Tensor> outs = cm.make_outputs();
  std::vector<TensorView> iv, ov;
  for (const Tensor& t : inputs) iv.push_back(t.view());
  for (const Tensor& t : outs) ov.push_back(t.view());
  KILN_RETURN_IF_ERROR(cm.run(iv, ov));
  return outs;
}

}  // namespace kiln::nn::testing
