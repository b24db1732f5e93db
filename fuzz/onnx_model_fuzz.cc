// Fuzz target: an untrusted .onnx file through load, compile and one run.
// Nothing may crash, hang or abort; every failure must be a Status.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "kiln/nn/compile.h"
#include "kiln/nn/model.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace kiln;
  // The load path exactly as `kiln` uses it (ONNX's own shape inference is off by default).
  auto m = nn::Model::load_bytes(std::string_view(reinterpret_cast<const char*>(data), size));
  if (!m.is_ok()) return 0;
  nn::CompileOptions o;
  o.default_dim = 2;
  o.max_tensor_bytes = 1 << 24;  // keep the fuzzer's memory bounded
  auto cm = nn::compile(*m, o);
  if (!cm.is_ok()) return 0;
  std::vector<Tensor> ins;
  for (const auto& s : cm->inputs()) ins.emplace_back(s.dtype, s.shape);
  std::vector<Tensor> outs = cm->make_outputs();
  std::vector<TensorView> iv, ov;
  for (const auto& t : ins) iv.push_back(t.view());
  for (const auto& t : outs) ov.push_back(t.view());
  (void)cm->run(iv, ov);
  return 0;
}
