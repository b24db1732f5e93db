// kiln/nn/ir.h — Kiln's own graph representation of a model.
//
// The ONNX loader (model.h) turns a protobuf into this IR once; everything after it (passes,
// the memory planner, kernels) works on the IR and never sees protobuf. Values are numbered;
// nodes refer to values by index, and -1 marks an omitted optional input or output.
// Nodes are kept in topological order.
//
//   const kiln::nn::Graph& g = model.graph();
//   for (const kiln::nn::Node& n : g.nodes)
//     std::printf("%s(%s) -> %s\n", n.op_type.c_str(), g.values[n.inputs[0]].name.c_str(),
//                 g.values[n.outputs[0]].name.c_str());
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "kiln/core/tensor.h"

namespace kiln::nn {

// One dimension as a model declares it: a number, a named symbol ("batch"), or unknown.
struct Dim {
  int64_t value = -1;  // >= 0 when known
  std::string param;   // symbolic name, when the model gives one
  bool known() const { return value >= 0; }
};

// What the model says about a value: element type and (possibly partial) shape.
struct ValueType {
  DType dtype = DType::kUndefined;
  bool has_shape = false;  // false: rank unknown
  std::vector<Dim> dims;

  // "float32[1, 3, N, 224]" or "float32[?]" when the rank is unknown.
  std::string to_string() const;
  // True when every dimension is a known number.
  bool is_static() const;
  // The shape, with unknown dimensions replaced by `fill`.
  Shape static_shape(int64_t fill = -1) const;
};

struct Attribute {
  enum class Kind { kUndefined, kFloat, kInt, kString, kTensor, kFloats, kInts, kStrings, kGraph, kOther };
  Kind kind = Kind::kUndefined;
  float f = 0;
  int64_t i = 0;
  std::string s;
  Tensor t;
  std::vector<float> floats;
  std::vector<int64_t> ints;
  std::vector<std::string> strings;
};

const char* attribute_kind_name(Attribute::Kind k);

struct Value {
  std::string name;
  ValueType type;                  // declared or inferred type (may be partial)
  std::optional<Tensor> constant;  // initializer or folded constant
  int producer = -1;               // index of the node that produces it, -1 for inputs/constants
};

struct Node {
  std::string name;     // may be empty in the file; the loader fills "<op_type>_<index>"
  std::string op_type;
  std::string domain;   // "" is the default ONNX domain (ai.onnx)
  int opset = 0;        // version of `domain` that the model imports
  std::vector<int> inputs;
  std::vector<int> outputs;
  std::map<std::string, Attribute> attributes;

  const Attribute* attribute(const std::string& key) const {
    auto it = attributes.find(key);
    return it == attributes.end() ? nullptr : &it->second;
  }
};

struct Graph {
  std::vector<Value> values;
  std::vector<Node> nodes;   // topological order
  std::vector<int> inputs;   // runtime inputs (initializers are not listed here)
  std::vector<int> outputs;
  std::map<std::string, int> opsets;  // domain -> imported version
  int64_t ir_version = 0;
  std::string producer;      // "pytorch 1.13.1", "tf2onnx 1.16.1", ...

  // Index of the value with this name, or -1.
  int find_value(const std::string& name) const;
};

}  // namespace kiln::nn
