// Cases the ONNX node suite does not cover: reverse and bidirectional directions, sequence_lens
// (zeroed Y past a sequence's end, reverse runs starting at each sequence's own end, bad lengths
// at run time), LSTM input_forget, GRU linear_before_reset, custom activations with clip,
// layout=1 with several steps, clear errors, and allocation-free runs.
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
  std::string name;  // empty: an omitted optional input
  Tensor value;
  bool constant = false;
};

Result<Model> one_node(const std::string& op, const std::vector<Input>& inputs, const std::vector<std::string>& outputs,
                       const std::vector<Attr>& attrs, std::vector<Tensor>* feeds) {
  ModelBuilder mb(14);
  std::vector<std::string> names;
  for (const Input& in : inputs) {
    names.push_back(in.name);
    if (in.name.empty()) continue;
    if (in.constant) {
      mb.initializer(in.name, in.value);
    } else {
      mb.input(in.name, in.value.dtype(), in.value.shape());
      feeds->push_back(in.value);
    }
  }
  mb.node(op, names, outputs, attrs);
  for (const std::string& o : outputs)
    if (!o.empty()) mb.output(o, DType::kUndefined);
  return mb.build();
}

Result<std::vector<Tensor>> run_node(const std::string& op, const std::vector<Input>& inputs,
                                     const std::vector<std::string>& outputs, const std::vector<Attr>& attrs = {}) {
  std::vector<Tensor> feeds;
  KILN_ASSIGN_OR_RETURN(Model m, one_node(op, inputs, outputs, attrs, &feeds));
  return testing::run_once(m, feeds);
}

void expect_values(const Tensor& t, const Shape& shape, const std::vector<float>& want) {
  ASSERT_EQ(t.shape(), shape);
  ASSERT_EQ(t.num_elements(), static_cast<int64_t>(want.size()));
  for (size_t i = 0; i < want.size(); ++i) EXPECT_NEAR(t.data<float>()[i], want[i], 1e-6) << "at " << i;
}

float sigmoid(float x) { return 1.0f / (1.0f + std::exp(-x)); }

Tensor scalar3(float v) { return make_tensor<float>({1, 1, 1}, {v}); }

TEST(RnnOps, BidirectionalRnnByHand) {
  // H = I = 1, W = 1, R = 0.5, X = [1, 2]; the backward direction starts at t = 1.
  auto y = run_node("RNN",
                    {{"X", make_tensor<float>({2, 1, 1}, {1, 2})},
                     {"W", make_tensor<float>({2, 1, 1}, {1, 1})},
                     {"R", make_tensor<float>({2, 1, 1}, {0.5f, 0.5f})}},
                    {"Y", "Y_h"}, {Attr::i("hidden_size", 1), Attr::s("direction", "bidirectional")});
  ASSERT_TRUE(y.is_ok()) << y.status().to_string();
  const float f0 = std::tanh(1.0f), f1 = std::tanh(2.0f + 0.5f * f0);
  const float b1 = std::tanh(2.0f), b0 = std::tanh(1.0f + 0.5f * b1);
  expect_values((*y)[0], {2, 2, 1, 1}, {f0, b0, f1, b1});
  expect_values((*y)[1], {2, 1, 1}, {f1, b0});
}

TEST(RnnOps, ReverseWithSequenceLensStartsAtEachSequenceEnd) {
  // Batch 0 has length 2 of 3: it runs t = 1 then t = 0, and Y at t = 2 stays zero.
  auto y = run_node("RNN",
                    {{"X", make_tensor<float>({3, 2, 1}, {1, 1, 2, 2, 3, 3})},
                     {"W", scalar3(1)},
                     {"R", scalar3(0.5f)},
                     {"", {}},
                     {"lens", make_tensor<int32_t>({2}, {2, 3})}},
                    {"Y", "Y_h"}, {Attr::i("hidden_size", 1), Attr::s("direction", "reverse")});
  ASSERT_TRUE(y.is_ok()) << y.status().to_string();
  const float a1 = std::tanh(2.0f), a0 = std::tanh(1.0f + 0.5f * a1);
  const float c2 = std::tanh(3.0f), c1 = std::tanh(2.0f + 0.5f * c2), c0 = std::tanh(1.0f + 0.5f * c1);
  expect_values((*y)[0], {3, 1, 2, 1}, {a0, c0, a1, c1, 0, c2});
  expect_values((*y)[1], {1, 2, 1}, {a0, c0});
}

