#include "kiln/io/modbus_map.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

namespace kiln::io {

using control::located;
using control::Params;

const char* modbus_table_name(ModbusTable t) {
  switch (t) {
    case ModbusTable::kCoil: return "coil";
    case ModbusTable::kDiscrete: return "discrete";
    case ModbusTable::kHolding: return "holding";
    case ModbusTable::kInput: return "input";
  }
  return "?";
}

namespace {

struct Named {
  const char* name;
  int value;
};
constexpr Named kTables[] = {{"coil", 0}, {"discrete", 1}, {"holding", 2}, {"input", 3}};
constexpr Named kTypes[] = {{"bool", 0}, {"uint16", 1}, {"int16", 2}, {"uint32", 3}, {"int32", 4}, {"float32", 5}};

template <size_t N>
int lookup(const Named (&t)[N], const std::string& s) {
  for (const Named& n : t)
    if (s == n.name) return n.value;
  return -1;
}
template <size_t N>
std::string names(const Named (&t)[N]) {
  std::string s;
  for (const Named& n : t) s += (s.empty() ? "" : ", ") + std::string(n.name);
  return s;
}

double clamp_round(double v, double lo, double hi) {
  if (std::isnan(v)) return 0;
  return std::clamp(std::nearbyint(v), lo, hi);
}

}  // namespace

Result<ModbusMap> parse_modbus_map(Params& p, bool server) {
  const control::BuildEnv& env = p.env();
  ModbusMap m;
  YAML::Node won = p.child("word_order");
  KILN_ASSIGN_OR_RETURN(std::string wo, p.string("word_order", "high_first"));
  if (wo == "high_first") m.word_order = WordOrder::kHighFirst;
  else if (wo == "low_first") m.word_order = WordOrder::kLowFirst;
  else return located(env, won, "word_order '", wo.substr(0, 32), "' must be high_first or low_first");

  YAML::Node mn = p.child("map");
  if (!mn.IsSequence() || mn.size() == 0)
    return located(env, mn.IsDefined() ? mn : p.node(), "'map' must be a list of {tag, register, address, type, scale, writable}");
  for (const YAML::Node& en : mn) {
    if (!en.IsMap()) return located(env, en, "a map entry is {tag, register, address, type, scale, writable}");
    Params ep(en, env);
    ModbusEntry e;
    e.location = control::where(env, en);
    KILN_ASSIGN_OR_RETURN(e.tag, ep.tag("tag", control::kScalarTags));
    YAML::Node rn = ep.child("register");
    KILN_ASSIGN_OR_RETURN(std::string table, ep.string("register", "", true));
    int ti = lookup(kTables, table);
    if (ti < 0) return located(env, rn, "unknown register type '", table.substr(0, 32), "' (expected ", names(kTables), ")");
    e.table = static_cast<ModbusTable>(ti);
    const bool bits = e.table == ModbusTable::kCoil || e.table == ModbusTable::kDiscrete;
    YAML::Node tn = ep.child("type");
    KILN_ASSIGN_OR_RETURN(std::string type, ep.string("type", bits ? "bool" : "uint16"));
    int ty = lookup(kTypes, type);
    if (ty < 0) return located(env, tn, "unknown value type '", type.substr(0, 32), "' (expected ", names(kTypes), ")");
    e.type = static_cast<ModbusType>(ty);
    if (bits != (e.type == ModbusType::kBit))
      return located(env, tn, bits ? "coils and discrete inputs hold one bit: type must be bool"
                                   : "registers hold uint16, int16, uint32, int32 or float32, not bool (use a coil)");
    e.width = (e.type == ModbusType::kUint32 || e.type == ModbusType::kInt32 || e.type == ModbusType::kFloat32) ? 2 : 1;
    YAML::Node an = ep.child("address");
    KILN_ASSIGN_OR_RETURN(int64_t addr, ep.integer("address", 0, 0, 65535, true));
    if (addr + e.width > 65536) return located(env, an, "address ", addr, " + ", e.width, " registers runs past 65535");
    e.address = static_cast<int>(addr);
    YAML::Node sn = ep.child("scale");
    KILN_ASSIGN_OR_RETURN(e.scale, ep.number("scale", 1.0));
    if (!(std::abs(e.scale) > 0) || !std::isfinite(e.scale)) return located(env, sn, "scale must be a finite non-zero number");
    if (bits && ep.has("scale")) return located(env, sn, "'scale' applies to registers, not to bits");
    YAML::Node wn = ep.child("writable");
    KILN_ASSIGN_OR_RETURN(e.writable, ep.boolean("writable", false));
    if (e.writable && (e.table == ModbusTable::kInput || e.table == ModbusTable::kDiscrete))
      return located(env, wn, modbus_table_name(e.table), server ? " registers are read-only for Modbus clients; use holding or coil"
                                                                 : " registers cannot be written to a peer; use holding or coil");
    KILN_RETURN_IF_ERROR(ep.finish());
    m.entries.push_back(std::move(e));
  }

  // Two entries may not share a register (or a bit) of the same table.
  std::vector<size_t> order(m.entries.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    const ModbusEntry &x = m.entries[a], &y = m.entries[b];
    if (x.table != y.table) return x.table < y.table;
    return x.address < y.address;
  });
  for (size_t k = 1; k < order.size(); ++k) {
    const ModbusEntry& a = m.entries[order[k - 1]];
    const ModbusEntry& b = m.entries[order[k]];
    if (a.table == b.table && b.address < a.address + a.width) {
      const ModbusEntry& later = order[k - 1] > order[k] ? a : b;
      const ModbusEntry& earlier = order[k - 1] > order[k] ? b : a;
      return Status::invalid(later.location, ": ", modbus_table_name(later.table), " ", later.address, "..",
                             later.address + later.width - 1, " (tag '", env.image->spec(later.tag).name, "') overlaps ",
                             modbus_table_name(earlier.table), " ", earlier.address, "..", earlier.address + earlier.width - 1, " (tag '",
                             env.image->spec(earlier.tag).name, "', ", earlier.location, ")");
    }
  }
  return m;
}

