#include "kiln/core/npy.h"

#include <algorithm>
#include <cstring>

#include "kiln/core/file_util.h"

namespace kiln {
namespace {

struct Descr {
  DType dtype = DType::kUndefined;
  bool big_endian = false;
};

Result<Descr> parse_descr(std::string_view d, const std::string& what) {
  if (d.size() < 2) return Status::invalid(what, ": dtype '", d, "' is not understood");
  char order = d[0];
  std::string_view code = d.substr(1);
  Descr r;
  r.big_endian = order == '>';
  if (order != '<' && order != '>' && order != '|' && order != '=')
    return Status::invalid(what, ": dtype '", d, "' has an unknown byte order");
  if (code == "f4") r.dtype = DType::kFloat32;
  else if (code == "f8") r.dtype = DType::kFloat64;
  else if (code == "f2") r.dtype = DType::kFloat16;
  else if (code == "i1") r.dtype = DType::kInt8;
  else if (code == "u1") r.dtype = DType::kUInt8;
  else if (code == "i2") r.dtype = DType::kInt16;
  else if (code == "u2") r.dtype = DType::kUInt16;
  else if (code == "i4") r.dtype = DType::kInt32;
  else if (code == "u4") r.dtype = DType::kUInt32;
  else if (code == "i8") r.dtype = DType::kInt64;
  else if (code == "u8") r.dtype = DType::kUInt64;
  else if (code == "b1") r.dtype = DType::kBool;
  else return Status::unsupported(what, ": dtype '", d, "' is not supported (numeric and bool arrays only)");
  return r;
}

// Finds the value text of 'key' in the header dict: "{'descr': '<f4', 'fortran_order': False, 'shape': (1, 3), }"
bool find_value(std::string_view h, std::string_view key, std::string_view* out) {
  std::string k1 = "'" + std::string(key) + "'";
  size_t p = h.find(k1);
  if (p == std::string_view::npos) {
    k1 = "\"" + std::string(key) + "\"";
    p = h.find(k1);
    if (p == std::string_view::npos) return false;
  }
  p = h.find(':', p + k1.size());
  if (p == std::string_view::npos) return false;
  ++p;
  while (p < h.size() && h[p] == ' ') ++p;
  *out = h.substr(p);
  return true;
}

}  // namespace

Result<Tensor> parse_npy(std::string_view bytes, const std::string& what) {
  static const char kMagic[] = "\x93NUMPY";
  if (bytes.size() < 10 || std::memcmp(bytes.data(), kMagic, 6) != 0)
    return Status::invalid(what, ": not a .npy file (missing \\x93NUMPY magic)");
  uint8_t major = static_cast<uint8_t>(bytes[6]);
  size_t header_len = 0, pos = 0;
  if (major == 1) {
    header_len = static_cast<uint8_t>(bytes[8]) | (static_cast<size_t>(static_cast<uint8_t>(bytes[9])) << 8);
    pos = 10;
  } else if (major == 2 || major == 3) {
    if (bytes.size() < 12) return Status::invalid(what, ": truncated .npy header");
    header_len = 0;
    for (int i = 0; i < 4; ++i) header_len |= static_cast<size_t>(static_cast<uint8_t>(bytes[8 + i])) << (8 * i);
    pos = 12;
  } else {
    return Status::unsupported(what, ": .npy format version ", int(major), " is not supported");
  }
  if (header_len > bytes.size() - pos) return Status::invalid(what, ": truncated .npy header");
  std::string_view h = bytes.substr(pos, header_len);
  pos += header_len;

  std::string_view v;
  if (!find_value(h, "descr", &v) || v.empty() || (v[0] != '\'' && v[0] != '"'))
    return Status::invalid(what, ": .npy header has no 'descr' string");
  size_t end = v.find(v[0], 1);
  if (end == std::string_view::npos) return Status::invalid(what, ": .npy header 'descr' is not terminated");
  KILN_ASSIGN_OR_RETURN(Descr descr, parse_descr(v.substr(1, end - 1), what));

  bool fortran = false;
  if (find_value(h, "fortran_order", &v)) fortran = v.substr(0, 4) == "True";

  if (!find_value(h, "shape", &v) || v.empty() || v[0] != '(')
    return Status::invalid(what, ": .npy header has no 'shape' tuple");
  size_t close = v.find(')');
  if (close == std::string_view::npos) return Status::invalid(what, ": .npy 'shape' tuple is not terminated");
  Shape shape;
  std::string_view dims = v.substr(1, close - 1);
  size_t i = 0;
  while (i < dims.size()) {
    while (i < dims.size() && (dims[i] == ' ' || dims[i] == ',')) ++i;
    if (i >= dims.size()) break;
    int64_t d = 0;
    size_t start = i;
    while (i < dims.size() && dims[i] >= '0' && dims[i] <= '9') {
      if (d > (int64_t{1} << 50)) return Status::invalid(what, ": .npy dimension is too large");
      d = d * 10 + (dims[i] - '0');
      ++i;
    }
    if (i == start) return Status::invalid(what, ": .npy 'shape' has a non-numeric dimension");
    while (i < dims.size() && dims[i] == 'L') ++i;
    shape.push_back(d);
    if (shape.size() > 32) return Status::invalid(what, ": .npy array has more than 32 dimensions");
  }
  size_t esize = dtype_size(descr.dtype);
  KILN_ASSIGN_OR_RETURN(int64_t n, checked_num_elements(shape, esize));
  size_t need = static_cast<size_t>(n) * esize;
  if (bytes.size() - pos < need)
    return Status::invalid(what, ": .npy data is truncated: shape ", shape_to_string(shape), " needs ", need,
                           " bytes, file has ", bytes.size() - pos);
  Tensor t(descr.dtype, shape);
  const char* src = bytes.data() + pos;
  std::memcpy(t.raw(), src, need);
  if (descr.big_endian && esize > 1) {
    auto* p = static_cast<unsigned char*>(t.raw());
    for (int64_t e = 0; e < n; ++e) std::reverse(p + e * esize, p + (e + 1) * esize);
  }
  if (descr.dtype == DType::kBool) {
    auto* p = static_cast<unsigned char*>(t.raw());
    for (int64_t e = 0; e < n; ++e) p[e] = p[e] ? 1 : 0;
  }
  if (fortran && shape.size() > 1) {
    // Transpose column-major data into row-major order.
    Tensor c(descr.dtype, shape);
    size_t r = shape.size();
    std::vector<int64_t> idx(r, 0);
    const auto* s = static_cast<const unsigned char*>(t.raw());
    auto* d = static_cast<unsigned char*>(c.raw());
    for (int64_t e = 0; e < n; ++e) {
      int64_t f = 0, stride = 1;
      for (size_t k = 0; k < r; ++k) {
        f += idx[k] * stride;
        stride *= shape[k];
      }
      std::memcpy(d + e * esize, s + f * esize, esize);
      for (size_t k = r; k-- > 0;) {
        if (++idx[k] < shape[k]) break;
        idx[k] = 0;
      }
    }
    return c;
  }
  return t;
}

Result<Tensor> load_npy(const std::string& path) {
  KILN_ASSIGN_OR_RETURN(std::string bytes, read_file(path));
  return parse_npy(bytes, path);
}

std::string format_npy(const TensorView& t) {
  const char* descr = "<f4";
  switch (t.dtype) {
    case DType::kFloat32: descr = "<f4"; break;
    case DType::kFloat64: descr = "<f8"; break;
    case DType::kFloat16: descr = "<f2"; break;
    case DType::kInt8: descr = "|i1"; break;
    case DType::kUInt8: descr = "|u1"; break;
    case DType::kInt16: descr = "<i2"; break;
    case DType::kUInt16: descr = "<u2"; break;
    case DType::kInt32: descr = "<i4"; break;
    case DType::kUInt32: descr = "<u4"; break;
    case DType::kInt64: descr = "<i8"; break;
    case DType::kUInt64: descr = "<u8"; break;
    case DType::kBool: descr = "|b1"; break;
    default: break;
  }
  std::string shape = "(";
  for (size_t i = 0; i < t.shape.size(); ++i) {
    shape += std::to_string(t.shape[i]);
    shape += (t.shape.size() == 1 || i + 1 < t.shape.size()) ? "," : "";
    if (i + 1 < t.shape.size()) shape += " ";
  }
  shape += ")";
  std::string header = std::string("{'descr': '") + descr + "', 'fortran_order': False, 'shape': " + shape + ", }";
  size_t total = 10 + header.size() + 1;
  header.append((64 - total % 64) % 64, ' ');
  header += '\n';
  std::string out = "\x93NUMPY";
  out += '\x01';
  out += '\x00';
  out += static_cast<char>(header.size() & 0xff);
  out += static_cast<char>((header.size() >> 8) & 0xff);
  out += header;
  out.append(static_cast<const char*>(t.data), t.byte_size());
  return out;
}

Status save_npy(const std::string& path, const TensorView& t) {
  return write_file_atomic(path, format_npy(t));
}

}  // namespace kiln
