// Cases the ONNX node suite does not cover: MatMul 1-D promotion and batch broadcasting, Gemm
// bias broadcasting and legacy broadcast=0, integer Gemm, Einsum implicit output order, traces,
// ellipsis broadcasting and malformed equations, Det of singular and 3x3 matrices, and
// allocation-free runs.
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
  bool constant = false;  // an initializer, known at compile time
};

Result<Model> one_node(int opset, const std::string& op, const std::vector<Input>& inputs,
                       const std::vector<Attr>& attrs, std::vector<Tensor>* feeds) {
  ModelBuilder mb(opset);
  std::vector<std::string> names;
  for (const Input& in : inputs) {
    names.push_back(in.name);
    if (in.constant) {
      mb.initializer(in.name, in.value);
    } else {
      mb.input(in.name, in.value.dtype(), in.value.shape());
      feeds->push_back(in.value);
    }
  }
  mb.node(op, names, {"y"}, attrs).output("y", DType::kUndefined);
  return mb.build();
}

Result<Tensor> run_node(int opset, const std::string& op, const std::vector<Input>& inputs,
                        const std::vector<Attr>& attrs = {}) {
  std::vector<Tensor> feeds;
  KILN_ASSIGN_OR_RETURN(Model m, one_node(opset, op, inputs, attrs, &feeds));
  KILN_ASSIGN_OR_RETURN(std::vector<Tensor> ys, testing::run_once(m, feeds));
  return ys[0];
}

template <typename T>
std::vector<T> values(const Tensor& t) {
  return std::vector<T>(t.data<T>(), t.data<T>() + t.num_elements());
}

void expect_near(const std::vector<float>& got, const std::vector<float>& want) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) EXPECT_NEAR(got[i], want[i], 1e-5) << "at " << i;
}

void expect_error(const Result<Tensor>& y, const std::string& fragment) {
  ASSERT_FALSE(y.is_ok());
  EXPECT_NE(y.status().message().find(fragment), std::string::npos) << y.status().message();
}

TEST(MatmulOps, MatMulVectorTimesVectorIsAScalar) {
  auto y =
      run_node(13, "MatMul", {{"a", make_tensor<float>({3}, {1, 2, 3})}, {"b", make_tensor<float>({3}, {4, 5, 6})}});
  ASSERT_TRUE(y.is_ok()) << y.status().to_string();
  EXPECT_EQ(y->shape(), Shape{});
  EXPECT_EQ(values<float>(*y), std::vector<float>{32});
}

TEST(MatmulOps, MatMulPromotesVectorsAndBroadcastsBatches) {
  // [2] x [2, 2, 1] -> [2, 1]: the vector is a row that every batch of B multiplies.
  auto y = run_node(13, "MatMul",
                    {{"a", make_tensor<float>({2}, {1, 2})}, {"b", make_tensor<float>({2, 2, 1}, {3, 4, 5, 6})}});
  ASSERT_TRUE(y.is_ok()) << y.status().to_string();
  EXPECT_EQ(y->shape(), (Shape{2, 1}));
  EXPECT_EQ(values<float>(*y), (std::vector<float>{11, 17}));
  // [2, 1, 1, 2] x [3, 2, 1] -> [2, 3, 1, 1].
  y = run_node(13, "MatMul",
               {{"a", make_tensor<float>({2, 1, 1, 2}, {1, 1, 10, 20})},
                {"b", make_tensor<float>({3, 2, 1}, {1, 2, 3, 4, 5, 6})}});
  ASSERT_TRUE(y.is_ok()) << y.status().to_string();
  EXPECT_EQ(y->shape(), (Shape{2, 3, 1, 1}));
  EXPECT_EQ(values<float>(*y), (std::vector<float>{3, 7, 11, 50, 110, 170}));
}

TEST(MatmulOps, MatMulOnIntegersWrapsOnOverflow) {
  auto y = run_node(13, "MatMul",
                    {{"a", make_tensor<int64_t>({1, 2}, {3, -4})}, {"b", make_tensor<int64_t>({2, 1}, {5, 6})}});
  ASSERT_TRUE(y.is_ok()) << y.status().to_string();
  EXPECT_EQ(values<int64_t>(*y), std::vector<int64_t>{-9});
  // 2^30 * 2 + 2^30 * 2 = 2^32 wraps to 0 in int32 rather than being undefined behaviour.
  y = run_node(13, "MatMul",
               {{"a", make_tensor<int32_t>({1, 2}, {1 << 30, 1 << 30})}, {"b", make_tensor<int32_t>({2, 1}, {2, 2})}});
  ASSERT_TRUE(y.is_ok()) << y.status().to_string();
  EXPECT_EQ(values<int32_t>(*y), std::vector<int32_t>{0});
}

