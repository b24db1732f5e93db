// kiln/io/modbus_server.h — the `modbus_server` driver: a Modbus TCP server (libmodbus) that
// exposes chosen tags as coils, discrete inputs, holding and input registers, so any SCADA or PLC
// can read them, and write the ones marked `writable`.
//
//   devices:
//     - name: scada
//       driver: modbus_server
//       host: 127.0.0.1            # default; 0.0.0.0 serves every interface
//       port: ${KILN_MODBUS_PORT:-5020}
//       word_order: high_first     # float32/int32/uint32: high word at the lower address (default)
//       max_clients: 8
//       map:                       # kiln/io/modbus_map.h has every key
//         - {tag: furnace_temp, register: input,   address: 0,  type: float32}
//         - {tag: furnace_sp,   register: holding, address: 10, type: int16, scale: 10, writable: true}
//         - {tag: run,          register: coil,    address: 0,  writable: true}
//
// The server runs on its own thread and reads the image (lock-free) when a request arrives, so a
// client always reads current values. A write is checked before anything changes: every
// register it touches must belong to a `writable` entry, covered whole (both words of a float32),
// else the client gets exception 02 (illegal data address); a value outside its tag's [min, max]
// (or NaN, or a fraction for an int tag) gets exception 03 (illegal data value). Function codes
// 1-6, 15 and 16 are served; others get exception 01. A port in use is reported by `kiln cell
// check` (the port is probed) and by start().
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "kiln/control/driver.h"
#include "kiln/io/modbus_map.h"

namespace kiln::io {

Result<std::unique_ptr<control::Device>> create_modbus_server(control::Params& p);

inline constexpr control::DriverDef kModbusServerDriver = {
    "modbus_server", "Modbus TCP server: tags as coils, discrete inputs, holding and input registers", create_modbus_server};

// Modbus exception codes a server answers with.
inline constexpr int kIllegalFunction = 1, kIllegalDataAddress = 2, kIllegalDataValue = 3;

struct TagWrite {
  int tag;
  double value;
};

// The decision a server makes on one request PDU (function code first, no MBAP header): 0 when
// it may be served (a write's tag values are appended to `writes`), else the exception code.
// Never reads outside pdu[0, len). Used by the server thread and by fuzz/modbus_request_fuzz.cc.
int check_modbus_request(const ModbusMap& map, const control::ProcessImage& image, const uint8_t* pdu, int len,
                         std::vector<TagWrite>* writes);

}  // namespace kiln::io
