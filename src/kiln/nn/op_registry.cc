#include "kiln/nn/op_registry.h"

namespace kiln::nn {

static bool same_domain(std::string_view a, std::string_view b) {
  auto norm = [](std::string_view d) { return d == "ai.onnx" ? std::string_view() : d; };
  return norm(a) == norm(b);
}

const OpDef* OpRegistry::find(std::string_view domain, std::string_view name, int opset) const {
  for (const OpDef& d : defs_)
    if (d.name == name && same_domain(d.domain, domain) && opset >= d.min_opset && opset <= d.max_opset)
      return &d;
  return nullptr;
}

const OpDef* OpRegistry::find_any(std::string_view domain, std::string_view name) const {
  for (const OpDef& d : defs_)
    if (d.name == name && same_domain(d.domain, domain)) return &d;
  return nullptr;
}

}  // namespace kiln::nn
