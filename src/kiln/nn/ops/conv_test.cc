// Conv and ConvTranspose cases the ONNX suite does not cover: grouped, dilated and strided
// convolutions with asymmetric padding checked against a naive loop written from the definition,
// the 1x1 path, odd SAME padding, output_shape padding, double precision, and clear errors for
// malformed nodes.
#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "kiln/core/alloc_counter.h"
#include "kiln/nn/testing/model_builder.h"

namespace kiln::nn {
namespace {

using testing::Attr;
using testing::make_tensor;
using testing::ModelBuilder;

Tensor random_tensor(Shape shape, uint32_t seed) {
  Tensor t(DType::kFloat32, std::move(shape));
  std::mt19937 gen(seed);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  for (int64_t i = 0; i < t.num_elements(); ++i) t.data<float>()[i] = dist(gen);
  return t;
}

struct Conv2dParams {
  int64_t group = 1;
  int64_t sh = 1, sw = 1, dh = 1, dw = 1;
  int64_t pt = 0, pl = 0, pb = 0, pr = 0;  // top, left, bottom, right
};

// y[n, m, oh, ow] = b[m] + sum over the group's input channels and kernel taps that fall inside X.
Tensor naive_conv2d(const Tensor& x, const Tensor& w, const Tensor* b, const Conv2dParams& p) {
  const int64_t N = x.shape()[0], C = x.shape()[1], H = x.shape()[2], W = x.shape()[3];
  const int64_t M = w.shape()[0], KH = w.shape()[2], KW = w.shape()[3];
  const int64_t OH = (H + p.pt + p.pb - ((KH - 1) * p.dh + 1)) / p.sh + 1;
  const int64_t OW = (W + p.pl + p.pr - ((KW - 1) * p.dw + 1)) / p.sw + 1;
  const int64_t cg = C / p.group, mg = M / p.group;
  Tensor y(DType::kFloat32, {N, M, OH, OW});
  for (int64_t n = 0; n < N; ++n)
    for (int64_t m = 0; m < M; ++m)
      for (int64_t oh = 0; oh < OH; ++oh)
        for (int64_t ow = 0; ow < OW; ++ow) {
          double acc = b ? b->data<float>()[m] : 0.0;
          for (int64_t c = 0; c < cg; ++c)
            for (int64_t kh = 0; kh < KH; ++kh)
              for (int64_t kw = 0; kw < KW; ++kw) {
                const int64_t ih = oh * p.sh + kh * p.dh - p.pt, iw = ow * p.sw + kw * p.dw - p.pl;
                if (ih < 0 || ih >= H || iw < 0 || iw >= W) continue;
                const int64_t ic = (m / mg) * cg + c;
                acc += double(x.data<float>()[((n * C + ic) * H + ih) * W + iw]) *
                       w.data<float>()[((m * cg + c) * KH + kh) * KW + kw];
              }
          y.data<float>()[((n * M + m) * OH + oh) * OW + ow] = static_cast<float>(acc);
        }
  return y;
}

// Every input pixel adds x * w to the output pixel it lands on: y[oh] += x[ih] * w[kh] for
// oh = ih * stride + kh * dilation - pad_begin.
Tensor naive_conv_transpose2d(const Tensor& x, const Tensor& w, const Tensor* b, const Conv2dParams& p, int64_t OH,
                              int64_t OW) {
  const int64_t N = x.shape()[0], C = x.shape()[1], H = x.shape()[2], W = x.shape()[3];
  const int64_t mg = w.shape()[1], KH = w.shape()[2], KW = w.shape()[3];
  const int64_t M = mg * p.group, cg = C / p.group;
  Tensor y(DType::kFloat32, {N, M, OH, OW});
  std::vector<double> acc(static_cast<size_t>(y.num_elements()), 0.0);
  for (int64_t n = 0; n < N; ++n)
    for (int64_t ic = 0; ic < C; ++ic)
      for (int64_t j = 0; j < mg; ++j)
        for (int64_t ih = 0; ih < H; ++ih)
          for (int64_t iw = 0; iw < W; ++iw)
            for (int64_t kh = 0; kh < KH; ++kh)
              for (int64_t kw = 0; kw < KW; ++kw) {
                const int64_t oh = ih * p.sh + kh * p.dh - p.pt, ow = iw * p.sw + kw * p.dw - p.pl;
                if (oh < 0 || oh >= OH || ow < 0 || ow >= OW) continue;
                const int64_t m = (ic / cg) * mg + j;
                acc[((n * M + m) * OH + oh) * OW + ow] += double(x.data<float>()[((n * C + ic) * H + ih) * W + iw]) *
                                                          w.data<float>()[((ic * mg + j) * KH + kh) * KW + kw];
              }
  for (int64_t i = 0; i < y.num_elements(); ++i) {
    const int64_t m = (i / (OH * OW)) % M;
    y.data<float>()[i] = static_cast<float>(acc[i] + (b ? b->data<float>()[m] : 0.0));
  }
  return y;
}

void expect_near(const Tensor& got, const Tensor& want, float tol = 1e-4f) {
  ASSERT_EQ(got.shape(), want.shape());
  for (int64_t i = 0; i < want.num_elements(); ++i)
    ASSERT_NEAR(got.data<float>()[i], want.data<float>()[i], tol) << "at flat index " << i;
}

std::vector<Attr> attrs_2d(const Conv2dParams& p) {
  return {Attr::i("group", p.group), Attr::ints("strides", {p.sh, p.sw}), Attr::ints("dilations", {p.dh, p.dw}),
          Attr::ints("pads", {p.pt, p.pl, p.pb, p.pr})};
}

Result<Model> build_node(const std::string& op, const std::vector<Tensor>& inputs, const std::vector<Attr>& attrs,
                         int opset = 13) {
  ModelBuilder mb(opset);
  std::vector<std::string> names;
  for (size_t i = 0; i < inputs.size(); ++i) {
    names.push_back("in" + std::to_string(i));
    mb.input(names.back(), inputs[i].dtype(), inputs[i].shape());
  }
  mb.node(op, names, {"y"}, attrs).output("y", DType::kUndefined);
  return mb.build();
}

Result<std::vector<Tensor>> run_node(const std::string& op, const std::vector<Tensor>& inputs,
                                     const std::vector<Attr>& attrs, int opset = 13) {
  KILN_ASSIGN_OR_RETURN(Model m, build_node(op, inputs, attrs, opset));
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

void check_conv2d(Shape xs, Shape ws, const Conv2dParams& p, bool bias) {
  Tensor x = random_tensor(xs, 1), w = random_tensor(ws, 2), b = random_tensor({ws[0]}, 3);
  std::vector<Tensor> in = {x, w};
  if (bias) in.push_back(b);
  auto y = run_node("Conv", in, attrs_2d(p));
  ASSERT_TRUE(y.is_ok()) << y.status().to_string();
  expect_near((*y)[0], naive_conv2d(x, w, bias ? &b : nullptr, p));
}

TEST(ConvOps, GroupedDilatedStridedAsymmetricPadding) {
  Conv2dParams p;
  p.group = 2;
  p.sh = 2;
  p.dh = 2;
  p.pt = 1;
  p.pl = 0;
  p.pb = 2;
  p.pr = 1;
  check_conv2d({2, 4, 7, 6}, {6, 2, 3, 2}, p, true);
}

TEST(ConvOps, DepthwiseWithMultiplierStride2) {
  Conv2dParams p;
  p.group = 3;
  p.sh = p.sw = 2;
  p.pt = p.pl = p.pb = p.pr = 1;
  check_conv2d({1, 3, 9, 8}, {6, 1, 3, 3}, p, true);
}

TEST(ConvOps, PointwiseWithoutBias) { check_conv2d({2, 5, 4, 3}, {7, 5, 1, 1}, Conv2dParams{}, false); }

TEST(ConvOps, PaddingLargerThanKernelGivesBiasAtTheBorder) {
  Conv2dParams p;
  p.pt = p.pl = p.pb = p.pr = 3;
  p.sw = 3;
  check_conv2d({1, 2, 3, 4}, {2, 2, 2, 2}, p, true);
}

TEST(ConvOps, SameUpperAndLowerPlaceOddPaddingDifferently) {
  Tensor x = make_tensor<float>({1, 1, 4}, {1, 2, 3, 4});
  Tensor w = make_tensor<float>({1, 1, 2}, {1, 10});
  auto upper = run_node("Conv", {x, w}, {Attr::s("auto_pad", "SAME_UPPER")});
  auto lower = run_node("Conv", {x, w}, {Attr::s("auto_pad", "SAME_LOWER")});
  ASSERT_TRUE(upper.is_ok()) << upper.status().to_string();
  ASSERT_TRUE(lower.is_ok()) << lower.status().to_string();
  expect_near((*upper)[0], make_tensor<float>({1, 1, 4}, {21, 32, 43, 4}));
  expect_near((*lower)[0], make_tensor<float>({1, 1, 4}, {10, 21, 32, 43}));
}

TEST(ConvOps, DoublePrecision) {
  Tensor x(DType::kFloat64, {1, 1, 3});
  Tensor w(DType::kFloat64, {1, 1, 2});
  for (int i = 0; i < 3; ++i) x.data<double>()[i] = 1 + i * 1e-9;
  w.data<double>()[0] = 1;
  w.data<double>()[1] = -1;
  auto y = run_node("Conv", {x, w}, {});
  ASSERT_TRUE(y.is_ok()) << y.status().to_string();
  ASSERT_EQ((*y)[0].shape(), (Shape{1, 1, 2}));
  EXPECT_NEAR((*y)[0].data<double>()[0], -1e-9, 1e-15);
  EXPECT_NEAR((*y)[0].data<double>()[1], -1e-9, 1e-15);
}

TEST(ConvOps, ConvTransposeGroupedDilatedWithOutputPadding) {
  Conv2dParams p;
  p.group = 2;
  p.sh = p.sw = 2;
  p.dw = 2;
  p.pt = 1;
  p.pr = 1;
  Tensor x = random_tensor({1, 4, 3, 3}, 4), w = random_tensor({4, 1, 3, 3}, 5), b = random_tensor({2}, 6);
  std::vector<Attr> attrs = attrs_2d(p);
  attrs.push_back(Attr::ints("output_padding", {1, 1}));
  auto y = run_node("ConvTranspose", {x, w, b}, attrs);
  ASSERT_TRUE(y.is_ok()) << y.status().to_string();
  // OH = 2 * 2 + 1 + 3 - 1 - 0 = 7, OW = 2 * 2 + 1 + 5 - 0 - 1 = 9
  expect_near((*y)[0], naive_conv_transpose2d(x, w, &b, p, 7, 9));
}

TEST(ConvOps, ConvTransposeOutputShapePadsFollowAutoPad) {
  // Unpadded output is [1, 1, 3, 2, 2]; output_shape 4 leaves one position of padding.
  Tensor x = make_tensor<float>({1, 1, 2}, {1, 2});
  Tensor w = make_tensor<float>({1, 1, 3}, {1, 1, 1});
  auto notset = run_node("ConvTranspose", {x, w}, {Attr::ints("strides", {2}), Attr::ints("output_shape", {4})});
  auto upper = run_node("ConvTranspose", {x, w},
                        {Attr::ints("strides", {2}), Attr::ints("output_shape", {4}),
                         Attr::s("auto_pad", "SAME_UPPER")});
  auto longer = run_node("ConvTranspose", {x, w}, {Attr::ints("strides", {2}), Attr::ints("output_shape", {6})});
  ASSERT_TRUE(notset.is_ok()) << notset.status().to_string();
  ASSERT_TRUE(upper.is_ok()) << upper.status().to_string();
  ASSERT_TRUE(longer.is_ok()) << longer.status().to_string();
  expect_near((*notset)[0], make_tensor<float>({1, 1, 4}, {1, 3, 2, 2}));
  expect_near((*upper)[0], make_tensor<float>({1, 1, 4}, {1, 1, 3, 2}));
  expect_near((*longer)[0], make_tensor<float>({1, 1, 6}, {1, 1, 3, 2, 2, 0}));
}

TEST(ConvOps, RunsAllocateNothing) {
  Conv2dParams p;
  p.pt = p.pl = 1;
  const std::vector<Tensor> conv = {random_tensor({1, 2, 5, 5}, 7), random_tensor({3, 2, 3, 3}, 8),
                                    random_tensor({3}, 9)};
  Result<Model> m = build_node("Conv", conv, attrs_2d(p));
  ASSERT_TRUE(m.is_ok()) << m.status().to_string();
  expect_runs_allocate_nothing(*m, conv, "Conv");
  const std::vector<Tensor> convt = {random_tensor({1, 2, 3, 3}, 7), random_tensor({2, 3, 3, 3}, 8)};
  m = build_node("ConvTranspose", convt, {Attr::ints("strides", {2, 2})});
  ASSERT_TRUE(m.is_ok()) << m.status().to_string();
  expect_runs_allocate_nothing(*m, convt, "ConvTranspose");
}

void expect_error(const Result<std::vector<Tensor>>& r, StatusCode code, const std::string& fragment) {
  ASSERT_FALSE(r.is_ok());
  EXPECT_EQ(r.status().code(), code) << r.status().to_string();
  EXPECT_NE(r.status().message().find(fragment), std::string::npos) << r.status().message();
}

TEST(ConvOps, ChannelMismatchIsAnError) {
  expect_error(run_node("Conv", {Tensor(DType::kFloat32, {1, 3, 5, 5}), Tensor(DType::kFloat32, {2, 2, 3, 3})}, {}),
               StatusCode::kInvalidArgument, "input channels");
}

TEST(ConvOps, GroupMustDivideChannels) {
  expect_error(run_node("Conv", {Tensor(DType::kFloat32, {1, 3, 5, 5}), Tensor(DType::kFloat32, {2, 1, 3, 3})},
                        {Attr::i("group", 2)}),
               StatusCode::kInvalidArgument, "not divisible by group");
}

TEST(ConvOps, KernelShapeMustMatchW) {
  expect_error(run_node("Conv", {Tensor(DType::kFloat32, {1, 1, 5, 5}), Tensor(DType::kFloat32, {1, 1, 3, 3})},
                        {Attr::ints("kernel_shape", {2, 2})}),
               StatusCode::kInvalidArgument, "kernel_shape");
}

TEST(ConvOps, BadAttributesAreErrors) {
  const Tensor x(DType::kFloat32, {1, 1, 5, 5}), w(DType::kFloat32, {1, 1, 3, 3});
  expect_error(run_node("Conv", {x, w}, {Attr::s("auto_pad", "SAME")}), StatusCode::kInvalidArgument, "auto_pad");
  expect_error(run_node("Conv", {x, w}, {Attr::ints("pads", {1, 1, -1, 1})}), StatusCode::kInvalidArgument, "pads");
  expect_error(run_node("Conv", {x, w}, {Attr::ints("strides", {1, 1, 1})}), StatusCode::kInvalidArgument, "strides");
  expect_error(run_node("Conv", {x, w}, {Attr::ints("dilations", {1})}), StatusCode::kInvalidArgument, "dilations");
}

TEST(ConvOps, KernelLargerThanInputIsAnError) {
  expect_error(run_node("Conv", {Tensor(DType::kFloat32, {1, 1, 2, 5}), Tensor(DType::kFloat32, {1, 1, 3, 3})}, {}),
               StatusCode::kInvalidArgument, "smaller than the dilated kernel");
}

TEST(ConvOps, BiasOfWrongShapeIsAnError) {
  expect_error(run_node("Conv", {Tensor(DType::kFloat32, {1, 1, 5, 5}), Tensor(DType::kFloat32, {2, 1, 3, 3}),
                                 Tensor(DType::kFloat32, {3})},
                        {}),
               StatusCode::kInvalidArgument, "B must have shape [2]");
}

TEST(ConvOps, FourSpatialDimensionsAreUnsupported) {
  expect_error(run_node("Conv",
                        {Tensor(DType::kFloat32, {1, 1, 2, 2, 2, 2}), Tensor(DType::kFloat32, {1, 1, 1, 1, 1, 1})}, {}),
               StatusCode::kUnsupported, "spatial dimensions");
}

TEST(ConvOps, IntegerInputIsUnsupported) {
  expect_error(run_node("Conv", {Tensor(DType::kInt32, {1, 1, 3, 3}), Tensor(DType::kInt32, {1, 1, 1, 1})}, {}),
               StatusCode::kUnsupported, "dtype int32");
}

TEST(ConvOps, ConvTransposeOutputPaddingMustBeBelowStride) {
  expect_error(run_node("ConvTranspose", {Tensor(DType::kFloat32, {1, 1, 3, 3}), Tensor(DType::kFloat32, {1, 1, 3, 3})},
                        {Attr::ints("strides", {2, 2}), Attr::ints("output_padding", {2, 0})}),
               StatusCode::kInvalidArgument, "output_padding");
}

TEST(ConvOps, ConvTransposeWMustHaveXChannels) {
  expect_error(run_node("ConvTranspose", {Tensor(DType::kFloat32, {1, 2, 3, 3}), Tensor(DType::kFloat32, {3, 1, 3, 3})},
                        {}),
               StatusCode::kInvalidArgument, "channels as dimension 0");
}

}  // namespace
}  // namespace kiln::nn
