// Cases the ONNX node suite does not cover for the shape operators: legacy attribute forms,
// Shape/Size on runtime and float16 inputs, overflow-prone Range/EyeLike arguments and clear
// errors for bad shapes and axes.
#include <gtest/gtest.h>

#include <limits>

#include "kiln/nn/testing/model_builder.h"

namespace kiln::nn {
namespace {

using testing::Attr;
using testing::ModelBuilder;
using testing::make_tensor;

// One input of the node: a graph input (data known only at run time) or an initializer.
struct In {
  Tensor value;
  bool constant = false;
  bool omitted = false;
};
In runtime(Tensor t) { return In{std::move(t), false}; }
In constant(Tensor t) { return In{std::move(t), true}; }
In omitted() { return In{Tensor(), false, true}; }

Result<std::vector<Tensor>> run_node(int opset, const std::string& op, const std::vector<In>& ins,
                                     const std::vector<Attr>& attrs = {}, int outputs = 1) {
  ModelBuilder mb(opset);
  std::vector<std::string> names;
  std::vector<Tensor> feeds;
  for (size_t i = 0; i < ins.size(); ++i) {
    std::string name = "in" + std::to_string(i);
    if (ins[i].omitted) name.clear();
    else if (ins[i].constant) mb.initializer(name, ins[i].value);
    else {
      mb.input(name, ins[i].value.dtype(), ins[i].value.shape());
      feeds.push_back(ins[i].value);
    }
    names.push_back(name);
  }
  std::vector<std::string> outs;
  for (int i = 0; i < outputs; ++i) outs.push_back("out" + std::to_string(i));
  mb.node(op, names, outs, attrs);
  for (const std::string& o : outs) mb.output(o, DType::kUndefined);
  KILN_ASSIGN_OR_RETURN(Model m, mb.build());
  return testing::run_once(m, feeds);
}

template <typename T>
std::vector<T> values(const Tensor& t) {
  return std::vector<T>(t.data<T>(), t.data<T>() + t.num_elements());
}

void expect_error(const Result<std::vector<Tensor>>& r, const std::string& fragment) {
  ASSERT_FALSE(r.is_ok()) << "expected an error containing '" << fragment << "'";
  EXPECT_NE(r.status().message().find(fragment), std::string::npos) << r.status().message();
}

TEST(ShapeOps, ShapeAndSizeOfRuntimeFloat16InputAreComputedFromShapesAlone) {
  Tensor x(DType::kFloat16, {2, 3, 4});
  auto s = run_node(15, "Shape", {runtime(x)}, {Attr::i("start", -2), Attr::i("end", 100)});
  ASSERT_TRUE(s.is_ok()) << s.status().to_string();
  EXPECT_EQ(values<int64_t>((*s)[0]), (std::vector<int64_t>{3, 4}));
  auto n = run_node(13, "Size", {runtime(x)});
  ASSERT_TRUE(n.is_ok()) << n.status().to_string();
  EXPECT_EQ((*n)[0].shape(), Shape{});
  EXPECT_EQ((*n)[0].data<int64_t>()[0], 24);
}

TEST(ShapeOps, ShapeWithEndBeforeStartIsEmpty) {
  auto s = run_node(15, "Shape", {runtime(Tensor(DType::kFloat32, {2, 3, 4}))}, {Attr::i("start", 2), Attr::i("end", 1)});
  ASSERT_TRUE(s.is_ok()) << s.status().to_string();
  EXPECT_EQ((*s)[0].shape(), Shape{0});
}

TEST(ShapeOps, ShapeFeedsReshapeOfARuntimeTensor) {
  // Reshape(x, Shape(y)) must compile although y is only known at run time.
  ModelBuilder mb(13);
  mb.input("x", DType::kFloat32, {6}).input("y", DType::kFloat32, {2, 3});
  mb.node("Shape", {"y"}, {"s"}).node("Reshape", {"x", "s"}, {"z"}).output("z", DType::kFloat32);
  auto m = mb.build();
  ASSERT_TRUE(m.is_ok()) << m.status().to_string();
  auto z = testing::run_once(*m, {make_tensor<float>({6}, {1, 2, 3, 4, 5, 6}), Tensor(DType::kFloat32, {2, 3})});
  ASSERT_TRUE(z.is_ok()) << z.status().to_string();
  EXPECT_EQ((*z)[0].shape(), (Shape{2, 3}));
  EXPECT_EQ((*z)[0].data<float>()[5], 6);
}

TEST(ShapeOps, ReshapeCopiesZeroAndInfersMinusOne) {
  auto y = run_node(13, "Reshape",
                    {runtime(make_tensor<int32_t>({2, 3, 4}, {})), constant(make_tensor<int64_t>({3}, {0, -1, 2}))});
  ASSERT_TRUE(y.is_ok()) << y.status().to_string();
  EXPECT_EQ((*y)[0].shape(), (Shape{2, 6, 2}));
}

TEST(ShapeOps, ReshapeAllowZeroKeepsAZeroDimension) {
  auto y = run_node(14, "Reshape",
                    {runtime(Tensor(DType::kFloat32, {0, 3})), constant(make_tensor<int64_t>({2}, {3, 0}))},
                    {Attr::i("allowzero", 1)});
  ASSERT_TRUE(y.is_ok()) << y.status().to_string();
  EXPECT_EQ((*y)[0].shape(), (Shape{3, 0}));
}

TEST(ShapeOps, ReshapeLegacyShapeAttribute) {
  auto y = run_node(1, "Reshape", {runtime(make_tensor<float>({2, 3}, {1, 2, 3, 4, 5, 6}))},
                    {Attr::ints("shape", {3, -1})});
  ASSERT_TRUE(y.is_ok()) << y.status().to_string();
  EXPECT_EQ((*y)[0].shape(), (Shape{3, 2}));
  EXPECT_EQ(values<float>((*y)[0]), (std::vector<float>{1, 2, 3, 4, 5, 6}));
}

TEST(ShapeOps, ReshapeErrors) {
  Tensor x(DType::kFloat32, {2, 3});
  expect_error(run_node(13, "Reshape", {runtime(x), constant(make_tensor<int64_t>({2}, {-1, -1}))}), "more than one -1");
  expect_error(run_node(13, "Reshape", {runtime(x), constant(make_tensor<int64_t>({2}, {4, 2}))}), "cannot reshape");
  expect_error(run_node(13, "Reshape", {runtime(x), constant(make_tensor<int64_t>({2}, {-2, 3}))}),
               "negative dimension");
  expect_error(run_node(13, "Reshape", {runtime(x), constant(make_tensor<int64_t>({3}, {1, 6, 0}))}),
               "copies dimension 2");
  expect_error(run_node(13, "Reshape", {runtime(x), constant(make_tensor<int64_t>({2}, {4, -1}))}),
               "cannot infer");
  // A shape whose product overflows int64 is rejected, not wrapped.
  int64_t big = int64_t{1} << 40;
  expect_error(run_node(13, "Reshape", {runtime(x), constant(make_tensor<int64_t>({3}, {big, big, 0}))}),
               "too many elements");
}

TEST(ShapeOps, ReshapeShapeFromARuntimeInputNeedsItsValue) {
  auto y = run_node(13, "Reshape", {runtime(Tensor(DType::kFloat32, {2, 3})), runtime(make_tensor<int64_t>({1}, {6}))});
  ASSERT_FALSE(y.is_ok());
  EXPECT_EQ(y.status().code(), StatusCode::kNeedsValue) << y.status().to_string();
}

TEST(ShapeOps, FlattenAxisOutOfRange) {
  expect_error(run_node(13, "Flatten", {runtime(Tensor(DType::kFloat32, {2, 3}))}, {Attr::i("axis", 3)}),
               "out of range");
}

TEST(ShapeOps, SqueezeAttributeBeforeOpset13AndAllOnesWithoutAxes) {
  auto a = run_node(11, "Squeeze", {runtime(Tensor(DType::kFloat32, {1, 3, 1}))}, {Attr::ints("axes", {-1})});
  ASSERT_TRUE(a.is_ok()) << a.status().to_string();
  EXPECT_EQ((*a)[0].shape(), (Shape{1, 3}));
  auto b = run_node(13, "Squeeze", {runtime(Tensor(DType::kFloat32, {1, 3, 1}))});
  ASSERT_TRUE(b.is_ok()) << b.status().to_string();
  EXPECT_EQ((*b)[0].shape(), (Shape{3}));
}

TEST(ShapeOps, SqueezeOfANonUnitAxisIsAnError) {
  expect_error(run_node(13, "Squeeze", {runtime(Tensor(DType::kFloat32, {1, 3})), constant(make_tensor<int64_t>({1}, {1}))}),
               "its size is not 1");
}

TEST(ShapeOps, UnsqueezeAttributeBeforeOpset13) {
  auto y = run_node(11, "Unsqueeze", {runtime(make_tensor<int64_t>({2}, {7, 8}))}, {Attr::ints("axes", {0, -1})});
  ASSERT_TRUE(y.is_ok()) << y.status().to_string();
  EXPECT_EQ((*y)[0].shape(), (Shape{1, 2, 1}));
  EXPECT_EQ(values<int64_t>((*y)[0]), (std::vector<int64_t>{7, 8}));
}

TEST(ShapeOps, UnsqueezeErrors) {
  Tensor x(DType::kFloat32, {2});
  expect_error(run_node(13, "Unsqueeze", {runtime(x), constant(make_tensor<int64_t>({2}, {0, -3}))}), "duplicate");
  expect_error(run_node(13, "Unsqueeze", {runtime(x), constant(make_tensor<int64_t>({1}, {2}))}), "out of range");
  expect_error(run_node(13, "Unsqueeze", {runtime(x)}), "axes are required");
}

TEST(ShapeOps, ConstantOfShapeWithIntValue) {
  auto y = run_node(9, "ConstantOfShape", {constant(make_tensor<int64_t>({2}, {2, 2}))},
                    {Attr::t("value", make_tensor<int32_t>({1}, {-7}))});
  ASSERT_TRUE(y.is_ok()) << y.status().to_string();
  EXPECT_EQ((*y)[0].dtype(), DType::kInt32);
  EXPECT_EQ(values<int32_t>((*y)[0]), (std::vector<int32_t>{-7, -7, -7, -7}));
}

TEST(ShapeOps, ConstantOfShapeErrors) {
  expect_error(run_node(9, "ConstantOfShape", {constant(make_tensor<int64_t>({2}, {2, -1}))}), "negative dimension");
  expect_error(run_node(9, "ConstantOfShape", {constant(make_tensor<int64_t>({1}, {2}))},
                        {Attr::t("value", make_tensor<float>({2}, {1, 2}))}),
               "exactly one element");
}

TEST(ShapeOps, EyeLikeWithOffsetsBeyondTheMatrix) {
  Tensor x(DType::kFloat32, {2, 3});
  auto a = run_node(9, "EyeLike", {runtime(x)}, {Attr::i("k", -1)});
  ASSERT_TRUE(a.is_ok()) << a.status().to_string();
  EXPECT_EQ(values<float>((*a)[0]), (std::vector<float>{0, 0, 0, 1, 0, 0}));
  for (int64_t k : {int64_t{3}, int64_t{-2}, std::numeric_limits<int64_t>::min(), std::numeric_limits<int64_t>::max()}) {
    auto b = run_node(9, "EyeLike", {runtime(x)}, {Attr::i("k", k), Attr::i("dtype", 7)});
    ASSERT_TRUE(b.is_ok()) << b.status().to_string();
    EXPECT_EQ(values<int64_t>((*b)[0]), (std::vector<int64_t>(6, 0))) << "k = " << k;
  }
  expect_error(run_node(9, "EyeLike", {runtime(Tensor(DType::kFloat32, {3}))}), "rank 2");
}

TEST(ShapeOps, RangeAcrossTheWholeInt64Range) {
  const int64_t lo = std::numeric_limits<int64_t>::min(), hi = std::numeric_limits<int64_t>::max();
  auto y = run_node(11, "Range", {constant(make_tensor<int64_t>({}, {lo})), constant(make_tensor<int64_t>({}, {hi})),
                                  constant(make_tensor<int64_t>({}, {int64_t{1} << 62}))});
  ASSERT_TRUE(y.is_ok()) << y.status().to_string();
  EXPECT_EQ(values<int64_t>((*y)[0]), (std::vector<int64_t>{lo, lo / 2, 0, -(lo / 2)}));
}

TEST(ShapeOps, RangeCountsPartialSteps) {
  auto y = run_node(11, "Range", {constant(make_tensor<float>({}, {0})), constant(make_tensor<float>({}, {1})),
                                  constant(make_tensor<float>({}, {0.3f}))});
  ASSERT_TRUE(y.is_ok()) << y.status().to_string();
  ASSERT_EQ((*y)[0].shape(), Shape{4});
  EXPECT_FLOAT_EQ((*y)[0].data<float>()[3], 0.9f);
  auto empty = run_node(11, "Range", {constant(make_tensor<int32_t>({}, {5})), constant(make_tensor<int32_t>({}, {1})),
                                      constant(make_tensor<int32_t>({}, {2}))});
  ASSERT_TRUE(empty.is_ok()) << empty.status().to_string();
  EXPECT_EQ((*empty)[0].shape(), Shape{0});
}

TEST(ShapeOps, RangeErrors) {
  expect_error(run_node(11, "Range", {constant(make_tensor<int32_t>({}, {0})), constant(make_tensor<int32_t>({}, {4})),
                                      constant(make_tensor<int32_t>({}, {0}))}),
               "delta must not be 0");
  expect_error(run_node(11, "Range", {constant(make_tensor<float>({}, {0})), constant(make_tensor<float>({}, {1e30f})),
                                      constant(make_tensor<float>({}, {1e-30f}))}),
               "finite range");
  expect_error(run_node(11, "Range", {constant(make_tensor<float>({}, {0})), constant(make_tensor<float>({}, {4})),
                                      constant(make_tensor<float>({2}, {1, 2}))}),
               "must be a scalar");
}

TEST(ShapeOps, DropoutMaskBeforeOpset10HasTheInputType) {
  auto y = run_node(7, "Dropout", {runtime(make_tensor<float>({2}, {3, 4}))}, {}, 2);
  ASSERT_TRUE(y.is_ok()) << y.status().to_string();
  EXPECT_EQ(values<float>((*y)[0]), (std::vector<float>{3, 4}));
  EXPECT_EQ((*y)[1].dtype(), DType::kFloat32);
  EXPECT_EQ(values<float>((*y)[1]), (std::vector<float>{1, 1}));
  auto z = run_node(13, "Dropout", {runtime(make_tensor<float>({2}, {3, 4}))}, {}, 2);
  ASSERT_TRUE(z.is_ok()) << z.status().to_string();
  EXPECT_EQ((*z)[1].dtype(), DType::kBool);
  EXPECT_TRUE((*z)[1].data<bool>()[0] && (*z)[1].data<bool>()[1]);
}

TEST(ShapeOps, DropoutTrainingModeIsUnsupported) {
  auto y = run_node(13, "Dropout", {runtime(make_tensor<float>({2}, {3, 4})), omitted(),
                                    constant(make_tensor<bool>({}, {true}))});
  ASSERT_FALSE(y.is_ok());
  EXPECT_EQ(y.status().code(), StatusCode::kUnsupported) << y.status().to_string();
}

}  // namespace
}  // namespace kiln::nn
