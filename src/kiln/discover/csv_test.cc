#include "kiln/discover/csv.h"

#include <gtest/gtest.h>

namespace kiln::discover {
namespace {

TEST(Csv, ParsesQuotesBomAndCrlf) {
  auto t = parse_csv("\xEF\xBB\xBFname,\"a, b\",c\r\n1,\"x \"\"q\"\"\",3\r\n\r\n4,5,6\n", "t.csv");
  ASSERT_TRUE(t.is_ok()) << t.status().to_string();
  ASSERT_EQ(t->header.size(), 3u);
  EXPECT_EQ(t->header[0], "name");
  EXPECT_EQ(t->header[1], "a, b");
  ASSERT_EQ(t->num_rows(), 2);
  EXPECT_EQ(t->rows[0][1], "x \"q\"");
  EXPECT_EQ(t->line[1], 4);  // the blank line still counts
  EXPECT_EQ(t->column("c"), 2);
  EXPECT_EQ(t->column("zz"), -1);
}

TEST(Csv, ErrorsNameRowAndColumn) {
  auto t = parse_csv("x,y\n1,2\n3\n", "r.csv");
  ASSERT_FALSE(t.is_ok());
  EXPECT_NE(t.status().message().find("r.csv row 3"), std::string::npos) << t.status().message();
  auto u = parse_csv("x,y\n1,abc\n", "r.csv");
  ASSERT_TRUE(u.is_ok());
  auto v = u->number(0, 1);
  ASSERT_FALSE(v.is_ok());
  EXPECT_NE(v.status().message().find("row 2, column 'y'"), std::string::npos) << v.status().message();
  EXPECT_TRUE(u->number(0, 0).is_ok());
}

TEST(Csv, RejectsMalformedHeadersAndQuotes) {
  EXPECT_FALSE(parse_csv("", "e").is_ok());
  EXPECT_FALSE(parse_csv("a,a\n1,2\n", "e").is_ok());
  EXPECT_FALSE(parse_csv("a,\n1,2\n", "e").is_ok());
  EXPECT_FALSE(parse_csv("a,b\n\"1,2\n", "e").is_ok());
  EXPECT_FALSE(parse_csv("a,b\n1\"x,2\n", "e").is_ok());
}

TEST(Csv, NumbersAreStrict) {
  double v = 0;
  EXPECT_TRUE(parse_number(" 1e-3 ", &v));
  EXPECT_DOUBLE_EQ(v, 1e-3);
  EXPECT_TRUE(parse_number("+2", &v));
  EXPECT_FALSE(parse_number("nan", &v));
  EXPECT_FALSE(parse_number("inf", &v));
  EXPECT_FALSE(parse_number("1.5x", &v));
  EXPECT_FALSE(parse_number("", &v));
  EXPECT_EQ(csv_escape("a,b"), "\"a,b\"");
  EXPECT_EQ(csv_escape("plain"), "plain");
}

}  // namespace
}  // namespace kiln::discover
