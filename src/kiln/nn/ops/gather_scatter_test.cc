// Cases the ONNX node suite does not cover: out-of-range runtime indices, scalar and int32
// indices, batch_dims errors, the opset-18 max/min scatter reductions, and allocation-free runs.
#include <gtest/gtest.h>

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
                       const std::vector<Attr>& attrs, std::vector<Tensor>* feeds) {
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
  mb.node(op, names, {"y"}, attrs).output("y", DType::kUndefined);
  return mb.build();
}

Result<std::vector<Tensor>> run_node(int opset, const std::string& op, const std::vector<Input>& inputs,
                                     const std::vector<Attr>& attrs = {}) {
  std::vector<Tensor> feeds;
  KILN_ASSIGN_OR_RETURN(Model m, one_node(opset, op, inputs, attrs, &feeds));
  return testing::run_once(m, feeds);
}

template <typename T>
std::vector<T> values(const Tensor& t) {
  return std::vector<T>(t.data<T>(), t.data<T>() + t.num_elements());
}

void expect_out_of_range(const Result<std::vector<Tensor>>& y, const std::string& what) {
  ASSERT_FALSE(y.is_ok());
  EXPECT_EQ(y.status().code(), StatusCode::kOutOfRange) << y.status().to_string();
  EXPECT_NE(y.status().message().find(what), std::string::npos) << y.status().message();
}

void expect_invalid(const Result<std::vector<Tensor>>& y, const std::string& what) {
  ASSERT_FALSE(y.is_ok());
  EXPECT_EQ(y.status().code(), StatusCode::kInvalidArgument) << y.status().to_string();
  EXPECT_NE(y.status().message().find(what), std::string::npos) << y.status().message();
}

TEST(GatherScatterOps, GatherScalarIndexDropsTheAxis) {
  // Shape glue: Gather(Shape(x), 1) gives a scalar.
  auto y = run_node(13, "Gather",
                    {{"data", make_tensor<int64_t>({4}, {1, 3, 224, 224})}, {"i", make_tensor<int64_t>({}, {-3})}});
  ASSERT_TRUE(y.is_ok()) << y.status().to_string();
  EXPECT_EQ((*y)[0].shape(), Shape{});
  EXPECT_EQ((*y)[0].data<int64_t>()[0], 3);
}

TEST(GatherScatterOps, GatherInt32IndicesOnInnerAxis) {
  auto y = run_node(13, "Gather",
                    {{"data", make_tensor<float>({2, 3}, {1, 2, 3, 4, 5, 6})},
                     {"i", make_tensor<int32_t>({2, 2}, {2, 0, -1, 1})}},
                    {Attr::i("axis", 1)});
  ASSERT_TRUE(y.is_ok()) << y.status().to_string();
  EXPECT_EQ((*y)[0].shape(), (Shape{2, 2, 2}));
  EXPECT_EQ(values<float>((*y)[0]), (std::vector<float>{3, 1, 3, 2, 6, 4, 6, 5}));
}

TEST(GatherScatterOps, GatherIndexOutOfRangeIsAnError) {
  auto y = run_node(13, "Gather",
                    {{"data", make_tensor<float>({5}, {0, 1, 2, 3, 4})}, {"i", make_tensor<int64_t>({2}, {1, 5})}});
  expect_out_of_range(y, "index 5 is out of range for axis 0 of size 5");
  y = run_node(13, "Gather",
               {{"data", make_tensor<float>({5}, {0, 1, 2, 3, 4})}, {"i", make_tensor<int64_t>({1}, {-6})}});
  expect_out_of_range(y, "index -6");
}

TEST(GatherScatterOps, GatherRejectsFloatIndices) {
  auto y = run_node(13, "Gather", {{"data", make_tensor<float>({3}, {})}, {"i", make_tensor<float>({1}, {0})}});
  expect_invalid(y, "indices must be int32 or int64");
}

TEST(GatherScatterOps, GatherElementsOutOfRangeIsAnError) {
  auto y = run_node(13, "GatherElements",
                    {{"data", make_tensor<float>({2, 2}, {1, 2, 3, 4})},
                     {"i", make_tensor<int64_t>({2, 2}, {0, 1, 2, 0})}},
                    {Attr::i("axis", 1)});
  expect_out_of_range(y, "index 2 is out of range for axis 1 of size 2");
}

