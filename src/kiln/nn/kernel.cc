#include "kiln/nn/kernel.h"

namespace kiln::nn {

PrepareContext::PrepareContext(const Node& node, std::vector<TensorInfo> inputs,
                               std::vector<const Tensor*> constants)
    : node_(node), inputs_(std::move(inputs)), constants_(std::move(constants)) {
  outputs_.resize(node.outputs.size());
}

const Tensor* PrepareContext::require_constant(size_t i, const char* what) {
  const Tensor* t = constant(i);
  if (!t && needed_input_ < 0) needed_input_ = static_cast<int>(i);
  if (!t)
    record_error(Status::needs_value(node_.op_type, ": input ", i, " (", what,
                                     ") must be known at compile time; bind the graph input it "
                                     "comes from with a value"));
  return t;
}

void PrepareContext::set_output(size_t i, DType dtype, Shape shape) {
  if (i >= outputs_.size()) return;  // an output the model did not declare: nothing reads it
  outputs_[i] = TensorInfo{dtype, std::move(shape)};
}

const Attribute* PrepareContext::typed_attr(const std::string& name, Attribute::Kind kind) {
  const Attribute* a = node_.attribute(name);
  if (!a) return nullptr;
  if (a->kind != kind) {
    record_error(Status::invalid(node_.op_type, ": attribute '", name, "' must be of type ",
                                 attribute_kind_name(kind), ", got ", attribute_kind_name(a->kind)));
    return nullptr;
  }
  return a;
}

int64_t PrepareContext::attr_int(const std::string& name, int64_t def) {
  const Attribute* a = typed_attr(name, Attribute::Kind::kInt);
  return a ? a->i : def;
}

float PrepareContext::attr_float(const std::string& name, float def) {
  const Attribute* a = typed_attr(name, Attribute::Kind::kFloat);
  return a ? a->f : def;
}

std::string PrepareContext::attr_string(const std::string& name, const std::string& def) {
  const Attribute* a = typed_attr(name, Attribute::Kind::kString);
  return a ? a->s : def;
}

std::vector<int64_t> PrepareContext::attr_ints(const std::string& name, std::vector<int64_t> def) {
  const Attribute* a = typed_attr(name, Attribute::Kind::kInts);
  return a ? a->ints : def;
}

std::vector<float> PrepareContext::attr_floats(const std::string& name, std::vector<float> def) {
  const Attribute* a = typed_attr(name, Attribute::Kind::kFloats);
  return a ? a->floats : def;
}

std::vector<std::string> PrepareContext::attr_strings(const std::string& name,
                                                      std::vector<std::string> def) {
  const Attribute* a = typed_attr(name, Attribute::Kind::kStrings);
  return a ? a->strings : def;
}

const Tensor* PrepareContext::attr_tensor(const std::string& name) {
  const Attribute* a = typed_attr(name, Attribute::Kind::kTensor);
  return a ? &a->t : nullptr;
}

Status PrepareContext::unsupported_dtype(size_t input) const {
  if (input >= inputs_.size()) return unsupported("missing input ", input);
  return unsupported("input ", input, " has dtype ", dtype_name(inputs_[input].dtype),
                     ", which this operator does not support");
}

Status PrepareContext::require_input(size_t i) const {
  if (has_input(i)) return Status::ok();
  return invalid("input ", i, " is required but missing");
}

}  // namespace kiln::nn
