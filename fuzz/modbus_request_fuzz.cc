// Fuzz target: an untrusted Modbus request PDU as the modbus_server driver checks it before
// serving (kiln/io/modbus_server.h): reads, writes with range checks, malformed frames.
#include <cstddef>
#include <cstdint>
#include <limits>
#include <vector>

#include "kiln/control/tags.h"
#include "kiln/io/modbus_server.h"

namespace {

using namespace kiln;

struct Fixture {
  control::ProcessImage image;
  io::ModbusMap map;

  static std::vector<control::TagSpec> specs() {
    std::vector<control::TagSpec> s(4);
    s[0].name = "sp";
    s[0].min = 0;
    s[0].max = 100;
    s[1].name = "level";
    s[1].type = control::TagType::kInt;
    s[1].min = -10;
    s[1].max = 10;
    s[2].name = "run";
    s[2].type = control::TagType::kBool;
    s[2].min = 0;
    s[2].max = 1;
    s[3].name = "out";
    return s;
  }

  Fixture() : image(specs()) {
    auto add = [&](int tag, io::ModbusTable t, io::ModbusType ty, int addr, int width, double scale, bool w) {
      io::ModbusEntry e;
      e.tag = tag;
      e.table = t;
      e.type = ty;
      e.address = addr;
      e.width = width;
      e.scale = scale;
      e.writable = w;
      map.entries.push_back(e);
    };
    add(0, io::ModbusTable::kHolding, io::ModbusType::kFloat32, 0, 2, 1, true);
    add(1, io::ModbusTable::kHolding, io::ModbusType::kInt16, 2, 1, 10, true);
    add(1, io::ModbusTable::kHolding, io::ModbusType::kInt32, 3, 2, 1, true);
    add(3, io::ModbusTable::kHolding, io::ModbusType::kFloat32, 5, 2, 1, false);
    add(2, io::ModbusTable::kCoil, io::ModbusType::kBit, 0, 1, 1, true);
    add(2, io::ModbusTable::kCoil, io::ModbusType::kBit, 9, 1, 1, true);
    add(3, io::ModbusTable::kInput, io::ModbusType::kUint32, 0, 2, 1, false);
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static Fixture f;
  std::vector<io::TagWrite> writes;
  const int len = size > 300 ? 300 : static_cast<int>(size);
  // The PDU is copied so that a read past `len` is caught by ASan even inside a larger input.
  std::vector<uint8_t> pdu(data, data + len);
  int exc = io::check_modbus_request(f.map, f.image, pdu.data(), len, &writes);
  if (exc == 0) {
    for (const auto& w : writes) {
      const auto& s = f.image.spec(w.tag);
      if (!(w.value >= s.min && w.value <= s.max)) __builtin_trap();  // an accepted value out of range
    }
  } else if (!writes.empty()) {
    __builtin_trap();  // a refused request must not leave writes behind
  }
  return 0;
}