TEST(GatherScatterOps, GatherElementsIndicesLargerThanDataAreRejected) {
  auto y = run_node(13, "GatherElements",
                    {{"data", make_tensor<float>({2, 2}, {})}, {"i", make_tensor<int64_t>({2, 3}, {})}},
                    {Attr::i("axis", 0)});
  expect_invalid(y, "exceeds data shape");
}

TEST(GatherScatterOps, GatherNDNegativeIndicesAndOutOfRange) {
  auto data = make_tensor<int32_t>({2, 2}, {0, 1, 2, 3});
  auto y = run_node(13, "GatherND", {{"data", data}, {"i", make_tensor<int64_t>({2, 2}, {-1, 0, 0, -1})}});
  ASSERT_TRUE(y.is_ok()) << y.status().to_string();
  EXPECT_EQ(values<int32_t>((*y)[0]), (std::vector<int32_t>{2, 1}));
  y = run_node(13, "GatherND", {{"data", data}, {"i", make_tensor<int64_t>({1, 2}, {0, 2})}});
  expect_out_of_range(y, "index 2 is out of range for axis 1 of size 2");
}

TEST(GatherScatterOps, GatherNDBadBatchDimsIsAnError) {
  auto y = run_node(13, "GatherND",
                    {{"data", make_tensor<float>({2, 2}, {})}, {"i", make_tensor<int64_t>({2, 1}, {})}},
                    {Attr::i("batch_dims", 2)});
  expect_invalid(y, "batch_dims must be in [0, 1]");
  y = run_node(13, "GatherND", {{"data", make_tensor<float>({2, 2}, {})}, {"i", make_tensor<int64_t>({2, 3}, {})}});
  expect_invalid(y, "last dimension of indices must be in [1, 2]");
}

TEST(GatherScatterOps, ScatterElementsMaxMinFromOpset18) {
  auto data = make_tensor<float>({1, 4}, {1, 5, 3, 7});
  auto idx = make_tensor<int64_t>({1, 3}, {1, 1, 3});
  auto upd = make_tensor<float>({1, 3}, {4, 9, 2});
  auto y = run_node(18, "ScatterElements", {{"d", data}, {"i", idx}, {"u", upd}},
                    {Attr::i("axis", 1), Attr::s("reduction", "max")});
  ASSERT_TRUE(y.is_ok()) << y.status().to_string();
  EXPECT_EQ(values<float>((*y)[0]), (std::vector<float>{1, 9, 3, 7}));
  y = run_node(18, "ScatterElements", {{"d", data}, {"i", idx}, {"u", upd}},
               {Attr::i("axis", 1), Attr::s("reduction", "min")});
  ASSERT_TRUE(y.is_ok()) << y.status().to_string();
  EXPECT_EQ(values<float>((*y)[0]), (std::vector<float>{1, 4, 3, 2}));
}

TEST(GatherScatterOps, ScatterElementsReductionNeedsTheRightOpset) {
  auto data = make_tensor<float>({3}, {});
  auto idx = make_tensor<int64_t>({1}, {0});
  auto upd = make_tensor<float>({1}, {1});
  expect_invalid(run_node(13, "ScatterElements", {{"d", data}, {"i", idx}, {"u", upd}}, {Attr::s("reduction", "add")}),
                 "needs opset 16");
  expect_invalid(run_node(16, "ScatterElements", {{"d", data}, {"i", idx}, {"u", upd}}, {Attr::s("reduction", "max")}),
                 "reduction must be none, add, mul at opset 16");
}

TEST(GatherScatterOps, ScatterElementsOutOfRangeIsAnError) {
  auto y = run_node(13, "ScatterElements",
                    {{"d", make_tensor<int64_t>({2, 2}, {})},
                     {"i", make_tensor<int32_t>({1, 2}, {0, -3})},
                     {"u", make_tensor<int64_t>({1, 2}, {1, 2})}});
  expect_out_of_range(y, "index -3 is out of range for axis 0 of size 2");
}

TEST(GatherScatterOps, DeprecatedScatterAtOpset10) {
  auto y = run_node(10, "Scatter",
                    {{"d", make_tensor<float>({2, 3}, {})},
                     {"i", make_tensor<int64_t>({2, 1}, {2, 0})},
                     {"u", make_tensor<float>({2, 1}, {7, 8})}},
                    {Attr::i("axis", 1)});
  ASSERT_TRUE(y.is_ok()) << y.status().to_string();
  EXPECT_EQ(values<float>((*y)[0]), (std::vector<float>{0, 0, 7, 8, 0, 0}));
}

