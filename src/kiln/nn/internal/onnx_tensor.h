// Conversion of onnx.TensorProto into kiln::Tensor (internal: needs protobuf headers).
#pragma once

#include <onnx/onnx_pb.h>

#include <string>

#include "kiln/core/status.h"
#include "kiln/core/tensor.h"

namespace kiln::nn::internal {

// `base_dir` is where external data files are looked up; empty refuses external data.
Result<Tensor> tensor_from_proto(const onnx::TensorProto& p, const std::string& base_dir);

}  // namespace kiln::nn::internal
