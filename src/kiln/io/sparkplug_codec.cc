#include "kiln/io/sparkplug_codec.h"

#include <cmath>

#include "sparkplug_b.pb.h"

namespace kiln::io {

namespace pb = org::eclipse::tahu::protobuf;

const char* sparkplug_type_name(uint32_t t) {
  static const char* const kNames[] = {"Unknown", "Int8",   "Int16", "Int32", "Int64",  "UInt8",  "UInt16",
                                       "UInt32",  "UInt64", "Float", "Double", "Boolean", "String", "DateTime",
                                       "Text",    "UUID",   "DataSet", "Bytes", "File",   "Template"};
  return t < sizeof kNames / sizeof kNames[0] ? kNames[t] : "Unknown";
}

std::string encode_payload(uint64_t timestamp_ms, int64_t seq, std::span<const OutMetric> metrics) {
  pb::Payload p;
  p.set_timestamp(timestamp_ms);
  if (seq >= 0) p.set_seq(static_cast<uint64_t>(seq));
  for (const OutMetric& m : metrics) {
    pb::Payload::Metric* o = p.add_metrics();
    if (!m.name.empty()) o->set_name(m.name);
    if (m.alias != 0) o->set_alias(m.alias);
    if (m.timestamp_ms != 0) o->set_timestamp(m.timestamp_ms);
    if (m.with_datatype) o->set_datatype(m.datatype);
    if (std::isnan(m.value) && m.datatype != kSpFloat && m.datatype != kSpDouble) {
      o->set_is_null(true);
      continue;
    }
    switch (m.datatype) {
      case kSpBoolean: o->set_boolean_value(m.value != 0); break;
      case kSpInt32: o->set_int_value(static_cast<uint32_t>(static_cast<int32_t>(std::llround(m.value)))); break;
      case kSpInt64: o->set_long_value(static_cast<uint64_t>(std::llround(m.value))); break;
      case kSpUInt64: o->set_long_value(static_cast<uint64_t>(m.value)); break;
      case kSpFloat: o->set_float_value(static_cast<float>(m.value)); break;
      default: o->set_double_value(m.value); break;
    }
  }
  return p.SerializeAsString();
}

Result<std::vector<CommandMetric>> decode_command(const uint8_t* data, size_t size) {
  if (size > (64u << 20)) return Status::invalid("Sparkplug payload of ", size, " bytes is too large");
  pb::Payload p;
  if (!p.ParseFromArray(data, static_cast<int>(size))) return Status::invalid("not a Sparkplug B payload (protobuf did not parse)");
  if (p.metrics_size() > 10000) return Status::invalid("Sparkplug payload with ", p.metrics_size(), " metrics (at most 10000)");
  std::vector<CommandMetric> out;
  out.reserve(static_cast<size_t>(p.metrics_size()));
  for (const pb::Payload::Metric& m : p.metrics()) {
    CommandMetric c;
    c.name = m.name();
    c.has_alias = m.has_alias();
    c.alias = m.alias();
    c.datatype = m.datatype();
    const uint32_t t = c.datatype;
    switch (m.value_case()) {
      case pb::Payload::Metric::kIntValue:
        // Int8/16/32 travel as two's complement in a uint32.
        c.value = (t >= 1 && t <= 3) ? static_cast<double>(static_cast<int32_t>(m.int_value())) : static_cast<double>(m.int_value());
        c.numeric = true;
        break;
      case pb::Payload::Metric::kLongValue:
        c.value = t == 4 ? static_cast<double>(static_cast<int64_t>(m.long_value())) : static_cast<double>(m.long_value());
        c.numeric = true;
        break;
      case pb::Payload::Metric::kFloatValue:
        c.value = m.float_value();
        c.numeric = true;
        break;
      case pb::Payload::Metric::kDoubleValue:
        c.value = m.double_value();
        c.numeric = true;
        break;
      case pb::Payload::Metric::kBooleanValue:
        c.value = m.boolean_value() ? 1 : 0;
        c.numeric = true;
        break;
      default: break;
    }
    out.push_back(std::move(c));
  }
  return out;
}

}  // namespace kiln::io
