// kiln/io/sparkplug_codec.h — Sparkplug B payloads (protobuf, sparkplug_b.proto) as Kiln needs
// them: encoding NBIRTH / NDATA / NDEATH metrics, and decoding NCMD / DCMD commands from the
// network, which are untrusted (a malformed payload is an error value, never a crash; fuzzed by
// fuzz/sparkplug_cmd_fuzz.cc).
//
//   std::vector<OutMetric> m = {{.name = "bdSeq", .datatype = kSpUInt64, .value = 3}};
//   std::string bytes = encode_payload(now_ms, /*seq=*/0, m);
//   auto cmd = decode_command(data, size);          // Result<std::vector<CommandMetric>>
//   for (const CommandMetric& c : *cmd) if (c.name == "Node Control/Rebirth" && c.value != 0) ...
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "kiln/core/status.h"

namespace kiln::io {

// Sparkplug B data types Kiln publishes (the specification numbers them).
inline constexpr uint32_t kSpInt32 = 3, kSpInt64 = 4, kSpUInt64 = 8, kSpFloat = 9, kSpDouble = 10, kSpBoolean = 11, kSpString = 12;

// "Int32", "Double", ... ; "Unknown" for others.
const char* sparkplug_type_name(uint32_t datatype);

struct OutMetric {
  std::string name;        // empty: published by alias only (NDATA)
  uint64_t alias = 0;      // 0: no alias
  uint32_t datatype = kSpDouble;
  double value = 0;
  uint64_t timestamp_ms = 0;  // 0: none
  bool with_datatype = true;
};

// A Payload with timestamp, the metrics and seq (seq < 0: no seq field, as in NDEATH).
std::string encode_payload(uint64_t timestamp_ms, int64_t seq, std::span<const OutMetric> metrics);

struct CommandMetric {
  std::string name;        // empty when addressed by alias
  bool has_alias = false;
  uint64_t alias = 0;
  uint32_t datatype = 0;   // 0 when the sender gave none
  bool numeric = false;    // value holds a number (int, float, double or boolean value fields)
  double value = 0;
};

// Decodes an NCMD/DCMD payload. Errors: not a Sparkplug B payload, more than 10,000 metrics.
Result<std::vector<CommandMetric>> decode_command(const uint8_t* data, size_t size);

}  // namespace kiln::io
