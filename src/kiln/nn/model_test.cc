#include "kiln/nn/model.h"

#include <gtest/gtest.h>

#include "kiln/nn/testing/model_builder.h"

namespace kiln::nn {
namespace {

using testing::Attr;
using testing::ModelBuilder;
using testing::make_tensor;

TEST(Model, LoadsAValidGraphInTopologicalOrder) {
  ModelBuilder b(13);
  b.input("x", DType::kFloat32, {2, 3})
      .initializer("w", make_tensor<float>({2, 3}, {1, 2, 3, 4, 5, 6}))
      // Written out of order on purpose: the loader sorts.
      .node("Sub", {"s", "x"}, {"y"})
      .node("Add", {"x", "w"}, {"s"})
      .output("y", DType::kFloat32);
  Result<Model> m = b.build();
  ASSERT_TRUE(m.is_ok()) << m.status().to_string();
  const Graph& g = m->graph();
  ASSERT_EQ(g.nodes.size(), 2u);
  EXPECT_EQ(g.nodes[0].op_type, "Add");
  EXPECT_EQ(g.nodes[1].op_type, "Sub");
  ASSERT_EQ(g.inputs.size(), 1u);
  EXPECT_EQ(g.values[g.inputs[0]].name, "x");
}

TEST(Model, RejectsGarbageWithAClearMessage) {
  Result<Model> m = Model::load_bytes("this is not a protobuf \xff\xff\xff");
  ASSERT_FALSE(m.is_ok());
  EXPECT_NE(m.status().message().find("not a valid ONNX model"), std::string::npos) << m.status().message();
}

TEST(Model, MissingFileNamesThePath) {
  Result<Model> m = Model::load("/nonexistent/model.onnx");
  ASSERT_FALSE(m.is_ok());
  EXPECT_EQ(m.status().code(), StatusCode::kNotFound);
  EXPECT_NE(m.status().message().find("/nonexistent/model.onnx"), std::string::npos);
}

TEST(Model, UnsupportedOperatorNamesOpDomainOpsetAndNode) {
  ModelBuilder b(13);
  b.input("x", DType::kFloat32, {2}).node("FancyOp", {"x"}, {"y"}, {}, "com.example").opset("com.example", 3)
      .output("y", DType::kFloat32);
  Result<Model> m = b.build();
  ASSERT_FALSE(m.is_ok());
  EXPECT_EQ(m.status().code(), StatusCode::kUnsupported);
  const std::string& msg = m.status().message();
  EXPECT_NE(msg.find("FancyOp"), std::string::npos) << msg;
  EXPECT_NE(msg.find("com.example"), std::string::npos) << msg;
  EXPECT_NE(msg.find("opset 3"), std::string::npos) << msg;
  EXPECT_NE(msg.find("FancyOp_1"), std::string::npos) << msg;
}

TEST(Model, UndefinedInputIsAnError) {
  ModelBuilder b(13);
  b.input("x", DType::kFloat32, {2}).node("Add", {"x", "nope"}, {"y"}).output("y", DType::kFloat32);
  Result<Model> m = b.build();
  ASSERT_FALSE(m.is_ok());
  EXPECT_NE(m.status().message().find("'nope'"), std::string::npos) << m.status().message();
}

TEST(Model, CycleIsAnError) {
  ModelBuilder b(13);
  b.input("x", DType::kFloat32, {2}).node("Add", {"x", "b"}, {"a"}).node("Add", {"x", "a"}, {"b"})
      .output("b", DType::kFloat32);
  Result<Model> m = b.build();
  ASSERT_FALSE(m.is_ok());
  EXPECT_NE(m.status().message().find("cycle"), std::string::npos) << m.status().message();
}

TEST(Model, DoubleDefinitionIsAnError) {
  ModelBuilder b(13);
  b.input("x", DType::kFloat32, {2}).node("Add", {"x", "x"}, {"y"}).node("Sub", {"x", "x"}, {"y"})
      .output("y", DType::kFloat32);
  EXPECT_FALSE(b.build().is_ok());
}

TEST(Model, OpsetNewerThanKilnKnowsIsUnsupported) {
  ModelBuilder b(99);
  b.input("x", DType::kFloat32, {2}).node("Add", {"x", "x"}, {"y"}).output("y", DType::kFloat32);
  Result<Model> m = b.build();
  ASSERT_FALSE(m.is_ok());
  EXPECT_EQ(m.status().code(), StatusCode::kUnsupported);
}

}  // namespace
}  // namespace kiln::nn
