// Cases the ONNX node suite does not cover: float -> integer truncation and saturation, NaN,
// integer wrap-around, bool, float16/bfloat16 bit patterns and rounding, the string-valued `to`
// of Cast-1, and unsupported or invalid target types.
#include <cmath>
#include <cstdint>
#include <cstring>
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

Result<Tensor> run_cast(const Tensor& x, const Attr& to, int opset = 13) {
  ModelBuilder mb(opset);
  mb.input("x", x.dtype(), x.shape()).node("Cast", {"x"}, {"y"}, {to}).output("y", DType::kUndefined);
  KILN_ASSIGN_OR_RETURN(Model m, mb.build());
  KILN_ASSIGN_OR_RETURN(std::vector<Tensor> ys, testing::run_once(m, {x}));
  return std::move(ys[0]);
}

Result<Tensor> cast_to(const Tensor& x, DType to, int opset = 13) {
  return run_cast(x, Attr::i("to", static_cast<int64_t>(to)), opset);
}

template <typename T>
std::vector<T> values(const Tensor& t) {
  return std::vector<T>(t.data<T>(), t.data<T>() + t.num_elements());
}

// A float16 or bfloat16 tensor from bit patterns.
Tensor bits16(DType dtype, const std::vector<uint16_t>& bits) {
  Tensor t(dtype, {static_cast<int64_t>(bits.size())});
  std::memcpy(t.raw(), bits.data(), bits.size() * 2);
  return t;
}

TEST(CastOps, FloatToInt32TruncatesAndSaturates) {
  auto y = cast_to(make_tensor<float>({8}, {2.7f, -2.7f, kNaN, 1e10f, -1e10f, kInf, -kInf, 2147483520.0f}), DType::kInt32);
  ASSERT_TRUE(y.is_ok()) << y.status().to_string();
  EXPECT_EQ(values<int32_t>(*y),
            (std::vector<int32_t>{2, -2, 0, INT32_MAX, INT32_MIN, INT32_MAX, INT32_MIN, 2147483520}));
}

TEST(CastOps, FloatToUint8Saturates) {
  auto y = cast_to(make_tensor<float>({5}, {-1.0f, -0.5f, 255.9f, 300.0f, 17.2f}), DType::kUInt8);
  ASSERT_TRUE(y.is_ok()) << y.status().to_string();
  EXPECT_EQ(values<uint8_t>(*y), (std::vector<uint8_t>{0, 0, 255, 255, 17}));
}

TEST(CastOps, DoubleToInt64AtTheEdges) {
  auto y = cast_to(make_tensor<double>({4}, {9.3e18, -9.3e18, 9223372036854774784.0, -9223372036854775808.0}),
                   DType::kInt64);
  ASSERT_TRUE(y.is_ok()) << y.status().to_string();
  EXPECT_EQ(values<int64_t>(*y), (std::vector<int64_t>{INT64_MAX, INT64_MIN, 9223372036854774784LL, INT64_MIN}));
}

TEST(CastOps, IntegerToIntegerKeepsLowBits) {
  auto y = cast_to(make_tensor<int32_t>({3}, {300, -1, 255}), DType::kUInt8);
  ASSERT_TRUE(y.is_ok()) << y.status().to_string();
  EXPECT_EQ(values<uint8_t>(*y), (std::vector<uint8_t>{44, 255, 255}));
  auto z = cast_to(make_tensor<uint64_t>({1}, {0xFFFFFFFFFFFFFFFFull}), DType::kInt64);
  ASSERT_TRUE(z.is_ok()) << z.status().to_string();
  EXPECT_EQ(z->data<int64_t>()[0], -1);
}

TEST(CastOps, BoolBothWays) {
  auto b = cast_to(make_tensor<float>({4}, {0.0f, -0.0f, 0.1f, kNaN}), DType::kBool);
  ASSERT_TRUE(b.is_ok()) << b.status().to_string();
  EXPECT_EQ(values<bool>(*b), (std::vector<bool>{false, false, true, true}));
  auto f = cast_to(make_tensor<bool>({2}, {true, false}), DType::kFloat32);
  ASSERT_TRUE(f.is_ok()) << f.status().to_string();
  EXPECT_EQ(values<float>(*f), (std::vector<float>{1.0f, 0.0f}));
  auto i = cast_to(make_tensor<int64_t>({3}, {0, 256, -1}), DType::kBool);
  ASSERT_TRUE(i.is_ok()) << i.status().to_string();
  EXPECT_EQ(values<bool>(*i), (std::vector<bool>{false, true, true}));
}

