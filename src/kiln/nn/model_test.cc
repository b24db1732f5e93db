#include "kiln/nn/model.h"

#include <gtest/gtest.h>

#include "kiln/nn/testing/model_builder.h"

#include <unistd.h>

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

// External data: an initializer whose bytes live in a file next to the model.
#include <onnx/onnx_pb.h>

#include <filesystem>
#include <fstream>

namespace kiln::nn {
namespace {

std::string external_model(const std::string& location, int64_t offset) {
  onnx::ModelProto m;
  m.set_ir_version(8);
  auto* o = m.add_opset_import();
  o->set_domain("");
  o->set_version(13);
  auto* g = m.mutable_graph();
  g->set_name("ext");
  auto* in = g->add_input();
  in->set_name("x");
  in->mutable_type()->mutable_tensor_type()->set_elem_type(onnx::TensorProto::FLOAT);
  in->mutable_type()->mutable_tensor_type()->mutable_shape()->add_dim()->set_dim_value(3);
  auto* w = g->add_initializer();
  w->set_name("w");
  w->set_data_type(onnx::TensorProto::FLOAT);
  w->add_dims(3);
  w->set_data_location(onnx::TensorProto::EXTERNAL);
  auto* kv = w->add_external_data();
  kv->set_key("location");
  kv->set_value(location);
  kv = w->add_external_data();
  kv->set_key("offset");
  kv->set_value(std::to_string(offset));
  kv = w->add_external_data();
  kv->set_key("length");
  kv->set_value("12");
  auto* n = g->add_node();
  n->set_op_type("Add");
  n->add_input("x");
  n->add_input("w");
  n->add_output("y");
  auto* out = g->add_output();
  out->set_name("y");
  out->mutable_type()->mutable_tensor_type()->set_elem_type(onnx::TensorProto::FLOAT);
  return m.SerializeAsString();
}

TEST(Model, ExternalDataIsReadNextToTheModel) {
  namespace fs = std::filesystem;
  fs::path dir = fs::temp_directory_path() / ("kiln_ext_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  {
    std::ofstream wf(dir / "weights.bin", std::ios::binary);
    const float pad = 0, vals[3] = {10, 20, 30};
    wf.write(reinterpret_cast<const char*>(&pad), 4);  // offset 4
    wf.write(reinterpret_cast<const char*>(vals), 12);
    std::ofstream mf(dir / "model.onnx", std::ios::binary);
    mf << external_model("weights.bin", 4);
  }
  Result<Model> m = Model::load((dir / "model.onnx").string());
  ASSERT_TRUE(m.is_ok()) << m.status().to_string();
  auto y = testing::run_once(*m, {testing::make_tensor<float>({3}, {1, 2, 3})});
  ASSERT_TRUE(y.is_ok()) << y.status().to_string();
  EXPECT_EQ((*y)[0].data<float>()[2], 33.f);

  // A location that leaves the model's folder, or data past the end of the file, is refused.
  {
    std::ofstream mf(dir / "escape.onnx", std::ios::binary);
    mf << external_model("../weights.bin", 0);
    std::ofstream tf(dir / "short.onnx", std::ios::binary);
    tf << external_model("weights.bin", 8);
  }
  Result<Model> esc = Model::load((dir / "escape.onnx").string());
  ASSERT_FALSE(esc.is_ok());
  EXPECT_NE(esc.status().message().find("inside the model's folder"), std::string::npos) << esc.status().message();
  Result<Model> shrt = Model::load((dir / "short.onnx").string());
  ASSERT_FALSE(shrt.is_ok());
  EXPECT_NE(shrt.status().message().find("bytes"), std::string::npos) << shrt.status().message();
  // From memory there is no folder to read from.
  Result<Model> mem = Model::load_bytes(external_model("weights.bin", 4));
  ASSERT_FALSE(mem.is_ok());
  fs::remove_all(dir);
}

}  // namespace
}  // namespace kiln::nn
