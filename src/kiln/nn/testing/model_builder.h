// kiln/nn/testing/model_builder.h — build small ONNX models in tests, without files.
//
//   ModelBuilder b(13);
//   b.input("x", DType::kFloat32, {1, 4})
//    .initializer("w", make_tensor<float>({4, 2}, {...}))
//    .node("MatMul", {"x", "w"}, {"y"})
//    .output("y", DType::kFloat32);
//   Result<Model> m = b.build();
//   Result<std::vector<Tensor>> ys = run_once(*m, {x});
//
// Attributes: node("Conv", {...}, {...}, {Attr::ints("pads", {1, 1, 1, 1}), Attr::i("group", 8)}).
#pragma once

#include <cstring>
#include <initializer_list>
#include <string>
#include <vector>

#include "kiln/core/tensor.h"
#include "kiln/nn/compile.h"
#include "kiln/nn/model.h"

namespace kiln::nn::testing {

struct Attr {
  enum class Kind { kInt, kFloat, kString, kInts, kFloats, kStrings, kTensor };
  Kind kind = Kind::kInt;
  std::string name;
  int64_t value_i = 0;
  float value_f = 0;
  std::string value_s;
  std::vector<int64_t> value_ints;
  std::vector<float> value_floats;
  std::vector<std::string> value_strings;
  Tensor value_t;

  static Attr i(std::string n, int64_t v) { return make(Kind::kInt, std::move(n), [&](Attr& a) { a.value_i = v; }); }
  static Attr f(std::string n, float v) { return make(Kind::kFloat, std::move(n), [&](Attr& a) { a.value_f = v; }); }
  static Attr s(std::string n, std::string v) { return make(Kind::kString, std::move(n), [&](Attr& a) { a.value_s = v; }); }
  static Attr ints(std::string n, std::vector<int64_t> v) { return make(Kind::kInts, std::move(n), [&](Attr& a) { a.value_ints = v; }); }
  static Attr floats(std::string n, std::vector<float> v) { return make(Kind::kFloats, std::move(n), [&](Attr& a) { a.value_floats = v; }); }
  static Attr strings(std::string n, std::vector<std::string> v) { return make(Kind::kStrings, std::move(n), [&](Attr& a) { a.value_strings = v; }); }
  static Attr t(std::string n, const Tensor& v) { return make(Kind::kTensor, std::move(n), [&](Attr& a) { a.value_t = v; }); }

 private:
  template <typename F> static Attr make(Kind k, std::string n, F fill) {
    Attr a;
    a.kind = k;
    a.name = std::move(n);
    fill(a);
    return a;
  }
};

class ModelBuilder {
 public:
  explicit ModelBuilder(int opset = 17, int64_t ir_version = 8);
  ~ModelBuilder();
  ModelBuilder(const ModelBuilder&) = delete;
  ModelBuilder& operator=(const ModelBuilder&) = delete;

  // A dimension of -1 becomes the symbolic dimension "N".
  ModelBuilder& input(const std::string& name, DType dtype, const std::vector<int64_t>& dims);
  // Output with unknown shape (or the given one).
  ModelBuilder& output(const std::string& name, DType dtype);
  ModelBuilder& output(const std::string& name, DType dtype, const std::vector<int64_t>& dims);
  ModelBuilder& initializer(const std::string& name, const Tensor& value);
  ModelBuilder& node(const std::string& op_type, const std::vector<std::string>& inputs,
                     const std::vector<std::string>& outputs, const std::vector<Attr>& attrs = {},
                     const std::string& domain = "");
  ModelBuilder& opset(const std::string& domain, int version);

  std::string serialize() const;
  Result<Model> build(bool require_supported_ops = true) const;

 private:
  struct State;
  State* s_;
};

template <typename T>
Tensor make_tensor(Shape shape, std::initializer_list<T> values) {
  Tensor t(dtype_of<T>(), std::move(shape));
  size_t i = 0;
  for (T v : values) {
    if (static_cast<int64_t>(i) >= t.num_elements()) break;
    t.data<T>()[i++] = v;
  }
  return t;
}

template <typename T>
Tensor make_tensor(Shape shape, const std::vector<T>& values) {
  Tensor t(dtype_of<T>(), std::move(shape));
  for (size_t i = 0; i < values.size() && static_cast<int64_t>(i) < t.num_elements(); ++i) t.data<T>()[i] = values[i];
  return t;
}

// Compiles with the inputs' shapes and runs once.
Result<std::vector<Tensor>> run_once(const Model& m, const std::vector<Tensor>& inputs);

}  // namespace kiln::nn::testing
