// Differential tests of the quantized pass (passes/quantized.cc) and the integer com.kiln
// operators: QDQ models built here (as ONNX Runtime's quantiser writes them: asymmetric int8 or
// uint8 activations, symmetric per-channel int8 weights, int32 biases) compiled with the pass and
// with reference kernels only must agree within one quantisation step of the output, and the
// integer kernels must actually be used. QLinearConv / QLinearMatMul must agree exactly.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>

#include "kiln/core/alloc_counter.h"
#include "kiln/nn/compile.h"
#include "kiln/nn/kernels/qgemm.h"
#include "kiln/nn/testing/model_builder.h"

namespace kiln::nn {
namespace {

using testing::Attr;
using testing::make_tensor;
using testing::ModelBuilder;

Tensor random_float(Shape shape, std::mt19937& rng, float lo = -1.f, float hi = 1.f) {
  Tensor t(DType::kFloat32, std::move(shape));
  std::uniform_real_distribution<float> d(lo, hi);
  for (int64_t i = 0; i < t.num_elements(); ++i) t.data<float>()[i] = d(rng);
  return t;
}

Tensor scalar_f(float v) { return make_tensor<float>({}, {v}); }
Tensor scalar_i8(int8_t v) { return make_tensor<int8_t>({}, {v}); }
Tensor scalar_u8(uint8_t v) { return make_tensor<uint8_t>({}, {v}); }
Tensor scalar_i16(int16_t v) { return make_tensor<int16_t>({}, {v}); }

// Symmetric int8 weights with one scale per slice along `axis`.
struct QuantWeights {
  Tensor q, scale, zero;
};
QuantWeights quantize_weights(const Tensor& w, int64_t axis) {
  const int64_t channels = w.shape()[axis];
  int64_t inner = 1;
  for (size_t d = axis + 1; d < w.rank(); ++d) inner *= w.shape()[d];
  std::vector<float> amax(channels, 0.f);
  for (int64_t i = 0; i < w.num_elements(); ++i) {
    const int64_t c = (i / inner) % channels;
    amax[c] = std::max(amax[c], std::fabs(w.data<float>()[i]));
  }
  QuantWeights r{Tensor(DType::kInt8, w.shape()), Tensor(DType::kFloat32, {channels}), Tensor(DType::kInt8, {channels})};
  for (int64_t c = 0; c < channels; ++c) {
    r.scale.data<float>()[c] = amax[c] > 0 ? amax[c] / 127.f : 1.f;
    r.zero.data<int8_t>()[c] = 0;
  }
  for (int64_t i = 0; i < w.num_elements(); ++i) {
    const int64_t c = (i / inner) % channels;
    r.q.data<int8_t>()[i] = static_cast<int8_t>(std::nearbyint(w.data<float>()[i] / r.scale.data<float>()[c]));
  }
  return r;
}

struct Outputs {
  std::vector<Tensor> values;
  std::vector<StepInfo> steps;
  std::vector<std::string> notes;
};
Outputs run(const Model& m, const std::vector<Tensor>& inputs, bool optimize) {
  Outputs o;
  CompileOptions opts;
  opts.optimize = optimize;
  Result<CompiledModel> cm = compile(m, opts);
  EXPECT_TRUE(cm.is_ok()) << cm.status().to_string();
  if (!cm.is_ok()) return o;
  o.values = cm->make_outputs();
  std::vector<TensorView> in, out;
  for (const Tensor& t : inputs) in.push_back(t.view());
  for (const Tensor& t : o.values) out.push_back(t.view());
  Status s = cm->run(in, out);
  EXPECT_TRUE(s.is_ok()) << s.to_string();
  o.steps = cm->steps();
  o.notes = cm->notes();
  return o;
}

int count_op(const Outputs& o, const std::string& op) {
  return static_cast<int>(std::count_if(o.steps.begin(), o.steps.end(), [&](const StepInfo& s) { return s.op_type == op; }));
}

// Float outputs within `step` (one quantisation step of the output), integer outputs within one.
void expect_close(const Outputs& ref, const Outputs& fast, float step, const std::string& what, bool exact = false,
                  bool quantised_output = true) {
  ASSERT_EQ(ref.values.size(), fast.values.size()) << what;
  int64_t differing = 0;
  for (size_t i = 0; i < ref.values.size(); ++i) {
    const Tensor& r = ref.values[i];
    const Tensor& f = fast.values[i];
    ASSERT_EQ(r.shape(), f.shape()) << what;
    ASSERT_EQ(r.dtype(), f.dtype()) << what;
    for (int64_t k = 0; k < r.num_elements(); ++k) {
      double a, b, tol;
      if (r.dtype() == DType::kFloat32) {
        a = r.data<float>()[k];
        b = f.data<float>()[k];
        tol = step * 1.001 + 1e-6;
      } else if (r.dtype() == DType::kInt32) {
        a = r.data<int32_t>()[k];
        b = f.data<int32_t>()[k];
        tol = 0;
      } else if (r.dtype() == DType::kInt8) {
        a = r.data<int8_t>()[k];
        b = f.data<int8_t>()[k];
        tol = exact ? 0 : 1;
      } else {
        a = r.data<uint8_t>()[k];
        b = f.data<uint8_t>()[k];
        tol = exact ? 0 : 1;
      }
      ASSERT_LE(std::fabs(a - b), tol) << what << " output " << i << " element " << k << ": " << b << " vs " << a;
      differing += a != b;
    }
  }
  if (!quantised_output) return;
  // Off-by-one results come only from ties at rounding boundaries: they must be rare.
  int64_t total = 0;
  for (const Tensor& t : ref.values) total += t.num_elements();
  EXPECT_LE(differing * 20, total + 20) << what << ": " << differing << " of " << total << " differ";
}

struct ConvCase {
  int64_t c, m, h, w, kh, kw, sh, sw, dh, dw, group;
  std::vector<int64_t> pads;
};

// x -> Q -> DQ -> Conv(DQ(w), DQ(b)) [-> Relu] -> Q -> DQ -> y, the QDQ form of a quantised Conv.
Result<Model> qdq_conv_model(const ConvCase& k, bool relu, bool u8, std::mt19937& rng, float* y_step) {
  const float xs = 2.f / 255.f, ys = 0.05f * std::sqrt(static_cast<float>(k.c / k.group * k.kh * k.kw));
  *y_step = ys;
  const Tensor w = random_float({k.m, k.c / k.group, k.kh, k.kw}, rng);
  const QuantWeights qw = quantize_weights(w, 0);
  Tensor bq(DType::kInt32, {k.m}), bs(DType::kFloat32, {k.m}), bz(DType::kInt32, {k.m});
  std::uniform_int_distribution<int32_t> bd(-2000, 2000);
  for (int64_t j = 0; j < k.m; ++j) {
    bq.data<int32_t>()[j] = bd(rng);
    bs.data<float>()[j] = xs * qw.scale.data<float>()[j];
    bz.data<int32_t>()[j] = 0;
  }
  ModelBuilder b(13);
  b.input("x", DType::kFloat32, {2, k.c, k.h, k.w})
      .initializer("xs", scalar_f(xs))
      .initializer("xz", u8 ? scalar_u8(131) : scalar_i8(3))
      .initializer("wq", qw.q).initializer("ws", qw.scale).initializer("wz", qw.zero)
      .initializer("bq", bq).initializer("bs", bs).initializer("bz", bz)
      .initializer("ys", scalar_f(ys))
      .initializer("yz", u8 ? (relu ? scalar_u8(0) : scalar_u8(120)) : (relu ? scalar_i8(-128) : scalar_i8(-5)))
      .node("QuantizeLinear", {"x", "xs", "xz"}, {"xq"})
      .node("DequantizeLinear", {"xq", "xs", "xz"}, {"xd"})
      .node("DequantizeLinear", {"wq", "ws", "wz"}, {"wd"}, {Attr::i("axis", 0)})
      .node("DequantizeLinear", {"bq", "bs", "bz"}, {"bd"}, {Attr::i("axis", 0)})
      .node("Conv", {"xd", "wd", "bd"}, {"c"},
            {Attr::ints("kernel_shape", {k.kh, k.kw}), Attr::ints("strides", {k.sh, k.sw}),
             Attr::ints("dilations", {k.dh, k.dw}), Attr::i("group", k.group), Attr::ints("pads", k.pads)});
  std::string last = "c";
  if (relu) {
    b.node("Relu", {"c"}, {"r"});
    last = "r";
  }
  b.node("QuantizeLinear", {last, "ys", "yz"}, {"yq"}).node("DequantizeLinear", {"yq", "ys", "yz"}, {"y"});
  b.output("y", DType::kFloat32);
  return b.build();
}

TEST(Quantized, QdqConvolutionsRunOnIntegerKernels) {
  std::mt19937 rng(11);
  const ConvCase cases[] = {
      {3, 16, 9, 9, 3, 3, 1, 1, 1, 1, 1, {1, 1, 1, 1}},
      {8, 17, 7, 6, 3, 3, 2, 2, 1, 1, 1, {0, 1, 1, 0}},    // asymmetric pads, stride 2
      {5, 7, 11, 10, 3, 3, 1, 1, 2, 2, 1, {2, 2, 2, 2}},   // dilation
      {16, 33, 5, 5, 1, 1, 1, 1, 1, 1, 1, {0, 0, 0, 0}},   // pointwise: GEMM on the input
      {16, 8, 8, 8, 1, 1, 2, 2, 1, 1, 1, {0, 0, 0, 0}},    // strided pointwise
      {32, 32, 8, 7, 3, 3, 1, 1, 1, 1, 32, {1, 1, 1, 1}},  // depthwise
      {13, 13, 9, 9, 5, 5, 2, 2, 1, 1, 13, {2, 2, 1, 1}},  // depthwise, odd channels
      {8, 16, 6, 6, 3, 3, 1, 1, 1, 1, 8, {1, 1, 1, 1}},    // channel multiplier 2 (grouped)
      {12, 18, 7, 7, 3, 3, 1, 1, 1, 1, 3, {1, 1, 1, 1}},   // grouped
      {1, 64, 49, 10, 10, 4, 2, 2, 1, 1, 1, {4, 1, 5, 1}}, // the KWS stem (one input channel)
      {3, 8, 13, 14, 3, 3, 2, 2, 1, 1, 1, {0, 1, 1, 0}},   // an RGB stem, stride 2 (kernel rows as taps)
      {1, 16, 8, 8, 3, 3, 1, 1, 1, 1, 1, {1, 1, 1, 1}},    // the digits CNN's stem: 3-byte kernel rows
      {1, 8, 8, 8, 3, 3, 1, 1, 1, 1, 1, {1, 1, 1, 1}},     // the same with 8 filters: 3-byte rows in 8-byte taps
      {1, 4, 7, 9, 3, 2, 1, 1, 1, 1, 1, {1, 0, 1, 1}},     // 2-byte kernel rows: im2col
      {2, 5, 9, 11, 5, 5, 1, 2, 1, 1, 1, {2, 2, 2, 2}},    // kernel rows of 10 bytes
      {3, 4, 9, 9, 3, 3, 1, 1, 2, 2, 1, {2, 2, 2, 2}},     // few channels, dilated
      {2, 6, 11, 9, 3, 2, 2, 1, 2, 1, 1, {1, 0, 2, 1}},    // kernel rows of 4 bytes as taps, dilated rows
      {1, 3, 12, 8, 5, 4, 1, 2, 1, 1, 1, {0, 1, 0, 2}},    // the same with one channel, stride 1x2
  };
  for (const ConvCase& k : cases)
    for (bool relu : {false, true})
      for (bool u8 : {false, true}) {
        float step = 0;
        Result<Model> m = qdq_conv_model(k, relu, u8, rng, &step);
        ASSERT_TRUE(m.is_ok()) << m.status().to_string();
        const std::string what = "conv c=" + std::to_string(k.c) + " m=" + std::to_string(k.m) + " g=" +
                                 std::to_string(k.group) + " k=" + std::to_string(k.kh) + "x" + std::to_string(k.kw) +
                                 (relu ? " relu" : "") + (u8 ? " u8" : " s8");
        std::vector<Tensor> in = {random_float({2, k.c, k.h, k.w}, rng)};
        Outputs ref = run(*m, in, false), fast = run(*m, in, true);
        EXPECT_EQ(count_op(fast, "QConv"), 1) << what;
        EXPECT_EQ(count_op(fast, "Conv"), 0) << what;
        expect_close(ref, fast, step, what);
      }
}

// Input x of `shape` -> Q/DQ (s, z) -> 1x1 Conv of qw -> Q/DQ (s2, z2) -> Add with the input ->
// Q/DQ (s2, z2) into "ad": a residual block in QDQ form (s and z also name the input's scale).
ModelBuilder& residual_block(ModelBuilder& b, const Shape& shape, const QuantWeights& qw, float s, int8_t z, float s2,
                             int8_t z2) {
  return b.input("x", DType::kFloat32, shape)
      .initializer("s", scalar_f(s)).initializer("z", scalar_i8(z))
      .initializer("s2", scalar_f(s2)).initializer("z2", scalar_i8(z2))
      .initializer("wq", qw.q).initializer("ws", qw.scale).initializer("wz", qw.zero)
      .node("QuantizeLinear", {"x", "s", "z"}, {"xq"})
      .node("DequantizeLinear", {"xq", "s", "z"}, {"xd"})
      .node("DequantizeLinear", {"wq", "ws", "wz"}, {"wd"}, {Attr::i("axis", 0)})
      .node("Conv", {"xd", "wd"}, {"c"}, {Attr::ints("kernel_shape", {1, 1})})
      .node("QuantizeLinear", {"c", "s2", "z2"}, {"cq"})
      .node("DequantizeLinear", {"cq", "s2", "z2"}, {"cd"})
      .node("Add", {"cd", "xd"}, {"a"})
      .node("QuantizeLinear", {"a", "s2", "z2"}, {"aq"})
      .node("DequantizeLinear", {"aq", "s2", "z2"}, {"ad"});
}

// The model's outputs, run at 1 and at 2 threads, are the same bytes.
void expect_same_bytes_at_1_and_2_threads(const Model& m, const Tensor& in, const std::string& what) {
  std::vector<Tensor> outs[2];
  for (int threads : {1, 2}) {
    CompileOptions o;
    o.threads = threads;
    Result<CompiledModel> cm = compile(m, o);
    ASSERT_TRUE(cm.is_ok()) << cm.status().to_string();
    outs[threads - 1] = cm->make_outputs();
    TensorView iv[] = {in.view()};
    std::vector<TensorView> ov;
    for (Tensor& t : outs[threads - 1]) ov.push_back(t.view());
    ASSERT_TRUE(cm->run(iv, ov).is_ok()) << what;
  }
  ASSERT_EQ(outs[0].size(), outs[1].size()) << what;
  for (size_t i = 0; i < outs[0].size(); ++i) {
    const Tensor& one = outs[0][i];
    const Tensor& two = outs[1][i];
    ASSERT_EQ(one.byte_size(), two.byte_size()) << what;
    EXPECT_EQ(0, std::memcmp(one.raw(), two.raw(), static_cast<size_t>(one.byte_size()))) << what << ", output " << i;
  }
}

// Layers large enough to be split between threads (depthwise: one row range per thread from 2^18
// multiply-adds; GEMM tiles) give the same bytes at 2 threads as at 1, odd row counts included.
TEST(Quantized, TwoThreadsGiveTheSameResult) {
  std::mt19937 rng(17);
  const ConvCase cases[] = {
      {64, 64, 33, 30, 3, 3, 1, 1, 1, 1, 64, {1, 1, 1, 1}},  // depthwise, stride 1: 570k multiply-adds
      {48, 48, 41, 35, 3, 3, 2, 2, 1, 1, 48, {1, 1, 1, 1}},  // depthwise, stride 2
      {64, 72, 21, 19, 1, 1, 1, 1, 1, 1, 1, {0, 0, 0, 0}},   // pointwise GEMM: 3.7M multiply-adds (split from 2^20)
  };
  for (const ConvCase& k : cases) {
    float step = 0;
    Result<Model> m = qdq_conv_model(k, true, false, rng, &step);
    ASSERT_TRUE(m.is_ok()) << m.status().to_string();
    const Tensor in = random_float({2, k.c, k.h, k.w}, rng);  // the model's batch of 2
    expect_same_bytes_at_1_and_2_threads(*m, in, "c=" + std::to_string(k.c) + " group=" + std::to_string(k.group) +
                                                     " stride " + std::to_string(k.sh));
  }
}

// A residual QAdd of at least 8 KiB runs in two contiguous halves at 2 threads (fast_qelementwise.cc):
// the same bytes as at 1 thread, an odd element count included, and the reference's within a step.
TEST(Quantized, SplitResidualAddGivesTheSameResult) {
  std::mt19937 rng(23);
  const float s = 1.f / 16.f;
  const Tensor w = random_float({8, 8, 1, 1}, rng);
  const QuantWeights qw = quantize_weights(w, 0);
  for (int64_t h : {37, 64}) {  // 8 x 37 x 41 = 12136 elements (odd halves), 8 x 64 x 41 = 20992
    ModelBuilder b(13);
    residual_block(b, {1, 8, h, 41}, qw, s, 3, s * 1.25f, -7).output("ad", DType::kFloat32);
    Result<Model> m = b.build();
    ASSERT_TRUE(m.is_ok()) << m.status().to_string();
    std::vector<Tensor> in = {random_float({1, 8, h, 41}, rng, -3.f, 3.f)};
    expect_same_bytes_at_1_and_2_threads(*m, in[0], "h=" + std::to_string(h));
    Outputs ref = run(*m, in, false), fast = run(*m, in, true);
    EXPECT_EQ(count_op(fast, "QAdd"), 1);
    expect_close(ref, fast, s * 1.25f, "residual add h=" + std::to_string(h));
  }
}

// A convolution left in float (kiln quantize --exclude) feeding an integer one: the float conv runs
// in NHWC and the Quantize between them reads its NHWC output directly (fold_layout_pairs.cc), no
// NHWC -> NCHW -> NHWC round trip. Same values as the reference QDQ graph.
TEST(Quantized, FloatConvolutionFeedsAnIntegerOneWithoutLayoutChanges) {
  std::mt19937 rng(29);
  const float s = 1.f / 16.f;
  const Tensor w1 = random_float({8, 3, 3, 3}, rng);
  const QuantWeights qw = quantize_weights(random_float({8, 8, 1, 1}, rng), 0);
  ModelBuilder b(13);
  b.input("x", DType::kFloat32, {1, 3, 12, 12})
      .initializer("w1", w1)
      .initializer("s", scalar_f(s)).initializer("z", scalar_i8(-100))
      .initializer("wq", qw.q).initializer("ws", qw.scale).initializer("wz", qw.zero)
      .node("Conv", {"x", "w1"}, {"c1"}, {Attr::ints("kernel_shape", {3, 3}), Attr::ints("pads", {1, 1, 1, 1})})
      .node("Relu", {"c1"}, {"r1"})
      .node("QuantizeLinear", {"r1", "s", "z"}, {"rq"})
      .node("DequantizeLinear", {"rq", "s", "z"}, {"rd"})
      .node("DequantizeLinear", {"wq", "ws", "wz"}, {"wd"}, {Attr::i("axis", 0)})
      .node("Conv", {"rd", "wd"}, {"c2"}, {Attr::ints("kernel_shape", {1, 1})})
      .node("QuantizeLinear", {"c2", "s", "z"}, {"yq"})
      .node("DequantizeLinear", {"yq", "s", "z"}, {"y"})
      .output("y", DType::kFloat32);
  Result<Model> m = b.build();
  ASSERT_TRUE(m.is_ok()) << m.status().to_string();
  std::vector<Tensor> in = {random_float({1, 3, 12, 12}, rng)};
  Outputs ref = run(*m, in, false), fast = run(*m, in, true);
  EXPECT_EQ(count_op(fast, "QConv"), 1);
  EXPECT_EQ(count_op(fast, "Quantize"), 1);
  // The input's NCHW -> NHWC and the output's NHWC -> NCHW; not the two around the Quantize.
  EXPECT_EQ(count_op(fast, "Transpose"), 2);
  expect_close(ref, fast, s, "float conv -> integer conv");
}

// x -> Q -> DQ -> MatMul(DQ(w)) + DQ(b) [-> Relu] -> Q -> DQ, and the Gemm spelling with transB.
TEST(Quantized, QdqDenseLayersRunOnIntegerKernels) {
  std::mt19937 rng(12);
  for (int64_t kdim : {1, 7, 64, 129})
    for (int64_t n : {1, 5, 16, 33})
      for (bool gemm : {false, true})
        for (bool relu : {false, true}) {
          const float xs = 2.f / 255.f, ys = 0.06f * std::sqrt(static_cast<float>(kdim));
          const Tensor w = random_float(gemm ? Shape{n, kdim} : Shape{kdim, n}, rng);
          const QuantWeights qw = quantize_weights(w, gemm ? 0 : 1);
          Tensor bq(DType::kInt32, {n}), bs(DType::kFloat32, {n});
          for (int64_t j = 0; j < n; ++j) {
            bq.data<int32_t>()[j] = static_cast<int32_t>(j * 37 % 500) - 250;
            bs.data<float>()[j] = xs * qw.scale.data<float>()[j];
          }
          ModelBuilder b(13);
          b.input("x", DType::kFloat32, {3, kdim})
              .initializer("xs", scalar_f(xs)).initializer("xz", scalar_i8(-7))
              .initializer("wq", qw.q).initializer("ws", qw.scale).initializer("wz", qw.zero)
              .initializer("bq", bq).initializer("bs", bs).initializer("bz", Tensor(DType::kInt32, {n}))
              .initializer("ys", scalar_f(ys)).initializer("yz", scalar_i8(relu ? -128 : 4))
              .node("QuantizeLinear", {"x", "xs", "xz"}, {"xq"})
              .node("DequantizeLinear", {"xq", "xs", "xz"}, {"xd"})
              .node("DequantizeLinear", {"wq", "ws", "wz"}, {"wd"}, {Attr::i("axis", gemm ? 0 : 1)})
              .node("DequantizeLinear", {"bq", "bs", "bz"}, {"bd"}, {Attr::i("axis", 0)});
          if (gemm) {
            b.node("Gemm", {"xd", "wd", "bd"}, {"a"}, {Attr::i("transB", 1)});
          } else {
            b.node("MatMul", {"xd", "wd"}, {"mm"}).node("Add", {"mm", "bd"}, {"a"});
          }
          std::string last = "a";
          if (relu) {
            b.node("Relu", {"a"}, {"r"});
            last = "r";
          }
          b.node("QuantizeLinear", {last, "ys", "yz"}, {"yq"}).node("DequantizeLinear", {"yq", "ys", "yz"}, {"y"});
          b.output("y", DType::kFloat32);
          Result<Model> m = b.build();
          ASSERT_TRUE(m.is_ok()) << m.status().to_string();
          const std::string what = std::string(gemm ? "gemm" : "matmul") + " k=" + std::to_string(kdim) +
                                   " n=" + std::to_string(n) + (relu ? " relu" : "");
          std::vector<Tensor> in = {random_float({3, kdim}, rng)};
          Outputs ref = run(*m, in, false), fast = run(*m, in, true);
          EXPECT_EQ(count_op(fast, "QDense"), 1) << what;
          expect_close(ref, fast, ys, what);
        }
}

// What kiln quantize writes before a classifier: DQ -> Flatten -> Q with the same parameters ->
// DQ -> Gemm. The Flatten becomes a view of the int8 tensor: no Dequantize / Quantize step runs
// between the pooled int8 tensor and the integer Gemm (the digits CNN lost 0.6 of its 1.7 us to
// that pair).
TEST(Quantized, FlattenBetweenEqualQuantizersIsAView) {
  std::mt19937 rng(19);
  const float xs = 2.f / 255.f, ys = 0.3f;
  const Tensor w = random_float({5, 12}, rng);
  const QuantWeights qw = quantize_weights(w, 0);
  for (bool same : {true, false}) {
    const float fs = same ? xs : xs * 1.5f;  // the Flatten's own quantiser
    ModelBuilder b(13);
    b.input("x", DType::kFloat32, {2, 3, 2, 2})
        .initializer("xs", scalar_f(xs)).initializer("xz", scalar_i8(-3))
        .initializer("fs", scalar_f(fs)).initializer("fz", scalar_i8(-3))
        .initializer("wq", qw.q).initializer("ws", qw.scale).initializer("wz", qw.zero)
        .initializer("ys", scalar_f(ys)).initializer("yz", scalar_i8(2))
        .node("QuantizeLinear", {"x", "xs", "xz"}, {"xq"})
        .node("DequantizeLinear", {"xq", "xs", "xz"}, {"xd"})
        .node("Flatten", {"xd"}, {"f"})
        .node("QuantizeLinear", {"f", "fs", "fz"}, {"fq"})
        .node("DequantizeLinear", {"fq", "fs", "fz"}, {"fd"})
        .node("DequantizeLinear", {"wq", "ws", "wz"}, {"wd"}, {Attr::i("axis", 0)})
        .node("Gemm", {"fd", "wd"}, {"g"}, {Attr::i("transB", 1)})
        .node("QuantizeLinear", {"g", "ys", "yz"}, {"gq"})
        .node("DequantizeLinear", {"gq", "ys", "yz"}, {"y"})
        .output("y", DType::kFloat32);
    Result<Model> m = b.build();
    ASSERT_TRUE(m.is_ok()) << m.status().to_string();
    std::vector<Tensor> in = {random_float({2, 3, 2, 2}, rng)};
    Outputs ref = run(*m, in, false), fast = run(*m, in, true);
    std::string ops;
    for (const StepInfo& st : fast.steps) ops += st.op_type + " ";
    EXPECT_EQ(count_op(fast, "QDense"), 1) << ops;
    // The input's Quantize and the output's Dequantize always; a requantising pair only when the
    // Flatten's quantiser differs.
    EXPECT_EQ(count_op(fast, "Quantize"), same ? 1 : 2) << ops;
    EXPECT_EQ(count_op(fast, "Dequantize"), same ? 1 : 2) << ops;
    expect_close(ref, fast, ys, same ? "same parameters" : "different parameters");
  }
}

// Conv -> MaxPool -> Flatten -> Gemm (a small CNN's classifier on a 3x3 map): the Flatten reads the
// pool's NHWC int8 output and the Gemm's weight rows are permuted to match, so no layout transpose
// runs; the result is the reference's (the integer sums are the same, in another order).
TEST(Quantized, FlattenOfAnNhwcMapPermutesTheClassifier) {
  std::mt19937 rng(23);
  const float xs = 1.f / 255.f, cs = 0.05f, ys = 0.2f;
  const QuantWeights cw = quantize_weights(random_float({4, 3, 3, 3}, rng), 0);
  const QuantWeights gw = quantize_weights(random_float({10, 36}, rng), 0);
  for (bool trans_b : {true, false}) {
    Tensor g = gw.q;
    if (!trans_b) {  // the same weights stored K x N
      g = Tensor(DType::kInt8, {36, 10});
      for (int64_t j = 0; j < 10; ++j)
        for (int64_t k = 0; k < 36; ++k) g.data<int8_t>()[k * 10 + j] = gw.q.data<int8_t>()[j * 36 + k];
    }
    ModelBuilder b(13);
    b.input("x", DType::kFloat32, {1, 3, 6, 6})
        .initializer("xs", scalar_f(xs)).initializer("xz", scalar_i8(-128))
        .initializer("cwq", cw.q).initializer("cws", cw.scale).initializer("cwz", cw.zero)
        .initializer("cs", scalar_f(cs)).initializer("cz", scalar_i8(-10))
        .initializer("gwq", g).initializer("gws", gw.scale).initializer("gwz", gw.zero)
        .initializer("ys", scalar_f(ys)).initializer("yz", scalar_i8(3))
        .node("QuantizeLinear", {"x", "xs", "xz"}, {"xq"})
        .node("DequantizeLinear", {"xq", "xs", "xz"}, {"xd"})
        .node("DequantizeLinear", {"cwq", "cws", "cwz"}, {"cwd"}, {Attr::i("axis", 0)})
        .node("Conv", {"xd", "cwd"}, {"c"}, {Attr::ints("pads", {1, 1, 1, 1})})
        .node("QuantizeLinear", {"c", "cs", "cz"}, {"cq"})
        .node("DequantizeLinear", {"cq", "cs", "cz"}, {"cd"})
        .node("MaxPool", {"cd"}, {"p"}, {Attr::ints("kernel_shape", {2, 2}), Attr::ints("strides", {2, 2})})
        .node("QuantizeLinear", {"p", "cs", "cz"}, {"pq"})
        .node("DequantizeLinear", {"pq", "cs", "cz"}, {"pd"})
        .node("Flatten", {"pd"}, {"f"})
        .node("DequantizeLinear", {"gwq", "gws", "gwz"}, {"gwd"}, {Attr::i("axis", trans_b ? 0 : 1)})
        .node("Gemm", {"f", "gwd"}, {"gm"}, {Attr::i("transB", trans_b ? 1 : 0)})
        .node("QuantizeLinear", {"gm", "ys", "yz"}, {"gq"})
        .node("DequantizeLinear", {"gq", "ys", "yz"}, {"y"})
        .output("y", DType::kFloat32);
    Result<Model> m = b.build();
    ASSERT_TRUE(m.is_ok()) << m.status().to_string();
    std::vector<Tensor> in = {random_float({1, 3, 6, 6}, rng, 0.f, 1.f)};
    Outputs ref = run(*m, in, false), fast = run(*m, in, true);
    std::string ops;
    for (const StepInfo& st : fast.steps) ops += st.op_type + " ";
    EXPECT_EQ(count_op(fast, "QDense"), 1) << ops;
    EXPECT_EQ(count_op(fast, "Transpose"), 1) << ops;  // the input's, into NHWC; none before the QDense
    expect_close(ref, fast, ys, trans_b ? "transB" : "K x N weights");
  }
}

// A Conv whose result is read in float (no QuantizeLinear after it) dequantises in the epilogue.
TEST(Quantized, FloatOutputOfAnIntegerConvolution) {
  std::mt19937 rng(13);
  const float xs = 1.f / 64.f;
  const Tensor w = random_float({6, 4, 3, 3}, rng);
  const QuantWeights qw = quantize_weights(w, 0);
  ModelBuilder b(13);
  b.input("x", DType::kFloat32, {1, 4, 6, 6})
      .initializer("xs", scalar_f(xs)).initializer("xz", scalar_i8(0))
      .initializer("wq", qw.q).initializer("ws", qw.scale).initializer("wz", qw.zero)
      .node("QuantizeLinear", {"x", "xs", "xz"}, {"xq"})
      .node("DequantizeLinear", {"xq", "xs", "xz"}, {"xd"})
      .node("DequantizeLinear", {"wq", "ws", "wz"}, {"wd"}, {Attr::i("axis", 0)})
      .node("Conv", {"xd", "wd"}, {"y"}, {Attr::ints("kernel_shape", {3, 3}), Attr::ints("pads", {1, 1, 1, 1})})
      .output("y", DType::kFloat32);
  Result<Model> m = b.build();
  ASSERT_TRUE(m.is_ok()) << m.status().to_string();
  std::vector<Tensor> in = {random_float({1, 4, 6, 6}, rng)};
  Outputs ref = run(*m, in, false), fast = run(*m, in, true);
  EXPECT_EQ(count_op(fast, "QConv"), 1);
  // Exact integer sums times a float scale: only float rounding separates the two.
  expect_close(ref, fast, 1e-4f, "float output", false, false);
}

// Pooling, residual Add and Mul between quantised convolutions stay in int8; Softmax falls back to
// float and is reported in the notes.
TEST(Quantized, PoolAddMulAndFallbackNotes) {
  std::mt19937 rng(14);
  const float s = 1.f / 32.f;
  const Tensor w = random_float({8, 8, 1, 1}, rng);
  const QuantWeights qw = quantize_weights(w, 0);
  ModelBuilder b(13);
  residual_block(b, {1, 8, 6, 6}, qw, s, 2, s * 1.5f, -3)
      .node("MaxPool", {"ad"}, {"p"}, {Attr::ints("kernel_shape", {3, 3}), Attr::ints("strides", {2, 2}),
                                       Attr::ints("pads", {1, 1, 1, 1})})
      .node("QuantizeLinear", {"p", "s", "z"}, {"pq"})
      .node("DequantizeLinear", {"pq", "s", "z"}, {"pd"})
      .node("AveragePool", {"pd"}, {"v"}, {Attr::ints("kernel_shape", {2, 2}), Attr::ints("pads", {0, 0, 1, 1}),
                                           Attr::i("count_include_pad", 1)})
      .node("QuantizeLinear", {"v", "s", "z"}, {"vq"})
      .node("DequantizeLinear", {"vq", "s", "z"}, {"vd"})
      .node("Mul", {"vd", "vd"}, {"mu"})
      .node("QuantizeLinear", {"mu", "s", "z"}, {"mq"})
      .node("DequantizeLinear", {"mq", "s", "z"}, {"md"})
      .node("Softmax", {"md"}, {"sm"}, {Attr::i("axis", 1)})
      .output("sm", DType::kFloat32);
  Result<Model> m = b.build();
  ASSERT_TRUE(m.is_ok()) << m.status().to_string();
  std::vector<Tensor> in = {random_float({1, 8, 6, 6}, rng, -2.f, 2.f)};
  Outputs ref = run(*m, in, false), fast = run(*m, in, true);
  EXPECT_EQ(count_op(fast, "QConv"), 1);
  EXPECT_EQ(count_op(fast, "QAdd"), 1);
  EXPECT_EQ(count_op(fast, "QPool"), 2);
  EXPECT_EQ(count_op(fast, "QMul"), 1);
  bool noted = false;
  for (const std::string& n : fast.notes) noted |= n.find("Softmax") != std::string::npos;
  EXPECT_TRUE(noted) << "the float fallback of Softmax is not reported";
  // One step of the last int8 tensor moves a softmax probability by less than s.
  expect_close(ref, fast, s, "pool/add/mul chain");
}

// On kernel sets that multiply unsigned activations (VNNI), the int8 tensors between integer
// operators are stored as uint8 with zero point + 128; a tensor that is also a graph output keeps
// its type. The results are the same either way.
TEST(Quantized, ActivationsBetweenIntegerOperatorsAreStoredUnsignedOnVnni) {
  std::mt19937 rng(15);
  const float s = 1.f / 32.f;
  const Tensor w = random_float({8, 8, 3, 3}, rng);
  const QuantWeights qw = quantize_weights(w, 0);
  ModelBuilder b(13);
  b.input("x", DType::kFloat32, {1, 8, 6, 6})
      .initializer("s", scalar_f(s)).initializer("z", scalar_i8(2))
      .initializer("s2", scalar_f(s * 1.5f)).initializer("z2", scalar_i8(-3))
      .initializer("wq", qw.q).initializer("ws", qw.scale).initializer("wz", qw.zero)
      .node("QuantizeLinear", {"x", "s", "z"}, {"xq"})
      .node("DequantizeLinear", {"xq", "s", "z"}, {"xd"})
      .node("DequantizeLinear", {"wq", "ws", "wz"}, {"wd"}, {Attr::i("axis", 0)})
      .node("Conv", {"xd", "wd"}, {"c"}, {Attr::ints("kernel_shape", {3, 3}), Attr::ints("pads", {1, 1, 1, 1})})
      .node("Relu", {"c"}, {"r"})
      .node("QuantizeLinear", {"r", "s2", "z2"}, {"cq"})
      .node("DequantizeLinear", {"cq", "s2", "z2"}, {"cd"})
      .node("Conv", {"cd", "wd"}, {"c2"}, {Attr::ints("kernel_shape", {3, 3}), Attr::ints("pads", {1, 1, 1, 1})})
      .node("QuantizeLinear", {"c2", "s", "z"}, {"c2q"})
      .node("DequantizeLinear", {"c2q", "s", "z"}, {"c2d"})
      .node("Add", {"c2d", "xd"}, {"a"})
      .node("QuantizeLinear", {"a", "s2", "z2"}, {"aq"})
      .node("DequantizeLinear", {"aq", "s2", "z2"}, {"y"})
      .output("y", DType::kFloat32)
      .output("c2q", DType::kInt8);  // read by the Add, and a graph output: stays int8
  Result<Model> m = b.build();
  ASSERT_TRUE(m.is_ok()) << m.status().to_string();
  std::vector<Tensor> in = {random_float({1, 8, 6, 6}, rng, -2.f, 2.f)};
  Outputs ref = run(*m, in, false), fast = run(*m, in, true);
  EXPECT_EQ(count_op(fast, "QConv"), 2);
  EXPECT_EQ(count_op(fast, "QAdd"), 1);
  int flipped = 0;
  for (const std::string& n : fast.notes)
    if (n.rfind("unsigned_activations: ", 0) == 0) flipped = std::stoi(n.substr(22));
  // xq (read by the first conv and the Add), cq (the Relu output) and aq (read by the last
  // Dequantize) flip; c2q does not.
  EXPECT_EQ(flipped, kernels::qkernels().gemm->a_unsigned ? 3 : 0);
  ASSERT_EQ(fast.values.size(), 2u);
  EXPECT_EQ(fast.values[1].dtype(), DType::kInt8);
  expect_close(ref, fast, s * 1.5f, "conv/relu/conv/add chain");
}

// A TensorFlow-style stem (NHWC float input, Transpose, QuantizeLinear) of few channels: the QConv
// quantises the float rows itself (fuse_input_quantize), with no Quantize step left.
TEST(Quantized, StemConvolutionQuantizesItsFloatInput) {
  std::mt19937 rng(16);
  struct Stem {
    int64_t c, m, h, w, kh, kw, s;
    std::vector<int64_t> pads;
  };
  const Stem stems[] = {{3, 8, 13, 14, 3, 3, 2, {0, 0, 1, 1}},   // VWW-like: RGB, 8 filters, stride 2
                        {3, 16, 9, 9, 3, 3, 1, {1, 1, 1, 1}},    // 16 filters, padding on every side
                        {1, 12, 15, 10, 10, 4, 2, {4, 1, 5, 1}},  // KWS-like: one channel, 4-value rows
                        {1, 1, 7, 9, 3, 3, 1, {1, 1, 1, 1}},      // one channel, one filter (not depthwise)
                        {3, 8, 5, 6, 1, 1, 1, {0, 0, 0, 0}}};     // 1x1 on RGB (not the pointwise GEMM)
  for (const Stem& k : stems)
  for (bool u8 : {false, true}) {
    const float xs = 1.f / 64.f, ys = 0.1f;
    const QuantWeights qw = quantize_weights(random_float({k.m, k.c, k.kh, k.kw}, rng), 0);
    ModelBuilder b(13);
    b.input("x", DType::kFloat32, {1, k.h, k.w, k.c})
        .initializer("xs", scalar_f(xs)).initializer("xz", u8 ? scalar_u8(118) : scalar_i8(-10))
        .initializer("ys", scalar_f(ys)).initializer("yz", scalar_i8(-128))
        .initializer("wq", qw.q).initializer("ws", qw.scale).initializer("wz", qw.zero)
        .node("Transpose", {"x"}, {"xt"}, {Attr::ints("perm", {0, 3, 1, 2})})
        .node("QuantizeLinear", {"xt", "xs", "xz"}, {"xq"})
        .node("DequantizeLinear", {"xq", "xs", "xz"}, {"xd"})
        .node("DequantizeLinear", {"wq", "ws", "wz"}, {"wd"}, {Attr::i("axis", 0)})
        .node("Conv", {"xd", "wd"}, {"c"},
              {Attr::ints("kernel_shape", {k.kh, k.kw}), Attr::ints("strides", {k.s, k.s}), Attr::ints("pads", k.pads)})
        .node("Relu", {"c"}, {"r"})
        .node("QuantizeLinear", {"r", "ys", "yz"}, {"yq"})
        .node("DequantizeLinear", {"yq", "ys", "yz"}, {"y"})
        .output("y", DType::kFloat32);
    Result<Model> m = b.build();
    ASSERT_TRUE(m.is_ok()) << m.status().to_string();
    const std::string what = "stem c=" + std::to_string(k.c) + " m=" + std::to_string(k.m) + (u8 ? " u8" : " s8");
    std::vector<Tensor> in = {random_float({1, k.h, k.w, k.c}, rng, -2.f, 2.f)};
    Outputs ref = run(*m, in, false), fast = run(*m, in, true);
    EXPECT_EQ(count_op(fast, "QConv"), 1) << what;
    EXPECT_EQ(count_op(fast, "Quantize"), 0) << what;
    bool noted = false;
    for (const std::string& n : fast.notes) noted |= n == "fuse_input_quantize: 1 rewrites";
    EXPECT_TRUE(noted) << what;
    expect_close(ref, fast, ys, what);
  }
}

// Uniform over all of int16.
Tensor random_int16(const Shape& shape, std::mt19937& rng) {
  Tensor q(DType::kInt16, shape);
  std::uniform_int_distribution<int> d(-32768, 32767);
  for (int64_t i = 0; i < q.num_elements(); ++i) q.data<int16_t>()[i] = static_cast<int16_t>(d(rng));
  return q;
}

// An input quantised to int16 (`kiln quantize --input-bits 16`): DQ(int16) -> Conv -> Q(int8) runs
// on the int16 kernels, which quantise the float input themselves; float outputs, an int16 model
// input and the layers the kernels cannot take (two groups) are checked too.
TEST(Quantized, Int16InputConvolutionRunsOnIntegerKernels) {
  std::mt19937 rng(21);
  struct Case {
    int64_t c, m, h, w, kh, kw, s, group;
    std::vector<int64_t> pads;
    bool int_out, int16_input;
  };
  const Case cases[] = {{1, 64, 49, 10, 10, 4, 2, 1, {4, 1, 5, 1}, true, false},  // the KWS stem
                        {3, 8, 13, 14, 3, 3, 2, 1, {0, 0, 1, 1}, true, false},    // RGB, odd kernel rows (9 values)
                        {5, 40, 9, 9, 3, 3, 1, 1, {1, 1, 1, 1}, false, false},    // float output, 2 panels
                        {1, 16, 12, 8, 5, 4, 1, 1, {0, 1, 0, 2}, true, true},     // int16 model input
                        {3, 32, 63, 61, 3, 3, 1, 1, {1, 1, 1, 1}, true, false},  // 3.3 M MACs: split at 2 threads
                        {4, 8, 7, 7, 3, 3, 1, 2, {1, 1, 1, 1}, true, false}};     // two groups: stays float
  for (const Case& k : cases) {
    const float xs = 6.f / 65535.f, ys = 0.02f * std::sqrt(static_cast<float>(k.c / k.group * k.kh * k.kw));
    const QuantWeights qw = quantize_weights(random_float({k.m, k.c / k.group, k.kh, k.kw}, rng), 0);
    ModelBuilder b(21);
    b.initializer("xs", scalar_f(xs)).initializer("xz", scalar_i16(-1234))
        .initializer("ys", scalar_f(ys)).initializer("yz", scalar_i8(-7))
        .initializer("wq", qw.q).initializer("ws", qw.scale).initializer("wz", qw.zero);
    if (k.int16_input) {
      b.input("xq", DType::kInt16, {1, k.c, k.h, k.w});
    } else {
      b.input("x", DType::kFloat32, {1, k.c, k.h, k.w}).node("QuantizeLinear", {"x", "xs", "xz"}, {"xq"});
    }
    b.node("DequantizeLinear", {"xq", "xs", "xz"}, {"xd"})
        .node("DequantizeLinear", {"wq", "ws", "wz"}, {"wd"}, {Attr::i("axis", 0)})
        .node("Conv", {"xd", "wd"}, {k.int_out ? "c" : "y"},
              {Attr::ints("kernel_shape", {k.kh, k.kw}), Attr::ints("strides", {k.s, k.s}), Attr::ints("pads", k.pads),
               Attr::i("group", k.group)});
    if (k.int_out) b.node("QuantizeLinear", {"c", "ys", "yz"}, {"yq"}).node("DequantizeLinear", {"yq", "ys", "yz"}, {"y"});
    b.output("y", DType::kFloat32);
    Result<Model> m = b.build();
    ASSERT_TRUE(m.is_ok()) << m.status().to_string();
    const std::string what = "int16 conv c=" + std::to_string(k.c) + " m=" + std::to_string(k.m) +
                             " g=" + std::to_string(k.group) + (k.int16_input ? " int16 input" : "");
    const Tensor in = k.int16_input ? random_int16({1, k.c, k.h, k.w}, rng) : random_float({1, k.c, k.h, k.w}, rng, -2.5f, 3.f);
    Outputs ref = run(*m, {in}, false), fast = run(*m, {in}, true);
    if (k.group != 1) {
      EXPECT_EQ(count_op(fast, "QConv"), 0) << what;
      bool noted = false;
      for (const std::string& n : fast.notes) noted |= n.find("int16 activations need one group") != std::string::npos;
      EXPECT_TRUE(noted) << what;
      expect_close(ref, fast, ys, what);
      continue;
    }
    EXPECT_EQ(count_op(fast, "QConv"), 1) << what;
    EXPECT_EQ(count_op(fast, "Conv"), 0) << what;
    EXPECT_EQ(count_op(fast, "QuantizeLinear"), 0) << what;  // the QConv quantises its float input
    bool int16_kernel = false;
    for (const StepInfo& st : fast.steps) int16_kernel |= st.op_type == "QConv" && st.impl.rfind("qs16_conv", 0) == 0;
    EXPECT_TRUE(int16_kernel) << what;
    // Float output: the integer sums against the float reference's, relative to the output's size.
    expect_close(ref, fast, k.int_out ? ys : 1e-4f * static_cast<float>(k.c * k.kh * k.kw), what, false, k.int_out);
    expect_same_bytes_at_1_and_2_threads(*m, in, what);
  }
}

// An int16 convolution whose int32 sums could overflow (600 weights of 127 per channel against
// int16 values: 32768 * 127 * 600 > 2^31) stays in float, with a note, and matches the reference.
TEST(Quantized, Int16ConvolutionThatCouldOverflowStaysFloat) {
  std::mt19937 rng(23);
  Tensor w(DType::kFloat32, {2, 24, 5, 5});
  for (int64_t i = 0; i < w.num_elements(); ++i) w.data<float>()[i] = 0.01f;
  const QuantWeights qw = quantize_weights(w, 0);  // every weight 127
  ModelBuilder b(21);
  b.input("x", DType::kFloat32, {1, 24, 6, 6})
      .initializer("xs", scalar_f(1.f / 4096.f)).initializer("xz", scalar_i16(0))
      .initializer("ys", scalar_f(0.05f)).initializer("yz", scalar_i8(0))
      .initializer("wq", qw.q).initializer("ws", qw.scale).initializer("wz", qw.zero)
      .node("QuantizeLinear", {"x", "xs", "xz"}, {"xq"})
      .node("DequantizeLinear", {"xq", "xs", "xz"}, {"xd"})
      .node("DequantizeLinear", {"wq", "ws", "wz"}, {"wd"}, {Attr::i("axis", 0)})
      .node("Conv", {"xd", "wd"}, {"c"}, {Attr::ints("kernel_shape", {5, 5})})
      .node("QuantizeLinear", {"c", "ys", "yz"}, {"yq"})
      .node("DequantizeLinear", {"yq", "ys", "yz"}, {"y"})
      .output("y", DType::kFloat32);
  Result<Model> m = b.build();
  ASSERT_TRUE(m.is_ok()) << m.status().to_string();
  const std::vector<Tensor> in = {random_float({1, 24, 6, 6}, rng, -1.f, 1.f)};
  Outputs ref = run(*m, in, false), fast = run(*m, in, true);
  EXPECT_EQ(count_op(fast, "QConv"), 0);
  bool noted = false;
  for (const std::string& n : fast.notes) noted |= n.find("int16 sums could overflow int32") != std::string::npos;
  EXPECT_TRUE(noted);
  expect_close(ref, fast, 0.05f, "int16 conv that could overflow");
}

// A dense layer reading an int16 input: Gemm (transB) and MatMul (3-D input, odd K), int8 and float
// outputs, a float input quantised by the QDense itself and an int16 model input.
TEST(Quantized, Int16InputDenseLayerRunsOnIntegerKernels) {
  std::mt19937 rng(22);
  struct Case {
    Shape x;
    int64_t n;
    bool gemm, int_out, int16_input;
  };
  const Case cases[] = {{{1, 640}, 128, true, true, false},   // the AD autoencoder's first layer
                        {{2, 3, 37}, 20, false, false, false}, // MatMul, odd K, float output
                        {{4, 33}, 40, true, true, true},       // int16 model input, 2 panels, odd K: staged
                        {{3, 32}, 24, true, true, true},       // int16 model input, even K: read in place
                        {{700, 64}, 96, true, true, false}};   // 4.3 M MACs: split at 2 threads
  for (const Case& k : cases) {
    const int64_t kk = k.x.back();
    const float xs = 8.f / 65535.f, ys = 0.03f * std::sqrt(static_cast<float>(kk));
    // Gemm with transB: weights [N, K], per-channel along 0; MatMul: [K, N], per-channel along 1.
    const QuantWeights qw = k.gemm ? quantize_weights(random_float({k.n, kk}, rng), 0)
                                   : quantize_weights(random_float({kk, k.n}, rng), 1);
    ModelBuilder b(21);
    b.initializer("xs", scalar_f(xs)).initializer("xz", scalar_i16(321))
        .initializer("ys", scalar_f(ys)).initializer("yz", scalar_i8(4))
        .initializer("wq", qw.q).initializer("ws", qw.scale).initializer("wz", qw.zero);
    if (k.int16_input) {
      b.input("xq", DType::kInt16, k.x);
    } else {
      b.input("x", DType::kFloat32, k.x).node("QuantizeLinear", {"x", "xs", "xz"}, {"xq"});
    }
    b.node("DequantizeLinear", {"xq", "xs", "xz"}, {"xd"})
        .node("DequantizeLinear", {"wq", "ws", "wz"}, {"wd"}, {Attr::i("axis", k.gemm ? 0 : 1)});
    const char* dense_out = k.int_out ? "d" : "y";
    if (k.gemm) b.node("Gemm", {"xd", "wd"}, {dense_out}, {Attr::i("transB", 1)});
    else b.node("MatMul", {"xd", "wd"}, {dense_out});
    if (k.int_out) b.node("QuantizeLinear", {"d", "ys", "yz"}, {"yq"}).node("DequantizeLinear", {"yq", "ys", "yz"}, {"y"});
    b.output("y", DType::kFloat32);
    Result<Model> m = b.build();
    ASSERT_TRUE(m.is_ok()) << m.status().to_string();
    const std::string what = std::string("int16 ") + (k.gemm ? "Gemm" : "MatMul") + " K=" + std::to_string(kk) +
                             " N=" + std::to_string(k.n) + (k.int16_input ? " int16 input" : "");
    const Tensor in = k.int16_input ? random_int16(k.x, rng) : random_float(k.x, rng, -3.f, 4.f);
    Outputs ref = run(*m, {in}, false), fast = run(*m, {in}, true);
    EXPECT_EQ(count_op(fast, "QDense"), 1) << what;
    EXPECT_EQ(count_op(fast, "Gemm") + count_op(fast, "MatMul"), 0) << what;
    EXPECT_EQ(count_op(fast, "QuantizeLinear"), 0) << what;
    bool int16_kernel = false;
    for (const StepInfo& st : fast.steps) int16_kernel |= st.op_type == "QDense" && st.impl.rfind("qs16_conv", 0) == 0;
    EXPECT_TRUE(int16_kernel) << what;
    expect_close(ref, fast, k.int_out ? ys : 1e-4f * static_cast<float>(kk), what, false, k.int_out);
    expect_same_bytes_at_1_and_2_threads(*m, in, what);
  }
}

// QLinearConv / QLinearMatMul with constant weights become QConv / QDense and agree exactly.
TEST(Quantized, QLinearOperatorsAreBitExact) {
  std::mt19937 rng(15);
  std::uniform_int_distribution<int> byte(0, 255);
  for (bool u8 : {false, true}) {
    Tensor w(u8 ? DType::kUInt8 : DType::kInt8, {8, 3, 3, 3});
    for (int64_t i = 0; i < w.num_elements(); ++i) {
      if (u8) w.data<uint8_t>()[i] = static_cast<uint8_t>(byte(rng));
      else w.data<int8_t>()[i] = static_cast<int8_t>(byte(rng) - 128);
    }
    Tensor ws = random_float({8}, rng, 0.001f, 0.01f);
    Tensor wz = u8 ? make_tensor<uint8_t>({8}, std::vector<uint8_t>(8, 128)) : make_tensor<int8_t>({8}, std::vector<int8_t>(8, 0));
    Tensor bias(DType::kInt32, {8});
    for (int64_t j = 0; j < 8; ++j) bias.data<int32_t>()[j] = static_cast<int32_t>(j * 100 - 300);
    Tensor bm(DType::kInt8, {12, 5});
    for (int64_t i = 0; i < bm.num_elements(); ++i) bm.data<int8_t>()[i] = static_cast<int8_t>(byte(rng) - 128);
    ModelBuilder b(13);
    b.input("x", DType::kUInt8, {1, 3, 7, 7})
        .input("a", DType::kInt8, {4, 12})
        .initializer("xs", scalar_f(0.02f)).initializer("xz", scalar_u8(120))
        .initializer("w", w).initializer("ws", ws).initializer("wz", wz).initializer("bias", bias)
        .initializer("ys", scalar_f(0.1f)).initializer("yz", scalar_i8(-4))
        .initializer("as", scalar_f(0.03f)).initializer("az", scalar_i8(5))
        .initializer("bm", bm).initializer("bs", scalar_f(0.02f)).initializer("bz", scalar_i8(0))
        .initializer("ms", scalar_f(0.25f)).initializer("mz", scalar_u8(128))
        .node("QLinearConv", {"x", "xs", "xz", "w", "ws", "wz", "ys", "yz", "bias"}, {"y"},
              {Attr::ints("pads", {1, 1, 1, 1}), Attr::ints("strides", {2, 1})})
        .node("QLinearMatMul", {"a", "as", "az", "bm", "bs", "bz", "ms", "mz"}, {"mm"})
        .output("y", DType::kInt8)
        .output("mm", DType::kUInt8);
    Result<Model> m = b.build();
    ASSERT_TRUE(m.is_ok()) << m.status().to_string();
    Tensor x(DType::kUInt8, {1, 3, 7, 7}), a(DType::kInt8, {4, 12});
    for (int64_t i = 0; i < x.num_elements(); ++i) x.data<uint8_t>()[i] = static_cast<uint8_t>(byte(rng));
    for (int64_t i = 0; i < a.num_elements(); ++i) a.data<int8_t>()[i] = static_cast<int8_t>(byte(rng) - 128);
    std::vector<Tensor> in = {x, a};
    Outputs ref = run(*m, in, false), fast = run(*m, in, true);
    EXPECT_EQ(count_op(fast, "QConv"), 1);
    EXPECT_EQ(count_op(fast, "QDense"), 1);
    expect_close(ref, fast, 0, u8 ? "qlinear u8 weights" : "qlinear s8 weights", true);
  }
}

// ConvInteger / MatMulInteger with constant weights (and zero points) run on the integer kernels and
// return the same int32 sums.
TEST(Quantized, IntegerOperatorsAreExact) {
  std::mt19937 rng(16);
  std::uniform_int_distribution<int> byte(0, 255);
  Tensor w(DType::kUInt8, {6, 4, 3, 3});
  for (int64_t i = 0; i < w.num_elements(); ++i) w.data<uint8_t>()[i] = static_cast<uint8_t>(byte(rng) / 2 + 64);
  Tensor b(DType::kInt8, {10, 7});
  // |b - bz| must fit int8 for the weights to be folded (else MatMulInteger stays on the reference).
  for (int64_t i = 0; i < b.num_elements(); ++i) b.data<int8_t>()[i] = static_cast<int8_t>(byte(rng) * 240 / 255 - 120);
  Tensor bz(DType::kInt8, {7});
  for (int64_t j = 0; j < 7; ++j) bz.data<int8_t>()[j] = static_cast<int8_t>(j - 3);
  ModelBuilder mb(13);
  mb.input("x", DType::kUInt8, {2, 4, 6, 5})
      .input("a", DType::kInt8, {3, 10})
      .initializer("w", w).initializer("xz", scalar_u8(100)).initializer("wz", scalar_u8(128))
      .initializer("b", b).initializer("az", scalar_i8(-9)).initializer("bz", bz)
      .node("ConvInteger", {"x", "w", "xz", "wz"}, {"y"}, {Attr::ints("pads", {1, 0, 1, 2}), Attr::ints("strides", {1, 2})})
      .node("MatMulInteger", {"a", "b", "az", "bz"}, {"mm"})
      .output("y", DType::kInt32)
      .output("mm", DType::kInt32);
  Result<Model> m = mb.build();
  ASSERT_TRUE(m.is_ok()) << m.status().to_string();
  Tensor x(DType::kUInt8, {2, 4, 6, 5}), a(DType::kInt8, {3, 10});
  for (int64_t i = 0; i < x.num_elements(); ++i) x.data<uint8_t>()[i] = static_cast<uint8_t>(byte(rng));
  for (int64_t i = 0; i < a.num_elements(); ++i) a.data<int8_t>()[i] = static_cast<int8_t>(byte(rng) - 128);
  std::vector<Tensor> in = {x, a};
  Outputs ref = run(*m, in, false), fast = run(*m, in, true);
  EXPECT_EQ(count_op(fast, "QConv"), 1);
  EXPECT_EQ(count_op(fast, "QDense"), 1);
  expect_close(ref, fast, 0, "ConvInteger / MatMulInteger", true);
}

// What ONNX Runtime's dynamic quantiser writes: DynamicQuantizeLinear -> MatMulInteger (constant
// int8 weights, the runtime zero point) -> Cast -> Mul by the runtime scale times the weights'
// (one, or one per column). Optimised, DynamicQuantizeLinear runs on the vectorised Quantize kernel
// and MatMulInteger on an integer GEMM that takes the runtime zero point out of its sums and does
// the Cast and the Mul itself: the same bytes as the reference, for inputs of either sign and an
// all-zero input (scale 1).
TEST(Quantized, DynamicQuantizationRunsOnIntegerKernels) {
  std::mt19937 rng(31);
  std::uniform_int_distribution<int> byte(0, 255);
  // x [rows..., 47] -> y [rows..., cols]; weight zero point 0 with one multiplier, else per column.
  const auto model = [&](const Shape& x_shape, int64_t cols, int8_t wzero) {
    Tensor w(DType::kInt8, {47, cols});
    for (int64_t i = 0; i < w.num_elements(); ++i) w.data<int8_t>()[i] = static_cast<int8_t>(byte(rng) * 200 / 255 - 100);
    ModelBuilder b(13);
    b.input("x", DType::kFloat32, x_shape)
        .initializer("w", w).initializer("wz", scalar_i8(wzero))
        .initializer("ws", wzero == 0 ? scalar_f(0.013f) : random_float({cols}, rng, 0.01f, 0.02f))
        .node("DynamicQuantizeLinear", {"x"}, {"xq", "xs", "xz"})
        .node("MatMulInteger", {"xq", "w", "xz", "wz"}, {"acc"})
        .node("Cast", {"acc"}, {"accf"}, {Attr::i("to", 1)})
        .node("Mul", {"xs", "ws"}, {"s"})
        .node("Mul", {"accf", "s"}, {"y"})
        .output("y", DType::kFloat32)
        .output("xq", DType::kUInt8);
    return b.build();
  };
  for (int8_t wzero : {0, 3}) {
    Result<Model> m = model({2, 37, 47}, 20, wzero);  // 3478 inputs: not whole blocks of 16
    ASSERT_TRUE(m.is_ok()) << m.status().to_string();
    for (float lo : {-3.f, 0.5f, 0.f}) {
      std::vector<Tensor> in = {random_float({2, 37, 47}, rng, lo, 2.f)};
      if (lo == 0.f) std::fill(in[0].data<float>(), in[0].data<float>() + in[0].num_elements(), 0.f);
      Outputs ref = run(*m, in, false), fast = run(*m, in, true);
      EXPECT_EQ(count_op(fast, "DynamicQuantize"), 1);
      EXPECT_EQ(count_op(fast, "QDense"), 1);
      EXPECT_EQ(count_op(fast, "Cast"), 0);
      EXPECT_EQ(count_op(fast, "Mul"), 1);  // x_scale * w_scale: the QDense multiplies by the product
      expect_close(ref, fast, 0, "dynamic quantisation, w zero " + std::to_string(wzero) + ", x from " +
                                     std::to_string(lo), true, false);
    }
  }
  // Large enough for 2 threads to split both the quantisation (65,800 inputs) and the sums'
  // correction (33,600 outputs): the same bytes as 1 thread, and as the reference.
  Result<Model> big = model({1, 1400, 47}, 24, 3);
  ASSERT_TRUE(big.is_ok()) << big.status().to_string();
  const Tensor x = random_float({1, 1400, 47}, rng, -1.f, 4.f);
  expect_same_bytes_at_1_and_2_threads(*big, x, "dynamic quantisation at 2 threads");
  expect_close(run(*big, {x}, false), run(*big, {x}, true), 0, "dynamic quantisation, large", true, false);
  // And it keeps the hot-path rule at 2 threads: run() allocates nothing.
  CompileOptions o;
  o.threads = 2;
  Result<CompiledModel> cm = compile(*big, o);
  ASSERT_TRUE(cm.is_ok()) << cm.status().to_string();
  std::vector<Tensor> outs = cm->make_outputs();
  TensorView iv[] = {x.view()};
  std::vector<TensorView> ov;
  for (Tensor& t : outs) ov.push_back(t.view());
  ASSERT_TRUE(cm->run(iv, ov).is_ok());
  const uint64_t before = heap_allocation_count();
  for (int i = 0; i < 20; ++i) ASSERT_TRUE(cm->run(iv, ov).is_ok());
  EXPECT_EQ(heap_allocation_count() - before, 0u);
}

// The integer path keeps the hot-path rule: run() allocates nothing, with and without threads
// (the QDQ model of the KWS stem, a depthwise layer, a residual QAdd of 10 KiB, which 2 threads
// split, pooling, a dense layer).
TEST(Quantized, IntegerRunAllocatesNothing) {
  std::mt19937 rng(17);
  const float s = 1.f / 32.f;
  const QuantWeights w1 = quantize_weights(random_float({16, 1, 3, 3}, rng), 0);
  const QuantWeights w2 = quantize_weights(random_float({16, 1, 3, 3}, rng), 0);
  const QuantWeights w3 = quantize_weights(random_float({10, 16}, rng), 0);
  ModelBuilder b(13);
  b.input("x", DType::kFloat32, {1, 1, 32, 20})
      .initializer("s", scalar_f(s)).initializer("z", scalar_i8(-3))
      .initializer("w1", w1.q).initializer("w1s", w1.scale).initializer("w1z", w1.zero)
      .initializer("w2", w2.q).initializer("w2s", w2.scale).initializer("w2z", w2.zero)
      .initializer("w3", w3.q).initializer("w3s", w3.scale).initializer("w3z", w3.zero)
      .node("QuantizeLinear", {"x", "s", "z"}, {"xq"})
      .node("DequantizeLinear", {"xq", "s", "z"}, {"xd"})
      .node("DequantizeLinear", {"w1", "w1s", "w1z"}, {"w1d"}, {Attr::i("axis", 0)})
      .node("DequantizeLinear", {"w2", "w2s", "w2z"}, {"w2d"}, {Attr::i("axis", 0)})
      .node("DequantizeLinear", {"w3", "w3s", "w3z"}, {"w3d"}, {Attr::i("axis", 0)})
      .node("Conv", {"xd", "w1d"}, {"c1"}, {Attr::ints("kernel_shape", {3, 3}), Attr::ints("pads", {1, 1, 1, 1})})
      .node("QuantizeLinear", {"c1", "s", "z"}, {"c1q"})
      .node("DequantizeLinear", {"c1q", "s", "z"}, {"c1d"})
      .node("Conv", {"c1d", "w2d"}, {"c2"}, {Attr::ints("kernel_shape", {3, 3}), Attr::ints("pads", {1, 1, 1, 1}),
                                              Attr::i("group", 16)})
      .node("QuantizeLinear", {"c2", "s", "z"}, {"c2q"})
      .node("DequantizeLinear", {"c2q", "s", "z"}, {"c2d"})
      .node("Add", {"c2d", "c1d"}, {"a"})
      .node("QuantizeLinear", {"a", "s", "z"}, {"aq"})
      .node("DequantizeLinear", {"aq", "s", "z"}, {"ad"})
      .node("GlobalAveragePool", {"ad"}, {"g"})
      .node("QuantizeLinear", {"g", "s", "z"}, {"gq"})
      .node("DequantizeLinear", {"gq", "s", "z"}, {"gd"})
      .node("Flatten", {"gd"}, {"f"})
      .node("Gemm", {"f", "w3d"}, {"y"}, {Attr::i("transB", 1)})
      .output("y", DType::kFloat32);
  Result<Model> m = b.build();
  ASSERT_TRUE(m.is_ok()) << m.status().to_string();
  for (int threads : {1, 2}) {
    CompileOptions o;
    o.threads = threads;
    Result<CompiledModel> cm = compile(*m, o);
    ASSERT_TRUE(cm.is_ok()) << cm.status().to_string();
    int integer = 0;
    for (const StepInfo& st : cm->steps()) integer += st.op_type[0] == 'Q' && st.op_type != "Quantize";
    std::string ops;
    for (const StepInfo& st : cm->steps()) ops += st.op_type + " ";
    EXPECT_EQ(integer, 5) << "QConv x2, QAdd, QPool, QDense expected: " << ops;
    Tensor x = random_float({1, 1, 32, 20}, rng);
    std::vector<Tensor> outs = cm->make_outputs();
    TensorView in[] = {x.view()};
    TensorView out[] = {outs[0].view()};
    ASSERT_TRUE(cm->run(in, out).is_ok());
    const uint64_t before = heap_allocation_count();
    for (int i = 0; i < 50; ++i) ASSERT_TRUE(cm->run(in, out).is_ok());
    EXPECT_EQ(heap_allocation_count() - before, 0u) << threads << " threads";
  }
}

// ONNX Runtime's com.microsoft QLinearAdd / QLinearMul compute what DQ -> Add / Mul -> Q does: same
// shapes, and a single-value operand on either side (the chunked path; 600 values: 2 whole chunks
// and a part), int8 and uint8 operands.
TEST(Quantized, MicrosoftQLinearAddAndMul) {
  std::mt19937 rng(18);
  std::uniform_int_distribution<int> byte(0, 255);
  struct Case {
    Shape a, b;
    bool a_u8;
  };
  const Case cases[] = {{{2, 300}, {2, 300}, false}, {{2, 300}, {1}, false}, {{1}, {2, 300}, true}};
  for (const Case& c : cases)
    for (const char* op : {"Add", "Mul"}) {
      const DType ta = c.a_u8 ? DType::kUInt8 : DType::kInt8;
      ModelBuilder q(13), f(13);
      q.opset("com.microsoft", 1);
      for (ModelBuilder* b : {&q, &f})
        b->input("a", ta, c.a)
            .input("b", DType::kInt8, c.b)
            .initializer("as", scalar_f(0.05f)).initializer("az", c.a_u8 ? scalar_u8(130) : scalar_i8(4))
            .initializer("bs", scalar_f(0.02f)).initializer("bz", scalar_i8(-9))
            .initializer("ys", scalar_f(op[0] == 'A' ? 0.06f : 0.5f)).initializer("yz", scalar_i8(1));
      q.node(std::string("QLinear") + op, {"a", "as", "az", "b", "bs", "bz", "ys", "yz"}, {"y"}, {}, "com.microsoft")
          .output("y", DType::kInt8);
      f.node("DequantizeLinear", {"a", "as", "az"}, {"ad"})
          .node("DequantizeLinear", {"b", "bs", "bz"}, {"bd"})
          .node(op, {"ad", "bd"}, {"r"})
          .node("QuantizeLinear", {"r", "ys", "yz"}, {"y"})
          .output("y", DType::kInt8);
      Result<Model> mq = q.build(), mf = f.build();
      ASSERT_TRUE(mq.is_ok()) << mq.status().to_string();
      ASSERT_TRUE(mf.is_ok()) << mf.status().to_string();
      Tensor a(ta, c.a), b(DType::kInt8, c.b);
      for (int64_t i = 0; i < a.num_elements(); ++i) static_cast<uint8_t*>(a.raw())[i] = static_cast<uint8_t>(byte(rng));
      for (int64_t i = 0; i < b.num_elements(); ++i) b.data<int8_t>()[i] = static_cast<int8_t>(byte(rng) - 128);
      std::vector<Tensor> in = {a, b};
      const std::string what = std::string("QLinear") + op + " " + shape_to_string(c.a) + " " + shape_to_string(c.b);
      expect_close(run(*mf, in, false), run(*mq, in, false), 0, what, true);
      expect_close(run(*mf, in, false), run(*mq, in, true), 0, what + " optimised", true);
    }
}

// A zero or NaN scale in a quantised model is an error at compile time, with or without the pass.
// A com.kiln.QConv written into a model with a float X where its kernels cannot quantise it
// (8 input channels: not a few-channel stem) is a clear error naming the rule, not a crash.
TEST(Quantized, FloatInputQConvOutsideTheStemRuleIsAnError) {
  Tensor w(DType::kInt8, {4, 8, 3, 3});
  for (int64_t i = 0; i < w.num_elements(); ++i) w.data<int8_t>()[i] = static_cast<int8_t>(i % 7 - 3);
  Tensor ws(DType::kFloat32, {4}), bias(DType::kInt32, {4});
  for (int j = 0; j < 4; ++j) {
    ws.data<float>()[j] = 0.01f;
    bias.data<int32_t>()[j] = 0;
  }
  ModelBuilder b(13);
  b.opset("com.kiln", 1)
      .input("x", DType::kFloat32, {1, 6, 6, 8})
      .initializer("xs", scalar_f(0.1f)).initializer("xz", scalar_u8(128))
      .initializer("w", w).initializer("ws", ws)
      .initializer("ys", scalar_f(0.2f)).initializer("yz", scalar_u8(128)).initializer("b", bias)
      .node("QConv", {"x", "xs", "xz", "w", "ws", "ys", "yz", "b"}, {"y"},
            {Attr::ints("kernel_shape", {3, 3}), Attr::ints("pads", {1, 1, 1, 1})}, "com.kiln")
      .output("y", DType::kUInt8);
  Result<Model> m = b.build();
  ASSERT_TRUE(m.is_ok()) << m.status().to_string();
  for (bool opt : {false, true}) {
    CompileOptions o;
    o.optimize = opt;
    Result<CompiledModel> cm = compile(*m, o);
    ASSERT_FALSE(cm.is_ok());
    EXPECT_NE(cm.status().message().find("float32 X needs fewer than 4 input channels"), std::string::npos)
        << cm.status().message();
  }
}

TEST(Quantized, ZeroOrNanScaleIsAnError) {
  for (float bad : {0.f, std::nanf("")}) {
    ModelBuilder b(13);
    b.input("x", DType::kFloat32, {1, 4})
        .initializer("s", scalar_f(bad)).initializer("z", scalar_i8(0))
        .node("QuantizeLinear", {"x", "s", "z"}, {"q"})
        .node("DequantizeLinear", {"q", "s", "z"}, {"y"})
        .output("y", DType::kFloat32);
    Result<Model> m = b.build();
    ASSERT_TRUE(m.is_ok()) << m.status().to_string();
    for (bool opt : {false, true}) {
      CompileOptions o;
      o.optimize = opt;
      Result<CompiledModel> cm = compile(*m, o);
      ASSERT_FALSE(cm.is_ok());
      EXPECT_NE(cm.status().message().find("scale"), std::string::npos) << cm.status().message();
    }
  }
}

}  // namespace
}  // namespace kiln::nn
