// kiln/nn/conformance.h — run ONNX backend test cases (model.onnx + test_data_set_*/).
//
// A case is a folder holding model.onnx and one or more test_data_set_N folders with
// input_K.pb and output_K.pb (serialized TensorProtos). Each case is classified:
//   pass         every output matches within rtol/atol (NaN equals NaN), dtypes and shapes equal
//   fail         Kiln produced a wrong answer, or refused a valid model for a reason other
//                than "unsupported"
//   unsupported  the model uses an operator, type or feature Kiln does not implement, as
//                reported by load() or compile() with StatusCode::kUnsupported
// Inputs that decide shapes (a Reshape's `shape`) are bound at compile time, as a user of
// `kiln run` would (compile() reports kNeedsValue and names them).
//
//   kiln::nn::ConformanceOptions o;                       // rtol 1e-3, atol 1e-7
//   kiln::nn::CaseResult r = kiln::nn::run_conformance_case("/usr/share/.../test_relu", o);
//   if (r.outcome == kiln::nn::Outcome::kFail) std::puts(r.detail.c_str());
#pragma once

#include <string>
#include <vector>

#include "kiln/core/status.h"

namespace kiln::nn {

enum class Outcome { kPass, kFail, kUnsupported };
const char* outcome_name(Outcome o);

struct ConformanceOptions {
  double rtol = 1e-3;  // the ONNX backend runner's defaults
  double atol = 1e-7;
  // Run the graph passes and fast kernels (the default), or reference kernels only.
  bool optimize = true;
};

struct CaseResult {
  std::string name;       // folder name, e.g. "test_conv_with_strides_padding"
  std::string category;   // parent folder name, e.g. "node"
  Outcome outcome = Outcome::kFail;
  std::string detail;     // why it failed or is unsupported; empty on pass
  int data_sets = 0;
};

CaseResult run_conformance_case(const std::string& dir, const ConformanceOptions& options = {});

// Case folders under `root` (each holding model.onnx), sorted by name. When `root` itself
// holds model.onnx it is the only case.
Result<std::vector<std::string>> list_conformance_cases(const std::string& root);

}  // namespace kiln::nn
