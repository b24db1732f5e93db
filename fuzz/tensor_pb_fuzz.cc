// Fuzz target: an untrusted serialized TensorProto (.pb test data, initializers).
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "kiln/nn/tensor_pb.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  (void)kiln::nn::parse_tensor_pb(std::string_view(reinterpret_cast<const char*>(data), size), "fuzz");
  return 0;
}
