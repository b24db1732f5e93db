// Fuzz target: an untrusted NumPy .npy file (kiln run inputs, calibration data).
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "kiln/core/npy.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  (void)kiln::parse_npy(std::string_view(reinterpret_cast<const char*>(data), size), "fuzz");
  return 0;
}
