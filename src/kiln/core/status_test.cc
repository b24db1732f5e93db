#include "kiln/core/status.h"

#include <gtest/gtest.h>

namespace kiln {
namespace {

Result<int> half(int v) {
  if (v % 2) return Status::invalid("value ", v, " is odd");
  return v / 2;
}

Result<int> quarter(int v) {
  KILN_ASSIGN_OR_RETURN(int h, half(v));
  KILN_ASSIGN_OR_RETURN(int q, half(h));
  return q;
}

TEST(Status, OkCarriesNoMessage) {
  Status s;
  EXPECT_TRUE(s.is_ok());
  EXPECT_EQ(s.to_string(), "ok");
}

TEST(Status, MessageIsBuiltFromParts) {
  Status s = Status::unsupported("op ", "Foo", " at opset ", 13);
  EXPECT_EQ(s.code(), StatusCode::kUnsupported);
  EXPECT_EQ(s.message(), "op Foo at opset 13");
  EXPECT_EQ(s.with_context("node n1").message(), "node n1: op Foo at opset 13");
}

TEST(Result, PropagatesErrors) {
  EXPECT_EQ(*quarter(8), 2);
  Result<int> r = quarter(6);
  ASSERT_FALSE(r.is_ok());
  EXPECT_EQ(r.status().message(), "value 3 is odd");
}

}  // namespace
}  // namespace kiln
