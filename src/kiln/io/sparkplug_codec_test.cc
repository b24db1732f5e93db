// Sparkplug B codec: what encode_payload writes, decode_command reads back; garbage is an error.
#include <gtest/gtest.h>

#include "kiln/io/sparkplug_codec.h"

namespace kiln::io {
namespace {

TEST(SparkplugCodec, RoundTripOfACommand) {
  std::vector<OutMetric> m = {{.name = "Node Control/Rebirth", .datatype = kSpBoolean, .value = 1},
                              {.name = "sp", .datatype = kSpDouble, .value = 12.5},
                              {.name = {}, .alias = 3, .datatype = kSpInt32, .value = -7},
                              {.name = "big", .datatype = kSpInt64, .value = -5000000000.0},
                              {.name = "f", .datatype = kSpFloat, .value = 0.25}};
  std::string b = encode_payload(1700000000000ull, 4, m);
  auto r = decode_command(reinterpret_cast<const uint8_t*>(b.data()), b.size());
  ASSERT_TRUE(r.is_ok()) << r.status().message();
  ASSERT_EQ(r->size(), 5u);
  EXPECT_EQ((*r)[0].name, "Node Control/Rebirth");
  EXPECT_EQ((*r)[0].value, 1);
  EXPECT_EQ((*r)[1].value, 12.5);
  EXPECT_TRUE((*r)[2].name.empty());
  EXPECT_TRUE((*r)[2].has_alias);
  EXPECT_EQ((*r)[2].alias, 3u);
  EXPECT_EQ((*r)[2].value, -7);
  EXPECT_EQ((*r)[3].value, -5000000000.0);
  EXPECT_EQ((*r)[4].value, 0.25);
  EXPECT_TRUE((*r)[4].numeric);
}

TEST(SparkplugCodec, GarbageIsAnError) {
  const uint8_t junk[] = {0xff, 0xff, 0xff, 0xff, 0x0f, 0x12};
  EXPECT_FALSE(decode_command(junk, sizeof junk).is_ok());
  // An empty payload is a valid (empty) command.
  auto e = decode_command(junk, 0);
  ASSERT_TRUE(e.is_ok());
  EXPECT_TRUE(e->empty());
  EXPECT_STREQ(sparkplug_type_name(kSpDouble), "Double");
  EXPECT_STREQ(sparkplug_type_name(999), "Unknown");
}

}  // namespace
}  // namespace kiln::io
