// kiln/nn/passes/attributes.h — reading and making node attributes in graph passes (and telling
// Kiln's own operators apart). Readers
// return `def` when the attribute is absent or of another kind (the kernels' prepare() reports
// wrong kinds; a pass only decides whether a pattern applies).
//
//   int64_t group = int_attr(node, "group", 1);
//   node.attributes["layout"] = make_string("nhwc");
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "kiln/nn/ir.h"

namespace kiln::nn::passes {

inline std::vector<int64_t> ints_attr(const Node& n, const char* name, std::vector<int64_t> def) {
  const Attribute* a = n.attribute(name);
  return a && a->kind == Attribute::Kind::kInts ? a->ints : def;
}
inline int64_t int_attr(const Node& n, const char* name, int64_t def) {
  const Attribute* a = n.attribute(name);
  return a && a->kind == Attribute::Kind::kInt ? a->i : def;
}
inline float float_attr(const Node& n, const char* name, float def) {
  const Attribute* a = n.attribute(name);
  return a && a->kind == Attribute::Kind::kFloat ? a->f : def;
}
inline std::string string_attr(const Node& n, const char* name) {
  const Attribute* a = n.attribute(name);
  return a && a->kind == Attribute::Kind::kString ? a->s : "";
}

// A com.kiln operator named `op` (the ones earlier passes create).
inline bool is_kiln(const Node& n, const char* op) { return n.domain == "com.kiln" && n.op_type == op; }

inline Attribute make_ints(std::vector<int64_t> v) {
  Attribute a;
  a.kind = Attribute::Kind::kInts;
  a.ints = std::move(v);
  return a;
}
inline Attribute make_int(int64_t v) {
  Attribute a;
  a.kind = Attribute::Kind::kInt;
  a.i = v;
  return a;
}
inline Attribute make_string(std::string v) {
  Attribute a;
  a.kind = Attribute::Kind::kString;
  a.s = std::move(v);
  return a;
}

}  // namespace kiln::nn::passes
