// Cases the ONNX node suite does not cover: round-half-to-even and saturation at both ends for
// int8, per-axis on a non-default axis, int32 dequantization, an all-zero DynamicQuantizeLinear,
// per-row/per-column zero points, int32 wrap-around, per-channel QLinearConv with bias and
// strides, and clear errors for malformed scales, zero points and convolution attributes.
#include <gtest/gtest.h>

#include <cmath>

#include "kiln/core/alloc_counter.h"
#include "kiln/nn/testing/model_builder.h"

namespace kiln::nn {
namespace {

using testing::Attr;
using testing::make_tensor;
using testing::ModelBuilder;

struct Input {
  std::string name;
  Tensor value;
  bool constant = false;
};

Result<Model> one_node(int opset, const std::string& op, const std::vector<Input>& inputs, size_t num_outputs,
                       const std::vector<Attr>& attrs, std::vector<Tensor>* feeds) {
  ModelBuilder mb(opset);
  std::vector<std::string> names, outs;
  for (const Input& in : inputs) {
    names.push_back(in.name);
    if (in.constant) {
      mb.initializer(in.name, in.value);
    } else {
      mb.input(in.name, in.value.dtype(), in.value.shape());
      feeds->push_back(in.value);
    }
  }
  for (size_t i = 0; i < num_outputs; ++i) outs.push_back("y" + std::to_string(i));
  mb.node(op, names, outs, attrs);
  for (const std::string& o : outs) mb.output(o, DType::kUndefined);
  return mb.build();
}

Result<std::vector<Tensor>> run_node(int opset, const std::string& op, const std::vector<Input>& inputs,
                                     const std::vector<Attr>& attrs = {}, size_t num_outputs = 1) {
  std::vector<Tensor> feeds;
  KILN_ASSIGN_OR_RETURN(Model m, one_node(opset, op, inputs, num_outputs, attrs, &feeds));
  return testing::run_once(m, feeds);
}

template <typename T>
std::vector<T> values(const Tensor& t) {
  return std::vector<T>(t.data<T>(), t.data<T>() + t.num_elements());
}

void expect_error(const Result<std::vector<Tensor>>& y, StatusCode code, const std::string& fragment) {
  ASSERT_FALSE(y.is_ok());
  EXPECT_EQ(y.status().code(), code) << y.status().to_string();
  EXPECT_NE(y.status().message().find(fragment), std::string::npos) << y.status().message();
}

TEST(QuantizeOps, QuantizeRoundsHalfToEvenAndSaturates) {
  auto y = run_node(13, "QuantizeLinear",
                    {{"x", make_tensor<float>({8}, {0.5f, 1.5f, 2.5f, -0.5f, -1.5f, -2.5f, 1000, -1000})},
                     {"s", make_tensor<float>({}, {1})},
                     {"z", make_tensor<int8_t>({}, {0})}});
  ASSERT_TRUE(y.is_ok()) << y.status().to_string();
  EXPECT_EQ(values<int8_t>((*y)[0]), (std::vector<int8_t>{0, 2, 2, 0, -2, -2, 127, -128}));
}

TEST(QuantizeOps, QuantizeWithoutZeroPointIsUint8) {
  auto y = run_node(13, "QuantizeLinear",
                    {{"x", make_tensor<float>({3}, {-1, 3, 600})}, {"s", make_tensor<float>({}, {2})}});
  ASSERT_TRUE(y.is_ok()) << y.status().to_string();
  EXPECT_EQ((*y)[0].dtype(), DType::kUInt8);
  EXPECT_EQ(values<uint8_t>((*y)[0]), (std::vector<uint8_t>{0, 2, 255}));
}

TEST(QuantizeOps, PerAxisOnTheLastAxis) {
  auto y = run_node(13, "QuantizeLinear",
                    {{"x", make_tensor<float>({2, 2}, {1, 1, 4, 4})},
                     {"s", make_tensor<float>({2}, {1, 2})},
                     {"z", make_tensor<uint8_t>({2}, {10, 20})}},
                    {Attr::i("axis", -1)});
  ASSERT_TRUE(y.is_ok()) << y.status().to_string();
  EXPECT_EQ(values<uint8_t>((*y)[0]), (std::vector<uint8_t>{11, 20, 14, 22}));  // 0.5 rounds to 0
}

TEST(QuantizeOps, DequantizeInt32AndPerAxis) {
  auto y = run_node(13, "DequantizeLinear",
                    {{"x", make_tensor<int32_t>({3}, {-7, 0, 1 << 20})}, {"s", make_tensor<float>({}, {0.5f})}});
  ASSERT_TRUE(y.is_ok()) << y.status().to_string();
  EXPECT_EQ(values<float>((*y)[0]), (std::vector<float>{-3.5f, 0, 524288.0f}));
  y = run_node(13, "DequantizeLinear",
               {{"x", make_tensor<int8_t>({2, 2}, {-128, 127, 0, 5})},
                {"s", make_tensor<float>({2}, {1, 0.5f})},
                {"z", make_tensor<int8_t>({2}, {-128, 5})}},
               {Attr::i("axis", 0)});
  ASSERT_TRUE(y.is_ok()) << y.status().to_string();
  EXPECT_EQ(values<float>((*y)[0]), (std::vector<float>{0, 255, -2.5f, 0}));
}

TEST(QuantizeOps, MalformedScalesAreErrors) {
  expect_error(
      run_node(13, "QuantizeLinear", {{"x", make_tensor<float>({2, 3}, {})}, {"s", make_tensor<float>({2}, {1, 1})}}),
      StatusCode::kInvalidArgument, "scale has 2 values");
  expect_error(run_node(13, "QuantizeLinear",
                        {{"x", make_tensor<float>({2, 3}, {})},
                         {"s", make_tensor<float>({3}, {1, 1, 1})},
                         {"z", make_tensor<uint8_t>({2}, {})}}),
               StatusCode::kInvalidArgument, "zero point shape");
  expect_error(run_node(10, "DequantizeLinear",
                        {{"x", make_tensor<uint8_t>({2, 3}, {})}, {"s", make_tensor<float>({3}, {1, 1, 1})}}),
               StatusCode::kInvalidArgument, "before opset 13");
  expect_error(
      run_node(21, "DequantizeLinear", {{"x", make_tensor<uint8_t>({2, 4}, {})}, {"s", make_tensor<float>({2, 2}, {})}},
               {Attr::i("block_size", 2)}),
      StatusCode::kUnsupported, "block_size");
  expect_error(run_node(13, "DequantizeLinear",
                        {{"x", make_tensor<uint8_t>({2}, {})},
                         {"s", make_tensor<float>({}, {1})},
                         {"z", make_tensor<int8_t>({}, {0})}}),
               StatusCode::kInvalidArgument, "zero point dtype");
}

TEST(QuantizeOps, DynamicQuantizeOfZerosUsesScaleOne) {
  auto y = run_node(11, "DynamicQuantizeLinear", {{"x", make_tensor<float>({3}, {0, 0, 0})}}, {}, 3);
  ASSERT_TRUE(y.is_ok()) << y.status().to_string();
  EXPECT_EQ(values<uint8_t>((*y)[0]), (std::vector<uint8_t>{0, 0, 0}));
  EXPECT_EQ(values<float>((*y)[1]), std::vector<float>{1});
  EXPECT_EQ(values<uint8_t>((*y)[2]), std::vector<uint8_t>{0});
}

TEST(QuantizeOps, MatMulIntegerPerRowAndPerColumnZeroPoints) {
  // A - za per row: [[1, 2], [1, 2]]; B - zb per column: [[1, -1], [2, 0]].
  auto y = run_node(10, "MatMulInteger",
                    {{"a", make_tensor<uint8_t>({2, 2}, {11, 12, 21, 22})},
                     {"b", make_tensor<int8_t>({2, 2}, {4, -6, 5, -5})},
                     {"za", make_tensor<uint8_t>({2}, {10, 20})},
                     {"zb", make_tensor<int8_t>({2}, {3, -5})}});
  ASSERT_TRUE(y.is_ok()) << y.status().to_string();
  EXPECT_EQ((*y)[0].dtype(), DType::kInt32);
  EXPECT_EQ(values<int32_t>((*y)[0]), (std::vector<int32_t>{5, -1, 5, -1}));
}

TEST(QuantizeOps, MatMulIntegerAccumulationWrapsAt32Bits) {
  // 40000 products of 255 * 255 exceed INT32_MAX; the result wraps modulo 2^32.
  const int64_t k = 40000;
  Tensor a(DType::kUInt8, {1, k}), b(DType::kUInt8, {k, 1});
  for (int64_t i = 0; i < k; ++i) a.data<uint8_t>()[i] = b.data<uint8_t>()[i] = 255;
  auto y = run_node(10, "MatMulInteger", {{"a", a}, {"b", b}});
  ASSERT_TRUE(y.is_ok()) << y.status().to_string();
  const int64_t exact = k * 255 * 255;
  EXPECT_EQ(values<int32_t>((*y)[0])[0], static_cast<int32_t>(static_cast<uint32_t>(exact)));
}

TEST(QuantizeOps, MatMulIntegerRejectsAZeroPointOfTheWrongShape) {
  expect_error(run_node(10, "MatMulInteger",
                        {{"a", make_tensor<uint8_t>({2, 3}, {})},
                         {"b", make_tensor<uint8_t>({3, 4}, {})},
                         {"za", make_tensor<uint8_t>({3}, {})}}),
               StatusCode::kInvalidArgument, "neither per tensor nor per row");
}

TEST(QuantizeOps, QLinearConvPerChannelWithBiasAndStride) {
  // x - 1 = [0, 1, 2, 3, 4] (1-D); w per channel: [1, 1] - 0 and [2, 0] - 1 = [1, -1].
  // Stride 2: channel 0 sums pairs (0+1, 2+3) = 1, 5; channel 1 gives -1, -1.
  // y = round((acc + bias) * x_scale * w_scale / y_scale) + 100.
  auto y = run_node(10, "QLinearConv",
                    {{"x", make_tensor<uint8_t>({1, 1, 5}, {1, 2, 3, 4, 5})},
                     {"xs", make_tensor<float>({}, {0.5f})},
                     {"xz", make_tensor<uint8_t>({}, {1})},
                     {"w", make_tensor<uint8_t>({2, 1, 2}, {1, 1, 2, 0})},
                     {"ws", make_tensor<float>({2}, {1, 4})},
                     {"wz", make_tensor<uint8_t>({2}, {0, 1})},
                     {"ys", make_tensor<float>({}, {1})},
                     {"yz", make_tensor<uint8_t>({}, {100})},
                     {"b", make_tensor<int32_t>({2}, {2, 0})}},
                    {Attr::ints("strides", {2})});
  ASSERT_TRUE(y.is_ok()) << y.status().to_string();
  EXPECT_EQ((*y)[0].shape(), (Shape{1, 2, 2}));
  // channel 0: (1+2)*0.5 = 1.5 -> 2, (5+2)*0.5 = 3.5 -> 4; channel 1: -1*2 = -2 twice.
  EXPECT_EQ(values<uint8_t>((*y)[0]), (std::vector<uint8_t>{102, 104, 98, 98}));
}

TEST(QuantizeOps, ConvIntegerAttributesAreChecked) {
  auto conv = [](const std::vector<Attr>& attrs, Shape w_shape = {2, 1, 3, 3}) {
    return run_node(10, "ConvInteger",
                    {{"x", make_tensor<uint8_t>({1, 2, 4, 4}, {})}, {"w", Tensor(DType::kUInt8, w_shape)}}, attrs);
  };
  expect_error(conv({}, {2, 3, 3, 3}), StatusCode::kInvalidArgument, "input channels per group");
  expect_error(conv({Attr::i("group", 3)}), StatusCode::kInvalidArgument, "does not divide");
  expect_error(conv({Attr::ints("dilations", {0, 1}), Attr::i("group", 2)}), StatusCode::kInvalidArgument, "positive");
  expect_error(conv({Attr::ints("pads", {1, 1}), Attr::i("group", 2)}), StatusCode::kInvalidArgument, "pads");
  expect_error(conv({Attr::i("group", 2)}, {2, 1, 6, 6}), StatusCode::kInvalidArgument, "exceeds the padded input");
  expect_error(conv({Attr::s("auto_pad", "SAME"), Attr::i("group", 2)}), StatusCode::kInvalidArgument, "auto_pad");
  auto ok = conv({Attr::i("group", 2), Attr::s("auto_pad", "SAME_UPPER"), Attr::ints("strides", {2, 2})});
  ASSERT_TRUE(ok.is_ok()) << ok.status().to_string();
  EXPECT_EQ((*ok)[0].shape(), (Shape{1, 2, 2, 2}));
}

TEST(QuantizeOps, RunsAllocateNothing) {
  struct Case {
    std::string op;
    std::vector<Input> inputs;
  };
  std::vector<Case> cases = {
      {"QLinearMatMul",
       {{"a", Tensor(DType::kUInt8, {2, 3, 4})},
        {"as", make_tensor<float>({}, {0.1f}), true},
        {"az", make_tensor<uint8_t>({}, {3}), true},
        {"b", Tensor(DType::kInt8, {4, 5}), true},
        {"bs", make_tensor<float>({5}, {1, 1, 1, 1, 1}), true},
        {"bz", Tensor(DType::kInt8, {5}), true},
        {"ys", make_tensor<float>({}, {0.2f}), true},
        {"yz", make_tensor<uint8_t>({}, {128}), true}}},
      {"QLinearConv",
       {{"x", Tensor(DType::kUInt8, {1, 4, 6, 6})},
        {"xs", make_tensor<float>({}, {0.1f}), true},
        {"xz", make_tensor<uint8_t>({}, {3}), true},
        {"w", Tensor(DType::kInt8, {4, 2, 3, 3}), true},
        {"ws", make_tensor<float>({}, {0.1f}), true},
        {"wz", make_tensor<int8_t>({}, {0}), true},
        {"ys", make_tensor<float>({}, {0.2f}), true},
        {"yz", make_tensor<int8_t>({}, {0}), true}}},
      {"DynamicQuantizeLinear", {{"x", Tensor(DType::kFloat32, {16})}}},
  };
  for (const Case& c : cases) {
    std::vector<Tensor> feeds;
    std::vector<Attr> attrs;
    if (c.op == "QLinearConv") attrs = {Attr::i("group", 2), Attr::ints("pads", {1, 1, 1, 1})};
    Result<Model> m = one_node(c.op == "DynamicQuantizeLinear" ? 11 : 10, c.op, c.inputs,
                               c.op == "DynamicQuantizeLinear" ? 3 : 1, attrs, &feeds);
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
