// kiln/io/modbus_client.h — the `modbus_client` driver: polls a remote Modbus TCP device
// (libmodbus) at a fixed period, reading registers into tags and writing tags to registers.
//
//   devices:
//     - name: plc
//       driver: modbus_client
//       host: 192.168.0.20
//       port: 502
//       unit_id: 1
//       period_ms: 100            # one poll of every entry
//       timeout_ms: 500           # per request; a peer that hangs costs the driver thread this much
//       backoff_ms: [100, 5000]   # reconnect waits: doubles from the first to at most the second
//       status: plc_ok            # optional bool tag: 1 while the peer answers, 0 while it is down
//       on_loss: hold             # hold | safe | nan: what read tags show while the peer is down
//       word_order: high_first
//       map:                      # kiln/io/modbus_map.h has every key
//         - {tag: tank_level, register: input,   address: 0, type: float32}
//         - {tag: valve_cmd,  register: holding, address: 5, type: uint16, scale: 100, writable: true}
//
// Entries read the peer into their tags, except `writable` ones, which write their tag to the
// peer whenever its value changes (and after each reconnection). Reads of back-to-back addresses
// in one table share a request (split again, entry by entry, if the peer refuses it). Everything runs on the
// driver's own thread: loops only see tags change, never wait. A lost peer is a `disconnected`
// event, the status tag goes to 0, read tags follow `on_loss` (`safe`: the tag's safe value,
// `nan`: NaN, which the cell's NaN policy then handles), and the driver reconnects with
// exponential backoff; a `connected` event marks the recovery.
#pragma once

#include <memory>

#include "kiln/control/driver.h"

namespace kiln::io {

Result<std::unique_ptr<control::Device>> create_modbus_client(control::Params& p);

inline constexpr control::DriverDef kModbusClientDriver = {
    "modbus_client", "Modbus TCP client: polls a remote device's registers into tags (and tags into them)", create_modbus_client};

}  // namespace kiln::io
