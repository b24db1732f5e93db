#include "kiln/control/config_util.h"

#include <cmath>
#include <cstdlib>

namespace kiln::control {

std::string where(const BuildEnv& env, const YAML::Node& n) {
  YAML::Mark m = n.Mark();
  if (m.line < 0) return env.file;
  return env.file + ":" + std::to_string(m.line + 1) + ":" + std::to_string(m.column + 1);
}

std::string expand_env(const std::string& s) {
  std::string out;
  size_t i = 0;
  while (i < s.size()) {
    if (s[i] == '$' && i + 1 < s.size() && s[i + 1] == '{') {
      size_t close = s.find('}', i + 2);
      if (close == std::string::npos) break;
      std::string body = s.substr(i + 2, close - i - 2);
      std::string def;
      size_t d = body.find(":-");
      if (d != std::string::npos) {
        def = body.substr(d + 2);
        body = body.substr(0, d);
      }
      const char* v = body.empty() ? nullptr : std::getenv(body.c_str());
      out += (v != nullptr && *v != 0) ? std::string(v) : def;
      i = close + 1;
      continue;
    }
    out += s[i++];
  }
  if (i < s.size()) out += s.substr(i);
  return out;
}

bool parse_double(const std::string& s, double* out) {
  if (s.empty() || s.size() > 64) return false;
  char* end = nullptr;
  double v = std::strtod(s.c_str(), &end);
  if (end != s.c_str() + s.size() || !std::isfinite(v)) return false;
  *out = v;
  return true;
}

std::string mask_name(unsigned mask) {
  std::string s;
  for (int t = 0; t <= static_cast<int>(TagType::kWindow); ++t) {
    if (!(mask & (1u << t))) continue;
    if (!s.empty()) s += " or ";
    s += tag_type_name(static_cast<TagType>(t));
  }
  return "a " + s + " tag";
}

Params::Params(const YAML::Node& node, const BuildEnv& env) : node_(node), env_(env) {}

bool Params::has(const char* key) const { return node_.IsMap() && node_[key].IsDefined() && !node_[key].IsNull(); }

YAML::Node Params::child(const char* key) {
  used_.insert(key);
  if (!node_.IsMap()) return YAML::Node();
  return node_[key];
}

Result<std::string> Params::string_of(const YAML::Node& n) const {
  if (!n.IsScalar()) return located(env_, n, "expected a string");
  return expand_env(n.Scalar());
}

Result<double> Params::number_of(const YAML::Node& n) const {
  if (!n.IsScalar()) return located(env_, n, "expected a number");
  double v = 0;
  std::string s = expand_env(n.Scalar());
  if (!parse_double(s, &v)) return located(env_, n, "'", s.substr(0, 64), "' is not a finite number");
  return v;
}

Result<int> Params::tag_of(const YAML::Node& n, unsigned mask) const {
  if (!n.IsScalar()) return located(env_, n, "expected a tag name");
  const std::string& name = n.Scalar();
  int id = env_.image->find(name);
  if (id < 0) return located(env_, n, "unknown tag '", name.substr(0, 64), "'");
  TagType t = env_.image->spec(id).type;
  if (!(mask & (1u << static_cast<int>(t))))
    return located(env_, n, "tag '", name, "' is ", tag_type_name(t), ", expected ", mask_name(mask));
  return id;
}

Result<Expr> Params::expr_of(const YAML::Node& n, const std::vector<std::string>& extra) const {
  if (!n.IsScalar()) return located(env_, n, "expected a number or an expression");
  const ProcessImage* img = env_.image;
  std::string bad_type;
  auto resolve = [&](std::string_view name) -> int {
    for (size_t i = 0; i < extra.size(); ++i)
      if (name == extra[i]) return Expr::kExtraBase + static_cast<int>(i);
    int id = img->find(name);
    if (id < 0) return -1;
    if (!is_scalar(img->spec(id).type)) {
      bad_type = std::string(name);
      return -1;
    }
    return id;
  };
  int pos = 0;
  Result<Expr> e = Expr::compile(n.Scalar(), resolve, &pos);
  if (!e.is_ok()) {
    YAML::Mark m = n.Mark();
    std::string loc = env_.file;
    if (m.line >= 0) {
      // A plain or quoted scalar on one line: point at the character itself.
      int quote = (n.Tag() == "!") ? 1 : 0;
      loc += ":" + std::to_string(m.line + 1) + ":" + std::to_string(m.column + 1 + quote + pos);
    }
    std::string msg = e.status().message();
    if (!bad_type.empty()) msg += " (tag '" + bad_type + "' is an array or window; expressions read scalar tags)";
    return Status::invalid(loc, ": in expression '", n.Scalar().substr(0, 80), "': ", msg);
  }
  return e;
}

Result<int> Params::tag(const char* key, unsigned mask, bool required) {
  YAML::Node n = child(key);
  if (!n.IsDefined() || n.IsNull()) {
    if (required) return located(env_, node_, "missing '", key, "' (", mask_name(mask), ")");
    return -1;
  }
  return tag_of(n, mask);
}

Result<std::vector<int>> Params::tags(const char* key, unsigned mask, bool required) {
  YAML::Node n = child(key);
  std::vector<int> out;
  if (!n.IsDefined() || n.IsNull()) {
    if (required) return located(env_, node_, "missing '", key, "' (a list of tag names)");
    return out;
  }
  if (n.IsScalar()) {
    KILN_ASSIGN_OR_RETURN(int id, tag_of(n, mask));
    out.push_back(id);
    return out;
  }
  if (!n.IsSequence()) return located(env_, n, "'", key, "' must be a tag name or a list of tag names");
  for (const YAML::Node& e : n) {
    KILN_ASSIGN_OR_RETURN(int id, tag_of(e, mask));
    out.push_back(id);
  }
  return out;
}

Result<double> Params::number(const char* key, double def, bool required) {
  YAML::Node n = child(key);
  if (!n.IsDefined() || n.IsNull()) {
    if (required) return located(env_, node_, "missing '", key, "' (a number)");
    return def;
  }
  return number_of(n);
}

Result<double> Params::number_in(const char* key, double def, double lo, double hi, bool required) {
  YAML::Node n = child(key);
  KILN_ASSIGN_OR_RETURN(double v, number(key, def, required));
  if (v < lo || v > hi) return located(env_, n.IsDefined() ? n : node_, "'", key, "' must be in [", lo, ", ", hi, "], got ", v);
  return v;
}

Result<int64_t> Params::integer(const char* key, int64_t def, int64_t lo, int64_t hi, bool required) {
  YAML::Node n = child(key);
  KILN_ASSIGN_OR_RETURN(double v, number(key, static_cast<double>(def), required));
  if (v != std::floor(v) || v < static_cast<double>(lo) || v > static_cast<double>(hi))
    return located(env_, n.IsDefined() ? n : node_, "'", key, "' must be an integer in [", lo, ", ", hi, "], got ", v);
  return static_cast<int64_t>(v);
}

Result<std::string> Params::string(const char* key, const std::string& def, bool required) {
  YAML::Node n = child(key);
  if (!n.IsDefined() || n.IsNull()) {
    if (required) return located(env_, node_, "missing '", key, "'");
    return def;
  }
  return string_of(n);
}

Result<bool> Params::boolean(const char* key, bool def) {
  YAML::Node n = child(key);
  if (!n.IsDefined() || n.IsNull()) return def;
  if (!n.IsScalar()) return located(env_, n, "'", key, "' must be true or false");
  const std::string& s = n.Scalar();
  if (s == "true" || s == "True" || s == "yes" || s == "on") return true;
  if (s == "false" || s == "False" || s == "no" || s == "off") return false;
  return located(env_, n, "'", key, "' must be true or false, got '", s.substr(0, 32), "'");
}

Result<Expr> Params::expr(const char* key, double def, bool required, const std::vector<std::string>& extra) {
  YAML::Node n = child(key);
  if (!n.IsDefined() || n.IsNull()) {
    if (required) return located(env_, node_, "missing '", key, "' (a number or an expression)");
    return Expr::constant(def);
  }
  return expr_of(n, extra);
}

Status Params::finish() {
  if (!node_.IsMap()) return Status::ok();
  for (auto it = node_.begin(); it != node_.end(); ++it) {
    if (!it->first.IsScalar()) return located(env_, it->first, "keys must be strings");
    if (!used_.count(it->first.Scalar())) {
      std::string known;
      for (const auto& k : used_) known += (known.empty() ? "" : ", ") + k;
      return located(env_, it->first, "unknown key '", it->first.Scalar().substr(0, 64), "' (expected one of: ", known, ")");
    }
  }
  return Status::ok();
}

}  // namespace kiln::control
