#include "kiln/nn/internal/onnx_tensor.h"

#include <cstring>
#include <fstream>

#include "kiln/core/file_util.h"
#include "kiln/nn/tensor_pb.h"

namespace kiln::nn::internal {
namespace {

Status check_count(const onnx::TensorProto& p, int64_t have, int64_t want) {
  if (have != want)
    return Status::invalid("tensor '", p.name(), "' holds ", have, " values but its shape needs ", want);
  return Status::ok();
}

// Reads `length` bytes at `offset` from a file named by the tensor's external_data entries.
Result<std::string> read_external(const onnx::TensorProto& p, const std::string& base_dir) {
  if (base_dir.empty())
    return Status::invalid("tensor '", p.name(), "' stores its data in an external file, but the model was "
                           "loaded from memory; load it from its path");
  std::string location;
  int64_t offset = 0, length = -1;
  for (const auto& kv : p.external_data()) {
    if (kv.key() == "location") location = kv.value();
    else if (kv.key() == "offset" || kv.key() == "length") {
      char* end = nullptr;
      long long v = std::strtoll(kv.value().c_str(), &end, 10);
      if (kv.value().empty() || *end != '\0' || v < 0)
        return Status::invalid("tensor '", p.name(), "': external data ", kv.key(), " '", kv.value(),
                               "' is not a non-negative integer");
      (kv.key() == "offset" ? offset : length) = v;
    }
  }
  if (location.empty()) return Status::invalid("tensor '", p.name(), "': external data has no 'location'");
  if (location[0] == '/' || location.find("..") != std::string::npos)
    return Status::invalid("tensor '", p.name(), "': external data location '", location,
                           "' must be a relative path inside the model's folder");
  std::string path = base_dir + "/" + location;
  std::ifstream f(path, std::ios::binary);
  if (!f) return Status::not_found("tensor '", p.name(), "': external data file '", path, "' cannot be opened");
  f.seekg(0, std::ios::end);
  int64_t size = f.tellg();
  if (offset > size) return Status::invalid("tensor '", p.name(), "': external data offset ", offset,
                                            " is past the end of '", path, "' (", size, " bytes)");
  if (length < 0) length = size - offset;
  if (length > size - offset)
    return Status::invalid("tensor '", p.name(), "': external data needs ", length, " bytes at offset ", offset,
                           " but '", path, "' has ", size, " bytes");
  std::string out(static_cast<size_t>(length), '\0');
  f.seekg(offset);
  f.read(out.data(), length);
  if (!f) return Status::io("tensor '", p.name(), "': cannot read external data from '", path, "'");
  return out;
}

}  // namespace

Result<Tensor> tensor_from_proto(const onnx::TensorProto& p, const std::string& base_dir) {
  DType dt = dtype_from_onnx(p.data_type());
  if (p.data_type() == onnx::TensorProto::STRING)
    return Status::unsupported("tensor '", p.name(), "' has dtype string, which Kiln does not support");
  if (!dtype_is_supported(dt))
    return Status::unsupported("tensor '", p.name(), "' has dtype ", dtype_name(dt), " (code ", p.data_type(),
                               "), which Kiln does not support");
  if (p.has_segment()) return Status::unsupported("tensor '", p.name(), "' is segmented");
  Shape shape(p.dims().begin(), p.dims().end());
  if (shape.size() > 32) return Status::invalid("tensor '", p.name(), "' has rank ", shape.size(), " (> 32)");
  size_t es = dtype_size(dt);
  Result<int64_t> nr = checked_num_elements(shape, es);
  if (!nr.is_ok()) return nr.status().with_context("tensor '" + p.name() + "'");
  int64_t n = *nr;

  std::string external;
  const std::string* raw = nullptr;
  if (p.data_location() == onnx::TensorProto::EXTERNAL) {
    KILN_ASSIGN_OR_RETURN(external, read_external(p, base_dir));
    raw = &external;
  } else if (p.has_raw_data()) {
    raw = &p.raw_data();
  }

  // Check that the data present matches the shape before allocating anything: a small file
  // may claim an enormous shape.
  int64_t have = 0;
  if (raw) {
    if (raw->size() % es != 0)
      return Status::invalid("tensor '", p.name(), "' raw data has ", raw->size(), " bytes, not a multiple of ", es);
    have = static_cast<int64_t>(raw->size() / es);
  } else {
    switch (dt) {
      case DType::kFloat32: have = p.float_data_size(); break;
      case DType::kFloat64: have = p.double_data_size(); break;
      case DType::kInt64: have = p.int64_data_size(); break;
      case DType::kUInt64: case DType::kUInt32: have = p.uint64_data_size(); break;
      default: have = p.int32_data_size(); break;
    }
  }
  KILN_RETURN_IF_ERROR(check_count(p, have, n));

  Tensor t(dt, shape);
  if (n == 0) return t;  // empty repeated fields have no data pointer to copy from
  if (raw) {
    std::memcpy(t.raw(), raw->data(), raw->size());
    if (dt == DType::kBool) {
      auto* b = static_cast<unsigned char*>(t.raw());
      for (int64_t i = 0; i < n; ++i) b[i] = b[i] ? 1 : 0;
    }
    return t;
  }
  switch (dt) {
    case DType::kFloat32:
      std::memcpy(t.raw(), p.float_data().data(), n * 4);
      break;
    case DType::kFloat64:
      std::memcpy(t.raw(), p.double_data().data(), n * 8);
      break;
    case DType::kInt64:
      std::memcpy(t.raw(), p.int64_data().data(), n * 8);
      break;
    case DType::kUInt64:
    case DType::kUInt32: {
      for (int64_t i = 0; i < n; ++i) {
        if (dt == DType::kUInt64) t.data<uint64_t>()[i] = p.uint64_data(i);
        else t.data<uint32_t>()[i] = static_cast<uint32_t>(p.uint64_data(i));
      }
      break;
    }
    case DType::kInt32: case DType::kInt16: case DType::kUInt16: case DType::kInt8: case DType::kUInt8:
    case DType::kBool: case DType::kFloat16: case DType::kBFloat16: {
      for (int64_t i = 0; i < n; ++i) {
        int32_t v = p.int32_data(i);
        switch (dt) {
          case DType::kInt32: t.data<int32_t>()[i] = v; break;
          case DType::kInt16: t.data<int16_t>()[i] = static_cast<int16_t>(v); break;
          case DType::kUInt16: case DType::kFloat16: case DType::kBFloat16:
            t.data<uint16_t>()[i] = static_cast<uint16_t>(v); break;
          case DType::kInt8: t.data<int8_t>()[i] = static_cast<int8_t>(v); break;
          case DType::kUInt8: t.data<uint8_t>()[i] = static_cast<uint8_t>(v); break;
          case DType::kBool: t.data<uint8_t>()[i] = v ? 1 : 0; break;
          default: break;
        }
      }
      break;
    }
    default:
      return Status::unsupported("tensor '", p.name(), "' has dtype ", dtype_name(dt));
  }
  return t;
}

}  // namespace kiln::nn::internal

namespace kiln::nn {

Result<Tensor> parse_tensor_pb(std::string_view bytes, const std::string& what, std::string* name) {
  onnx::TensorProto p;
  if (bytes.size() > static_cast<size_t>(INT32_MAX) || !p.ParseFromArray(bytes.data(), static_cast<int>(bytes.size())))
    return Status::invalid(what, ": not a valid ONNX TensorProto (protobuf parse failed)");
  if (name) *name = p.name();
  Result<Tensor> t = internal::tensor_from_proto(p, "");
  if (!t.is_ok()) return t.status().with_context(what);
  return t;
}

Result<Tensor> load_tensor_pb(const std::string& path, std::string* name) {
  KILN_ASSIGN_OR_RETURN(std::string bytes, read_file(path));
  return parse_tensor_pb(bytes, path, name);
}

}  // namespace kiln::nn