TEST(MatmulOps, MatMulInnerDimensionMismatchIsAnError) {
  expect_error(run_node(13, "MatMul", {{"a", make_tensor<float>({2, 3}, {})}, {"b", make_tensor<float>({4, 2}, {})}}),
               "inner dimensions differ");
  expect_error(
      run_node(13, "MatMul", {{"a", make_tensor<float>({2, 3, 4}, {})}, {"b", make_tensor<float>({3, 4, 2}, {})}}),
      "cannot be broadcast");
}

TEST(MatmulOps, GemmBroadcastsAColumnBias) {
  // C of shape [M, 1] adds one value per row.
  auto y = run_node(13, "Gemm",
                    {{"a", make_tensor<float>({2, 2}, {1, 2, 3, 4})},
                     {"b", make_tensor<float>({2, 2}, {1, 0, 0, 1})},
                     {"c", make_tensor<float>({2, 1}, {10, 20})}},
                    {Attr::f("alpha", 2.0f), Attr::f("beta", 0.5f)});
  ASSERT_TRUE(y.is_ok()) << y.status().to_string();
  EXPECT_EQ(values<float>(*y), (std::vector<float>{7, 9, 16, 18}));
}

TEST(MatmulOps, GemmBetaZeroIgnoresC) {
  auto y = run_node(13, "Gemm",
                    {{"a", make_tensor<float>({1, 1}, {2})},
                     {"b", make_tensor<float>({1, 1}, {3})},
                     {"c", make_tensor<float>({1}, {NAN})}},
                    {Attr::f("beta", 0.0f)});
  ASSERT_TRUE(y.is_ok()) << y.status().to_string();
  EXPECT_EQ(values<float>(*y), std::vector<float>{6});
}

TEST(MatmulOps, GemmOnIntegers) {
  auto y = run_node(13, "Gemm",
                    {{"a", make_tensor<int32_t>({2, 1}, {2, 3})},
                     {"b", make_tensor<int32_t>({2, 1}, {4, 5})},
                     {"c", make_tensor<int32_t>({}, {1})}},
                    {Attr::i("transA", 1), Attr::f("alpha", 2.0f)});
  ASSERT_TRUE(y.is_ok()) << y.status().to_string();
  EXPECT_EQ(y->shape(), (Shape{1, 1}));
  EXPECT_EQ(values<int32_t>(*y), std::vector<int32_t>{47});  // 2 * (2*4 + 3*5) + 1
}

TEST(MatmulOps, GemmLegacyBroadcastZeroNeedsAFullC) {
  std::vector<Input> in = {
      {"a", make_tensor<float>({2, 2}, {})}, {"b", make_tensor<float>({2, 2}, {})}, {"c", make_tensor<float>({2}, {})}};
  expect_error(run_node(6, "Gemm", in), "broadcast=0");
  EXPECT_TRUE(run_node(6, "Gemm", in, {Attr::i("broadcast", 1)}).is_ok());
}

TEST(MatmulOps, GemmRejectsBadShapes) {
  expect_error(run_node(13, "Gemm", {{"a", make_tensor<float>({2, 2, 2}, {})}, {"b", make_tensor<float>({2, 2}, {})}}),
               "must have rank 2");
  expect_error(run_node(13, "Gemm", {{"a", make_tensor<float>({2, 3}, {})}, {"b", make_tensor<float>({2, 3}, {})}}),
               "inner dimensions differ");
  expect_error(run_node(13, "Gemm",
                        {{"a", make_tensor<float>({2, 2}, {})},
                         {"b", make_tensor<float>({2, 2}, {})},
                         {"c", make_tensor<float>({3}, {})}}),
               "does not broadcast");
}

TEST(MatmulOps, EinsumImplicitOutputIsAlphabetical) {
  // "ba" -> "ab": a transpose; uppercase labels sort before lowercase ones.
  auto y = run_node(12, "Einsum", {{"x", make_tensor<float>({2, 3}, {1, 2, 3, 4, 5, 6})}}, {Attr::s("equation", "ba")});
  ASSERT_TRUE(y.is_ok()) << y.status().to_string();
  EXPECT_EQ(y->shape(), (Shape{3, 2}));
  EXPECT_EQ(values<float>(*y), (std::vector<float>{1, 4, 2, 5, 3, 6}));
  y = run_node(12, "Einsum", {{"x", make_tensor<float>({2, 3}, {1, 2, 3, 4, 5, 6})}}, {Attr::s("equation", "aB")});
  ASSERT_TRUE(y.is_ok()) << y.status().to_string();
  EXPECT_EQ(y->shape(), (Shape{3, 2}));
}

