// Cases the ONNX node suite does not cover: exact window values (the suite's expectations use
// pi = 3.1415), integer output_datatype, a symmetric window of length 1, DFT of non-power-of-two
// and zero-padded lengths, onesided output, inverse round trips, the opset-20 axis input, STFT
// framing, and clear errors.
#include <gtest/gtest.h>

#include <cmath>

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

Result<Tensor> run_node(int opset, const std::string& op, const std::vector<Input>& inputs,
                        const std::vector<Attr>& attrs = {}) {
  ModelBuilder mb(opset);
  std::vector<Tensor> feeds;
  std::vector<std::string> names;
  for (const Input& in : inputs) {
    names.push_back(in.name);
    if (in.name.empty()) continue;
    if (in.constant) {
      mb.initializer(in.name, in.value);
    } else {
      mb.input(in.name, in.value.dtype(), in.value.shape());
      feeds.push_back(in.value);
    }
  }
  mb.node(op, names, {"y"}, attrs).output("y", DType::kUndefined);
  KILN_ASSIGN_OR_RETURN(Model m, mb.build());
  KILN_ASSIGN_OR_RETURN(std::vector<Tensor> ys, testing::run_once(m, feeds));
  return ys[0];
}

void expect_values(const Tensor& t, const Shape& shape, const std::vector<float>& want, float tol = 1e-5f) {
  ASSERT_EQ(t.shape(), shape);
  ASSERT_EQ(t.num_elements(), static_cast<int64_t>(want.size()));
  for (size_t i = 0; i < want.size(); ++i) EXPECT_NEAR(t.data<float>()[i], want[i], tol) << "at " << i;
}

void expect_error(const Result<Tensor>& y, StatusCode code, const std::string& fragment) {
  ASSERT_FALSE(y.is_ok());
  EXPECT_EQ(y.status().code(), code) << y.status().to_string();
  EXPECT_NE(y.status().message().find(fragment), std::string::npos) << y.status().message();
}

Input size_input(int64_t n) { return {"size", make_tensor<int64_t>({}, {n}), true}; }

TEST(SignalOps, WindowValues) {
  auto y = run_node(17, "HannWindow", {size_input(4)});
  ASSERT_TRUE(y.is_ok()) << y.status().to_string();
  expect_values(*y, {4}, {0, 0.5f, 1, 0.5f});
  y = run_node(17, "HannWindow", {size_input(5)}, {Attr::i("periodic", 0)});
  ASSERT_TRUE(y.is_ok()) << y.status().to_string();
  expect_values(*y, {5}, {0, 0.5f, 1, 0.5f, 0});
  y = run_node(17, "HammingWindow", {size_input(2)});
  ASSERT_TRUE(y.is_ok()) << y.status().to_string();
  expect_values(*y, {2}, {4.0f / 46.0f, 1});
  y = run_node(17, "BlackmanWindow", {size_input(3)}, {Attr::i("periodic", 0)});
  ASSERT_TRUE(y.is_ok()) << y.status().to_string();
  expect_values(*y, {3}, {0, 1, 0});
  y = run_node(17, "HannWindow", {size_input(1)}, {Attr::i("periodic", 0)});
  ASSERT_TRUE(y.is_ok()) << y.status().to_string();
  expect_values(*y, {1}, {1});
}

TEST(SignalOps, WindowIntegerOutputTruncates) {
  auto y = run_node(17, "HannWindow", {size_input(4)}, {Attr::i("output_datatype", 7)});
  ASSERT_TRUE(y.is_ok()) << y.status().to_string();
  ASSERT_EQ(y->dtype(), DType::kInt64);
  EXPECT_EQ(std::vector<int64_t>(y->data<int64_t>(), y->data<int64_t>() + 4), (std::vector<int64_t>{0, 0, 1, 0}));
}

TEST(SignalOps, WindowSizeErrors) {
  expect_error(run_node(17, "HannWindow", {size_input(-1)}), StatusCode::kInvalidArgument, "non-negative");
  // A size that is a graph input must be bound at compile time.
  expect_error(run_node(17, "HannWindow", {{"size", make_tensor<int64_t>({}, {4})}}), StatusCode::kNeedsValue, "size");
  expect_error(run_node(17, "HannWindow", {size_input(4)}, {Attr::i("output_datatype", 8)}), StatusCode::kUnsupported,
               "output_datatype");
}

TEST(SignalOps, DftOfPowerOfTwoAndOtherLengths) {
  // [1, 2, 3, 4] -> [10, -2+2i, -2, -2-2i]
  auto y = run_node(17, "DFT", {{"x", make_tensor<float>({1, 4, 1}, {1, 2, 3, 4})}});
  ASSERT_TRUE(y.is_ok()) << y.status().to_string();
  expect_values(*y, {1, 4, 2}, {10, 0, -2, 2, -2, 0, -2, -2});
  // Length 3: [1, 0, 0] -> all ones; [0, 1, 0] -> exp(-2 pi i k / 3).
  y = run_node(17, "DFT", {{"x", make_tensor<float>({2, 3, 1}, {1, 0, 0, 0, 1, 0})}});
  ASSERT_TRUE(y.is_ok()) << y.status().to_string();
  const float c = -0.5f, s = std::sqrt(3.0f) / 2;
  expect_values(*y, {2, 3, 2}, {1, 0, 1, 0, 1, 0, 1, 0, c, -s, c, s});
}

