#include "kiln/core/tensor.h"

#include <gtest/gtest.h>

namespace kiln {
namespace {

TEST(Tensor, AllocatesAlignedZeroedStorage) {
  Tensor t(DType::kFloat32, {2, 3});
  EXPECT_EQ(t.byte_size(), 24u);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(t.raw()) % 64, 0u);
  for (int i = 0; i < 6; ++i) EXPECT_EQ(t.data<float>()[i], 0.0f);
}

TEST(Tensor, CopyIsDeep) {
  Tensor a(DType::kInt64, {3});
  a.data<int64_t>()[1] = 7;
  Tensor b = a;
  b.data<int64_t>()[1] = 9;
  EXPECT_EQ(a.data<int64_t>()[1], 7);
  EXPECT_EQ(b.data<int64_t>()[1], 9);
}

TEST(Tensor, ReshapeKeepsElementCount) {
  Tensor a(DType::kFloat32, {2, 6});
  EXPECT_TRUE(a.reshape({3, 4}).is_ok());
  EXPECT_FALSE(a.reshape({5}).is_ok());
}

TEST(Shape, CheckedElementsRejectsNegativeAndHuge) {
  EXPECT_EQ(*checked_num_elements(std::vector<int64_t>{2, 3}), 6);
  EXPECT_EQ(*checked_num_elements(std::vector<int64_t>{0, int64_t{1} << 30}), 0);
  // A zero dimension does not excuse the others: their products are used for strides.
  EXPECT_FALSE(checked_num_elements(std::vector<int64_t>{0, int64_t{1} << 62, int64_t{1} << 62}).is_ok());
  EXPECT_FALSE(checked_num_elements(std::vector<int64_t>{-1, 3}).is_ok());
  EXPECT_FALSE(checked_num_elements(std::vector<int64_t>{int64_t{1} << 32, int64_t{1} << 32}, 4).is_ok());
}

TEST(Tensor, ElementAccessAcrossTypes) {
  Tensor a(DType::kInt32, {2});
  a.data<int32_t>()[1] = -5;
  EXPECT_EQ(element_as_int64(a.view(), 1), -5);
  Tensor f(DType::kFloat32, {1});
  f.data<float>()[0] = 2.5f;
  EXPECT_DOUBLE_EQ(element_as_double(f.view(), 0), 2.5);
}

}  // namespace
}  // namespace kiln
