// kiln/io/modbus_map.h — how tags sit in the four Modbus tables, shared by the modbus_server and
// modbus_client drivers: parsing a `map:` list (every error located), overlap checks, and the
// conversions between a tag value and its registers.
//
//   map:
//     - {tag: spindle_speed, register: input,   address: 0,  type: float32}
//     - {tag: furnace_sp,    register: holding, address: 10, type: int16, scale: 10, writable: true}
//     - {tag: run,           register: coil,    address: 0,  writable: true}
//
// Tables (`register:`): coil, discrete (discrete input), holding, input. Coils and discrete
// inputs hold one bit (a bool tag, or any scalar: non-zero is 1). Registers hold `type`:
// uint16 (default), int16, uint32, int32 (two registers), float32 (IEEE 754 single, two
// registers). The 32-bit word order is the device's `word_order`: `high_first` (default, the
// Modbus convention, "ABCD") or `low_first` ("CDAB"). `scale` (default 1): register = value ×
// scale, value = register / scale (integer types round and saturate).
//
//   KILN_ASSIGN_OR_RETURN(ModbusMap m, parse_modbus_map(p, /*server=*/true));
//   uint16_t w[2];
//   encode_value(m.entries[0], m.word_order, 21.5, w);
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "kiln/control/config_util.h"

namespace kiln::io {

enum class ModbusTable { kCoil, kDiscrete, kHolding, kInput };
enum class ModbusType { kBit, kUint16, kInt16, kUint32, kInt32, kFloat32 };
enum class WordOrder { kHighFirst, kLowFirst };

// "coil", "discrete", "holding", "input".
const char* modbus_table_name(ModbusTable t);

struct ModbusEntry {
  int tag = -1;
  ModbusTable table = ModbusTable::kHolding;
  ModbusType type = ModbusType::kUint16;
  int address = 0;
  int width = 1;        // registers (or bits) occupied
  double scale = 1;
  bool writable = false;  // server: clients may write it; client: the tag is written to the peer
  std::string location;   // file:line:column of the entry
};

struct ModbusMap {
  std::vector<ModbusEntry> entries;
  WordOrder word_order = WordOrder::kHighFirst;
};

// Reads `word_order` and `map` from a device's Params. `server` decides what `writable` means and
// which tables accept it (server: coil and holding; client: coil and holding of the peer).
Result<ModbusMap> parse_modbus_map(control::Params& p, bool server);

// Tag value -> register words (entry.width of them; bits: w[0] is 0 or 1).
void encode_value(const ModbusEntry& e, WordOrder order, double value, uint16_t* w);
// Register words -> tag value.
double decode_value(const ModbusEntry& e, WordOrder order, const uint16_t* w);

}  // namespace kiln::io