TEST(SignalOps, DftZeroPadsToDftLengthAndReturnsOneSide) {
  // [1, 1] padded to 4: [2, 1-i, 0, 1+i]; onesided keeps 4/2 + 1 = 3 bins.
  auto y =
      run_node(17, "DFT", {{"x", make_tensor<float>({1, 2, 1}, {1, 1})}, {"n", make_tensor<int64_t>({}, {4}), true}},
               {Attr::i("onesided", 1)});
  ASSERT_TRUE(y.is_ok()) << y.status().to_string();
  expect_values(*y, {1, 3, 2}, {2, 0, 1, -1, 0, 0});
}

TEST(SignalOps, DftInverseRoundTrips) {
  auto y = run_node(17, "DFT", {{"x", make_tensor<float>({1, 4, 2}, {10, 0, -2, 2, -2, 0, -2, -2})}},
                    {Attr::i("inverse", 1)});
  ASSERT_TRUE(y.is_ok()) << y.status().to_string();
  expect_values(*y, {1, 4, 2}, {1, 0, 2, 0, 3, 0, 4, 0});
}

TEST(SignalOps, DftOpset20TakesAxisAsAnInput) {
  // Transform along axis -2 (the 2-long signal dimension), not axis 1.
  auto y = run_node(20, "DFT",
                    {{"x", make_tensor<float>({1, 2, 2, 1}, {1, 2, 3, 4})},
                     {"", {}},
                     {"axis", make_tensor<int64_t>({}, {-2}), true}});
  ASSERT_TRUE(y.is_ok()) << y.status().to_string();
  expect_values(*y, {1, 2, 2, 2}, {3, 0, -1, 0, 7, 0, -1, 0});
}

TEST(SignalOps, DftErrors) {
  Tensor x = make_tensor<float>({1, 4, 1}, {});
  expect_error(run_node(17, "DFT", {{"x", x}}, {Attr::i("axis", 2)}), StatusCode::kInvalidArgument, "axis 2");
  expect_error(run_node(17, "DFT", {{"x", x}}, {Attr::i("inverse", 1), Attr::i("onesided", 1)}),
               StatusCode::kUnsupported, "onesided inverse");
  expect_error(run_node(17, "DFT", {{"x", make_tensor<float>({1, 4, 3}, {})}}), StatusCode::kInvalidArgument, "1 or 2");
  expect_error(run_node(17, "DFT", {{"x", x}, {"n", make_tensor<int64_t>({}, {0}), true}}),
               StatusCode::kInvalidArgument, "dft_length");
}

TEST(SignalOps, StftFramesTheSignal) {
  // Signal [1, 2, 3, 4, 5], frames of 2 every 2 samples: [1, 2], [3, 4]; DC and Nyquist bins.
  auto y = run_node(17, "STFT",
                    {{"x", make_tensor<float>({1, 5, 1}, {1, 2, 3, 4, 5})},
                     {"step", make_tensor<int64_t>({}, {2}), true},
                     {"", {}},
                     {"len", make_tensor<int64_t>({}, {2}), true}});
  ASSERT_TRUE(y.is_ok()) << y.status().to_string();
  expect_values(*y, {1, 2, 2, 2}, {3, 0, -1, 0, 7, 0, -1, 0});
  // A window weights each frame: [1, 0] keeps the first sample only.
  y = run_node(17, "STFT",
               {{"x", make_tensor<float>({1, 5, 1}, {1, 2, 3, 4, 5})},
                {"step", make_tensor<int64_t>({}, {3}), true},
                {"w", make_tensor<float>({2}, {1, 0})}},
               {Attr::i("onesided", 0)});
  ASSERT_TRUE(y.is_ok()) << y.status().to_string();
  expect_values(*y, {1, 2, 2, 2}, {1, 0, 1, 0, 4, 0, 4, 0});
}

TEST(SignalOps, StftErrors) {
  Tensor x = make_tensor<float>({1, 5, 1}, {});
  Input step = {"step", make_tensor<int64_t>({}, {1}), true};
  expect_error(run_node(17, "STFT", {{"x", x}, {"step", make_tensor<int64_t>({}, {0}), true}}),
               StatusCode::kInvalidArgument, "frame_step");
  expect_error(run_node(17, "STFT", {{"x", x}, step, {"", {}}, {"len", make_tensor<int64_t>({}, {6}), true}}),
               StatusCode::kInvalidArgument, "frame length 6");
  expect_error(
      run_node(17, "STFT",
               {{"x", x}, step, {"w", make_tensor<float>({3}, {})}, {"len", make_tensor<int64_t>({}, {4}), true}}),
      StatusCode::kInvalidArgument, "differs from the window length");
  expect_error(run_node(17, "STFT", {{"x", make_tensor<float>({5, 1}, {})}, step}), StatusCode::kInvalidArgument,
               "[batch, length, 1 or 2]");
}

}  // namespace
}  // namespace kiln::nn