TEST(RnnOps, ZeroLengthSequenceKeepsTheInitialState) {
  auto y = run_node("GRU",
                    {{"X", make_tensor<float>({1, 1, 1}, {5})},
                     {"W", make_tensor<float>({1, 3, 1}, {1, 1, 1})},
                     {"R", make_tensor<float>({1, 3, 1}, {1, 1, 1})},
                     {"", {}},
                     {"lens", make_tensor<int32_t>({1}, {0})},
                     {"h0", scalar3(0.25f)}},
                    {"Y", "Y_h"}, {Attr::i("hidden_size", 1)});
  ASSERT_TRUE(y.is_ok()) << y.status().to_string();
  expect_values((*y)[0], {1, 1, 1, 1}, {0});
  expect_values((*y)[1], {1, 1, 1}, {0.25f});
}

TEST(RnnOps, SequenceLengthOutOfRangeIsARunTimeError) {
  auto y = run_node("RNN",
                    {{"X", make_tensor<float>({3, 1, 1}, {})},
                     {"W", scalar3(1)},
                     {"R", scalar3(1)},
                     {"", {}},
                     {"lens", make_tensor<int32_t>({1}, {4})}},
                    {"Y"}, {Attr::i("hidden_size", 1)});
  ASSERT_FALSE(y.is_ok());
  EXPECT_EQ(y.status().code(), StatusCode::kOutOfRange) << y.status().to_string();
  EXPECT_NE(y.status().message().find("sequence_lens[0] = 4"), std::string::npos) << y.status().message();
}

TEST(RnnOps, LstmInputForgetCouplesTheGates) {
  // W = R = 0 and Wb = [i, o, f, c] biases; with input_forget the forget gate is 1 - i.
  auto y = run_node("LSTM",
                    {{"X", make_tensor<float>({1, 1, 1}, {1})},
                     {"W", make_tensor<float>({1, 4, 1}, {0, 0, 0, 0})},
                     {"R", make_tensor<float>({1, 4, 1}, {0, 0, 0, 0})},
                     {"B", make_tensor<float>({1, 8}, {0.3f, 0.2f, 5.0f, 0.4f, 0, 0, 0, 0})},
                     {"", {}},
                     {"", {}},
                     {"c0", scalar3(2.0f)}},
                    {"", "Y_h", "Y_c"}, {Attr::i("hidden_size", 1), Attr::i("input_forget", 1)});
  ASSERT_TRUE(y.is_ok()) << y.status().to_string();
  const float i = sigmoid(0.3f), c = (1 - i) * 2.0f + i * std::tanh(0.4f), h = sigmoid(0.2f) * std::tanh(c);
  expect_values((*y)[0], {1, 1, 1}, {h});
  expect_values((*y)[1], {1, 1, 1}, {c});
}

TEST(RnnOps, GruLinearBeforeResetChangesWhereResetApplies) {
  // z = r = sigmoid(0) = 0.5, Wh = 1, Rh = 2, Rbh = 0.5, h0 = 1, x = 1.
  std::vector<Input> in = {{"X", make_tensor<float>({1, 1, 1}, {1})},
                           {"W", make_tensor<float>({1, 3, 1}, {0, 0, 1})},
                           {"R", make_tensor<float>({1, 3, 1}, {0, 0, 2})},
                           {"B", make_tensor<float>({1, 6}, {0, 0, 0, 0, 0, 0.5f})},
                           {"", {}},
                           {"h0", scalar3(1)}};
  auto y0 = run_node("GRU", in, {"", "Y_h"}, {Attr::i("hidden_size", 1)});
  auto y1 = run_node("GRU", in, {"", "Y_h"}, {Attr::i("hidden_size", 1), Attr::i("linear_before_reset", 1)});
  ASSERT_TRUE(y0.is_ok()) << y0.status().to_string();
  ASSERT_TRUE(y1.is_ok()) << y1.status().to_string();
  expect_values((*y0)[0], {1, 1, 1}, {0.5f * std::tanh(1 + 0.5f * 1 * 2 + 0.5f) + 0.5f});
  expect_values((*y1)[0], {1, 1, 1}, {0.5f * std::tanh(1 + 0.5f * (1 * 2 + 0.5f)) + 0.5f});
}