void encode_value(const ModbusEntry& e, WordOrder order, double value, uint16_t* w) {
  if (e.type == ModbusType::kBit) {
    w[0] = (value != 0 && !std::isnan(value)) ? 1 : 0;
    return;
  }
  const double v = value * e.scale;
  uint32_t u = 0;
  switch (e.type) {
    case ModbusType::kUint16: w[0] = static_cast<uint16_t>(clamp_round(v, 0, 65535)); return;
    case ModbusType::kInt16: w[0] = static_cast<uint16_t>(static_cast<int16_t>(clamp_round(v, -32768, 32767))); return;
    case ModbusType::kUint32: u = static_cast<uint32_t>(clamp_round(v, 0, 4294967295.0)); break;
    case ModbusType::kInt32: u = static_cast<uint32_t>(static_cast<int32_t>(clamp_round(v, -2147483648.0, 2147483647.0))); break;
    case ModbusType::kFloat32: {
      float f = static_cast<float>(v);
      std::memcpy(&u, &f, 4);
      break;
    }
    case ModbusType::kBit: break;
  }
  const uint16_t hi = static_cast<uint16_t>(u >> 16), lo = static_cast<uint16_t>(u & 0xffff);
  w[0] = order == WordOrder::kHighFirst ? hi : lo;
  w[1] = order == WordOrder::kHighFirst ? lo : hi;
}

double decode_value(const ModbusEntry& e, WordOrder order, const uint16_t* w) {
  if (e.type == ModbusType::kBit) return w[0] != 0 ? 1.0 : 0.0;
  double raw = 0;
  if (e.width == 1) {
    raw = e.type == ModbusType::kInt16 ? static_cast<double>(static_cast<int16_t>(w[0])) : static_cast<double>(w[0]);
  } else {
    const uint16_t hi = order == WordOrder::kHighFirst ? w[0] : w[1];
    const uint16_t lo = order == WordOrder::kHighFirst ? w[1] : w[0];
    const uint32_t u = (static_cast<uint32_t>(hi) << 16) | lo;
    if (e.type == ModbusType::kUint32) raw = static_cast<double>(u);
    else if (e.type == ModbusType::kInt32) raw = static_cast<double>(static_cast<int32_t>(u));
    else {
      float f;
      std::memcpy(&f, &u, 4);
      raw = static_cast<double>(f);
    }
  }
  return raw / e.scale;
}

}  // namespace kiln::io
