// Cases the ONNX node suite does not cover: integer division by zero, broadcasting corners.
#include <gtest/gtest.h>

#include "kiln/nn/testing/model_builder.h"

namespace kiln::nn {
namespace {

using testing::ModelBuilder;
using testing::make_tensor;

Result<std::vector<Tensor>> run_binary(const std::string& op, const Tensor& a, const Tensor& b) {
  ModelBuilder mb(13);
  mb.input("a", a.dtype(), a.shape()).input("b", b.dtype(), b.shape()).node(op, {"a", "b"}, {"y"})
      .output("y", DType::kUndefined);
  KILN_ASSIGN_OR_RETURN(Model m, mb.build());
  return testing::run_once(m, {a, b});
}

TEST(BinaryOps, IntegerDivisionByZeroDoesNotTrap) {
  auto y = run_binary("Div", make_tensor<int32_t>({3}, {7, INT32_MIN, 5}), make_tensor<int32_t>({3}, {0, -1, 2}));
  ASSERT_TRUE(y.is_ok()) << y.status().to_string();
  EXPECT_EQ((*y)[0].data<int32_t>()[0], 0);
  EXPECT_EQ((*y)[0].data<int32_t>()[2], 2);
}

TEST(BinaryOps, BroadcastsBothWays) {
  auto y = run_binary("Sub", make_tensor<float>({2, 1}, {10, 20}), make_tensor<float>({1, 3}, {1, 2, 3}));
  ASSERT_TRUE(y.is_ok()) << y.status().to_string();
  ASSERT_EQ((*y)[0].shape(), (Shape{2, 3}));
  const float* d = (*y)[0].data<float>();
  EXPECT_EQ(d[0], 9);
  EXPECT_EQ(d[5], 17);
}

TEST(BinaryOps, IncompatibleShapesAreAClearError) {
  auto y = run_binary("Add", make_tensor<float>({2, 3}, {}), make_tensor<float>({4}, {}));
  ASSERT_FALSE(y.is_ok());
  EXPECT_NE(y.status().message().find("cannot be broadcast"), std::string::npos) << y.status().message();
}

TEST(BinaryOps, MismatchedDtypesAreAnError) {
  auto y = run_binary("Mul", make_tensor<float>({2}, {}), make_tensor<int32_t>({2}, {}));
  ASSERT_FALSE(y.is_ok());
  EXPECT_NE(y.status().message().find("different dtypes"), std::string::npos) << y.status().message();
}

}  // namespace
}  // namespace kiln::nn
