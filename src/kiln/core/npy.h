// kiln/core/npy.h — NumPy .npy files (format versions 1.0-3.0), read and write.
//
// Reads little-endian arrays of bool, int8..int64, uint8..uint64, float16, float32 and
// float64 in C order (Fortran order is transposed on read). Big-endian data is byte-swapped.
// Object arrays and structured dtypes are refused with a message.
//
//   KILN_ASSIGN_OR_RETURN(kiln::Tensor x, kiln::load_npy("input.npy"));
//   KILN_RETURN_IF_ERROR(kiln::save_npy("out.npy", y.view()));
#pragma once

#include <string>
#include <string_view>

#include "kiln/core/status.h"
#include "kiln/core/tensor.h"

namespace kiln {

Result<Tensor> parse_npy(std::string_view bytes, const std::string& what = "npy data");
Result<Tensor> load_npy(const std::string& path);
std::string format_npy(const TensorView& t);
Status save_npy(const std::string& path, const TensorView& t);

}  // namespace kiln
