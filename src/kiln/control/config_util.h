// kiln/control/config_util.h — reading one YAML mapping of a cell file (a block, a device, a
// loop) with every error located as `file:line:column`.
//
// Used by block factories and drivers (plugins included). A Params object wraps one mapping; each
// getter consumes a key, and finish() reports keys nobody asked for (typos), so a misspelt option
// is an error instead of a silent default. String values may reference the environment:
// "${KILN_MODBUS_PORT:-5020}" (the text after ":-" is the default).
//
//   Params p(node, ctx);
//   KILN_ASSIGN_OR_RETURN(int in, p.tag("in", kScalarTags));
//   KILN_ASSIGN_OR_RETURN(double tau, p.number("tau", 1.0));
//   KILN_RETURN_IF_ERROR(p.finish());
#pragma once

#include <yaml-cpp/yaml.h>

#include <set>
#include <string>
#include <vector>

#include "kiln/control/expr.h"
#include "kiln/control/tags.h"
#include "kiln/core/status.h"

namespace kiln::control {

// Bit masks of acceptable tag types.
enum TagMask : unsigned {
  kBoolTag = 1u << static_cast<int>(TagType::kBool),
  kIntTag = 1u << static_cast<int>(TagType::kInt),
  kFloatTag = 1u << static_cast<int>(TagType::kFloat),
  kArrayTag = 1u << static_cast<int>(TagType::kArray),
  kWindowTag = 1u << static_cast<int>(TagType::kWindow),
  kScalarTags = kBoolTag | kIntTag | kFloatTag,
  kAnyTag = kScalarTags | kArrayTag | kWindowTag,
};

// What a block factory or a driver sees while the cell is being built.
struct BuildEnv {
  std::string file;                   // the cell file, for error locations
  std::string cell_dir;               // relative paths (models) resolve here first
  std::vector<std::string> model_dirs;  // then here
  const ProcessImage* image = nullptr;
  int64_t period_ns = 0;              // the loop's period (0 outside a loop)
  std::string loop;                   // the loop's name ("" outside a loop)
};

// "file:line:column" of a node (1-based), or "file" when the node has no position.
std::string where(const BuildEnv& env, const YAML::Node& n);
// A located error: "file:line:column: <message>".
template <typename... Args>
Status located(const BuildEnv& env, const YAML::Node& n, Args&&... a) {
  return Status::invalid(where(env, n), ": ", std::forward<Args>(a)...);
}

// Replaces ${NAME} and ${NAME:-default} with the environment's value.
std::string expand_env(const std::string& s);
// "1.5" -> 1.5; false for anything else (including inf/nan and trailing text).
bool parse_double(const std::string& s, double* out);

class Params {
 public:
  Params(const YAML::Node& node, const BuildEnv& env);

  const YAML::Node& node() const { return node_; }
  const BuildEnv& env() const { return env_; }
  bool has(const char* key) const;
  // The raw child node (marks it used). Null node when absent.
  YAML::Node child(const char* key);

  // A tag name resolved to its id; -1 when absent and optional.
  Result<int> tag(const char* key, unsigned mask, bool required = true);
  // A list of scalar tag names (or one name).
  Result<std::vector<int>> tags(const char* key, unsigned mask, bool required = true);
  Result<double> number(const char* key, double def, bool required = false);
  Result<double> number_in(const char* key, double def, double lo, double hi, bool required = false);
  Result<int64_t> integer(const char* key, int64_t def, int64_t lo, int64_t hi, bool required = false);
  Result<std::string> string(const char* key, const std::string& def, bool required = false);
  Result<bool> boolean(const char* key, bool def);
  // A number or an expression over tags ("sp + 5"); `extra` names map to Expr::kExtraBase + i.
  Result<Expr> expr(const char* key, double def, bool required = false, const std::vector<std::string>& extra = {});
  // Reports keys that were never read.
  Status finish();

  // Helpers on arbitrary nodes (with this env's file).
  Result<int> tag_of(const YAML::Node& n, unsigned mask) const;
  Result<double> number_of(const YAML::Node& n) const;
  Result<std::string> string_of(const YAML::Node& n) const;
  Result<Expr> expr_of(const YAML::Node& n, const std::vector<std::string>& extra = {}) const;

 private:
  YAML::Node node_;
  const BuildEnv& env_;
  std::set<std::string> used_;
};

// Tag-type mask in words for messages: "a float or int tag".
std::string mask_name(unsigned mask);

}  // namespace kiln::control
