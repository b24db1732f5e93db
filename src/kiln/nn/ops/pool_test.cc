// Pooling cases the ONNX suite does not cover: ceil_mode windows that would start in the padding,
// count_include_pad divisors at a ceil_mode edge, dilated AveragePool (opset 19), MaxPool
// Indices with padding, 3-D and storage_order, integer MaxPool, LpPool and GlobalLpPool,
// MaxUnpool with a bad index at run time, and clear errors for malformed nodes.
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
                         int outputs = 1, int opset = 13) {
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
                                     const std::vector<Attr>& attrs, int outputs = 1, int opset = 13) {
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

TEST(PoolOps, CeilModeDropsAWindowThatWouldStartInThePadding) {
  // in 4, kernel 2, stride 2, pads (0, 1): ceil((4 + 1 - 2) / 2) + 1 = 3 windows, but the third
  // would start at position 4, inside the end padding, so there are 2.
  Tensor x = make_tensor<float>({1, 1, 4}, {1, 5, 2, 7});
  auto y = run_node("MaxPool", {x},
                    {Attr::ints("kernel_shape", {2}), Attr::ints("strides", {2}), Attr::ints("pads", {0, 1}),
                     Attr::i("ceil_mode", 1)});
  ASSERT_TRUE(y.is_ok()) << y.status().to_string();
  expect_values((*y)[0], {1, 1, 2}, {5, 7});
}

TEST(PoolOps, CeilModeCountIncludePadStopsAtThePaddedEdge) {
  // in 5, kernel 3, stride 2, pads (1, 1), ceil: windows start at -1, 1 and 3; the first and
  // last each hold one padding position, which count_include_pad counts.
  Tensor x = make_tensor<float>({1, 1, 5}, {1, 2, 3, 4, 5});
  std::vector<Attr> attrs = {Attr::ints("kernel_shape", {3}), Attr::ints("strides", {2}), Attr::ints("pads", {1, 1}),
                             Attr::i("ceil_mode", 1)};
  auto excl = run_node("AveragePool", {x}, attrs);
  attrs.push_back(Attr::i("count_include_pad", 1));
  auto incl = run_node("AveragePool", {x}, attrs);
  ASSERT_TRUE(excl.is_ok()) << excl.status().to_string();
  ASSERT_TRUE(incl.is_ok()) << incl.status().to_string();
  expect_values((*excl)[0], {1, 1, 3}, {1.5f, 3, 4.5f});
  expect_values((*incl)[0], {1, 1, 3}, {1, 3, 3});
}

TEST(PoolOps, CeilModeCountIncludePadDivisorClipsToThePaddedInput) {
  // in 4, kernel 3, stride 2, no pads, ceil: windows [0, 3) and [2, 5); the second has only
  // two elements inside the (unpadded) input, so both modes divide by 2.
  Tensor x = make_tensor<float>({1, 1, 4}, {1, 2, 3, 4});
  auto y = run_node("AveragePool", {x},
                    {Attr::ints("kernel_shape", {3}), Attr::ints("strides", {2}), Attr::i("ceil_mode", 1),
                     Attr::i("count_include_pad", 1)});
  ASSERT_TRUE(y.is_ok()) << y.status().to_string();
  expect_values((*y)[0], {1, 1, 2}, {2, 3.5f});
}

TEST(PoolOps, DilatedAveragePool) {
  // Opset 19 added dilations to AveragePool: taps at 0, 2, 4 of each window.
  Tensor x = make_tensor<float>({1, 1, 6}, {1, 2, 3, 4, 5, 6});
  auto y = run_node("AveragePool", {x}, {Attr::ints("kernel_shape", {3}), Attr::ints("dilations", {2})}, 1, 19);
  ASSERT_TRUE(y.is_ok()) << y.status().to_string();
  expect_values((*y)[0], {1, 1, 2}, {3, 4});
}

TEST(PoolOps, MaxPoolIndicesWithPaddingAndBatch) {
  // Indices count over the whole tensor: the second image starts at 6.
  Tensor x = make_tensor<float>({2, 1, 2, 3}, {1, 9, 2, 3, 4, 5, -1, -2, -3, -4, -5, -6});
  auto y = run_node("MaxPool", {x}, {Attr::ints("kernel_shape", {2, 2}), Attr::ints("pads", {0, 1, 0, 0})}, 2);
  ASSERT_TRUE(y.is_ok()) << y.status().to_string();
  expect_values((*y)[0], {2, 1, 1, 3}, {3, 9, 9, -1, -1, -2});
  const int64_t* idx = (*y)[1].data<int64_t>();
  EXPECT_EQ(idx[0], 3);
  EXPECT_EQ(idx[1], 1);
  EXPECT_EQ(idx[2], 1);
  EXPECT_EQ(idx[3], 6);
  EXPECT_EQ(idx[4], 6);
  EXPECT_EQ(idx[5], 7);
}

TEST(PoolOps, MaxPoolIndicesColumnMajor3d) {
  // The maximum of a 2x2x2 volume sits at (d=0, h=0, w=1): row-major index 1, column-major
  // d + 2 * (h + 2 * w) = 4.
  Tensor x = make_tensor<float>({1, 1, 2, 2, 2}, {0, 9, 7, 2, 3, 1, 4, 5});
  auto row = run_node("MaxPool", {x}, {Attr::ints("kernel_shape", {2, 2, 2})}, 2);
  auto col = run_node("MaxPool", {x}, {Attr::ints("kernel_shape", {2, 2, 2}), Attr::i("storage_order", 1)}, 2);
  ASSERT_TRUE(row.is_ok()) << row.status().to_string();
  ASSERT_TRUE(col.is_ok()) << col.status().to_string();
  expect_values((*row)[0], {1, 1, 1, 1, 1}, {9});
  EXPECT_EQ((*row)[1].data<int64_t>()[0], 1);
  EXPECT_EQ((*col)[1].data<int64_t>()[0], 4);
}

TEST(PoolOps, MaxPoolInt8) {
  Tensor x = make_tensor<int8_t>({1, 1, 4}, {-128, -100, 5, -7});
  auto y = run_node("MaxPool", {x}, {Attr::ints("kernel_shape", {2}), Attr::ints("pads", {1, 0})}, 1, 12);
  ASSERT_TRUE(y.is_ok()) << y.status().to_string();
  ASSERT_EQ((*y)[0].shape(), (Shape{1, 1, 4}));
  const int8_t* d = (*y)[0].data<int8_t>();
  EXPECT_EQ(d[0], -128);
  EXPECT_EQ(d[1], -100);
  EXPECT_EQ(d[2], 5);
  EXPECT_EQ(d[3], 5);
}

TEST(PoolOps, LpPoolP1AndP3) {
  Tensor x = make_tensor<float>({1, 1, 4}, {1, -2, 3, -4});
  auto p1 = run_node("LpPool", {x}, {Attr::ints("kernel_shape", {2}), Attr::ints("strides", {2}), Attr::i("p", 1)});
  auto p3 = run_node("LpPool", {x}, {Attr::ints("kernel_shape", {2}), Attr::ints("strides", {2}), Attr::i("p", 3)});
  ASSERT_TRUE(p1.is_ok()) << p1.status().to_string();
  ASSERT_TRUE(p3.is_ok()) << p3.status().to_string();
  expect_values((*p1)[0], {1, 1, 2}, {3, 7});
  expect_values((*p3)[0], {1, 1, 2}, {std::cbrt(9.0f), std::cbrt(91.0f)});
}

TEST(PoolOps, GlobalLpPoolDefaultsToL2) {
  Tensor x = make_tensor<float>({1, 2, 2}, {3, 4, 1, 0});
  auto y = run_node("GlobalLpPool", {x}, {});
  ASSERT_TRUE(y.is_ok()) << y.status().to_string();
  expect_values((*y)[0], {1, 2, 1}, {5, 1});
}

TEST(PoolOps, GlobalPoolsKeepRankAndReduceEverySpatialAxis) {
  Tensor x = make_tensor<float>({1, 1, 2, 1, 3}, {1, 2, 3, 4, 5, 9});
  auto avg = run_node("GlobalAveragePool", {x}, {});
  auto mx = run_node("GlobalMaxPool", {x}, {});
  ASSERT_TRUE(avg.is_ok()) << avg.status().to_string();
  ASSERT_TRUE(mx.is_ok()) << mx.status().to_string();
  expect_values((*avg)[0], {1, 1, 1, 1, 1}, {4});
  expect_values((*mx)[0], {1, 1, 1, 1, 1}, {9});
}

TEST(PoolOps, MaxUnpoolRejectsAnIndexOutOfRangeAtRunTime) {
  Tensor x = make_tensor<float>({1, 1, 1, 2}, {1, 2});
  Tensor i = make_tensor<int64_t>({1, 1, 1, 2}, {0, 4});  // the unpooled 2x2 tensor has 4 elements
  auto y = run_node("MaxUnpool", {x, i}, {Attr::ints("kernel_shape", {2, 1}), Attr::ints("strides", {2, 1})});
  expect_error(y, StatusCode::kOutOfRange, "index 4");
}

TEST(PoolOps, MaxUnpoolScattersIntoTheInferredShape) {
  Tensor x = make_tensor<float>({1, 1, 2}, {7, 8});
  Tensor i = make_tensor<int64_t>({1, 1, 2}, {1, 2});
  auto y = run_node("MaxUnpool", {x, i}, {Attr::ints("kernel_shape", {2}), Attr::ints("strides", {2})});
  ASSERT_TRUE(y.is_ok()) << y.status().to_string();
  expect_values((*y)[0], {1, 1, 4}, {0, 7, 8, 0});
}

TEST(PoolOps, RunsAllocateNothing) {
  const Tensor x = make_tensor<float>({1, 2, 4, 4}, {});
  const std::vector<Attr> window = {Attr::ints("kernel_shape", {3, 3}), Attr::ints("pads", {1, 1, 1, 1}),
                                    Attr::ints("strides", {2, 2})};
  struct Case {
    std::string op;
    std::vector<Tensor> inputs;
    std::vector<Attr> attrs;
    int outputs;
  };
  const std::vector<Case> cases = {
      {"AveragePool", {x}, window, 1},
      {"MaxPool", {x}, window, 2},
      {"LpPool", {x}, window, 1},
      {"GlobalAveragePool", {x}, {}, 1},
      {"GlobalMaxPool", {x}, {}, 1},
      {"MaxUnpool", {x, make_tensor<int64_t>({1, 2, 4, 4}, {})}, {Attr::ints("kernel_shape", {2, 2})}, 1},
  };
  for (const Case& c : cases) {
    Result<Model> m = build_node(c.op, c.inputs, c.attrs, c.outputs);
    ASSERT_TRUE(m.is_ok()) << m.status().to_string();
    expect_runs_allocate_nothing(*m, c.inputs, c.op);
  }
}

TEST(PoolOps, KernelShapeIsRequired) {
  expect_error(run_node("MaxPool", {Tensor(DType::kFloat32, {1, 1, 4, 4})}, {}), StatusCode::kInvalidArgument,
               "kernel_shape");
}

TEST(PoolOps, KernelLargerThanPaddedInputIsAnError) {
  expect_error(run_node("AveragePool", {Tensor(DType::kFloat32, {1, 1, 2, 4})}, {Attr::ints("kernel_shape", {3, 3})}),
               StatusCode::kInvalidArgument, "smaller than the dilated kernel");
}

TEST(PoolOps, RankTwoInputIsAnError) {
  expect_error(run_node("MaxPool", {Tensor(DType::kFloat32, {1, 4})}, {Attr::ints("kernel_shape", {2})}),
               StatusCode::kInvalidArgument, "rank >= 3");
}

TEST(PoolOps, AveragePoolOnIntegersIsUnsupported) {
  expect_error(run_node("AveragePool", {Tensor(DType::kInt32, {1, 1, 4})}, {Attr::ints("kernel_shape", {2})}),
               StatusCode::kUnsupported, "dtype int32");
}

}  // namespace
}  // namespace kiln::nn