TEST(GatherScatterOps, ScatterNDSlicesWithInt32IndicesAndMin) {
  auto y = run_node(18, "ScatterND",
                    {{"d", make_tensor<int32_t>({3, 2}, {5, 5, 5, 5, 5, 5})},
                     {"i", make_tensor<int32_t>({2, 1}, {-1, 0})},
                     {"u", make_tensor<int32_t>({2, 2}, {1, 9, 7, 2})}},
                    {Attr::s("reduction", "min")});
  ASSERT_TRUE(y.is_ok()) << y.status().to_string();
  EXPECT_EQ(values<int32_t>((*y)[0]), (std::vector<int32_t>{5, 2, 5, 5, 1, 5}));
}

TEST(GatherScatterOps, IntegerScatterReductionsWrapInsteadOfOverflowing) {
  auto y = run_node(16, "ScatterND",
                    {{"d", make_tensor<int64_t>({2}, {INT64_MIN, INT64_MAX})},
                     {"i", make_tensor<int64_t>({2, 1}, {0, 1})},
                     {"u", make_tensor<int64_t>({2}, {-3, 2})}},
                    {Attr::s("reduction", "add")});
  ASSERT_TRUE(y.is_ok()) << y.status().to_string();
  EXPECT_EQ(values<int64_t>((*y)[0]), (std::vector<int64_t>{INT64_MAX - 2, INT64_MIN + 1}));
}

TEST(GatherScatterOps, ScatterNDOutOfRangeAndBadUpdatesShape) {
  auto data = make_tensor<float>({2, 2}, {});
  expect_out_of_range(run_node(13, "ScatterND",
                               {{"d", data},
                                {"i", make_tensor<int64_t>({1, 2}, {1, 2})},
                                {"u", make_tensor<float>({1}, {1})}}),
                      "index 2 is out of range for axis 1 of size 2");
  expect_invalid(run_node(13, "ScatterND",
                          {{"d", data},
                           {"i", make_tensor<int64_t>({1, 1}, {0})},
                           {"u", make_tensor<float>({1, 3}, {})}}),
                 "updates must have shape [1, 2]");
}

TEST(GatherScatterOps, RunsAllocateNothing) {
  struct Case {
    std::string op;
    std::vector<Input> inputs;
    std::vector<Attr> attrs;
  };
  auto data = make_tensor<float>({3, 4}, {});
  auto idx = make_tensor<int64_t>({2, 2}, {0, 1, 2, -1});
  std::vector<Case> cases = {
      {"Gather", {{"d", data}, {"i", idx}}, {Attr::i("axis", 1)}},
      {"GatherElements", {{"d", data}, {"i", idx}}, {}},
      {"GatherND", {{"d", data}, {"i", idx}}, {}},
      {"ScatterElements",
       {{"d", data}, {"i", idx}, {"u", make_tensor<float>({2, 2}, {})}},
       {Attr::s("reduction", "add")}},
      {"ScatterND",
       {{"d", data}, {"i", make_tensor<int32_t>({2, 1}, {0, 2})}, {"u", make_tensor<float>({2, 4}, {})}},
       {}},
  };
  for (const Case& c : cases) {
    std::vector<Tensor> feeds;
    Result<Model> m = one_node(16, c.op, c.inputs, c.attrs, &feeds);
    ASSERT_TRUE(m.is_ok()) << m.status().to_string();
    Result<CompiledModel> cm = compile(*m);
    ASSERT_TRUE(cm.is_ok()) << cm.status().to_string();
    std::vector<Tensor> outs = cm->make_outputs();
    std::vector<TensorView> in, out;
    for (const Tensor& t : feeds) in.push_back(t.view());
    for (const Tensor& t : outs) out.push_back(t.view());
    ASSERT_TRUE(cm->run(in, out).is_ok()) << c.op;
    uint64_t before = heap_allocation_count();
    for (int i = 0; i < 10; ++i) ASSERT_TRUE(cm->run(in, out).is_ok());
    EXPECT_EQ(heap_allocation_count() - before, 0u) << c.op;
  }
}

}  // namespace
}  // namespace kiln::nn