TEST(RnnOps, CustomActivationWithClip) {
  // Affine(alpha 2, beta 0.5) of the clipped pre-activation: 3 clips to 1, giving 2.5.
  auto y =
      run_node("RNN", {{"X", make_tensor<float>({1, 1, 1}, {3})}, {"W", scalar3(1)}, {"R", scalar3(0)}}, {"", "Y_h"},
               {Attr::i("hidden_size", 1), Attr::strings("activations", {"affine"}),
                Attr::floats("activation_alpha", {2}), Attr::floats("activation_beta", {0.5f}), Attr::f("clip", 1.0f)});
  ASSERT_TRUE(y.is_ok()) << y.status().to_string();
  expect_values((*y)[0], {1, 1, 1}, {2.5f});
}

TEST(RnnOps, LayoutOneIsBatchFirst) {
  auto y = run_node("RNN", {{"X", make_tensor<float>({2, 2, 1}, {1, 2, 3, 4})}, {"W", scalar3(1)}, {"R", scalar3(0)}},
                    {"Y", "Y_h"}, {Attr::i("hidden_size", 1), Attr::i("layout", 1)});
  ASSERT_TRUE(y.is_ok()) << y.status().to_string();
  expect_values((*y)[0], {2, 2, 1, 1}, {std::tanh(1.0f), std::tanh(2.0f), std::tanh(3.0f), std::tanh(4.0f)});
  expect_values((*y)[1], {2, 1, 1}, {std::tanh(2.0f), std::tanh(4.0f)});
}

TEST(RnnOps, BadAttributesAndShapesAreClearErrors) {
  auto run = [](const std::vector<Attr>& attrs, Shape w_shape = {1, 1, 1}) {
    return run_node(
        "RNN", {{"X", make_tensor<float>({1, 1, 1}, {})}, {"W", Tensor(DType::kFloat32, w_shape)}, {"R", scalar3(0)}},
        {"Y"}, attrs);
  };
  auto expect_error = [](const Result<std::vector<Tensor>>& y, StatusCode code, const std::string& fragment) {
    ASSERT_FALSE(y.is_ok());
    EXPECT_EQ(y.status().code(), code) << y.status().to_string();
    EXPECT_NE(y.status().message().find(fragment), std::string::npos) << y.status().message();
  };
  expect_error(run({Attr::i("hidden_size", 1)}, {1, 2, 1}), StatusCode::kInvalidArgument,
               "input W must have shape [1, 1, 1]");
  expect_error(run({Attr::s("direction", "sideways")}), StatusCode::kInvalidArgument, "direction");
  expect_error(run({Attr::strings("activations", {"Gelu"})}), StatusCode::kUnsupported, "'Gelu'");
  expect_error(run({Attr::strings("activations", {"Tanh", "Tanh", "Tanh"})}), StatusCode::kInvalidArgument,
               "must list 1");
  expect_error(run({Attr::i("layout", 2)}), StatusCode::kInvalidArgument, "layout");
  expect_error(run({Attr::f("clip", -1.0f)}), StatusCode::kInvalidArgument, "clip");
  expect_error(run({Attr::i("hidden_size", 2)}), StatusCode::kInvalidArgument, "last dimension of R");
}

TEST(RnnOps, RunsAllocateNothing) {
  const int64_t S = 4, N = 3, I = 5, H = 6;
  std::vector<Input> lstm = {
      {"X", Tensor(DType::kFloat32, {S, N, I})},           {"W", Tensor(DType::kFloat32, {2, 4 * H, I}), true},
      {"R", Tensor(DType::kFloat32, {2, 4 * H, H}), true}, {"B", Tensor(DType::kFloat32, {2, 8 * H}), true},
      {"lens", make_tensor<int32_t>({N}, {4, 2, 3})},      {"h0", Tensor(DType::kFloat32, {2, N, H})},
      {"c0", Tensor(DType::kFloat32, {2, N, H})},          {"P", Tensor(DType::kFloat32, {2, 3 * H}), true}};
  std::vector<Input> gru = {{"X", Tensor(DType::kFloat32, {S, N, I})},
                            {"W", Tensor(DType::kFloat32, {2, 3 * H, I}), true},
                            {"R", Tensor(DType::kFloat32, {2, 3 * H, H}), true}};
  struct Case {
    std::string op;
    std::vector<Input> inputs;
    std::vector<std::string> outputs;
  };
  for (const Case& c : {Case{"LSTM", lstm, {"Y", "Y_h", "Y_c"}}, Case{"GRU", gru, {"Y", "Y_h"}}}) {
    std::vector<Tensor> feeds;
    Result<Model> m =
        one_node(c.op, c.inputs, c.outputs, {Attr::i("hidden_size", H), Attr::s("direction", "bidirectional")}, &feeds);
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