TEST(MatmulOps, EinsumTraceAndDiagonal) {
  Tensor m = make_tensor<float>({3, 3}, {1, 2, 3, 4, 5, 6, 7, 8, 9});
  auto y = run_node(12, "Einsum", {{"x", m}}, {Attr::s("equation", "ii")});
  ASSERT_TRUE(y.is_ok()) << y.status().to_string();
  EXPECT_EQ(y->shape(), Shape{});
  EXPECT_EQ(values<float>(*y), std::vector<float>{15});
  y = run_node(12, "Einsum", {{"x", m}}, {Attr::s("equation", "ii->i")});
  ASSERT_TRUE(y.is_ok()) << y.status().to_string();
  EXPECT_EQ(values<float>(*y), (std::vector<float>{1, 5, 9}));
}

TEST(MatmulOps, EinsumThreeOperandsAndEllipsisBroadcast) {
  auto y = run_node(12, "Einsum",
                    {{"a", make_tensor<float>({2}, {1, 2})},
                     {"b", make_tensor<float>({2}, {3, 4})},
                     {"c", make_tensor<float>({2}, {5, 6})}},
                    {Attr::s("equation", "i,i,i->")});
  ASSERT_TRUE(y.is_ok()) << y.status().to_string();
  EXPECT_EQ(values<float>(*y), std::vector<float>{63});  // 15 + 48
  // The second operand's ellipsis is empty, so it meets every batch of the first.
  y = run_node(12, "Einsum",
               {{"a", make_tensor<float>({2, 2}, {1, 2, 3, 4})}, {"b", make_tensor<float>({2}, {10, 100})}},
               {Attr::s("equation", "...i,...i->...")});
  ASSERT_TRUE(y.is_ok()) << y.status().to_string();
  EXPECT_EQ(y->shape(), Shape{2});
  EXPECT_EQ(values<float>(*y), (std::vector<float>{210, 430}));
}

TEST(MatmulOps, EinsumMalformedEquationsAreErrors) {
  Tensor x = make_tensor<float>({2, 2}, {});
  expect_error(run_node(12, "Einsum", {{"x", x}}, {Attr::s("equation", "ij,jk->ik")}), "input terms");
  expect_error(run_node(12, "Einsum", {{"x", x}}, {Attr::s("equation", "ijk->i")}), "subscripts");
  expect_error(run_node(12, "Einsum", {{"x", x}}, {Attr::s("equation", "i1->i")}), "invalid character");
  expect_error(run_node(12, "Einsum", {{"x", x}}, {Attr::s("equation", "ij->iz")}), "does not appear");
  expect_error(run_node(12, "Einsum", {{"x", x}}, {Attr::s("equation", "ij->ii")}), "repeats");
  expect_error(run_node(12, "Einsum", {{"x", make_tensor<float>({2, 3}, {})}}, {Attr::s("equation", "ii->i")}),
               "do not match");
  expect_error(run_node(12, "Einsum", {{"x", make_tensor<float>({2, 3, 4}, {})}}, {Attr::s("equation", "...i->i")}),
               "no '...'");
}

TEST(MatmulOps, DetOfThreeByThreeAndSingular) {
  auto y = run_node(11, "Det",
                    {{"x", make_tensor<float>({2, 3, 3}, {2, 0, 1, 1, 3, 2, 1, 1, 2,       // det 6
                                                          1, 2, 3, 2, 4, 6, 0, 1, 1})}});  // singular
  ASSERT_TRUE(y.is_ok()) << y.status().to_string();
  EXPECT_EQ(y->shape(), Shape{2});
  expect_near(values<float>(*y), {6, 0});
}

TEST(MatmulOps, DetNeedsSquareMatrices) {
  expect_error(run_node(11, "Det", {{"x", make_tensor<float>({2, 3}, {})}}), "square");
  expect_error(run_node(11, "Det", {{"x", make_tensor<float>({3}, {})}}), "rank >= 2");
}

TEST(MatmulOps, RunsAllocateNothing) {
  struct Case {
    std::string op;
    int opset;
    std::vector<Input> inputs;
    std::vector<Attr> attrs;
  };
  std::vector<Case> cases = {
      {"MatMul", 13, {{"a", make_tensor<float>({2, 3, 4}, {})}, {"b", make_tensor<float>({4, 5}, {})}}, {}},
      {"Gemm",
       13,
       {{"a", make_tensor<float>({3, 4}, {})},
        {"b", make_tensor<float>({5, 4}, {}), true},
        {"c", make_tensor<float>({5}, {}), true}},
       {Attr::i("transB", 1)}},
      {"Einsum",
       12,
       {{"a", make_tensor<float>({2, 3, 4}, {})}, {"b", make_tensor<float>({2, 4, 5}, {})}},
       {Attr::s("equation", "bij,bjk->bik")}},
      {"Det", 11, {{"x", make_tensor<float>({2, 3, 3}, {})}}, {}},
  };
  for (const Case& c : cases) {
    std::vector<Tensor> feeds;
    Result<Model> m = one_node(c.opset, c.op, c.inputs, c.attrs, &feeds);
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
