// Modbus mapping: value <-> register conversions, the server's request checks, and located
// errors for bad mappings (built through a whole cell, as `kiln cell check` does).
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "kiln/control/cell.h"
#include "kiln/io/drivers.h"
#include "kiln/io/modbus_map.h"
#include "kiln/io/modbus_server.h"

namespace kiln::io {
namespace {

ModbusEntry entry(ModbusType t, double scale = 1, ModbusTable table = ModbusTable::kHolding) {
  ModbusEntry e;
  e.type = t;
  e.table = table;
  e.scale = scale;
  e.width = (t == ModbusType::kUint32 || t == ModbusType::kInt32 || t == ModbusType::kFloat32) ? 2 : 1;
  return e;
}

TEST(ModbusMap, Float32WordOrder) {
  uint16_t w[2];
  ModbusEntry e = entry(ModbusType::kFloat32);
  encode_value(e, WordOrder::kHighFirst, 1.5, w);  // 0x3FC00000
  EXPECT_EQ(w[0], 0x3FC0);
  EXPECT_EQ(w[1], 0x0000);
  EXPECT_EQ(decode_value(e, WordOrder::kHighFirst, w), 1.5);
  encode_value(e, WordOrder::kLowFirst, 1.5, w);
  EXPECT_EQ(w[0], 0x0000);
  EXPECT_EQ(w[1], 0x3FC0);
  EXPECT_EQ(decode_value(e, WordOrder::kLowFirst, w), 1.5);
}

TEST(ModbusMap, IntegersScaleRoundAndSaturate) {
  uint16_t w[2];
  ModbusEntry i16 = entry(ModbusType::kInt16, 10);
  encode_value(i16, WordOrder::kHighFirst, -21.53, w);
  EXPECT_EQ(static_cast<int16_t>(w[0]), -215);
  EXPECT_DOUBLE_EQ(decode_value(i16, WordOrder::kHighFirst, w), -21.5);
  encode_value(i16, WordOrder::kHighFirst, 1e9, w);
  EXPECT_EQ(static_cast<int16_t>(w[0]), 32767);
  ModbusEntry u16 = entry(ModbusType::kUint16);
  encode_value(u16, WordOrder::kHighFirst, -5, w);
  EXPECT_EQ(w[0], 0);
  encode_value(u16, WordOrder::kHighFirst, std::nan(""), w);
  EXPECT_EQ(w[0], 0);
  ModbusEntry i32 = entry(ModbusType::kInt32);
  encode_value(i32, WordOrder::kHighFirst, -100000, w);
  EXPECT_EQ(decode_value(i32, WordOrder::kHighFirst, w), -100000);
  ModbusEntry u32 = entry(ModbusType::kUint32);
  encode_value(u32, WordOrder::kHighFirst, 70000, w);
  EXPECT_EQ(w[0], 1);
  EXPECT_EQ(w[1], 70000 - 65536);
}

// The server's map, built by hand from the same entries (the device keeps its map private).
ModbusMap server_map(const control::ProcessImage& img) {
  ModbusMap m;
  auto add = [&](const char* tag, ModbusTable t, ModbusType ty, int addr, double scale, bool w) {
    ModbusEntry e = entry(ty, scale, t);
    e.tag = img.find(tag);
    e.address = addr;
    e.writable = w;
    m.entries.push_back(e);
  };
  add("sp", ModbusTable::kHolding, ModbusType::kFloat32, 10, 1, true);
  add("level", ModbusTable::kHolding, ModbusType::kInt16, 12, 10, true);
  add("out", ModbusTable::kHolding, ModbusType::kFloat32, 13, 1, false);
  add("run", ModbusTable::kCoil, ModbusType::kBit, 0, 1, true);
  return m;
}

TEST(ModbusServerRequest, WritesAreCheckedBeforeTheyApply) {
  auto spec = [](const char* n, control::TagType t, double lo, double hi) {
    control::TagSpec s;
    s.name = n;
    s.type = t;
    s.min = lo;
    s.max = hi;
    return s;
  };
  const double inf = std::numeric_limits<double>::infinity();
  std::vector<control::TagSpec> specs = {spec("sp", control::TagType::kFloat, 0, 100), spec("level", control::TagType::kInt, 0, 10),
                                         spec("out", control::TagType::kFloat, -inf, inf), spec("run", control::TagType::kBool, 0, 1)};
  control::ProcessImage img(specs);
  ModbusMap m = server_map(img);
  std::vector<TagWrite> w;
  // FC16 at 10, 2 registers: 42.0f = 0x4228 0000
  const uint8_t ok16[] = {16, 0, 10, 0, 2, 4, 0x42, 0x28, 0, 0};
  EXPECT_EQ(check_modbus_request(m, img, ok16, sizeof ok16, &w), 0);
  ASSERT_EQ(w.size(), 1u);
  EXPECT_EQ(w[0].value, 42.0);
  // 500.0f = 0x43FA0000 is above max 100.
  w.clear();
  const uint8_t big[] = {16, 0, 10, 0, 2, 4, 0x43, 0xFA, 0, 0};
  EXPECT_EQ(check_modbus_request(m, img, big, sizeof big, &w), kIllegalDataValue);
  EXPECT_TRUE(w.empty());
  // Half a float.
  const uint8_t half[] = {6, 0, 10, 0x42, 0x28};
  EXPECT_EQ(check_modbus_request(m, img, half, sizeof half, &w), kIllegalDataAddress);
  // A read-only register, and an unmapped one.
  const uint8_t ro[] = {16, 0, 13, 0, 2, 4, 0, 0, 0, 0};
  EXPECT_EQ(check_modbus_request(m, img, ro, sizeof ro, &w), kIllegalDataAddress);
  const uint8_t unmapped[] = {6, 0, 99, 0, 1};
  EXPECT_EQ(check_modbus_request(m, img, unmapped, sizeof unmapped, &w), kIllegalDataAddress);
  // int16 with scale 10: 70 -> 7 ok; 75 -> 7.5 is not an int; 200 -> 20 above max.
  const uint8_t lvl_ok[] = {6, 0, 12, 0, 70};
  EXPECT_EQ(check_modbus_request(m, img, lvl_ok, sizeof lvl_ok, &w), 0);
  EXPECT_EQ(w.back().value, 7);
  const uint8_t lvl_frac[] = {6, 0, 12, 0, 75};
  EXPECT_EQ(check_modbus_request(m, img, lvl_frac, sizeof lvl_frac, &w), kIllegalDataValue);
  const uint8_t lvl_big[] = {6, 0, 12, 0, 200};
  EXPECT_EQ(check_modbus_request(m, img, lvl_big, sizeof lvl_big, &w), kIllegalDataValue);
  // Coils: FC5 on, a bad FC5 value, FC15 with one bit.
  const uint8_t coil_on[] = {5, 0, 0, 0xFF, 0};
  EXPECT_EQ(check_modbus_request(m, img, coil_on, sizeof coil_on, &w), 0);
  EXPECT_EQ(w.back().value, 1);
  const uint8_t coil_bad[] = {5, 0, 0, 0x12, 0x34};
  EXPECT_EQ(check_modbus_request(m, img, coil_bad, sizeof coil_bad, &w), kIllegalDataValue);
  const uint8_t coils[] = {15, 0, 0, 0, 1, 1, 0};
  EXPECT_EQ(check_modbus_request(m, img, coils, sizeof coils, &w), 0);
  EXPECT_EQ(w.back().value, 0);
  // Byte count that does not match, truncated frames, unknown functions.
  const uint8_t badcount[] = {16, 0, 10, 0, 2, 3, 0x42, 0x28, 0};
  EXPECT_EQ(check_modbus_request(m, img, badcount, sizeof badcount, &w), kIllegalDataValue);
  const uint8_t trunc[] = {16, 0, 10, 0, 2, 4, 0x42};
  EXPECT_EQ(check_modbus_request(m, img, trunc, sizeof trunc, &w), kIllegalDataValue);
  const uint8_t fc23[] = {23, 0, 0, 0, 1, 0, 10, 0, 1, 2, 0, 0};
  EXPECT_EQ(check_modbus_request(m, img, fc23, sizeof fc23, &w), kIllegalFunction);
  const uint8_t read[] = {3, 0, 10, 0, 4};
  EXPECT_EQ(check_modbus_request(m, img, read, sizeof read, &w), 0);
}

std::string load_error(const std::string& text) {
  auto c = control::Cell::load_text(text, "cell.yaml", builtin_drivers(), {});
  return c.is_ok() ? std::string("(loaded)") : c.status().message();
}

std::string with_map(const std::string& entries, const std::string& extra = "") {
  return "cell: t\ntags:\n  a: float\n  b: float\n  c: bool\ndevices:\n  - name: srv\n    driver: modbus_server\n    port: 1\n" + extra +
         "    map:\n" + entries + "loops:\n  - {name: l, period_ms: 10}\n";
}

TEST(ModbusMapErrors, AreLocated) {
  EXPECT_EQ(load_error(with_map("      - {tag: a, register: holdin, address: 0}\n")),
            "cell.yaml:11:28: unknown register type 'holdin' (expected coil, discrete, holding, input)");
  EXPECT_EQ(load_error(with_map("      - {tag: a, register: holding, address: 0, type: float32}\n"
                                "      - {tag: b, register: holding, address: 1}\n")),
            "cell.yaml:12:9: holding 1..1 (tag 'b') overlaps holding 0..1 (tag 'a', cell.yaml:11:9)");
  // The same address in two different tables is fine.
  std::string two = load_error(with_map("      - {tag: a, register: holding, address: 0}\n      - {tag: c, register: coil, address: 0}\n"));
  EXPECT_EQ(two.find("overlap"), std::string::npos) << two;
  EXPECT_NE(load_error(with_map("      - {tag: a, register: input, address: 0, writable: true}\n")).find("cell.yaml:11:57: input registers are read-only"),
            std::string::npos);
  EXPECT_NE(load_error(with_map("      - {tag: c, register: coil, address: 0, type: int16}\n")).find("cell.yaml:11:52: coils and discrete"),
            std::string::npos);
  EXPECT_NE(load_error(with_map("      - {tag: a, register: holding, address: 65535, type: float32}\n")).find("runs past 65535"), std::string::npos);
  EXPECT_NE(load_error(with_map("      - {tag: zz, register: holding, address: 0}\n")).find("cell.yaml:11:"), std::string::npos);
  EXPECT_NE(load_error(with_map("      - {tag: a, register: holding, adress: 0}\n")).find("cell.yaml:11:"), std::string::npos);
  EXPECT_NE(load_error(with_map("      - [a, holding]\n")).find("cell.yaml:11:9: a map entry is"), std::string::npos);
}

TEST(SparkplugErrors, UnresolvableBrokerIsLocated) {
  std::string e = load_error(
      "cell: t\ntags:\n  a: float\ndevices:\n  - name: sp\n    driver: mqtt_sparkplug\n    host: no-such-host.invalid\n"
      "    group: g\n    node: n\n    metrics: [a]\n");
  EXPECT_NE(e.find("cell.yaml:7:11: broker host 'no-such-host.invalid' does not resolve"), std::string::npos) << e;
  e = load_error("cell: t\ntags:\n  a: float\ndevices:\n  - name: sp\n    driver: mqtt_sparkplug\n    group: g/x\n    node: n\n    metrics: [a]\n");
  EXPECT_NE(e.find("cell.yaml:7:12: group id"), std::string::npos) << e;
  e = load_error("cell: t\ntags:\n  a: float\ndevices:\n  - name: sp\n    driver: mqtt_sparkplug\n    group: g\n    node: n\n    metrics: [b]\n");
  EXPECT_NE(e.find("cell.yaml:9:15:"), std::string::npos) << e;
}

}  // namespace
}  // namespace kiln::io
