#include "cli_common.h"

#include <cstdio>

#include "kiln/core/npy.h"
#include "kiln/nn/tensor_pb.h"

namespace kiln::cli {

int fail(const std::string& verb, const Status& s) {
  std::fprintf(stderr, "kiln %s: %s\n", verb.c_str(), s.to_string().c_str());
  return kExitBadInput;
}

Result<std::map<std::string, Tensor>> load_named_inputs(const std::vector<std::string>& args) {
  std::map<std::string, Tensor> out;
  for (const std::string& a : args) {
    size_t eq = a.find('=');
    if (eq == std::string::npos || eq == 0 || eq + 1 == a.size())
      return Status::invalid("--input '", a, "' must look like NAME=FILE.npy");
    std::string name = a.substr(0, eq), path = a.substr(eq + 1);
    if (out.count(name)) return Status::invalid("input '", name, "' is given twice");
    bool pb = path.size() > 3 && path.substr(path.size() - 3) == ".pb";
    Result<Tensor> t = pb ? nn::load_tensor_pb(path) : load_npy(path);
    if (!t.is_ok()) return t.status().with_context("input '" + name + "'");
    out.emplace(name, std::move(t).value());
  }
  return out;
}

Result<std::map<std::string, Shape>> parse_shape_args(const std::vector<std::string>& args) {
  std::map<std::string, Shape> out;
  for (const std::string& a : args) {
    size_t eq = a.find('=');
    if (eq == std::string::npos || eq == 0) return Status::invalid("--shape '", a, "' must look like NAME=1x3x224x224");
    Shape s;
    std::string dims = a.substr(eq + 1);
    size_t i = 0;
    while (i < dims.size()) {
      size_t j = dims.find_first_of("x,", i);
      std::string d = dims.substr(i, j == std::string::npos ? std::string::npos : j - i);
      char* end = nullptr;
      long long v = std::strtoll(d.c_str(), &end, 10);
      if (d.empty() || *end != '\0' || v < 0)
        return Status::invalid("--shape '", a, "': '", d, "' is not a non-negative dimension");
      s.push_back(v);
      if (j == std::string::npos) break;
      i = j + 1;
    }
    out[a.substr(0, eq)] = s;
  }
  return out;
}

std::string safe_file_name(const std::string& tensor_name) {
  std::string s = tensor_name.empty() ? std::string("output") : tensor_name;
  for (char& c : s)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-')) c = '_';
  if (s[0] == '.') s[0] = '_';
  return s;
}

}  // namespace kiln::cli
