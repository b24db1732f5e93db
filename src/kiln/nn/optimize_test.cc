// Differential tests of the optimised path: the same model compiled with the graph passes and
// fast kernels (optimize = true) and with reference kernels only (optimize = false) must agree,
// across convolution geometries (groups, depthwise, strides, dilations, asymmetric pads, channel
// counts at vector-width edges), fused epilogues (BatchNorm, activations, residual adds) and
// dense layers.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "kiln/core/alloc_counter.h"
#include "kiln/nn/compile.h"
#include "kiln/nn/testing/model_builder.h"

namespace kiln::nn {
namespace {

using testing::Attr;
using testing::ModelBuilder;

Tensor random_tensor(Shape shape, std::mt19937& rng, float scale = 1.f) {
  Tensor t(DType::kFloat32, std::move(shape));
  std::normal_distribution<float> d(0.f, scale);
  for (int64_t i = 0; i < t.num_elements(); ++i) t.data<float>()[i] = d(rng);
  return t;
}

Tensor positive_tensor(Shape shape, std::mt19937& rng) {
  Tensor t(DType::kFloat32, std::move(shape));
  std::uniform_real_distribution<float> d(0.5f, 1.5f);
  for (int64_t i = 0; i < t.num_elements(); ++i) t.data<float>()[i] = d(rng);
  return t;
}

// Runs `m` on `inputs` with and without optimisation (the optimised run on `threads` threads) and
// compares every output.
void expect_same(const Model& m, const std::vector<Tensor>& inputs, const std::string& what, int* fast_steps = nullptr,
                 int threads = 1) {
  std::vector<Tensor> results[2];
  for (int opt = 0; opt < 2; ++opt) {
    CompileOptions o;
    o.optimize = opt == 1;
    if (opt == 1) o.threads = threads;
    Result<CompiledModel> cm = compile(m, o);
    ASSERT_TRUE(cm.is_ok()) << what << ": " << cm.status().to_string();
    if (opt == 1 && fast_steps) {
      *fast_steps = 0;
      for (const StepInfo& s : cm->steps()) *fast_steps += s.impl != "reference";
    }
    results[opt] = cm->make_outputs();
    std::vector<TensorView> in, out;
    for (const Tensor& t : inputs) in.push_back(t.view());
    for (const Tensor& t : results[opt]) out.push_back(t.view());
    Status s = cm->run(in, out);
    ASSERT_TRUE(s.is_ok()) << what << ": " << s.to_string();
  }
  ASSERT_EQ(results[0].size(), results[1].size());
  for (size_t i = 0; i < results[0].size(); ++i) {
    const Tensor& ref = results[0][i];
    const Tensor& fast = results[1][i];
    ASSERT_EQ(ref.shape(), fast.shape()) << what;
    for (int64_t k = 0; k < ref.num_elements(); ++k) {
      float r = ref.data<float>()[k], f = fast.data<float>()[k];
      ASSERT_NEAR(f, r, 1e-4f * (1 + std::fabs(r))) << what << " output " << i << " element " << k;
    }
  }
}

struct ConvCase {
  int64_t c, m, h, w, kh, kw, sh, sw, dh, dw, group;
  std::vector<int64_t> pads;
  std::string auto_pad;
};

TEST(Optimize, ConvolutionGeometriesMatchReference) {
  std::mt19937 rng(31);
  const ConvCase cases[] = {
      {3, 16, 9, 9, 3, 3, 1, 1, 1, 1, 1, {1, 1, 1, 1}, ""},
      {8, 17, 7, 6, 3, 3, 2, 2, 1, 1, 1, {0, 1, 1, 0}, ""},       // asymmetric pads, stride 2
      {5, 7, 11, 10, 3, 3, 1, 1, 2, 2, 1, {2, 2, 2, 2}, ""},      // dilation
      {16, 33, 5, 5, 1, 1, 1, 1, 1, 1, 1, {0, 0, 0, 0}, ""},      // pointwise: straight GEMM
      {16, 8, 8, 8, 1, 1, 2, 2, 1, 1, 1, {0, 0, 0, 0}, ""},       // strided pointwise
      {32, 32, 8, 7, 3, 3, 1, 1, 1, 1, 32, {1, 1, 1, 1}, ""},     // depthwise
      {13, 13, 9, 9, 5, 5, 2, 2, 1, 1, 13, {2, 2, 1, 1}, ""},     // depthwise, odd channels
      {8, 16, 6, 6, 3, 3, 1, 1, 1, 1, 8, {1, 1, 1, 1}, ""},       // depthwise with multiplier 2
      {12, 18, 7, 7, 3, 3, 1, 1, 1, 1, 3, {1, 1, 1, 1}, ""},      // grouped
      {4, 6, 7, 5, 3, 3, 2, 2, 1, 1, 1, {}, "SAME_UPPER"},
      {4, 6, 7, 5, 2, 2, 2, 2, 1, 1, 1, {}, "SAME_LOWER"},
      {1, 64, 49, 10, 10, 4, 2, 2, 1, 1, 1, {5, 1, 4, 2}, ""},   // the KWS stem (padded copy, row taps)
      {3, 10, 9, 11, 3, 3, 2, 2, 1, 1, 1, {0, 0, 0, 0}, ""},     // SqueezeNet-like stem: row taps, no copy
      {3, 20, 12, 13, 7, 7, 2, 2, 1, 1, 1, {3, 3, 2, 3}, ""},    // ResNet-like 7x7 stem
  };
  for (const ConvCase& k : cases) {
    for (const char* act : {"none", "Relu", "Clip"}) {
      ModelBuilder b(13);
      std::vector<Attr> attrs = {Attr::ints("kernel_shape", {k.kh, k.kw}), Attr::ints("strides", {k.sh, k.sw}),
                                 Attr::ints("dilations", {k.dh, k.dw}), Attr::i("group", k.group)};
      if (k.auto_pad.empty()) attrs.push_back(Attr::ints("pads", k.pads));
      else attrs.push_back(Attr::s("auto_pad", k.auto_pad));
      b.input("x", DType::kFloat32, {2, k.c, k.h, k.w})
          .initializer("w", random_tensor({k.m, k.c / k.group, k.kh, k.kw}, rng))
          .initializer("b", random_tensor({k.m}, rng))
          .node("Conv", {"x", "w", "b"}, {"y"}, attrs);
      std::string out = "y";
      if (std::string(act) == "Relu") {
        b.node("Relu", {"y"}, {"z"});
        out = "z";
      } else if (std::string(act) == "Clip") {
        b.initializer("lo", testing::make_tensor<float>({}, {-0.5f})).initializer("hi", testing::make_tensor<float>({}, {1.f}));
        b.node("Clip", {"y", "lo", "hi"}, {"z"});
        out = "z";
      }
      b.output(out, DType::kFloat32);
      Result<Model> m = b.build();
      ASSERT_TRUE(m.is_ok()) << m.status().to_string();
      int fast = 0;
      expect_same(*m, {random_tensor({2, k.c, k.h, k.w}, rng)},
                  "conv c=" + std::to_string(k.c) + " m=" + std::to_string(k.m) + " g=" + std::to_string(k.group) +
                      " k=" + std::to_string(k.kh) + "x" + std::to_string(k.kw) + " " + act,
                  &fast);
      EXPECT_GT(fast, 0) << "no fast kernel was used";
    }
  }
}

TEST(Optimize, ResidualBlockWithBatchNormMatchesReference) {
  std::mt19937 rng(32);
  // x -> Conv -> BN -> Relu -> Conv -> BN -> Add(x) -> Relu -> GlobalAveragePool -> Flatten -> Gemm
  const int64_t c = 24;
  ModelBuilder b(13);
  b.input("x", DType::kFloat32, {1, c, 10, 10});
  for (int i = 1; i <= 2; ++i) {
    std::string s = std::to_string(i);
    b.initializer("w" + s, random_tensor({c, c, 3, 3}, rng, 0.2f))
        .initializer("g" + s, positive_tensor({c}, rng))
        .initializer("be" + s, random_tensor({c}, rng))
        .initializer("mu" + s, random_tensor({c}, rng))
        .initializer("va" + s, positive_tensor({c}, rng));
  }
  b.node("Conv", {"x", "w1"}, {"c1"}, {Attr::ints("pads", {1, 1, 1, 1}), Attr::ints("kernel_shape", {3, 3})})
      .node("BatchNormalization", {"c1", "g1", "be1", "mu1", "va1"}, {"n1"})
      .node("Relu", {"n1"}, {"r1"})
      .node("Conv", {"r1", "w2"}, {"c2"}, {Attr::ints("pads", {1, 1, 1, 1}), Attr::ints("kernel_shape", {3, 3})})
      .node("BatchNormalization", {"c2", "g2", "be2", "mu2", "va2"}, {"n2"})
      .node("Add", {"n2", "x"}, {"s"})
      .node("Relu", {"s"}, {"r2"})
      .node("GlobalAveragePool", {"r2"}, {"p"})
      .node("Flatten", {"p"}, {"f"})
      .initializer("fw", random_tensor({10, c}, rng))
      .initializer("fb", random_tensor({10}, rng))
      .node("Gemm", {"f", "fw", "fb"}, {"logits"}, {Attr::i("transB", 1)})
      .output("logits", DType::kFloat32)
      .output("r2", DType::kFloat32);  // an intermediate that is also a graph output
  Result<Model> m = b.build();
  ASSERT_TRUE(m.is_ok()) << m.status().to_string();
  expect_same(*m, {random_tensor({1, c, 10, 10}, rng)}, "residual block");
  CompileOptions o;
  Result<CompiledModel> cm = compile(*m, o);
  ASSERT_TRUE(cm.is_ok());
  // BatchNorms folded, Relu and the residual Add fused: two Conv steps, no BatchNormalization.
  int convs = 0, bns = 0;
  for (const StepInfo& s : cm->steps()) {
    convs += s.op_type == "Conv";
    bns += s.op_type == "BatchNormalization";
  }
  EXPECT_EQ(convs, 2);
  EXPECT_EQ(bns, 0);
}

TEST(Optimize, PoolingAndElementwiseInChannelsLastRegion) {
  std::mt19937 rng(33);
  ModelBuilder b(13);
  b.input("x", DType::kFloat32, {1, 5, 11, 11})
      .initializer("w", random_tensor({12, 5, 3, 3}, rng))
      .initializer("scale", random_tensor({12, 1, 1}, rng))  // per-channel constant, re-laid out
      .node("Conv", {"x", "w"}, {"c"}, {Attr::ints("kernel_shape", {3, 3})})
      .node("Mul", {"c", "scale"}, {"m"})
      .node("MaxPool", {"m"}, {"p"}, {Attr::ints("kernel_shape", {3, 3}), Attr::ints("strides", {2, 2}),
                                      Attr::ints("pads", {1, 1, 1, 1}), Attr::i("ceil_mode", 1)})
      .node("AveragePool", {"p"}, {"a"}, {Attr::ints("kernel_shape", {2, 2}), Attr::ints("pads", {0, 0, 1, 1}),
                                          Attr::i("count_include_pad", 1)})
      .node("Sigmoid", {"a"}, {"y"})
      .output("y", DType::kFloat32);
  Result<Model> m = b.build();
  ASSERT_TRUE(m.is_ok()) << m.status().to_string();
  expect_same(*m, {random_tensor({1, 5, 11, 11}, rng)}, "pool region");
}

// MobileNetV3 as PyTorch exports it below opset 14: HardSwish as x * HardSigmoid(x; 1/6, 1/2),
// and a squeeze-excite gate Conv -> HardSigmoid. Both fuse into the Conv epilogues; a
// HardSigmoid with other constants is not a HardSwish and must stay as it is.
TEST(Optimize, HardSwishAsHardSigmoidTimesXFusesIntoConv) {
  std::mt19937 rng(35);
  for (float alpha : {1.f / 6.f, 0.2f}) {
    ModelBuilder b(13);
    b.input("x", DType::kFloat32, {1, 4, 9, 9})
        .initializer("w", random_tensor({8, 4, 3, 3}, rng))
        .initializer("wg", random_tensor({8, 8, 1, 1}, rng))
        .node("Conv", {"x", "w"}, {"c"}, {Attr::ints("kernel_shape", {3, 3}), Attr::ints("pads", {1, 1, 1, 1})})
        .node("HardSigmoid", {"c"}, {"hs"}, {Attr::f("alpha", alpha), Attr::f("beta", 0.5f)})
        .node("Mul", {"c", "hs"}, {"h"})
        .node("Conv", {"h", "wg"}, {"g"}, {Attr::ints("kernel_shape", {1, 1})})
        .node("HardSigmoid", {"g"}, {"gate"}, {Attr::f("alpha", 1.f / 6.f), Attr::f("beta", 0.5f)})
        .node("Mul", {"h", "gate"}, {"y"})
        .output("y", DType::kFloat32);
    Result<Model> m = b.build();
    ASSERT_TRUE(m.is_ok()) << m.status().to_string();
    expect_same(*m, {random_tensor({1, 4, 9, 9}, rng, 3.f)}, "hardswish alpha " + std::to_string(alpha));
    Result<CompiledModel> cm = compile(*m, CompileOptions{});
    ASSERT_TRUE(cm.is_ok());
    int hardsigmoids = 0;
    for (const StepInfo& s : cm->steps()) hardsigmoids += s.op_type == "HardSigmoid";
    EXPECT_EQ(hardsigmoids, alpha == 0.2f ? 1 : 0) << "alpha " << alpha;
  }
}

// EfficientNet's squeeze-and-excitation block: x * Sigmoid(fc(GlobalAveragePool(x))) read only by
// a 1x1 projection conv. The gate Mul folds into the conv (input_scale) when H*W exceeds the
// conv's output channels, for batch 1 and 2 and with a residual add after the projection.
TEST(Optimize, SqueezeExcitationGateFoldsIntoProjection) {
  std::mt19937 rng(36);
  for (int64_t batch : {1, 2}) {
    for (int64_t hw : {9, 3}) {  // 81 pixels > 24 output channels: fused; 9 pixels: not fused
      ModelBuilder b(13);
      b.input("x", DType::kFloat32, {batch, 24, hw, hw})
          .initializer("we", random_tensor({40, 24, 1, 1}, rng, 0.3f))
          .initializer("w1", random_tensor({8, 40, 1, 1}, rng, 0.3f))
          .initializer("w2", random_tensor({40, 8, 1, 1}, rng, 0.3f))
          .initializer("wp", random_tensor({24, 40, 1, 1}, rng, 0.3f))
          .initializer("bp", random_tensor({24}, rng))
          .node("Conv", {"x", "we"}, {"e"}, {Attr::ints("kernel_shape", {1, 1})})
          .node("Relu", {"e"}, {"er"})
          .node("GlobalAveragePool", {"er"}, {"sq"})
          .node("Conv", {"sq", "w1"}, {"f1"}, {Attr::ints("kernel_shape", {1, 1})})
          .node("Relu", {"f1"}, {"f1r"})
          .node("Conv", {"f1r", "w2"}, {"f2"}, {Attr::ints("kernel_shape", {1, 1})})
          .node("Sigmoid", {"f2"}, {"gate"})
          .node("Mul", {"er", "gate"}, {"scaled"})
          .node("Conv", {"scaled", "wp", "bp"}, {"p"}, {Attr::ints("kernel_shape", {1, 1})})
          .node("Add", {"p", "x"}, {"y"})
          .output("y", DType::kFloat32);
      Result<Model> m = b.build();
      ASSERT_TRUE(m.is_ok()) << m.status().to_string();
      const std::string what = "batch " + std::to_string(batch) + " hw " + std::to_string(hw);
      expect_same(*m, {random_tensor({batch, 24, hw, hw}, rng)}, what);
      Result<CompiledModel> cm = compile(*m, CompileOptions{});
      ASSERT_TRUE(cm.is_ok());
      int muls = 0;
      for (const StepInfo& s : cm->steps()) muls += s.op_type == "Mul";
      EXPECT_EQ(muls, hw == 9 ? 0 : 1) << what;
    }
  }
}

// The steps that share work between threads only above a size: the folded excitation gate's
// weight scaling (5 panels of 256 x 32), global average pooling (32x32x256) and a channel Concat
// (786 KB). At 2 threads they must agree with the reference kernels.
TEST(Optimize, LargeLayersSplitBetweenThreadsMatchReference) {
  std::mt19937 rng(37);
  ModelBuilder b(13);
  b.input("x", DType::kFloat32, {1, 32, 32, 32})
      .initializer("we", random_tensor({256, 32, 1, 1}, rng, 0.2f))
      .initializer("w1", random_tensor({16, 256, 1, 1}, rng, 0.1f))
      .initializer("w2", random_tensor({256, 16, 1, 1}, rng, 0.3f))
      .initializer("wp", random_tensor({160, 256, 1, 1}, rng, 0.1f))
      .initializer("wq", random_tensor({96, 32, 1, 1}, rng, 0.2f))
      .node("Conv", {"x", "we"}, {"e"}, {Attr::ints("kernel_shape", {1, 1})})
      .node("Relu", {"e"}, {"er"})
      .node("GlobalAveragePool", {"er"}, {"sq"})
      .node("Conv", {"sq", "w1"}, {"f1"}, {Attr::ints("kernel_shape", {1, 1})})
      .node("Relu", {"f1"}, {"f1r"})
      .node("Conv", {"f1r", "w2"}, {"f2"}, {Attr::ints("kernel_shape", {1, 1})})
      .node("Sigmoid", {"f2"}, {"gate"})
      .node("Mul", {"er", "gate"}, {"scaled"})
      .node("Conv", {"scaled", "wp"}, {"p"}, {Attr::ints("kernel_shape", {1, 1})})
      .node("Conv", {"x", "wq"}, {"q"}, {Attr::ints("kernel_shape", {1, 1})})
      .node("Concat", {"p", "q"}, {"y"}, {Attr::i("axis", 1)})
      .output("y", DType::kFloat32);
  Result<Model> m = b.build();
  ASSERT_TRUE(m.is_ok()) << m.status().to_string();
  for (int threads : {1, 2}) {
    expect_same(*m, {random_tensor({1, 32, 32, 32}, rng)}, "threads " + std::to_string(threads), nullptr, threads);
  }
}

TEST(Optimize, DenseLayersMatchReference) {
  std::mt19937 rng(34);
  for (int64_t n : {1, 7, 16, 33}) {
    ModelBuilder b(13);
    b.input("x", DType::kFloat32, {3, 20})
        .initializer("w1", random_tensor({20, n}, rng))
        .initializer("b1", random_tensor({n}, rng))
        .node("MatMul", {"x", "w1"}, {"mm"})
        .node("Add", {"mm", "b1"}, {"h"})
        .node("Relu", {"h"}, {"r"})
        .initializer("w2", random_tensor({5, n}, rng))
        .initializer("c2", random_tensor({1, 5}, rng))
        .node("Gemm", {"r", "w2", "c2"}, {"y"}, {Attr::i("transB", 1), Attr::f("alpha", 0.5f), Attr::f("beta", 2.f)})
        .output("y", DType::kFloat32);
    Result<Model> m = b.build();
    ASSERT_TRUE(m.is_ok()) << m.status().to_string();
    int fast = 0;
    expect_same(*m, {random_tensor({3, 20}, rng)}, "dense n=" + std::to_string(n), &fast);
    EXPECT_EQ(fast, 2);
  }
}

// A small CNN's classifier: Flatten of the last pooling (channels-last inside the region) into a
// Gemm (transB) or a MatMul. The Flatten reads the NHWC map and the weights are permuted, so no
// layout transpose runs after the input's; batch 2 and C, H, W all different catch a wrong
// permutation.
TEST(Optimize, ClassifierOnFlattenOfAChannelsLastMap) {
  std::mt19937 rng(36);
  for (bool gemm : {true, false}) {
    ModelBuilder b(13);
    b.input("x", DType::kFloat32, {2, 3, 8, 6})
        .initializer("w", random_tensor({5, 3, 3, 3}, rng))
        .initializer("fw", gemm ? random_tensor({7, 5 * 4 * 3}, rng) : random_tensor({5 * 4 * 3, 7}, rng))
        .node("Conv", {"x", "w"}, {"c"}, {Attr::ints("kernel_shape", {3, 3}), Attr::ints("pads", {1, 1, 1, 1})})
        .node("Relu", {"c"}, {"r"})
        .node("MaxPool", {"r"}, {"p"}, {Attr::ints("kernel_shape", {2, 2}), Attr::ints("strides", {2, 2})})
        .node("Flatten", {"p"}, {"f"});
    if (gemm) b.node("Gemm", {"f", "fw"}, {"y"}, {Attr::i("transB", 1)});
    else b.node("MatMul", {"f", "fw"}, {"y"});
    b.output("y", DType::kFloat32);
    Result<Model> m = b.build();
    ASSERT_TRUE(m.is_ok()) << m.status().to_string();
    expect_same(*m, {random_tensor({2, 3, 8, 6}, rng)}, gemm ? "flatten gemm" : "flatten matmul");
    Result<CompiledModel> cm = compile(*m, CompileOptions{});
    ASSERT_TRUE(cm.is_ok()) << cm.status().to_string();
    int transposes = 0;
    for (const StepInfo& s : cm->steps()) transposes += s.op_type == "Transpose";
    EXPECT_EQ(transposes, 1) << (gemm ? "gemm" : "matmul") << ": only the input's NCHW -> NHWC";
  }
}

TEST(Optimize, LstmMatchesReference) {
  std::mt19937 rng(36);
  for (const char* direction : {"forward", "reverse", "bidirectional"}) {
    for (int64_t batch : {1, 3}) {
      for (bool extras : {false, true}) {
        const int64_t seq = 5, in = 7, h = 9, dirs = std::string(direction) == "bidirectional" ? 2 : 1;
        ModelBuilder b(14);
        b.input("x", DType::kFloat32, {seq, batch, in})
            .initializer("w", random_tensor({dirs, 4 * h, in}, rng, 0.5f))
            .initializer("r", random_tensor({dirs, 4 * h, h}, rng, 0.5f));
        std::vector<std::string> ins = {"x", "w", "r"};
        std::vector<Tensor> feeds = {random_tensor({seq, batch, in}, rng)};
        if (extras) {
          b.initializer("b", random_tensor({dirs, 8 * h}, rng)).input("h0", DType::kFloat32, {dirs, batch, h})
              .input("c0", DType::kFloat32, {dirs, batch, h});
          ins = {"x", "w", "r", "b", "", "h0", "c0"};
          feeds.push_back(random_tensor({dirs, batch, h}, rng));
          feeds.push_back(random_tensor({dirs, batch, h}, rng));
        }
        b.node("LSTM", ins, {"y", "yh", "yc"}, {Attr::i("hidden_size", h), Attr::s("direction", direction)})
            .output("y", DType::kFloat32)
            .output("yh", DType::kFloat32)
            .output("yc", DType::kFloat32);
        Result<Model> m = b.build();
        ASSERT_TRUE(m.is_ok()) << m.status().to_string();
        int fast = 0;
        expect_same(*m, feeds, std::string("lstm ") + direction + " batch " + std::to_string(batch), &fast);
        EXPECT_EQ(fast, 1);
      }
    }
  }
}

TEST(Optimize, AttentionBlockMatchesReference) {
  std::mt19937 rng(37);
  // Q K^T / sqrt(d) -> Softmax -> * V -> LayerNorm -> GELU, as a small transformer exports it.
  ModelBuilder b(20);
  b.input("q", DType::kFloat32, {2, 6, 8})
      .input("k", DType::kFloat32, {2, 6, 8})
      .input("v", DType::kFloat32, {2, 6, 8})
      .initializer("scale", testing::make_tensor<float>({}, {0.35f}))
      .initializer("gamma", random_tensor({8}, rng))
      .initializer("beta", random_tensor({8}, rng))
      .node("Transpose", {"k"}, {"kt"}, {Attr::ints("perm", {0, 2, 1})})
      .node("MatMul", {"q", "kt"}, {"s"})
      .node("Mul", {"s", "scale"}, {"ss"})
      .node("Softmax", {"ss"}, {"p"}, {Attr::i("axis", -1)})
      .node("MatMul", {"p", "v"}, {"o"})
      .node("LayerNormalization", {"o", "gamma", "beta"}, {"n"}, {Attr::i("axis", -1)})
      .node("Gelu", {"n"}, {"g"})
      .node("LogSoftmax", {"g"}, {"y"}, {Attr::i("axis", 2)})
      .output("y", DType::kFloat32);
  Result<Model> m = b.build();
  ASSERT_TRUE(m.is_ok()) << m.status().to_string();
  int fast = 0;
  expect_same(*m, {random_tensor({2, 6, 8}, rng), random_tensor({2, 6, 8}, rng), random_tensor({2, 6, 8}, rng)},
              "attention", &fast);
  EXPECT_EQ(fast, 6);  // two MatMuls, Softmax, LayerNorm, Gelu, LogSoftmax
}

TEST(Optimize, DecomposedLayerNormAndGeluAreFused) {
  std::mt19937 rng(38);
  for (bool pow_square : {true, false}) {
    ModelBuilder b(13);
    b.input("x", DType::kFloat32, {2, 5, 12})
        .initializer("eps", testing::make_tensor<float>({}, {1e-5f}))
        .initializer("two", testing::make_tensor<float>({}, {2.f}))
        .initializer("gamma", random_tensor({12}, rng))
        .initializer("beta", random_tensor({12}, rng))
        .initializer("sqrt2", testing::make_tensor<float>({}, {1.4142135f}))
        .initializer("one", testing::make_tensor<float>({}, {1.f}))
        .initializer("half", testing::make_tensor<float>({}, {0.5f}))
        .node("ReduceMean", {"x"}, {"m"}, {Attr::ints("axes", {-1})})
        .node("Sub", {"x", "m"}, {"d"});
    if (pow_square) b.node("Pow", {"d", "two"}, {"sq"});
    else b.node("Mul", {"d", "d"}, {"sq"});
    b.node("ReduceMean", {"sq"}, {"v"}, {Attr::ints("axes", {-1})})
        .node("Add", {"v", "eps"}, {"ve"})
        .node("Sqrt", {"ve"}, {"s"})
        .node("Div", {"d", "s"}, {"n"})
        .node("Mul", {"n", "gamma"}, {"ng"})
        .node("Add", {"ng", "beta"}, {"ln"})
        .node("Div", {"ln", "sqrt2"}, {"a"})
        .node("Erf", {"a"}, {"e"})
        .node("Add", {"e", "one"}, {"e1"})
        .node("Mul", {"ln", "e1"}, {"p"})
        .node("Mul", {"p", "half"}, {"y"})
        .output("y", DType::kFloat32);
    Result<Model> m = b.build();
    ASSERT_TRUE(m.is_ok()) << m.status().to_string();
    expect_same(*m, {random_tensor({2, 5, 12}, rng)}, pow_square ? "layernorm pow" : "layernorm mul");
    Result<CompiledModel> cm = compile(*m);
    ASSERT_TRUE(cm.is_ok());
    ASSERT_EQ(cm->steps().size(), 2u) << "LayerNorm and GELU chains should each be one step";
    EXPECT_EQ(cm->steps()[0].op_type, "LayerNorm");
    EXPECT_EQ(cm->steps()[1].op_type, "Gelu");
  }
}

TEST(Optimize, OptimisedRunAllocatesNothingWithThreads) {
  std::mt19937 rng(35);
  ModelBuilder b(13);
  b.input("x", DType::kFloat32, {1, 8, 16, 16})
      .initializer("w", random_tensor({16, 8, 3, 3}, rng))
      .initializer("dw", random_tensor({16, 1, 3, 3}, rng))
      .node("Conv", {"x", "w"}, {"c"}, {Attr::ints("kernel_shape", {3, 3}), Attr::ints("pads", {1, 1, 1, 1})})
      .node("Relu", {"c"}, {"r"})
      .node("Conv", {"r", "dw"}, {"d"}, {Attr::ints("kernel_shape", {3, 3}), Attr::ints("pads", {1, 1, 1, 1}),
                                         Attr::i("group", 16)})
      .node("GlobalAveragePool", {"d"}, {"g"})
      .node("Flatten", {"g"}, {"y"})
      .output("y", DType::kFloat32);
  Result<Model> m = b.build();
  ASSERT_TRUE(m.is_ok());
  for (int threads : {1, 2}) {
    CompileOptions o;
    o.threads = threads;
    Result<CompiledModel> cm = compile(*m, o);
    ASSERT_TRUE(cm.is_ok()) << cm.status().to_string();
    Tensor x = random_tensor({1, 8, 16, 16}, rng);
    std::vector<Tensor> outs = cm->make_outputs();
    TensorView in[] = {x.view()};
    TensorView out[] = {outs[0].view()};
    ASSERT_TRUE(cm->run(in, out).is_ok());
    uint64_t before = heap_allocation_count();
    for (int i = 0; i < 50; ++i) ASSERT_TRUE(cm->run(in, out).is_ok());
    EXPECT_EQ(heap_allocation_count() - before, 0u) << threads << " threads";
  }
}

}  // namespace
}  // namespace kiln::nn