TEST(CastOps, FloatToFloat16RoundsToNearestEven) {
  // Expected bit patterns from numpy's astype(float16).
  auto y = cast_to(make_tensor<float>({13}, {1.0f, 65504.0f, 65520.0f, 65519.0f, 1.0f + 0x1p-11f, 1.0f + 3 * 0x1p-11f,
                                             0x1p-24f, 0x1p-25f, 1.5f * 0x1p-25f, -0.0f, -kInf, 0x1p-14f, 0.1f}),
                   DType::kFloat16);
  ASSERT_TRUE(y.is_ok()) << y.status().to_string();
  ASSERT_EQ(y->dtype(), DType::kFloat16);
  EXPECT_EQ(values<uint16_t>(*y), (std::vector<uint16_t>{0x3c00, 0x7bff, 0x7c00, 0x7bff, 0x3c00, 0x3c02, 0x0001, 0x0000,
                                                         0x0001, 0x8000, 0xfc00, 0x0400, 0x2e66}));
}

TEST(CastOps, NaNStaysNaNInFloat16AndBFloat16) {
  for (DType t : {DType::kFloat16, DType::kBFloat16}) {
    auto y = cast_to(make_tensor<float>({2}, {kNaN, -kNaN}), t, 19);
    ASSERT_TRUE(y.is_ok()) << y.status().to_string();
    const uint16_t exp_mask = t == DType::kFloat16 ? 0x7c00 : 0x7f80;
    for (uint16_t b : values<uint16_t>(*y)) {
      EXPECT_EQ(b & exp_mask, exp_mask) << dtype_name(t);
      EXPECT_NE(b & ~exp_mask & 0x7fff, 0) << dtype_name(t);
    }
  }
}

TEST(CastOps, DoubleToFloat16RoundsOnce) {
  // Through float this would first round to the tie 1 + 2^-11 and then to even (0x3c00).
  auto y = cast_to(make_tensor<double>({1}, {1.0 + 0x1p-11 + 0x1p-40}), DType::kFloat16);
  ASSERT_TRUE(y.is_ok()) << y.status().to_string();
  EXPECT_EQ(y->data<uint16_t>()[0], 0x3c01);
}

TEST(CastOps, IntegerToFloat16) {
  auto y = cast_to(make_tensor<int64_t>({4}, {-3, 70000, 2049, 0}), DType::kFloat16);
  ASSERT_TRUE(y.is_ok()) << y.status().to_string();
  // 2049 is a tie between 2048 and 2050 and rounds to even.
  EXPECT_EQ(values<uint16_t>(*y), (std::vector<uint16_t>{0xc200, 0x7c00, 0x6800, 0x0000}));
}

TEST(CastOps, Float16ToFloatAndInt) {
  Tensor h = bits16(DType::kFloat16, {0x0001, 0x3555, 0xfc00, 0x8000, 0x7bff, 0x7e00});
  auto f = cast_to(h, DType::kFloat32);
  ASSERT_TRUE(f.is_ok()) << f.status().to_string();
  const float* d = f->data<float>();
  EXPECT_EQ(d[0], 0x1p-24f);
  EXPECT_EQ(d[1], 0.333251953125f);
  EXPECT_EQ(d[2], -kInf);
  EXPECT_TRUE(d[3] == 0.0f && std::signbit(d[3]));
  EXPECT_EQ(d[4], 65504.0f);
  EXPECT_TRUE(std::isnan(d[5]));
  auto i = cast_to(h, DType::kInt16);
  ASSERT_TRUE(i.is_ok()) << i.status().to_string();
  EXPECT_EQ(values<int16_t>(*i), (std::vector<int16_t>{0, 0, INT16_MIN, 0, INT16_MAX, 0}));
}

// The inputs of ONNX's test_cast_FLOAT_to_BFLOAT16.
Tensor bf16_case_input() {
  return make_tensor<float>({12}, {0.47892547f, 0.48033667f, 0.49968487f, 0.81910545f, 0.47031248f, 0.816468f,
                                   0.21087195f, 0.7229038f, kNaN, kInf, kInf, -kInf});
}

