// Cases the ONNX node suite does not cover for the tensor operators: legacy attribute forms,
// opset 18/19 additions (Split num_outputs, Pad axes and wrap), negative pads, extreme Slice
// arguments, float16 data movement, runtime index errors and clear errors for bad arguments.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "kiln/nn/testing/model_builder.h"

namespace kiln::nn {
namespace {

using testing::Attr;
using testing::ModelBuilder;
using testing::make_tensor;

constexpr int64_t kMin = std::numeric_limits<int64_t>::min();
constexpr int64_t kMax = std::numeric_limits<int64_t>::max();

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

Tensor ints(std::vector<int64_t> v) { return make_tensor<int64_t>({static_cast<int64_t>(v.size())}, v); }

void expect_error(const Result<std::vector<Tensor>>& r, const std::string& fragment) {
  ASSERT_FALSE(r.is_ok()) << "expected an error containing '" << fragment << "'";
  EXPECT_NE(r.status().message().find(fragment), std::string::npos) << r.status().message();
}

const Tensor kRow = make_tensor<float>({1, 5}, {1, 2, 3, 4, 5});

TEST(TensorOps, TransposeMovesFloat16Bits) {
  Tensor x(DType::kFloat16, {2, 3});
  for (int i = 0; i < 6; ++i) x.data<uint16_t>()[i] = static_cast<uint16_t>(0x3c00 + i);
  auto y = run_node(13, "Transpose", {runtime(x)});
  ASSERT_TRUE(y.is_ok()) << y.status().to_string();
  EXPECT_EQ((*y)[0].shape(), (Shape{3, 2}));
  EXPECT_EQ(values<uint16_t>((*y)[0]), (std::vector<uint16_t>{0x3c00, 0x3c03, 0x3c01, 0x3c04, 0x3c02, 0x3c05}));
}

TEST(TensorOps, TransposeRejectsABadPermutation) {
  Tensor x(DType::kFloat32, {2, 3, 4});
  expect_error(run_node(13, "Transpose", {runtime(x)}, {Attr::ints("perm", {0, 0, 1})}), "not a permutation");
  expect_error(run_node(13, "Transpose", {runtime(x)}, {Attr::ints("perm", {0, 1})}), "not a permutation");
  expect_error(run_node(13, "Transpose", {runtime(x)}, {Attr::ints("perm", {0, 1, 3})}), "not a permutation");
}

TEST(TensorOps, SliceReversesWithExtremeBounds) {
  auto y = run_node(13, "Slice", {runtime(kRow), constant(ints({kMax})), constant(ints({kMin})), constant(ints({1})),
                                  constant(ints({-1}))});
  ASSERT_TRUE(y.is_ok()) << y.status().to_string();
  EXPECT_EQ(values<float>((*y)[0]), (std::vector<float>{5, 4, 3, 2, 1}));
}

TEST(TensorOps, SliceWithHugeSteps) {
  auto a = run_node(13, "Slice", {runtime(kRow), constant(ints({-1})), constant(ints({kMin})), constant(ints({-1})),
                                  constant(ints({kMin}))});
  ASSERT_TRUE(a.is_ok()) << a.status().to_string();
  EXPECT_EQ(values<float>((*a)[0]), (std::vector<float>{5}));
  auto b = run_node(13, "Slice", {runtime(kRow), constant(ints({1})), constant(ints({kMax})), constant(ints({1})),
                                  constant(ints({kMax}))});
  ASSERT_TRUE(b.is_ok()) << b.status().to_string();
  EXPECT_EQ(values<float>((*b)[0]), (std::vector<float>{2}));
}

TEST(TensorOps, SliceLegacyAttributes) {
  auto y = run_node(1, "Slice", {runtime(kRow)}, {Attr::ints("starts", {1}), Attr::ints("ends", {-1}), Attr::ints("axes", {1})});
  ASSERT_TRUE(y.is_ok()) << y.status().to_string();
  EXPECT_EQ(values<float>((*y)[0]), (std::vector<float>{2, 3, 4}));
}

TEST(TensorOps, SliceErrors) {
  expect_error(run_node(13, "Slice", {runtime(kRow), constant(ints({0})), constant(ints({3})), constant(ints({1})),
                                      constant(ints({0}))}),
               "steps must not be 0");
  expect_error(run_node(13, "Slice", {runtime(kRow), constant(ints({0, 0})), constant(ints({3}))}), "same length");
  expect_error(run_node(13, "Slice", {runtime(kRow), constant(ints({0})), constant(ints({3})), constant(ints({2}))}),
               "out of range");
}

TEST(TensorOps, SplitNumOutputsGivesASmallerLastPart) {
  auto y = run_node(18, "Split", {runtime(make_tensor<int32_t>({7}, {0, 1, 2, 3, 4, 5, 6}))}, {Attr::i("num_outputs", 3)}, 3);
  ASSERT_TRUE(y.is_ok()) << y.status().to_string();
  EXPECT_EQ(values<int32_t>((*y)[0]), (std::vector<int32_t>{0, 1, 2}));
  EXPECT_EQ(values<int32_t>((*y)[1]), (std::vector<int32_t>{3, 4, 5}));
  EXPECT_EQ(values<int32_t>((*y)[2]), (std::vector<int32_t>{6}));
}

TEST(TensorOps, SplitAttributeBeforeOpset13) {
  auto y = run_node(11, "Split", {runtime(make_tensor<float>({2, 3}, {1, 2, 3, 4, 5, 6}))},
                    {Attr::i("axis", -1), Attr::ints("split", {1, 2})}, 2);
  ASSERT_TRUE(y.is_ok()) << y.status().to_string();
  EXPECT_EQ(values<float>((*y)[0]), (std::vector<float>{1, 4}));
  EXPECT_EQ(values<float>((*y)[1]), (std::vector<float>{2, 3, 5, 6}));
}

TEST(TensorOps, SplitErrors) {
  Tensor x(DType::kFloat32, {7});
  expect_error(run_node(13, "Split", {runtime(x)}, {}, 3), "equal parts");
  expect_error(run_node(13, "Split", {runtime(x), constant(ints({3, 3}))}, {}, 2), "sums to 6");
  expect_error(run_node(13, "Split", {runtime(x), constant(ints({8, -1}))}, {}, 2), "outside [0, 7]");
  expect_error(run_node(18, "Split", {runtime(x)}, {Attr::i("num_outputs", 2)}, 3), "num_outputs is 2");
}

TEST(TensorOps, ConcatErrors) {
  expect_error(run_node(13, "Concat", {runtime(Tensor(DType::kFloat32, {2, 3})), runtime(Tensor(DType::kFloat32, {3, 3}))},
                        {Attr::i("axis", 1)}),
               "does not match");
  expect_error(run_node(13, "Concat", {runtime(Tensor(DType::kFloat32, {2})), runtime(Tensor(DType::kInt32, {2}))},
                        {Attr::i("axis", 0)}),
               "dtype");
  expect_error(run_node(13, "Concat", {runtime(Tensor(DType::kFloat32, {2}))}), "'axis' is required");
}

TEST(TensorOps, ConcatWithAnEmptyInput) {
  auto y = run_node(13, "Concat", {runtime(make_tensor<int64_t>({1, 2}, {1, 2})), runtime(Tensor(DType::kInt64, {1, 0})),
                                   runtime(make_tensor<int64_t>({1, 1}, {3}))},
                    {Attr::i("axis", 1)});
  ASSERT_TRUE(y.is_ok()) << y.status().to_string();
  EXPECT_EQ(values<int64_t>((*y)[0]), (std::vector<int64_t>{1, 2, 3}));
}

TEST(TensorOps, PadNegativePadsCropAndMixWithPadding) {
  // Crop one element on the left, pad two on the right.
  auto y = run_node(13, "Pad", {runtime(kRow), constant(ints({0, -1, 0, 2})), runtime(make_tensor<float>({}, {9}))});
  ASSERT_TRUE(y.is_ok()) << y.status().to_string();
  EXPECT_EQ(values<float>((*y)[0]), (std::vector<float>{2, 3, 4, 5, 9, 9}));
  // Edge padding repeats the edge of the cropped region.
  auto e = run_node(13, "Pad", {runtime(kRow), constant(ints({0, 2, 0, -2}))}, {Attr::s("mode", "edge")});
  ASSERT_TRUE(e.is_ok()) << e.status().to_string();
  EXPECT_EQ(values<float>((*e)[0]), (std::vector<float>{1, 1, 1, 2, 3}));
}

TEST(TensorOps, PadReflectBeyondTheAxisSizeRepeatsTheReflection) {
  // numpy.pad([1, 2, 3], (5, 4), 'reflect')
  auto y = run_node(13, "Pad", {runtime(make_tensor<int32_t>({3}, {1, 2, 3})), constant(ints({5, 4}))},
                    {Attr::s("mode", "reflect")});
  ASSERT_TRUE(y.is_ok()) << y.status().to_string();
  EXPECT_EQ(values<int32_t>((*y)[0]), (std::vector<int32_t>{2, 1, 2, 3, 2, 1, 2, 3, 2, 1, 2, 3}));
}

TEST(TensorOps, PadWrapAndAxesSinceOpset19) {
  // numpy.pad([[1, 2, 3]], ((0, 0), (2, 4)), 'wrap'), with the axis given as -1.
  auto y = run_node(19, "Pad", {runtime(make_tensor<float>({1, 3}, {1, 2, 3})), constant(ints({2, 4})), omitted(),
                                constant(ints({-1}))},
                    {Attr::s("mode", "wrap")});
  ASSERT_TRUE(y.is_ok()) << y.status().to_string();
  EXPECT_EQ(values<float>((*y)[0]), (std::vector<float>{2, 3, 1, 2, 3, 1, 2, 3, 1}));
  expect_error(run_node(18, "Pad", {runtime(kRow), constant(ints({1, 1, 1, 1}))}, {Attr::s("mode", "wrap")}),
               "mode must be");
}

TEST(TensorOps, PadLegacyAttributes) {
  auto a = run_node(2, "Pad", {runtime(make_tensor<float>({2}, {1, 2}))}, {Attr::ints("pads", {1, 0}), Attr::f("value", 7)});
  ASSERT_TRUE(a.is_ok()) << a.status().to_string();
  EXPECT_EQ(values<float>((*a)[0]), (std::vector<float>{7, 1, 2}));
  auto b = run_node(1, "Pad", {runtime(make_tensor<float>({2}, {1, 2}))}, {Attr::ints("paddings", {0, 2})});
  ASSERT_TRUE(b.is_ok()) << b.status().to_string();
  EXPECT_EQ(values<float>((*b)[0]), (std::vector<float>{1, 2, 0, 0}));
}

TEST(TensorOps, PadErrors) {
  expect_error(run_node(13, "Pad", {runtime(kRow), constant(ints({0, -4, 0, -2}))}), "remove more than");
  expect_error(run_node(13, "Pad", {runtime(kRow), constant(ints({0, 1}))}), "2 entries per padded axis");
  expect_error(run_node(13, "Pad", {runtime(kRow), constant(ints({0, kMin, 0, 0}))}), "beyond");
  expect_error(run_node(13, "Pad", {runtime(Tensor(DType::kFloat32, {1, 0})), constant(ints({0, 1, 0, 1}))},
                        {Attr::s("mode", "reflect")}),
               "empty axis");
  expect_error(run_node(13, "Pad", {runtime(kRow), constant(ints({0, 1, 0, 1})), runtime(make_tensor<int32_t>({}, {1}))}),
               "constant_value has dtype");
}

TEST(TensorOps, TileRepeatsAndZeroRepeats) {
  auto y = run_node(13, "Tile", {runtime(make_tensor<int32_t>({2, 1}, {1, 2})), constant(ints({2, 3}))});
  ASSERT_TRUE(y.is_ok()) << y.status().to_string();
  EXPECT_EQ((*y)[0].shape(), (Shape{4, 3}));
  EXPECT_EQ(values<int32_t>((*y)[0]), (std::vector<int32_t>{1, 1, 1, 2, 2, 2, 1, 1, 1, 2, 2, 2}));
  auto z = run_node(13, "Tile", {runtime(make_tensor<int32_t>({2, 1}, {1, 2})), constant(ints({0, 3}))});
  ASSERT_TRUE(z.is_ok()) << z.status().to_string();
  EXPECT_EQ((*z)[0].shape(), (Shape{0, 3}));
  expect_error(run_node(13, "Tile", {runtime(kRow), constant(ints({1}))}), "one entry per axis");
  expect_error(run_node(13, "Tile", {runtime(kRow), constant(ints({1, -1}))}), "negative");
}

TEST(TensorOps, ExpandErrors) {
  expect_error(run_node(13, "Expand", {runtime(kRow), constant(ints({2, 4}))}), "cannot be broadcast");
  expect_error(run_node(13, "Expand", {runtime(kRow), constant(ints({-1, 5}))}), "negative");
}

TEST(TensorOps, DepthToSpaceAndSpaceToDepthAreInverse) {
  std::vector<float> v(16);
  for (int i = 0; i < 16; ++i) v[static_cast<size_t>(i)] = static_cast<float>(i);
  Tensor x = make_tensor<float>({1, 4, 2, 2}, v);
  auto s = run_node(13, "DepthToSpace", {runtime(x)}, {Attr::i("blocksize", 2)});
  ASSERT_TRUE(s.is_ok()) << s.status().to_string();
  // DCR: y[0, 0, 2h + i, 2w + j] = x[0, 2i + j, h, w].
  EXPECT_EQ(values<float>((*s)[0]), (std::vector<float>{0, 4, 1, 5, 8, 12, 9, 13, 2, 6, 3, 7, 10, 14, 11, 15}));
  auto back = run_node(13, "SpaceToDepth", {runtime((*s)[0])}, {Attr::i("blocksize", 2)});
  ASSERT_TRUE(back.is_ok()) << back.status().to_string();
  EXPECT_EQ(values<float>((*back)[0]), v);
  expect_error(run_node(13, "DepthToSpace", {runtime(x)}, {Attr::i("blocksize", 3)}), "must be positive");
  expect_error(run_node(13, "SpaceToDepth", {runtime(x)}, {Attr::i("blocksize", 0)}), "must be positive");
  expect_error(run_node(13, "SpaceToDepth", {runtime(Tensor(DType::kFloat32, {1, 1, 0, 0}))},
                        {Attr::i("blocksize", kMax)}),
               "overflows");
  expect_error(run_node(13, "DepthToSpace", {runtime(Tensor(DType::kFloat32, {4, 2, 2}))}, {Attr::i("blocksize", 2)}),
               "rank 4");
}

TEST(TensorOps, TriluWithARuntimeKOfAnySize) {
  Tensor x = make_tensor<int32_t>({2, 3}, {1, 2, 3, 4, 5, 6});
  auto a = run_node(14, "Trilu", {runtime(x), runtime(make_tensor<int64_t>({}, {1}))}, {Attr::i("upper", 0)});
  ASSERT_TRUE(a.is_ok()) << a.status().to_string();
  EXPECT_EQ(values<int32_t>((*a)[0]), (std::vector<int32_t>{1, 2, 0, 4, 5, 6}));
  auto b = run_node(14, "Trilu", {runtime(x), runtime(make_tensor<int64_t>({}, {kMin}))});
  ASSERT_TRUE(b.is_ok()) << b.status().to_string();
  EXPECT_EQ(values<int32_t>((*b)[0]), (std::vector<int32_t>{1, 2, 3, 4, 5, 6}));
  auto c = run_node(14, "Trilu", {runtime(x), runtime(make_tensor<int64_t>({}, {kMax}))});
  ASSERT_TRUE(c.is_ok()) << c.status().to_string();
  EXPECT_EQ(values<int32_t>((*c)[0]), (std::vector<int32_t>(6, 0)));
}

TEST(TensorOps, CumSumRuntimeAxisOutOfRangeIsAnError) {
  auto y = run_node(14, "CumSum", {runtime(make_tensor<float>({2, 2}, {1, 2, 3, 4})), runtime(make_tensor<int32_t>({}, {2}))});
  ASSERT_FALSE(y.is_ok());
  EXPECT_EQ(y.status().code(), StatusCode::kOutOfRange) << y.status().to_string();
}

TEST(TensorOps, CumSumReverseExclusiveOnAnInnerAxis) {
  auto y = run_node(14, "CumSum", {runtime(make_tensor<int64_t>({2, 3}, {1, 2, 3, 4, 5, 6})),
                                   runtime(make_tensor<int64_t>({}, {-1}))},
                    {Attr::i("exclusive", 1), Attr::i("reverse", 1)});
  ASSERT_TRUE(y.is_ok()) << y.status().to_string();
  EXPECT_EQ(values<int64_t>((*y)[0]), (std::vector<int64_t>{5, 3, 0, 11, 6, 0}));
}

TEST(TensorOps, ReverseSequenceRejectsALengthBeyondTheTimeAxis) {
  auto y = run_node(10, "ReverseSequence", {runtime(Tensor(DType::kFloat32, {3, 2})), runtime(ints({1, 4}))});
  ASSERT_FALSE(y.is_ok());
  EXPECT_EQ(y.status().code(), StatusCode::kOutOfRange) << y.status().to_string();
}

TEST(TensorOps, OneHotOutOfRangeIndicesAreAllOff) {
  auto y = run_node(11, "OneHot", {runtime(make_tensor<float>({4}, {-1, 3, 1.7f, 1e30f})),
                                   constant(make_tensor<int64_t>({}, {3})), runtime(make_tensor<int32_t>({2}, {0, 1}))});
  ASSERT_TRUE(y.is_ok()) << y.status().to_string();
  EXPECT_EQ(values<int32_t>((*y)[0]), (std::vector<int32_t>{0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0}));
  expect_error(run_node(11, "OneHot", {runtime(make_tensor<int64_t>({1}, {0})), constant(make_tensor<int64_t>({}, {0})),
                                       runtime(make_tensor<int32_t>({2}, {0, 1}))}),
               "depth must be positive");
}

TEST(TensorOps, CompressWithAConstantConditionAndRuntimeData) {
  auto y = run_node(11, "Compress", {runtime(make_tensor<int32_t>({2, 3}, {1, 2, 3, 4, 5, 6})),
                                     constant(make_tensor<bool>({4}, {true, false, true, false}))},
                    {Attr::i("axis", 1)});
  ASSERT_TRUE(y.is_ok()) << y.status().to_string();
  EXPECT_EQ(values<int32_t>((*y)[0]), (std::vector<int32_t>{1, 3, 4, 6}));
  expect_error(run_node(11, "Compress", {runtime(make_tensor<int32_t>({2}, {1, 2})),
                                         constant(make_tensor<bool>({3}, {false, false, true}))}),
               "selects index 2");
}

TEST(TensorOps, DataDependentShapesNeedConstantInputs) {
  for (const char* op : {"NonZero", "Unique"}) {
    auto y = run_node(13, op, {runtime(make_tensor<int32_t>({2}, {1, 0}))});
    ASSERT_FALSE(y.is_ok()) << op;
    EXPECT_EQ(y.status().code(), StatusCode::kNeedsValue) << y.status().to_string();
  }
}

TEST(TensorOps, NonZeroOfAConstant) {
  auto y = run_node(13, "NonZero", {constant(make_tensor<int32_t>({2, 2}, {0, 3, 4, 0}))});
  ASSERT_TRUE(y.is_ok()) << y.status().to_string();
  EXPECT_EQ((*y)[0].shape(), (Shape{2, 2}));
  EXPECT_EQ(values<int64_t>((*y)[0]), (std::vector<int64_t>{0, 1, 1, 0}));
}

TEST(TensorOps, UniqueUnsortedAlongAnAxis) {
  // Columns [2,1], [1,0], [2,1], [0,5]: unique in order of first appearance.
  auto y = run_node(11, "Unique", {constant(make_tensor<int32_t>({2, 4}, {2, 1, 2, 0, 1, 0, 1, 5}))},
                    {Attr::i("sorted", 0), Attr::i("axis", 1)}, 4);
  ASSERT_TRUE(y.is_ok()) << y.status().to_string();
  EXPECT_EQ((*y)[0].shape(), (Shape{2, 3}));
  EXPECT_EQ(values<int32_t>((*y)[0]), (std::vector<int32_t>{2, 1, 0, 1, 0, 5}));
  EXPECT_EQ(values<int64_t>((*y)[1]), (std::vector<int64_t>{0, 1, 3}));
  EXPECT_EQ(values<int64_t>((*y)[2]), (std::vector<int64_t>{0, 1, 0, 2}));
  EXPECT_EQ(values<int64_t>((*y)[3]), (std::vector<int64_t>{2, 1, 1}));
}

TEST(TensorOps, UniqueSortsNaNLast) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  auto y = run_node(11, "Unique", {constant(make_tensor<float>({5}, {nan, 2, nan, 1, 2}))}, {}, 4);
  ASSERT_TRUE(y.is_ok()) << y.status().to_string();
  ASSERT_EQ((*y)[0].shape(), Shape{3});
  EXPECT_EQ((*y)[0].data<float>()[0], 1);
  EXPECT_EQ((*y)[0].data<float>()[1], 2);
  EXPECT_TRUE(std::isnan((*y)[0].data<float>()[2]));
  EXPECT_EQ(values<int64_t>((*y)[3]), (std::vector<int64_t>{1, 2, 2}));
}

}  // namespace
}  // namespace kiln::nn
