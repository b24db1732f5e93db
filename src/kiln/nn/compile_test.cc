#include "kiln/nn/compile.h"

#include <gtest/gtest.h>

#include "kiln/core/alloc_counter.h"
#include "kiln/nn/testing/model_builder.h"

namespace kiln::nn {
namespace {

using testing::Attr;
using testing::ModelBuilder;
using testing::make_tensor;

TEST(Compile, RunsAndBroadcasts) {
  ModelBuilder b(13);
  b.input("x", DType::kFloat32, {2, 3})
      .initializer("b", make_tensor<float>({3}, {10, 20, 30}))
      .node("Add", {"x", "b"}, {"y"})
      .output("y", DType::kFloat32);
  Result<Model> m = b.build();
  ASSERT_TRUE(m.is_ok()) << m.status().to_string();
  Tensor x = make_tensor<float>({2, 3}, {1, 2, 3, 4, 5, 6});
  auto y = testing::run_once(*m, {x});
  ASSERT_TRUE(y.is_ok()) << y.status().to_string();
  const float* d = (*y)[0].data<float>();
  EXPECT_EQ(d[0], 11);
  EXPECT_EQ(d[5], 36);
}

TEST(Compile, FoldsConstantSubgraphs) {
  ModelBuilder b(13);
  b.input("x", DType::kFloat32, {3})
      .initializer("a", make_tensor<float>({3}, {1, 2, 3}))
      .initializer("c", make_tensor<float>({3}, {1, 1, 1}))
      .node("Add", {"a", "c"}, {"ac"})   // constant: folded
      .node("Mul", {"x", "ac"}, {"y"})
      .output("y", DType::kFloat32);
  Result<Model> m = b.build();
  ASSERT_TRUE(m.is_ok());
  Result<CompiledModel> cm = compile(*m);
  ASSERT_TRUE(cm.is_ok()) << cm.status().to_string();
  EXPECT_EQ(cm->folded_nodes(), 1);
  EXPECT_EQ(cm->steps().size(), 1u);
}

// Nodes whose outputs are all omitted (no output, or only "") have no effect: they are dropped,
// never run with nowhere to write (found by fuzzing: a constant Concat with no outputs).
TEST(Compile, NodesWithoutOutputsAreDropped) {
  ModelBuilder b(13);
  b.input("x", DType::kFloat32, {3})
      .initializer("a", make_tensor<float>({3}, {1, 2, 3}))
      .node("Concat", {"a", "a"}, {}, {Attr::i("axis", 0)})
      .node("Identity", {"x"}, {""})
      .node("Relu", {"x"}, {""})
      .node("Mul", {"x", "a"}, {"y"})
      .output("y", DType::kFloat32);
  Result<Model> m = b.build();
  ASSERT_TRUE(m.is_ok()) << m.status().to_string();
  auto y = testing::run_once(*m, {make_tensor<float>({3}, {2, 2, 2})});
  ASSERT_TRUE(y.is_ok()) << y.status().to_string();
  EXPECT_EQ((*y)[0].data<float>()[2], 6);
}

TEST(Compile, DynamicDimensionMustBeBound) {
  ModelBuilder b(13);
  b.input("x", DType::kFloat32, {-1, 3}).node("Add", {"x", "x"}, {"y"}).output("y", DType::kFloat32);
  Result<Model> m = b.build();
  ASSERT_TRUE(m.is_ok());
  Result<CompiledModel> cm = compile(*m);
  ASSERT_FALSE(cm.is_ok());
  EXPECT_NE(cm.status().message().find("'N'"), std::string::npos) << cm.status().message();
  CompileOptions o;
  o.input_shapes["x"] = {5, 3};
  cm = compile(*m, o);
  ASSERT_TRUE(cm.is_ok()) << cm.status().to_string();
  EXPECT_EQ(cm->inputs()[0].shape, (Shape{5, 3}));
  o.input_shapes["x"] = {5, 4};
  EXPECT_FALSE(compile(*m, o).is_ok());
}

TEST(Compile, ArenaReusesBuffersAlongAChain) {
  // x -> Add -> Add -> Add -> Add -> y: at most two intermediates are live at once.
  ModelBuilder b(13);
  b.input("x", DType::kFloat32, {1024});
  b.node("Add", {"x", "x"}, {"t1"}).node("Add", {"t1", "t1"}, {"t2"}).node("Add", {"t2", "t2"}, {"t3"})
      .node("Add", {"t3", "t3"}, {"y"}).output("y", DType::kFloat32);
  Result<Model> m = b.build();
  ASSERT_TRUE(m.is_ok());
  Result<CompiledModel> cm = compile(*m);
  ASSERT_TRUE(cm.is_ok());
  EXPECT_EQ(cm->arena_bytes(), 2u * 4096u);
}

TEST(Compile, RunAllocatesNothing) {
  ModelBuilder b(13);
  b.input("x", DType::kFloat32, {4, 8})
      .initializer("b", make_tensor<float>({8}, {1, 2, 3, 4, 5, 6, 7, 8}))
      .node("Add", {"x", "b"}, {"t"})
      .node("Mul", {"t", "t"}, {"u"})
      .node("Sub", {"u", "x"}, {"y"})
      .output("y", DType::kFloat32);
  Result<Model> m = b.build();
  ASSERT_TRUE(m.is_ok());
  Result<CompiledModel> cm = compile(*m);
  ASSERT_TRUE(cm.is_ok());
  Tensor x(DType::kFloat32, {4, 8});
  std::vector<Tensor> outs = cm->make_outputs();
  TensorView in[] = {x.view()};
  TensorView out[] = {outs[0].view()};
  ASSERT_TRUE(cm->run(in, out).is_ok());
  uint64_t before = heap_allocation_count();
  for (int i = 0; i < 100; ++i) ASSERT_TRUE(cm->run(in, out).is_ok());
  EXPECT_EQ(heap_allocation_count() - before, 0u);
}

TEST(Compile, WrongInputShapeAtRunIsAnError) {
  ModelBuilder b(13);
  b.input("x", DType::kFloat32, {2}).node("Add", {"x", "x"}, {"y"}).output("y", DType::kFloat32);
  Result<Model> m = b.build();
  ASSERT_TRUE(m.is_ok());
  Result<CompiledModel> cm = compile(*m);
  ASSERT_TRUE(cm.is_ok());
  Tensor x(DType::kFloat32, {3});
  std::vector<Tensor> outs = cm->make_outputs();
  TensorView in[] = {x.view()};
  TensorView out[] = {outs[0].view()};
  Status s = cm->run(in, out);
  ASSERT_FALSE(s.is_ok());
  EXPECT_NE(s.message().find("input 'x'"), std::string::npos) << s.message();
}

TEST(Compile, GraphOutputThatIsAnInputOrConstantIsCopied) {
  ModelBuilder b(13);
  b.input("x", DType::kFloat32, {2})
      .initializer("c", make_tensor<float>({2}, {7, 8}))
      .node("Identity", {"x"}, {"y"})
      .node("Identity", {"c"}, {"z"})
      .output("y", DType::kFloat32)
      .output("z", DType::kFloat32);
  Result<Model> m = b.build();
  ASSERT_TRUE(m.is_ok()) << m.status().to_string();
  Tensor x = make_tensor<float>({2}, {1, 2});
  auto ys = testing::run_once(*m, {x});
  ASSERT_TRUE(ys.is_ok()) << ys.status().to_string();
  EXPECT_EQ((*ys)[0].data<float>()[1], 2);
  EXPECT_EQ((*ys)[1].data<float>()[0], 7);
}

}  // namespace
}  // namespace kiln::nn
