// Cases the ONNX node suite does not cover: legacy 2-D coercion versus the opset-13 axis,
// extreme inputs, int32 targets, out-of-range labels, malformed loss inputs and allocation-free runs.
#include <gtest/gtest.h>

#include <cmath>

#include "kiln/core/alloc_counter.h"
#include "kiln/nn/testing/model_builder.h"

namespace kiln::nn {
namespace {

using testing::Attr;
using testing::ModelBuilder;
using testing::make_tensor;

Result<Model> one_node(int opset, const std::string& op, const std::vector<Tensor>& inputs,
                       const std::vector<Attr>& attrs, size_t num_outputs) {
  ModelBuilder mb(opset);
  std::vector<std::string> names;
  for (size_t i = 0; i < inputs.size(); ++i) {
    names.push_back("x" + std::to_string(i));
    mb.input(names.back(), inputs[i].dtype(), inputs[i].shape());
  }
  std::vector<std::string> outs;
  for (size_t i = 0; i < num_outputs; ++i) outs.push_back("y" + std::to_string(i));
  mb.node(op, names, outs, attrs);
  for (const std::string& o : outs) mb.output(o, DType::kUndefined);
  return mb.build();
}

Result<std::vector<Tensor>> run_node(int opset, const std::string& op, const std::vector<Tensor>& inputs,
                                     const std::vector<Attr>& attrs = {}, size_t num_outputs = 1) {
  KILN_ASSIGN_OR_RETURN(Model m, one_node(opset, op, inputs, attrs, num_outputs));
  return testing::run_once(m, inputs);
}

void expect_floats(const Tensor& t, const std::vector<float>& want, float tol = 1e-5f) {
  ASSERT_EQ(t.num_elements(), static_cast<int64_t>(want.size()));
  for (size_t i = 0; i < want.size(); ++i) EXPECT_NEAR(t.data<float>()[i], want[i], tol) << "element " << i;
}

TEST(SoftmaxOps, LegacyOpsetsCoerceTo2D) {
  // [1, 2, 2] with axis 1: opset 11 normalises over all four values, opset 13 over axis 1 only.
  const float l2 = std::log(2.0f);
  auto x = make_tensor<float>({1, 2, 2}, {0, l2, 0, l2});
  auto y = run_node(11, "Softmax", {x});
  ASSERT_TRUE(y.is_ok()) << y.status().to_string();
  expect_floats((*y)[0], {1 / 6.f, 2 / 6.f, 1 / 6.f, 2 / 6.f});
  y = run_node(13, "Softmax", {x}, {Attr::i("axis", 1)});
  ASSERT_TRUE(y.is_ok()) << y.status().to_string();
  expect_floats((*y)[0], {0.5f, 0.5f, 0.5f, 0.5f});
  // Opset 13 defaults to the last axis.
  y = run_node(13, "Softmax", {x});
  ASSERT_TRUE(y.is_ok()) << y.status().to_string();
  expect_floats((*y)[0], {1 / 3.f, 2 / 3.f, 1 / 3.f, 2 / 3.f});
}

TEST(SoftmaxOps, ExtremeInputsStayFinite) {
  auto y = run_node(13, "Softmax", {make_tensor<float>({3}, {1e30f, 1e30f, -1e30f})});
  ASSERT_TRUE(y.is_ok()) << y.status().to_string();
  expect_floats((*y)[0], {0.5f, 0.5f, 0});
  y = run_node(13, "LogSoftmax", {make_tensor<float>({2}, {1000, 0})});
  ASSERT_TRUE(y.is_ok()) << y.status().to_string();
  expect_floats((*y)[0], {0, -1000});
}

TEST(SoftmaxOps, RejectsIntegerInputAndBadAxis) {
  auto y = run_node(13, "Softmax", {make_tensor<int32_t>({2}, {1, 2})});
  ASSERT_FALSE(y.is_ok());
  EXPECT_EQ(y.status().code(), StatusCode::kUnsupported) << y.status().to_string();
  y = run_node(13, "LogSoftmax", {make_tensor<float>({2, 2}, {})}, {Attr::i("axis", 2)});
  ASSERT_FALSE(y.is_ok());
  EXPECT_NE(y.status().message().find("axis 2 is out of range"), std::string::npos) << y.status().message();
}

TEST(SoftmaxOps, NllLossWithInt32TargetWeightsAndIgnoreIndex) {
  // input [N=2, C=3], target [2, -1]; -1 is ignored. mean = -(w2 * x[0][2]) / w2.
  auto x = make_tensor<float>({2, 3}, {-1, -2, -3, -4, -5, -6});
  auto t = make_tensor<int32_t>({2}, {2, -1});
  auto w = make_tensor<float>({3}, {0.5f, 1, 2});
  auto y = run_node(13, "NegativeLogLikelihoodLoss", {x, t, w}, {Attr::i("ignore_index", -1)});
  ASSERT_TRUE(y.is_ok()) << y.status().to_string();
  EXPECT_EQ((*y)[0].shape(), Shape{});
  expect_floats((*y)[0], {3});
  y = run_node(13, "NegativeLogLikelihoodLoss", {x, t, w}, {Attr::i("ignore_index", -1), Attr::s("reduction", "none")});
  ASSERT_TRUE(y.is_ok()) << y.status().to_string();
  expect_floats((*y)[0], {6, 0});
}

TEST(SoftmaxOps, NllLossLabelOutOfRangeIsAnError) {
  auto y = run_node(13, "NegativeLogLikelihoodLoss",
                    {make_tensor<float>({1, 3}, {}), make_tensor<int64_t>({1}, {3})});
  ASSERT_FALSE(y.is_ok());
  EXPECT_EQ(y.status().code(), StatusCode::kOutOfRange) << y.status().to_string();
  EXPECT_NE(y.status().message().find("target 3 at position 0 is not a class in [0, 3)"), std::string::npos)
      << y.status().message();
}

TEST(SoftmaxOps, LossInputsAreChecked) {
  auto y = run_node(13, "NegativeLogLikelihoodLoss",
                    {make_tensor<float>({2, 3, 4}, {}), make_tensor<int64_t>({2, 3}, {})});
  ASSERT_FALSE(y.is_ok());
  EXPECT_NE(y.status().message().find("target must have shape [2, 4]"), std::string::npos) << y.status().message();
  y = run_node(13, "SoftmaxCrossEntropyLoss", {make_tensor<float>({2, 3}, {}), make_tensor<int64_t>({2}, {})},
               {Attr::s("reduction", "max")});
  ASSERT_FALSE(y.is_ok());
  EXPECT_NE(y.status().message().find("reduction must be none, sum or mean"), std::string::npos)
      << y.status().message();
  y = run_node(13, "SoftmaxCrossEntropyLoss",
               {make_tensor<float>({2, 3}, {}), make_tensor<int64_t>({2}, {}), make_tensor<float>({2}, {})});
  ASSERT_FALSE(y.is_ok());
  EXPECT_NE(y.status().message().find("weight must have shape [3]"), std::string::npos) << y.status().message();
}

TEST(SoftmaxOps, SoftmaxCrossEntropyLossWithLogProb) {
  // Scores [N=1, C=2, d=2]: at d0 the classes are equal (log p = -log 2 each); at d1
  // class 1 is log(3) higher (log p = -log 4, -log(4/3)).
  const float l3 = std::log(3.0f);
  auto x = make_tensor<float>({1, 2, 2}, {0, 0, 0, l3});
  auto t = make_tensor<int64_t>({1, 2}, {0, 1});
  auto y = run_node(13, "SoftmaxCrossEntropyLoss", {x, t}, {Attr::s("reduction", "sum")}, 2);
  ASSERT_TRUE(y.is_ok()) << y.status().to_string();
  expect_floats((*y)[0], {std::log(2.0f) + std::log(4.0f / 3.0f)});
  expect_floats((*y)[1], {-std::log(2.0f), -std::log(4.0f), -std::log(2.0f), -std::log(4.0f / 3.0f)});
}

TEST(SoftmaxOps, SoftmaxCrossEntropyAllIgnoredMeanIsNaN) {
  auto y = run_node(13, "SoftmaxCrossEntropyLoss",
                    {make_tensor<float>({2, 2}, {1, 2, 3, 4}), make_tensor<int64_t>({2}, {7, 7})},
                    {Attr::i("ignore_index", 7)});
  ASSERT_TRUE(y.is_ok()) << y.status().to_string();
  EXPECT_TRUE(std::isnan((*y)[0].data<float>()[0]));
}

TEST(SoftmaxOps, RunsAllocateNothing) {
  struct Case {
    std::string op;
    std::vector<Tensor> inputs;
    std::vector<Attr> attrs;
    size_t num_outputs;
  };
  std::vector<Case> cases = {
      {"Softmax", {make_tensor<float>({2, 3, 4}, {})}, {Attr::i("axis", 1)}, 1},
      {"LogSoftmax", {make_tensor<double>({2, 3}, {})}, {}, 1},
      {"NegativeLogLikelihoodLoss",
       {make_tensor<float>({2, 3, 4}, {}), make_tensor<int64_t>({2, 4}, {}), make_tensor<float>({3}, {})}, {}, 1},
      {"SoftmaxCrossEntropyLoss", {make_tensor<float>({2, 3, 4}, {}), make_tensor<int32_t>({2, 4}, {})},
       {Attr::s("reduction", "none")}, 2},
  };
  for (const Case& c : cases) {
    Result<Model> m = one_node(13, c.op, c.inputs, c.attrs, c.num_outputs);
    ASSERT_TRUE(m.is_ok()) << m.status().to_string();
    Result<CompiledModel> cm = compile(*m);
    ASSERT_TRUE(cm.is_ok()) << cm.status().to_string();
    std::vector<Tensor> outs = cm->make_outputs();
    std::vector<TensorView> in, out;
    for (const Tensor& t : c.inputs) in.push_back(t.view());
    for (const Tensor& t : outs) out.push_back(t.view());
    ASSERT_TRUE(cm->run(in, out).is_ok());
    uint64_t before = heap_allocation_count();
    for (int i = 0; i < 10; ++i) ASSERT_TRUE(cm->run(in, out).is_ok());
    EXPECT_EQ(heap_allocation_count() - before, 0u) << c.op;
  }
}

}  // namespace
}  // namespace kiln::nn
