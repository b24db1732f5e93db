// Shared pieces of the kiln command-line verbs (internal to apps/kiln).
#pragma once

#include <map>
#include <string>
#include <vector>

#include "kiln/core/status.h"
#include "kiln/core/tensor.h"
#include "kiln/nn/compile.h"
#include "kiln/nn/model.h"

namespace kiln::cli {

// Exit codes every verb uses.
inline constexpr int kExitOk = 0;
inline constexpr int kExitCheckFailed = 1;  // ran fine, but a requested check did not hold
inline constexpr int kExitBadInput = 2;     // bad file, bad argument, unsupported model

// Prints "kiln <verb>: <message>" on stderr and returns kExitBadInput.
int fail(const std::string& verb, const Status& s);

// Parses "NAME=PATH" arguments and loads each tensor (.npy, or .pb TensorProto).
Result<std::map<std::string, Tensor>> load_named_inputs(const std::vector<std::string>& args);
// Parses "NAME=1x3x224x224" (or "NAME=1,3,224,224") shape bindings.
Result<std::map<std::string, Shape>> parse_shape_args(const std::vector<std::string>& args);

// A file name for an output tensor: characters other than [A-Za-z0-9._-] become '_'.
std::string safe_file_name(const std::string& tensor_name);

}  // namespace kiln::cli
