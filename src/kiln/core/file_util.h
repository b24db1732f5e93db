// kiln/core/file_util.h — whole-file reads and atomic writes with errors as values.
//
//   KILN_ASSIGN_OR_RETURN(std::string bytes, kiln::read_file("model.onnx"));
//   KILN_RETURN_IF_ERROR(kiln::write_file_atomic("out.json", text));  // temp file + rename
#pragma once

#include <string>
#include <string_view>

#include "kiln/core/status.h"

namespace kiln {

// Reads the whole file. Errors name the path and the OS reason; refuses files larger than
// `max_bytes` (default 4 GiB) and directories.
Result<std::string> read_file(const std::string& path, size_t max_bytes = size_t{1} << 32);
// Writes to "<path>.tmp-<pid>" then renames over `path`, so a reader never sees half a file
// and a crash leaves the old file (or none) in place.
Status write_file_atomic(const std::string& path, std::string_view bytes);

}  // namespace kiln