TEST(CastOps, FloatToBFloat16TruncatesBeforeOpset19) {
  auto y = cast_to(bf16_case_input(), DType::kBFloat16, 13);
  ASSERT_TRUE(y.is_ok()) << y.status().to_string();
  ASSERT_EQ(y->dtype(), DType::kBFloat16);
  EXPECT_EQ(values<uint16_t>(*y), (std::vector<uint16_t>{0x3ef5, 0x3ef5, 0x3eff, 0x3f51, 0x3ef0, 0x3f51, 0x3e57, 0x3f39,
                                                         0x7fc0, 0x7f80, 0x7f80, 0xff80}));
}

TEST(CastOps, FloatToBFloat16RoundsToNearestEvenFromOpset19) {
  auto y = cast_to(bf16_case_input(), DType::kBFloat16, 19);
  ASSERT_TRUE(y.is_ok()) << y.status().to_string();
  EXPECT_EQ(values<uint16_t>(*y), (std::vector<uint16_t>{0x3ef5, 0x3ef6, 0x3f00, 0x3f52, 0x3ef1, 0x3f51, 0x3e58, 0x3f39,
                                                         0x7fc0, 0x7f80, 0x7f80, 0xff80}));
  // 257 and 259 are ties at bfloat16's 8-bit precision: they go to the even neighbours 256 and 260.
  auto i = cast_to(make_tensor<int32_t>({2}, {257, 259}), DType::kBFloat16, 19);
  ASSERT_TRUE(i.is_ok()) << i.status().to_string();
  EXPECT_EQ(values<uint16_t>(*i), (std::vector<uint16_t>{0x4380, 0x4382}));
}

TEST(CastOps, BFloat16ToFloat) {
  auto y = cast_to(bits16(DType::kBFloat16, {0x3f80, 0xc040, 0x0001}), DType::kFloat64);
  ASSERT_TRUE(y.is_ok()) << y.status().to_string();
  EXPECT_EQ(values<double>(*y), (std::vector<double>{1.0, -3.0, 0x1p-133}));
}

TEST(CastOps, StringValuedToOfCast1) {
  auto y = run_cast(make_tensor<float>({2}, {1.9f, -1.9f}), Attr::s("to", "INT32"), 5);
  ASSERT_TRUE(y.is_ok()) << y.status().to_string();
  EXPECT_EQ(values<int32_t>(*y), (std::vector<int32_t>{1, -1}));
  auto bad = run_cast(make_tensor<float>({1}, {1}), Attr::s("to", "REAL"), 5);
  ASSERT_FALSE(bad.is_ok());
  EXPECT_NE(bad.status().message().find("REAL"), std::string::npos) << bad.status().message();
}

TEST(CastOps, UnsupportedAndInvalidTargets) {
  Tensor x = make_tensor<float>({1}, {1});
  auto str = cast_to(x, DType::kString);
  ASSERT_FALSE(str.is_ok());
  EXPECT_EQ(str.status().code(), StatusCode::kUnsupported) << str.status().to_string();
  auto f8 = run_cast(x, Attr::i("to", 17), 19);  // float8e4m3fn
  ASSERT_FALSE(f8.is_ok());
  EXPECT_EQ(f8.status().code(), StatusCode::kUnsupported) << f8.status().to_string();
  auto junk = run_cast(x, Attr::i("to", 999));
  ASSERT_FALSE(junk.is_ok());
  EXPECT_NE(junk.status().code(), StatusCode::kUnsupported);
  EXPECT_NE(junk.status().message().find("999"), std::string::npos) << junk.status().message();
}

TEST(CastOps, CastLikeTakesTheSecondInputsType) {
  ModelBuilder mb(15);
  mb.input("x", DType::kFloat32, {3}).input("like", DType::kInt8, {1}).node("CastLike", {"x", "like"}, {"y"})
      .output("y", DType::kUndefined);
  auto m = mb.build();
  ASSERT_TRUE(m.is_ok()) << m.status().to_string();
  auto ys = testing::run_once(*m, {make_tensor<float>({3}, {-1.5f, 200.0f, 3.99f}), make_tensor<int8_t>({1}, {0})});
  ASSERT_TRUE(ys.is_ok()) << ys.status().to_string();
  ASSERT_EQ((*ys)[0].dtype(), DType::kInt8);
  EXPECT_EQ(values<int8_t>((*ys)[0]), (std::vector<int8_t>{-1, 127, 3}));
}

}  // namespace
}  // namespace kiln::nn
