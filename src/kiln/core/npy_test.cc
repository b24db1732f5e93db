#include "kiln/core/npy.h"

#include <gtest/gtest.h>

#include <cstring>

namespace kiln {
namespace {

TEST(Npy, RoundTripsEveryNumericType) {
  for (DType t : {DType::kFloat32, DType::kFloat64, DType::kInt8, DType::kUInt8, DType::kInt16, DType::kInt32,
                  DType::kInt64, DType::kUInt64, DType::kBool}) {
    Tensor a(t, {2, 3});
    auto* p = static_cast<unsigned char*>(a.raw());
    for (size_t i = 0; i < a.byte_size(); ++i) p[i] = t == DType::kBool ? (i % 2) : static_cast<unsigned char>(i * 7);
    Result<Tensor> b = parse_npy(format_npy(a.view()));
    ASSERT_TRUE(b.is_ok()) << b.status().to_string();
    EXPECT_EQ(b->dtype(), t);
    EXPECT_EQ(b->shape(), a.shape());
    EXPECT_EQ(0, std::memcmp(a.raw(), b->raw(), a.byte_size()));
  }
}

TEST(Npy, ScalarAndOneDimensional) {
  Tensor s(DType::kFloat32, {});
  s.data<float>()[0] = 3.5f;
  Result<Tensor> r = parse_npy(format_npy(s.view()));
  ASSERT_TRUE(r.is_ok());
  EXPECT_TRUE(r->shape().empty());
  EXPECT_EQ(r->data<float>()[0], 3.5f);
  Tensor v(DType::kInt32, {4});
  r = parse_npy(format_npy(v.view()));
  ASSERT_TRUE(r.is_ok());
  EXPECT_EQ(r->shape(), Shape{4});
}

TEST(Npy, FortranOrderIsTransposed) {
  // Header written by hand: a 2x3 column-major int32 array holding 0..5 in memory order.
  std::string h = "{'descr': '<i4', 'fortran_order': True, 'shape': (2, 3), }";
  h.append(128 - 10 - h.size() - 1, ' ');
  h += '\n';
  std::string f = std::string("\x93NUMPY\x01\x00", 8) + static_cast<char>(h.size()) + '\0' + h;
  for (int32_t i = 0; i < 6; ++i) f.append(reinterpret_cast<const char*>(&i), 4);
  Result<Tensor> r = parse_npy(f);
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  // Column-major memory 0..5 means element (i, j) = i + 2j.
  const int32_t* d = r->data<int32_t>();
  EXPECT_EQ(d[0], 0);
  EXPECT_EQ(d[1], 2);
  EXPECT_EQ(d[2], 4);
  EXPECT_EQ(d[3], 1);
}

TEST(Npy, RejectsBadInputWithMessage) {
  EXPECT_NE(parse_npy("hello").status().message().find("not a .npy"), std::string::npos);
  Tensor a(DType::kFloat32, {100});
  std::string bytes = format_npy(a.view());
  Result<Tensor> r = parse_npy(bytes.substr(0, bytes.size() - 10));
  ASSERT_FALSE(r.is_ok());
  EXPECT_NE(r.status().message().find("truncated"), std::string::npos);
  std::string obj = bytes;
  obj.replace(obj.find("<f4"), 3, "|O8");
  EXPECT_FALSE(parse_npy(obj).is_ok());
}

}  // namespace
}  // namespace kiln
