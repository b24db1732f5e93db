// Fuzz target: an untrusted .onnx file through `kiln quantize`'s library call (calibration, the
// QDQ rewrite, opset 21 restating for 16-bit inputs, the per-layer measurement). The first byte
// chooses the options; the rest is the model. Nothing may crash, hang or abort; every failure
// must be a Status.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "kiln/nn/model.h"
#include "kiln/nn/quantize/quantizer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace kiln;
  if (size < 2) return 0;
  const uint8_t flags = data[0];
  const std::string_view bytes(reinterpret_cast<const char*>(data + 1), size - 1);
  auto m = nn::Model::load_bytes(bytes);
  if (!m.is_ok()) return 0;
  // Two calibration samples per float32 input of its declared shape (unknown dimensions 1), with
  // values that vary across elements and samples; other inputs, or large ones, end the run.
  const nn::Graph& g = m->graph();
  std::vector<nn::quantize::Sample> samples(2);
  for (int v : g.inputs) {
    const nn::ValueType& t = g.values[v].type;
    if (t.dtype != DType::kFloat32 || !t.has_shape) return 0;
    const Shape shape = t.static_shape(1);
    int64_t n = 1;
    for (int64_t d : shape) {
      if (d < 0 || d > (1 << 12)) return 0;
      n *= d;
      if (n > (1 << 14)) return 0;
    }
    for (size_t s = 0; s < samples.size(); ++s) {
      Tensor x(DType::kFloat32, shape);
      for (int64_t i = 0; i < n; ++i) x.data<float>()[i] = static_cast<float>((i * 37 + static_cast<int64_t>(s) * 11) % 23) * 0.25f - 2.f;
      samples[s].push_back(std::move(x));
    }
  }
  nn::quantize::QuantizeOptions o;
  o.per_channel = flags & 1;
  o.input_bits = flags & 2 ? 16 : 8;
  o.input_search = (flags & 4) != 0;
  o.reduce_range = (flags & 8) != 0;
  o.method = (flags >> 4) % 3 == 0   ? nn::quantize::CalibrationMethod::kMinMax
             : (flags >> 4) % 3 == 1 ? nn::quantize::CalibrationMethod::kPercentile
                                     : nn::quantize::CalibrationMethod::kEntropy;
  nn::quantize::QuantizeReport report;
  (void)nn::quantize::quantize_model(bytes, ".", samples, o, &report);
  return 0;
}
