// kiln/io/mqtt_sparkplug.h — the `mqtt_sparkplug` driver: publishes tags as the metrics of a
// Sparkplug B edge node over MQTT (Eclipse Paho C), and takes writes to writable tags from
// node commands.
//
//   devices:
//     - name: scada_link
//       driver: mqtt_sparkplug
//       host: 127.0.0.1                 # the broker
//       port: ${KILN_MQTT_PORT:-1883}
//       group: pilot_line               # Sparkplug group id
//       node: cell1                     # edge node id
//       device: furnace                 # optional: publish the tags as this device's metrics
//       client_id: kiln-pilot-cell1     # default kiln-<group>-<node>
//       scan_ms: 100                    # values are compared (report by exception) this often
//       keepalive_s: 10
//       connect_timeout_s: 5
//       backoff_ms: [200, 10000]        # reconnect waits: doubles from the first to at most the second
//       status: broker_ok               # optional bool tag: 1 while connected
//       metrics:
//         - furnace_temp                              # short form: the tag's name, defaults
//         - {tag: spindle_speed, name: Spindle/Speed, deadband: 5}
//         - {tag: furnace_sp, writable: true, datatype: float}
//
// Per metric: `tag`, `name` (default the tag's name), `datatype` (boolean, int32, int64, float,
// double; default from the tag: bool -> Boolean, int -> Int64, float -> Double), `deadband`
// (NDATA carries the metric only when it moved by more than this since it was last published;
// default 0: any change), `writable` (an NCMD may set the tag; values outside the tag's
// [min, max] are refused with a warning event).
//
// Protocol (Sparkplug B 3.0, topics spBv1.0/<group>/<type>/<node>): on every connection the
// driver registers NDEATH {bdSeq} as its MQTT last will (QoS 1), then publishes NBIRTH with seq 0,
// bdSeq, `Node Control/Rebirth` and every metric (name, alias 1..n, datatype, value); afterwards
// NDATA by alias with seq 1, 2, ... 255, 0, ... carrying only the metrics that changed beyond
// their deadband. An NCMD `Node Control/Rebirth` = true republishes NBIRTH (same bdSeq). When the
// broker goes away the driver posts a `disconnected` event and reconnects with exponential
// backoff; the new session has bdSeq + 1 and a new NBIRTH. stop() publishes NDEATH and
// disconnects. With `device`, NBIRTH carries only bdSeq and the rebirth control, the tags go
// in DBIRTH / DDATA on spBv1.0/<group>/<type>/<node>/<device> (seq shared with the node), writes
// come by DCMD, and stop() sends DDEATH before NDEATH. Everything runs on the driver's own
// thread; loops never wait for the broker.
#pragma once

#include <memory>

#include "kiln/control/driver.h"

namespace kiln::io {

Result<std::unique_ptr<control::Device>> create_mqtt_sparkplug(control::Params& p);

inline constexpr control::DriverDef kMqttSparkplugDriver = {
    "mqtt_sparkplug", "MQTT Sparkplug B edge node: NBIRTH/NDATA/NDEATH, report by exception, rebirth and writes by NCMD",
    create_mqtt_sparkplug};

}  // namespace kiln::io
