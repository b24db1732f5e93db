#include "kiln/nn/ir.h"

namespace kiln::nn {

std::string ValueType::to_string() const {
  std::string s = dtype_name(dtype);
  if (!has_shape) return s + "[?]";
  s += "[";
  for (size_t i = 0; i < dims.size(); ++i) {
    if (i) s += ", ";
    if (dims[i].known()) s += std::to_string(dims[i].value);
    else s += dims[i].param.empty() ? "?" : dims[i].param;
  }
  return s + "]";
}

bool ValueType::is_static() const {
  if (!has_shape) return false;
  for (const Dim& d : dims)
    if (!d.known()) return false;
  return true;
}

Shape ValueType::static_shape(int64_t fill) const {
  Shape s;
  s.reserve(dims.size());
  for (const Dim& d : dims) s.push_back(d.known() ? d.value : fill);
  return s;
}

const char* attribute_kind_name(Attribute::Kind k) {
  switch (k) {
    case Attribute::Kind::kUndefined: return "undefined";
    case Attribute::Kind::kFloat: return "float";
    case Attribute::Kind::kInt: return "int";
    case Attribute::Kind::kString: return "string";
    case Attribute::Kind::kTensor: return "tensor";
    case Attribute::Kind::kFloats: return "floats";
    case Attribute::Kind::kInts: return "ints";
    case Attribute::Kind::kStrings: return "strings";
    case Attribute::Kind::kGraph: return "graph";
    case Attribute::Kind::kOther: return "other";
  }
  return "?";
}

int Graph::find_value(const std::string& name) const {
  for (size_t i = 0; i < values.size(); ++i)
    if (values[i].name == name) return static_cast<int>(i);
  return -1;
}

}  // namespace kiln::nn
