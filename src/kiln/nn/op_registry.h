// kiln/nn/op_registry.h — which operators Kiln implements, for which opset versions.
//
// Operators are registered explicitly: every family file (ops/*.cc) exposes one table of
// OpDefs and op_table.cc lists the families. There is no static self-registration, so what is
// linked is what is listed.
//
//   const kiln::nn::OpRegistry& r = kiln::nn::default_op_registry();
//   if (const kiln::nn::OpDef* d = r.find("", "Conv", 13)) { /* d->prepare(ctx) */ }
#pragma once

#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "kiln/nn/kernel.h"

namespace kiln::nn {

// The newest opset of the default domain whose operator definitions Kiln knows.
inline constexpr int kMaxOnnxOpset = 21;

struct OpDef {
  std::string_view domain;  // "" for ai.onnx
  std::string_view name;
  int min_opset;            // first opset version whose semantics the implementation covers
  int max_opset;            // last one
  PrepareFn prepare;
  // The outputs depend only on the input shapes (Shape, Size): the node is always evaluated
  // at compile time.
  bool shape_only = false;
};

class OpRegistry {
 public:
  void add(const OpDef& def) { defs_.push_back(def); }
  void add(std::span<const OpDef> defs) { defs_.insert(defs_.end(), defs.begin(), defs.end()); }
  // The definition of (domain, name) covering `opset`, or nullptr.
  const OpDef* find(std::string_view domain, std::string_view name, int opset) const;
  // Any definition of (domain, name), whatever its opset range; nullptr if none.
  const OpDef* find_any(std::string_view domain, std::string_view name) const;
  const std::vector<OpDef>& defs() const { return defs_; }

 private:
  std::vector<OpDef> defs_;
};

// All operators Kiln ships (op_table.cc). Built on first use.
const OpRegistry& default_op_registry();

}  // namespace kiln::nn
