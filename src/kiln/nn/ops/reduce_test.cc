// Cases the ONNX node suite (opset <= 17) does not cover: opset-18 axes inputs, empty
// reduction sets, noop_with_empty_axes, integer and bool data, TopK ties and bad k, legacy
// Hardmax coercion, clear errors for bad axes, and allocation-free runs.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "kiln/core/alloc_counter.h"
#include "kiln/nn/testing/model_builder.h"

namespace kiln::nn {
namespace {

using testing::Attr;
using testing::ModelBuilder;
using testing::make_tensor;

struct Input {
  std::string name;
  Tensor value;
  bool constant = false;  // an initializer, known at compile time
};

Result<Model> one_node(int opset, const std::string& op, const std::vector<Input>& inputs,
                       const std::vector<Attr>& attrs, size_t num_outputs, std::vector<Tensor>* feeds) {
  ModelBuilder mb(opset);
  std::vector<std::string> names;
  for (const Input& in : inputs) {
    names.push_back(in.name);
    if (in.constant) {
      mb.initializer(in.name, in.value);
    } else {
      mb.input(in.name, in.value.dtype(), in.value.shape());
      feeds->push_back(in.value);
    }
  }
  std::vector<std::string> outs;
  for (size_t i = 0; i < num_outputs; ++i) outs.push_back("y" + std::to_string(i));
  mb.node(op, names, outs, attrs);
  for (const std::string& o : outs) mb.output(o, DType::kUndefined);
  return mb.build();
}

Result<std::vector<Tensor>> run_node(int opset, const std::string& op, const std::vector<Input>& inputs,
                                     const std::vector<Attr>& attrs = {}, size_t num_outputs = 1) {
  std::vector<Tensor> feeds;
  KILN_ASSIGN_OR_RETURN(Model m, one_node(opset, op, inputs, attrs, num_outputs, &feeds));
  return testing::run_once(m, feeds);
}

template <typename T>
std::vector<T> values(const Tensor& t) {
  return std::vector<T>(t.data<T>(), t.data<T>() + t.num_elements());
}

Tensor axes(std::initializer_list<int64_t> a) {
  return make_tensor<int64_t>({static_cast<int64_t>(a.size())}, a);
}

TEST(ReduceOps, Opset18TakesAxesAsAConstantInput) {
  auto x = make_tensor<float>({2, 3}, {1, 2, 3, 4, 5, 6});
  auto y = run_node(18, "ReduceMean", {{"x", x}, {"axes", axes({-1}), true}}, {Attr::i("keepdims", 0)});
  ASSERT_TRUE(y.is_ok()) << y.status().to_string();
  EXPECT_EQ((*y)[0].shape(), Shape{2});
  EXPECT_EQ(values<float>((*y)[0]), (std::vector<float>{2, 5}));
  // The opset-13 attribute form of the same node.
  y = run_node(13, "ReduceMean", {{"x", x}}, {Attr::ints("axes", {0})});
  ASSERT_TRUE(y.is_ok()) << y.status().to_string();
  EXPECT_EQ((*y)[0].shape(), (Shape{1, 3}));
  EXPECT_EQ(values<float>((*y)[0]), (std::vector<float>{2.5f, 3.5f, 4.5f}));
}

TEST(ReduceOps, AxesFromARuntimeInputNeedAValue) {
  auto y = run_node(13, "ReduceSum", {{"x", make_tensor<float>({2}, {1, 2})}, {"axes", axes({0})}});
  ASSERT_FALSE(y.is_ok());
  EXPECT_EQ(y.status().code(), StatusCode::kNeedsValue) << y.status().to_string();
}

TEST(ReduceOps, AxesAttributeAfterItBecameAnInputIsAnError) {
  auto y = run_node(13, "ReduceSum", {{"x", make_tensor<float>({2}, {1, 2})}}, {Attr::ints("axes", {0})});
  ASSERT_FALSE(y.is_ok());
  EXPECT_NE(y.status().message().find("axes is an input"), std::string::npos) << y.status().message();
}

TEST(ReduceOps, AxisOutOfRangeIsAnError) {
  auto y = run_node(13, "ReduceMax", {{"x", make_tensor<float>({2, 2}, {})}}, {Attr::ints("axes", {2})});
  ASSERT_FALSE(y.is_ok());
  EXPECT_NE(y.status().message().find("axis 2 is out of range"), std::string::npos) << y.status().message();
}

TEST(ReduceOps, EmptyReductionSetGivesTheIdentity) {
  Tensor x(DType::kFloat32, {2, 0});
  const float inf = std::numeric_limits<float>::infinity();
  struct Case {
    const char* op;
    float want;
  } cases[] = {{"ReduceSum", 0}, {"ReduceProd", 1}, {"ReduceMax", -inf}, {"ReduceMin", inf},
               {"ReduceL2", 0},  {"ReduceLogSum", -inf}, {"ReduceLogSumExp", -inf}, {"ReduceSumSquare", 0}};
  for (const Case& c : cases) {
    auto y = run_node(18, c.op, {{"x", x}, {"axes", axes({1}), true}});
    ASSERT_TRUE(y.is_ok()) << c.op << ": " << y.status().to_string();
    EXPECT_EQ((*y)[0].shape(), (Shape{2, 1})) << c.op;
    EXPECT_EQ(values<float>((*y)[0]), (std::vector<float>{c.want, c.want})) << c.op;
  }
  auto y = run_node(18, "ReduceMean", {{"x", x}, {"axes", axes({1}), true}});
  ASSERT_TRUE(y.is_ok()) << y.status().to_string();
  EXPECT_TRUE(std::isnan((*y)[0].data<float>()[0]));
}

TEST(ReduceOps, NoopWithEmptyAxesReducesEachElementAlone) {
  auto x = make_tensor<float>({2}, {-3, 2});
  auto y = run_node(18, "ReduceSumSquare", {{"x", x}, {"axes", Tensor(DType::kInt64, {0}), true}},
                    {Attr::i("noop_with_empty_axes", 1)});
  ASSERT_TRUE(y.is_ok()) << y.status().to_string();
  EXPECT_EQ(values<float>((*y)[0]), (std::vector<float>{9, 4}));
  // Without the flag, empty axes reduce everything.
  y = run_node(18, "ReduceL1", {{"x", x}, {"axes", Tensor(DType::kInt64, {0}), true}}, {Attr::i("keepdims", 0)});
  ASSERT_TRUE(y.is_ok()) << y.status().to_string();
  EXPECT_EQ((*y)[0].shape(), Shape{});
  EXPECT_EQ(values<float>((*y)[0]), (std::vector<float>{5}));
}

TEST(ReduceOps, IntegerAndBoolData) {
  auto y =
      run_node(13, "ReduceMax", {{"x", make_tensor<int8_t>({2, 2}, {-5, -7, 3, -128})}}, {Attr::ints("axes", {1})});
  ASSERT_TRUE(y.is_ok()) << y.status().to_string();
  EXPECT_EQ(values<int8_t>((*y)[0]), (std::vector<int8_t>{-5, 3}));
  y = run_node(13, "ReduceSum", {{"x", make_tensor<int64_t>({3}, {4, -9, 2})}});
  ASSERT_TRUE(y.is_ok()) << y.status().to_string();
  EXPECT_EQ(values<int64_t>((*y)[0]), (std::vector<int64_t>{-3}));
  y = run_node(13, "ReduceL1", {{"x", make_tensor<int32_t>({3}, {4, -9, 2})}});
  ASSERT_TRUE(y.is_ok()) << y.status().to_string();
  EXPECT_EQ(values<int32_t>((*y)[0]), (std::vector<int32_t>{15}));
  y = run_node(20, "ReduceMin",
               {{"x", make_tensor<bool>({2, 2}, {true, false, true, true})}, {"axes", axes({1}), true}});
  ASSERT_TRUE(y.is_ok()) << y.status().to_string();
  EXPECT_EQ(values<bool>((*y)[0]), (std::vector<bool>{false, true}));
}

TEST(ReduceOps, LogSumExpIsStableForLargeValues) {
  auto y = run_node(13, "ReduceLogSumExp", {{"x", make_tensor<float>({2}, {1000, 1000})}}, {Attr::i("keepdims", 0)});
  ASSERT_TRUE(y.is_ok()) << y.status().to_string();
  EXPECT_NEAR((*y)[0].data<float>()[0], 1000 + std::log(2.0f), 1e-3);
}

TEST(ReduceOps, ReduceMiddleAxesOfA4DTensor) {
  // [2, 2, 2, 2] reduced over axes 1 and 2: y[a][d] = sum over b, c of x[a][b][c][d].
  std::vector<float> v(16);
  for (int i = 0; i < 16; ++i) v[static_cast<size_t>(i)] = static_cast<float>(i);
  auto y = run_node(13, "ReduceSum", {{"x", make_tensor<float>({2, 2, 2, 2}, v)}, {"axes", axes({1, 2}), true}},
                    {Attr::i("keepdims", 0)});
  ASSERT_TRUE(y.is_ok()) << y.status().to_string();
  EXPECT_EQ(values<float>((*y)[0]),
            (std::vector<float>{0 + 2 + 4 + 6, 1 + 3 + 5 + 7, 8 + 10 + 12 + 14, 9 + 11 + 13 + 15}));
}

TEST(ReduceOps, ArgMaxTiesAndNaN) {
  auto x = make_tensor<float>({2, 3}, {1, 5, 5, NAN, 2, NAN});
  auto y = run_node(13, "ArgMax", {{"x", x}}, {Attr::i("axis", 1)});
  ASSERT_TRUE(y.is_ok()) << y.status().to_string();
  EXPECT_EQ((*y)[0].shape(), (Shape{2, 1}));
  EXPECT_EQ(values<int64_t>((*y)[0]), (std::vector<int64_t>{1, 0}));
  y = run_node(13, "ArgMax", {{"x", x}}, {Attr::i("axis", 1), Attr::i("select_last_index", 1), Attr::i("keepdims", 0)});
  ASSERT_TRUE(y.is_ok()) << y.status().to_string();
  EXPECT_EQ(values<int64_t>((*y)[0]), (std::vector<int64_t>{2, 2}));
  y = run_node(13, "ArgMin", {{"x", make_tensor<int32_t>({4}, {3, -1, 7, -1})}}, {Attr::i("select_last_index", 1)});
  ASSERT_TRUE(y.is_ok()) << y.status().to_string();
  EXPECT_EQ(values<int64_t>((*y)[0]), (std::vector<int64_t>{3}));
}

TEST(ReduceOps, ArgMaxOverAnEmptyAxisIsAnError) {
  auto y = run_node(13, "ArgMax", {{"x", Tensor(DType::kFloat32, {2, 0})}}, {Attr::i("axis", 1)});
  ASSERT_FALSE(y.is_ok());
  EXPECT_NE(y.status().message().find("axis 1 of size 0"), std::string::npos) << y.status().message();
}

TEST(ReduceOps, TopKTiesGoToTheLowerIndex) {
  auto x = make_tensor<float>({2, 4}, {3, 7, 7, 1, 2, 2, 9, 2});
  auto y = run_node(11, "TopK", {{"x", x}, {"k", make_tensor<int64_t>({1}, {3}), true}}, {}, 2);
  ASSERT_TRUE(y.is_ok()) << y.status().to_string();
  EXPECT_EQ((*y)[0].shape(), (Shape{2, 3}));
  EXPECT_EQ(values<float>((*y)[0]), (std::vector<float>{7, 7, 3, 9, 2, 2}));
  EXPECT_EQ(values<int64_t>((*y)[1]), (std::vector<int64_t>{1, 2, 0, 2, 0, 1}));
  y = run_node(11, "TopK", {{"x", x}, {"k", make_tensor<int64_t>({1}, {2}), true}}, {Attr::i("largest", 0)}, 2);
  ASSERT_TRUE(y.is_ok()) << y.status().to_string();
  EXPECT_EQ(values<float>((*y)[0]), (std::vector<float>{1, 3, 2, 2}));
  EXPECT_EQ(values<int64_t>((*y)[1]), (std::vector<int64_t>{3, 0, 0, 1}));
}

TEST(ReduceOps, TopKAlongTheFirstAxisWithIntegerData) {
  auto x = make_tensor<int32_t>({3, 2}, {4, 0, 8, 5, 6, 9});
  auto y = run_node(1, "TopK", {{"x", x}}, {Attr::i("k", 2), Attr::i("axis", 0)}, 2);
  ASSERT_TRUE(y.is_ok()) << y.status().to_string();
  EXPECT_EQ(values<int32_t>((*y)[0]), (std::vector<int32_t>{8, 9, 6, 5}));
  EXPECT_EQ(values<int64_t>((*y)[1]), (std::vector<int64_t>{1, 2, 2, 1}));
}

TEST(ReduceOps, TopKWithKLargerThanTheAxisIsAnError) {
  auto y =
      run_node(11, "TopK", {{"x", make_tensor<float>({3}, {})}, {"k", make_tensor<int64_t>({1}, {4}), true}}, {}, 2);
  ASSERT_FALSE(y.is_ok());
  EXPECT_NE(y.status().message().find("k must be in [0, 3]"), std::string::npos) << y.status().message();
}

TEST(ReduceOps, HardmaxLegacyCoercesTo2D) {
  // Opset 11, axis 1 on [1, 2, 2]: one 1 over all four values; opset 13: one per last-axis row.
  auto x = make_tensor<float>({1, 2, 2}, {1, 4, 3, 2});
  auto y = run_node(11, "Hardmax", {{"x", x}});
  ASSERT_TRUE(y.is_ok()) << y.status().to_string();
  EXPECT_EQ(values<float>((*y)[0]), (std::vector<float>{0, 1, 0, 0}));
  y = run_node(13, "Hardmax", {{"x", x}});
  ASSERT_TRUE(y.is_ok()) << y.status().to_string();
  EXPECT_EQ(values<float>((*y)[0]), (std::vector<float>{0, 1, 1, 0}));
}

TEST(ReduceOps, RunsAllocateNothing) {
  struct Case {
    std::string op;
    int opset;
    std::vector<Input> inputs;
    std::vector<Attr> attrs;
    size_t num_outputs;
  };
  auto x = make_tensor<float>({2, 3, 4}, {});
  std::vector<Case> cases = {
      {"ReduceMean", 18, {{"x", x}, {"axes", axes({0, 2}), true}}, {}, 1},
      {"ReduceLogSumExp", 13, {{"x", x}}, {Attr::ints("axes", {1})}, 1},
      {"ReduceProd", 13, {{"x", make_tensor<int32_t>({2, 3}, {})}}, {}, 1},
      {"ArgMin", 13, {{"x", x}}, {Attr::i("axis", 1)}, 1},
      {"TopK", 11, {{"x", x}, {"k", make_tensor<int64_t>({1}, {2}), true}}, {Attr::i("axis", 1)}, 2},
      {"Hardmax", 13, {{"x", x}}, {Attr::i("axis", 1)}, 1},
  };
  for (const Case& c : cases) {
    std::vector<Tensor> feeds;
    Result<Model> m = one_node(c.opset, c.op, c.inputs, c.attrs, c.num_outputs, &feeds);
    ASSERT_TRUE(m.is_ok()) << m.status().to_string();
    Result<CompiledModel> cm = compile(*m);
    ASSERT_TRUE(cm.is_ok()) << cm.status().to_string();
    std::vector<Tensor> outs = cm->make_outputs();
    std::vector<TensorView> in, out;
    for (const Tensor& t : feeds) in.push_back(t.view());
    for (const Tensor& t : outs) out.push_back(t.view());
    ASSERT_TRUE(cm->run(in, out).is_ok());
    uint64_t before = heap_allocation_count();
    for (int i = 0; i < 10; ++i) ASSERT_TRUE(cm->run(in, out).is_ok());
    EXPECT_EQ(heap_allocation_count() - before, 0u) << c.op;
  }
}

}  // namespace
}  // namespace kiln::nn
