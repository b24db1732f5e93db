// Normalization cases the ONNX suite does not cover: BatchNormalization with spatial=0 (opset 7)
// and the unsupported training outputs of old opsets, LayerNormalization with a broadcast Scale
// and its Mean / InvStdDev outputs, GroupNormalization's per-group (18) versus per-channel (21)
// affine parameters, InstanceNormalization of a constant plane, MeanVarianceNormalization over
// chosen axes, LRN with an even size, and clear errors for malformed nodes.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "kiln/core/alloc_counter.h"
#include "kiln/nn/testing/model_builder.h"

namespace kiln::nn {
namespace {

using testing::Attr;
using testing::make_tensor;
using testing::ModelBuilder;

Result<Model> build_node(const std::string& op, const std::vector<Tensor>& inputs, const std::vector<Attr>& attrs,
                         int outputs = 1, int opset = 17) {
  ModelBuilder mb(opset);
  std::vector<std::string> names, outs;
  for (size_t i = 0; i < inputs.size(); ++i) {
    names.push_back("in" + std::to_string(i));
    mb.input(names.back(), inputs[i].dtype(), inputs[i].shape());
  }
  for (int i = 0; i < outputs; ++i) outs.push_back("out" + std::to_string(i));
  mb.node(op, names, outs, attrs);
  for (const std::string& o : outs) mb.output(o, DType::kUndefined);
  return mb.build();
}

Result<std::vector<Tensor>> run_node(const std::string& op, const std::vector<Tensor>& inputs,
                                     const std::vector<Attr>& attrs, int outputs = 1, int opset = 17) {
  KILN_ASSIGN_OR_RETURN(Model m, build_node(op, inputs, attrs, outputs, opset));
  return testing::run_once(m, inputs);
}

// Runs a compiled model once to warm up, then checks that ten more runs allocate nothing.
void expect_runs_allocate_nothing(const Model& m, const std::vector<Tensor>& inputs, const std::string& what) {
  Result<CompiledModel> cm = compile(m);
  ASSERT_TRUE(cm.is_ok()) << what << ": " << cm.status().to_string();
  std::vector<Tensor> outs = cm->make_outputs();
  std::vector<TensorView> in, out;
  for (const Tensor& t : inputs) in.push_back(t.view());
  for (const Tensor& t : outs) out.push_back(t.view());
  ASSERT_TRUE(cm->run(in, out).is_ok()) << what;
  const uint64_t before = heap_allocation_count();
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(cm->run(in, out).is_ok()) << what;
  EXPECT_EQ(heap_allocation_count() - before, 0u) << what;
}

void expect_values(const Tensor& got, const Shape& shape, const std::vector<float>& want) {
  ASSERT_EQ(got.shape(), shape);
  for (size_t i = 0; i < want.size(); ++i) EXPECT_NEAR(got.data<float>()[i], want[i], 1e-5f) << "at " << i;
}

void expect_error(const Result<std::vector<Tensor>>& r, StatusCode code, const std::string& fragment) {
  ASSERT_FALSE(r.is_ok());
  EXPECT_EQ(r.status().code(), code) << r.status().to_string();
  EXPECT_NE(r.status().message().find(fragment), std::string::npos) << r.status().message();
}

TEST(NormalizationOps, BatchNormSpatialZeroNormalizesEachActivation) {
  // Opset 7, spatial=0: the parameters have X.shape[1:] = [2, 2], one set per activation.
  Tensor x = make_tensor<float>({1, 2, 2}, {1, 2, 3, 4});
  Tensor scale = make_tensor<float>({2, 2}, {1, 2, 3, 4});
  Tensor bias = make_tensor<float>({2, 2}, {0, 0, 0, 10});
  Tensor mean = make_tensor<float>({2, 2}, {1, 1, 1, 1});
  Tensor var = make_tensor<float>({2, 2}, {0, 0, 0, 0});
  auto y = run_node("BatchNormalization", {x, scale, bias, mean, var}, {Attr::i("spatial", 0), Attr::f("epsilon", 1)},
                    1, 7);
  ASSERT_TRUE(y.is_ok()) << y.status().to_string();
  expect_values((*y)[0], {1, 2, 2}, {0, 2, 6, 22});
}

TEST(NormalizationOps, BatchNormTrainingOutputsOfOldOpsetsAreUnsupported) {
  std::vector<Tensor> in = {Tensor(DType::kFloat32, {1, 2, 2}), Tensor(DType::kFloat32, {2}),
                            Tensor(DType::kFloat32, {2}), Tensor(DType::kFloat32, {2}), Tensor(DType::kFloat32, {2})};
  expect_error(run_node("BatchNormalization", in, {}, 5, 9), StatusCode::kUnsupported, "training outputs");
}

TEST(NormalizationOps, BatchNormTrainingModeUpdatesRunningStatistics) {
  // Batch mean 2 and variance 1 per channel; running = input * 0.5 + batch * 0.5.
  Tensor x = make_tensor<float>({2, 1, 2}, {1, 3, 1, 3});
  Tensor one = make_tensor<float>({1}, {1}), zero = make_tensor<float>({1}, {0});
  Tensor mean = make_tensor<float>({1}, {4}), var = make_tensor<float>({1}, {3});
  auto y = run_node("BatchNormalization", {x, one, zero, mean, var},
                    {Attr::i("training_mode", 1), Attr::f("momentum", 0.5f), Attr::f("epsilon", 0)}, 3, 15);
  ASSERT_TRUE(y.is_ok()) << y.status().to_string();
  expect_values((*y)[0], {2, 1, 2}, {-1, 1, -1, 1});
  expect_values((*y)[1], {1}, {3});
  expect_values((*y)[2], {1}, {2});
}

TEST(NormalizationOps, BatchNormParameterSizeMismatchIsAnError) {
  std::vector<Tensor> in = {Tensor(DType::kFloat32, {1, 3, 2}), Tensor(DType::kFloat32, {3}),
                            Tensor(DType::kFloat32, {3}), Tensor(DType::kFloat32, {2}), Tensor(DType::kFloat32, {3})};
  expect_error(run_node("BatchNormalization", in, {}), StatusCode::kInvalidArgument, "input mean must have 3 elements");
}

TEST(NormalizationOps, LayerNormBroadcastScaleAndStatistics) {
  // axis 1 normalizes over [2, 3]; Scale [3] broadcasts over it. Row 0 has mean 2 and variance 1,
  // row 1 mean 3 and variance 1.
  Tensor x = make_tensor<float>({2, 2, 3}, {1, 1, 1, 3, 3, 3, 2, 4, 2, 4, 2, 4});
  Tensor scale = make_tensor<float>({3}, {1, 2, 3});
  auto y = run_node("LayerNormalization", {x, scale}, {Attr::i("axis", 1), Attr::f("epsilon", 0)}, 3);
  ASSERT_TRUE(y.is_ok()) << y.status().to_string();
  expect_values((*y)[0], {2, 2, 3}, {-1, -2, -3, 1, 2, 3, -1, 2, -3, 1, -2, 3});
  expect_values((*y)[1], {2, 1, 1}, {2, 3});
  expect_values((*y)[2], {2, 1, 1}, {1, 1});
}

TEST(NormalizationOps, LayerNormScaleThatDoesNotBroadcastIsAnError) {
  expect_error(run_node("LayerNormalization", {Tensor(DType::kFloat32, {2, 3}), Tensor(DType::kFloat32, {2})}, {}),
               StatusCode::kInvalidArgument, "cannot be broadcast");
}

TEST(NormalizationOps, GroupNormPerGroupInOpset18PerChannelInOpset21) {
  // Two groups of two channels; each group normalizes to -1, 1, -1, 1.
  Tensor x = make_tensor<float>({1, 4, 2}, {1, 3, 1, 3, 0, 2, 0, 2});
  auto g18 = run_node("GroupNormalization",
                      {x, make_tensor<float>({2}, {2, 3}), make_tensor<float>({2}, {0, 10})},
                      {Attr::i("num_groups", 2), Attr::f("epsilon", 0)}, 1, 18);
  auto g21 = run_node("GroupNormalization",
                      {x, make_tensor<float>({4}, {1, 2, 3, 4}), make_tensor<float>({4}, {0, 0, 0, 0})},
                      {Attr::i("num_groups", 2), Attr::f("epsilon", 0)}, 1, 21);
  ASSERT_TRUE(g18.is_ok()) << g18.status().to_string();
  ASSERT_TRUE(g21.is_ok()) << g21.status().to_string();
  expect_values((*g18)[0], {1, 4, 2}, {-2, 2, -2, 2, 7, 13, 7, 13});
  expect_values((*g21)[0], {1, 4, 2}, {-1, 1, -2, 2, -3, 3, -4, 4});
}

TEST(NormalizationOps, GroupNormGroupsMustDivideChannels) {
  std::vector<Tensor> in = {Tensor(DType::kFloat32, {1, 6, 2}), Tensor(DType::kFloat32, {4}),
                            Tensor(DType::kFloat32, {4})};
  expect_error(run_node("GroupNormalization", in, {Attr::i("num_groups", 4)}, 1, 18), StatusCode::kInvalidArgument,
               "num_groups");
}

TEST(NormalizationOps, InstanceNormOfAConstantPlaneIsTheBias) {
  Tensor x = make_tensor<float>({1, 2, 3}, {5, 5, 5, -2, -2, -2});
  auto y = run_node("InstanceNormalization", {x, make_tensor<float>({2}, {3, 4}), make_tensor<float>({2}, {0.5f, -1})},
                    {});
  ASSERT_TRUE(y.is_ok()) << y.status().to_string();
  expect_values((*y)[0], {1, 2, 3}, {0.5f, 0.5f, 0.5f, -1, -1, -1});
}

TEST(NormalizationOps, MeanVarianceNormalizationOverChosenAxes) {
  Tensor x = make_tensor<float>({1, 2, 2}, {1, 3, 2, 6});
  auto y = run_node("MeanVarianceNormalization", {x}, {Attr::ints("axes", {2})});
  ASSERT_TRUE(y.is_ok()) << y.status().to_string();
  expect_values((*y)[0], {1, 2, 2}, {-1, 1, -1, 1});
}

TEST(NormalizationOps, LrnWithEvenSizeLooksOneChannelAhead) {
  // size 2: channel c sums the squares of channels c and c + 1.
  Tensor x = make_tensor<float>({1, 2, 1}, {1, 2});
  auto y = run_node("LRN", {x}, {Attr::i("size", 2), Attr::f("alpha", 2), Attr::f("beta", 1), Attr::f("bias", 1)});
  ASSERT_TRUE(y.is_ok()) << y.status().to_string();
  expect_values((*y)[0], {1, 2, 1}, {1.0f / 6, 0.4f});
}

TEST(NormalizationOps, RunsAllocateNothing) {
  const Tensor x = make_tensor<float>({2, 4, 3}, {1, 2, 3, 4, 5, 6, 7, 8});
  const Tensor c = make_tensor<float>({4}, {1, 1, 1, 1});
  const Tensor g = make_tensor<float>({2}, {1, 1});
  struct Case {
    std::string op;
    std::vector<Tensor> inputs;
    std::vector<Attr> attrs;
    int outputs;
    int opset;
  };
  const std::vector<Case> cases = {
      {"BatchNormalization", {x, c, c, c, c}, {}, 1, 15},
      {"BatchNormalization", {x, c, c, c, c}, {Attr::i("training_mode", 1)}, 3, 15},
      {"InstanceNormalization", {x, c, c}, {}, 1, 17},
      {"LayerNormalization", {x, make_tensor<float>({3}, {1, 1, 1})}, {}, 3, 17},
      {"GroupNormalization", {x, g, g}, {Attr::i("num_groups", 2)}, 1, 18},
      {"LRN", {x}, {Attr::i("size", 3)}, 1, 17},
      {"MeanVarianceNormalization", {x}, {Attr::ints("axes", {0, 2})}, 1, 13},
  };
  for (const Case& k : cases) {
    Result<Model> m = build_node(k.op, k.inputs, k.attrs, k.outputs, k.opset);
    ASSERT_TRUE(m.is_ok()) << m.status().to_string();
    expect_runs_allocate_nothing(*m, k.inputs, k.op);
  }
}

TEST(NormalizationOps, LrnRequiresSize) {
  expect_error(run_node("LRN", {Tensor(DType::kFloat32, {1, 2, 2})}, {}), StatusCode::kInvalidArgument, "size");
}

}  // namespace
}  // namespace kiln::nn
