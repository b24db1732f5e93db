// kiln/nn/tensor_pb.h — ONNX TensorProto files (.pb), as the ONNX test suites ship them.
//
//   std::string name;
//   KILN_ASSIGN_OR_RETURN(kiln::Tensor x, kiln::nn::load_tensor_pb("input_0.pb", &name));
#pragma once

#include <string>
#include <string_view>

#include "kiln/core/status.h"
#include "kiln/core/tensor.h"

namespace kiln::nn {

// Parses a serialized onnx.TensorProto. `name` (optional) receives the tensor's name.
Result<Tensor> parse_tensor_pb(std::string_view bytes, const std::string& what, std::string* name = nullptr);
Result<Tensor> load_tensor_pb(const std::string& path, std::string* name = nullptr);

}  // namespace kiln::nn
