// Cases the ONNX node suite does not cover: integer inputs, overflow and NaN corners, opset
// differences (Clip attributes vs inputs, Selu defaults), opset 18+ operators (Mish, Gelu) and
// bad attributes or inputs giving clear errors.
#include <cmath>
#include <cstdint>
#include <limits>

#include <gtest/gtest.h>

#include "kiln/nn/testing/model_builder.h"

namespace kiln::nn {
namespace {

using testing::Attr;
using testing::ModelBuilder;
using testing::make_tensor;

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr float kInf = std::numeric_limits<float>::infinity();

// Runs one node whose inputs are all graph inputs; an empty Tensor is an omitted optional input.
Result<Tensor> run_node(int opset, const std::string& op, const std::vector<Tensor>& inputs,
                        const std::vector<Attr>& attrs = {}) {
  ModelBuilder mb(opset);
  std::vector<std::string> names;
  std::vector<Tensor> given;
  for (size_t i = 0; i < inputs.size(); ++i) {
    if (inputs[i].empty()) {
      names.push_back("");
      continue;
    }
    names.push_back("x" + std::to_string(i));
    mb.input(names.back(), inputs[i].dtype(), inputs[i].shape());
    given.push_back(inputs[i]);
  }
  mb.node(op, names, {"y"}, attrs).output("y", DType::kUndefined);
  KILN_ASSIGN_OR_RETURN(Model m, mb.build());
  KILN_ASSIGN_OR_RETURN(std::vector<Tensor> ys, testing::run_once(m, given));
  return std::move(ys[0]);
}

template <typename T>
std::vector<T> values(const Tensor& t) {
  return std::vector<T>(t.data<T>(), t.data<T>() + t.num_elements());
}

TEST(UnaryOps, RoundHalfToEven) {
  auto y = run_node(13, "Round", {make_tensor<float>({8}, {0.5f, 1.5f, 2.5f, -0.5f, -2.5f, 2.4999f, -3.7f, kInf})});
  ASSERT_TRUE(y.is_ok()) << y.status().to_string();
  EXPECT_EQ(values<float>(*y), (std::vector<float>{0, 2, 2, -0.0f, -2, 2, -4, kInf}));
}

TEST(UnaryOps, AbsAndNegOfIntMinWrapInsteadOfOverflowing) {
  auto a = run_node(13, "Abs", {make_tensor<int32_t>({3}, {INT32_MIN, -5, 7})});
  ASSERT_TRUE(a.is_ok()) << a.status().to_string();
  EXPECT_EQ(values<int32_t>(*a), (std::vector<int32_t>{INT32_MIN, 5, 7}));
  auto n = run_node(13, "Neg", {make_tensor<int8_t>({3}, {-128, -5, 7})});
  ASSERT_TRUE(n.is_ok()) << n.status().to_string();
  EXPECT_EQ(values<int8_t>(*n), (std::vector<int8_t>{-128, 5, -7}));
}

TEST(UnaryOps, NegRejectsUnsignedInput) {
  auto y = run_node(13, "Neg", {make_tensor<uint8_t>({2}, {1, 2})});
  ASSERT_FALSE(y.is_ok());
  EXPECT_EQ(y.status().code(), StatusCode::kUnsupported) << y.status().to_string();
}

TEST(UnaryOps, ReluOnInt32AndNaN) {
  auto y = run_node(14, "Relu", {make_tensor<int32_t>({3}, {-3, 0, 9})});
  ASSERT_TRUE(y.is_ok()) << y.status().to_string();
  EXPECT_EQ(values<int32_t>(*y), (std::vector<int32_t>{0, 0, 9}));
  auto f = run_node(14, "Relu", {make_tensor<float>({3}, {kNaN, -1.0f, 2.0f})});
  ASSERT_TRUE(f.is_ok()) << f.status().to_string();
  EXPECT_TRUE(std::isnan(f->data<float>()[0]));
  EXPECT_EQ(f->data<float>()[1], 0.0f);
}

TEST(UnaryOps, SigmoidAndSoftplusDoNotOverflow) {
  auto s = run_node(13, "Sigmoid", {make_tensor<float>({4}, {-1000.0f, -100.0f, 100.0f, 1000.0f})});
  ASSERT_TRUE(s.is_ok()) << s.status().to_string();
  EXPECT_EQ(values<float>(*s), (std::vector<float>{0.0f, std::exp(-100.0f), 1.0f, 1.0f}));
  auto p = run_node(13, "Softplus", {make_tensor<float>({3}, {1000.0f, -1000.0f, 0.0f})});
  ASSERT_TRUE(p.is_ok()) << p.status().to_string();
  EXPECT_EQ(p->data<float>()[0], 1000.0f);
  EXPECT_EQ(p->data<float>()[1], 0.0f);
  EXPECT_NEAR(p->data<float>()[2], 0.693147181f, 1e-7);
}

TEST(UnaryOps, GeluExactAndTanhOpset20) {
  auto y = run_node(20, "Gelu", {make_tensor<float>({3}, {1.0f, -1.0f, 0.0f})});
  ASSERT_TRUE(y.is_ok()) << y.status().to_string();
  EXPECT_NEAR(y->data<float>()[0], 0.8413447f, 1e-6);
  EXPECT_NEAR(y->data<float>()[1], -0.1586553f, 1e-6);
  EXPECT_EQ(y->data<float>()[2], 0.0f);
  auto t = run_node(20, "Gelu", {make_tensor<float>({2}, {1.0f, -2.0f})}, {Attr::s("approximate", "tanh")});
  ASSERT_TRUE(t.is_ok()) << t.status().to_string();
  EXPECT_NEAR(t->data<float>()[0], 0.8411920f, 1e-6);
  EXPECT_NEAR(t->data<float>()[1], -0.0454023f, 1e-6);
}

TEST(UnaryOps, GeluRejectsUnknownApproximation) {
  auto y = run_node(20, "Gelu", {make_tensor<float>({1}, {1.0f})}, {Attr::s("approximate", "erf")});
  ASSERT_FALSE(y.is_ok());
  EXPECT_NE(y.status().message().find("approximate"), std::string::npos) << y.status().message();
}

TEST(UnaryOps, MishOpset18) {
  auto y = run_node(18, "Mish", {make_tensor<double>({3}, {1.0, -1.0, 30.0})});
  ASSERT_TRUE(y.is_ok()) << y.status().to_string();
  EXPECT_NEAR(y->data<double>()[0], 0.865098388, 1e-8);
  EXPECT_NEAR(y->data<double>()[1], -0.303401461, 1e-8);
  EXPECT_NEAR(y->data<double>()[2], 30.0, 1e-12);
}

TEST(UnaryOps, SeluDefaultsFollowTheOpset) {
  auto v1 = run_node(1, "Selu", {make_tensor<float>({2}, {-1.0f, 2.0f})});
  ASSERT_TRUE(v1.is_ok()) << v1.status().to_string();
  EXPECT_NEAR(v1->data<float>()[0], 1.0507f * 1.6732f * (std::exp(-1.0f) - 1), 1e-6);
  EXPECT_FLOAT_EQ(v1->data<float>()[1], 2 * 1.0507f);
  auto v6 = run_node(6, "Selu", {make_tensor<float>({1}, {2.0f})});
  ASSERT_TRUE(v6.is_ok()) << v6.status().to_string();
  EXPECT_FLOAT_EQ(v6->data<float>()[0], 2 * 1.05070102f);
}

TEST(UnaryOps, CeluRejectsZeroAlpha) {
  auto y = run_node(12, "Celu", {make_tensor<float>({1}, {-1.0f})}, {Attr::f("alpha", 0.0f)});
  ASSERT_FALSE(y.is_ok());
  EXPECT_NE(y.status().message().find("alpha"), std::string::npos) << y.status().message();
}

TEST(UnaryOps, ThresholdedReluAndHardSwish) {
  auto t = run_node(10, "ThresholdedRelu", {make_tensor<float>({3}, {2.0f, 2.5f, -3.0f})}, {Attr::f("alpha", 2.0f)});
  ASSERT_TRUE(t.is_ok()) << t.status().to_string();
  EXPECT_EQ(values<float>(*t), (std::vector<float>{0.0f, 2.5f, 0.0f}));
  auto h = run_node(14, "HardSwish", {make_tensor<float>({4}, {-4.0f, -1.5f, 1.5f, 4.0f})});
  ASSERT_TRUE(h.is_ok()) << h.status().to_string();
  EXPECT_EQ(values<float>(*h), (std::vector<float>{0.0f, -0.375f, 1.125f, 4.0f}));
}

TEST(UnaryOps, SignAndErfOnIntegers) {
  auto s = run_node(13, "Sign", {make_tensor<int64_t>({3}, {-7, 0, 9})});
  ASSERT_TRUE(s.is_ok()) << s.status().to_string();
  EXPECT_EQ(values<int64_t>(*s), (std::vector<int64_t>{-1, 0, 1}));
  auto u = run_node(13, "Sign", {make_tensor<uint8_t>({2}, {0, 200})});
  ASSERT_TRUE(u.is_ok()) << u.status().to_string();
  EXPECT_EQ(values<uint8_t>(*u), (std::vector<uint8_t>{0, 1}));
  auto f = run_node(13, "Sign", {make_tensor<float>({2}, {kNaN, -0.5f})});
  ASSERT_TRUE(f.is_ok()) << f.status().to_string();
  EXPECT_TRUE(std::isnan(f->data<float>()[0]));
  EXPECT_EQ(f->data<float>()[1], -1.0f);
  auto e = run_node(13, "Erf", {make_tensor<int32_t>({3}, {-3, 0, 2})});
  ASSERT_TRUE(e.is_ok()) << e.status().to_string();
  EXPECT_EQ(values<int32_t>(*e), (std::vector<int32_t>{0, 0, 0}));  // erf in (-1, 1) truncates to 0
}

TEST(UnaryOps, IsInfDetectionFlagsAndIsNaN) {
  Tensor x = make_tensor<double>({4}, {-kInf, kInf, kNaN, 1.0});
  auto neg = run_node(10, "IsInf", {x}, {Attr::i("detect_positive", 0)});
  ASSERT_TRUE(neg.is_ok()) << neg.status().to_string();
  EXPECT_EQ(values<bool>(*neg), (std::vector<bool>{true, false, false, false}));
  auto none = run_node(10, "IsInf", {x}, {Attr::i("detect_positive", 0), Attr::i("detect_negative", 0)});
  ASSERT_TRUE(none.is_ok()) << none.status().to_string();
  EXPECT_EQ(values<bool>(*none), (std::vector<bool>{false, false, false, false}));
  auto nan = run_node(13, "IsNaN", {x});
  ASSERT_TRUE(nan.is_ok()) << nan.status().to_string();
  EXPECT_EQ(nan->dtype(), DType::kBool);
  EXPECT_EQ(values<bool>(*nan), (std::vector<bool>{false, false, true, false}));
}

TEST(UnaryOps, ShrinkOnInt8Saturates) {
  auto y = run_node(9, "Shrink", {make_tensor<int8_t>({5}, {-128, -1, 0, 1, 127})},
                    {Attr::f("lambd", 0.5f), Attr::f("bias", -10.0f)});
  ASSERT_TRUE(y.is_ok()) << y.status().to_string();
  // x < -lambd: x + bias; x > lambd: x - bias (137 saturates to 127).
  EXPECT_EQ(values<int8_t>(*y), (std::vector<int8_t>{-128, -11, 0, 11, 127}));
}

TEST(UnaryOps, NotAndUnsupportedDtype) {
  auto y = run_node(1, "Not", {make_tensor<bool>({2}, {true, false})});
  ASSERT_TRUE(y.is_ok()) << y.status().to_string();
  EXPECT_EQ(values<bool>(*y), (std::vector<bool>{false, true}));
  auto f = run_node(1, "Not", {make_tensor<float>({1}, {1.0f})});
  ASSERT_FALSE(f.is_ok());
  auto h = run_node(13, "Exp", {Tensor(DType::kFloat16, {2})});
  ASSERT_FALSE(h.is_ok());
  EXPECT_EQ(h.status().code(), StatusCode::kUnsupported) << h.status().to_string();
}

TEST(UnaryOps, ClipWithRuntimeIntegerBounds) {
  auto y = run_node(13, "Clip", {make_tensor<int32_t>({4}, {-50, 3, 10, 99}), make_tensor<int32_t>({}, {0}),
                                 make_tensor<int32_t>({1}, {10})});
  ASSERT_TRUE(y.is_ok()) << y.status().to_string();
  EXPECT_EQ(values<int32_t>(*y), (std::vector<int32_t>{0, 3, 10, 10}));
}

TEST(UnaryOps, ClipMinAboveMaxGivesMax) {
  auto y = run_node(13, "Clip", {make_tensor<float>({3}, {-5, 0, 5}), make_tensor<float>({}, {2}),
                                 make_tensor<float>({}, {1})});
  ASSERT_TRUE(y.is_ok()) << y.status().to_string();
  EXPECT_EQ(values<float>(*y), (std::vector<float>{1, 1, 1}));
}

TEST(UnaryOps, ClipOnlyMaxKeepsNaNAndNegativeInfinity) {
  auto y = run_node(13, "Clip", {make_tensor<float>({3}, {-kInf, kNaN, 7}), Tensor(), make_tensor<float>({}, {6})});
  ASSERT_TRUE(y.is_ok()) << y.status().to_string();
  EXPECT_EQ(y->data<float>()[0], -kInf);
  EXPECT_TRUE(std::isnan(y->data<float>()[1]));
  EXPECT_EQ(y->data<float>()[2], 6);
}

TEST(UnaryOps, ClipAttributesBeforeOpset11) {
  auto y = run_node(6, "Clip", {make_tensor<float>({3}, {-kInf, 0.5f, 3})}, {Attr::f("max", 1.0f)});
  ASSERT_TRUE(y.is_ok()) << y.status().to_string();
  // Opset 6 defaults min to the lowest float, not -inf.
  EXPECT_EQ(values<float>(*y), (std::vector<float>{std::numeric_limits<float>::lowest(), 0.5f, 1.0f}));
  auto v1 = run_node(1, "Clip", {make_tensor<float>({2}, {-kInf, 3})}, {Attr::f("max", 1.0f)});
  ASSERT_TRUE(v1.is_ok()) << v1.status().to_string();
  EXPECT_EQ(values<float>(*v1), (std::vector<float>{-kInf, 1.0f}));
}

TEST(UnaryOps, ClipRejectsNonScalarOrMismatchedBounds) {
  auto shape = run_node(13, "Clip", {make_tensor<float>({3}, {}), make_tensor<float>({2}, {0, 1})});
  ASSERT_FALSE(shape.is_ok());
  EXPECT_NE(shape.status().message().find("scalar"), std::string::npos) << shape.status().message();
  auto dtype = run_node(13, "Clip", {make_tensor<float>({3}, {}), make_tensor<double>({}, {0})});
  ASSERT_FALSE(dtype.is_ok());
  EXPECT_NE(dtype.status().message().find("dtype"), std::string::npos) << dtype.status().message();
}

}  // namespace
}  // namespace kiln::nn
