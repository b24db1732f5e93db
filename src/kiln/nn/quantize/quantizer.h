// kiln/nn/quantize/quantizer.h — post-training static quantisation of an fp32 ONNX model into a
// standard QDQ ONNX model (what `kiln quantize` writes).
//
// The quantiser runs the fp32 model on the calibration samples, records the range of every
// activation that feeds or leaves a quantisable node, and rewrites the model the way ONNX
// Runtime's S8S8 QDQ quantiser does: weights of Conv / Gemm / MatMul become symmetric int8
// initializers (per output channel with `per_channel`) behind a DequantizeLinear, biases int32 with
// scale x_scale * w_scale, and each activation tensor gets one QuantizeLinear -> DequantizeLinear
// pair with asymmetric int8 parameters (the model inputs int16 with `input_bits` 16); Relu / Clip
// after a layer are quantised at their output, and MaxPool / AveragePool / GlobalAveragePool / Add
// get QDQ inputs and outputs so that the int8 chain continues through them. Kiln's quantized pass
// (passes/quantized.cc) runs the result on integer kernels; ONNX Runtime loads it too.
//
//   KILN_ASSIGN_OR_RETURN(auto samples, quantize::load_calibration("calib/", {{"x", input_type}}));
//   quantize::QuantizeOptions opts;
//   opts.per_channel = true;
//   quantize::QuantizeReport report;
//   KILN_ASSIGN_OR_RETURN(std::string onnx, quantize::quantize_model(bytes, ".", samples, opts, &report));
//   KILN_RETURN_IF_ERROR(write_file_atomic("model.int8.onnx", onnx));
#pragma once

#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "kiln/core/status.h"
#include "kiln/core/tensor.h"
#include "kiln/nn/ir.h"
#include "kiln/nn/quantize/calibration.h"

namespace kiln::nn::quantize {

struct QuantizeOptions {
  bool per_channel = false;
  // Weights in [-63, 63] instead of [-127, 127] (ONNX Runtime's reduce_range): int8 CPUs without
  // VNNI then multiply them with vpmaddubsw, whose int16 pair sums cannot saturate on 7-bit
  // weights (qs8_gemm_avx2_w7, about twice the exact 8-bit AVX2 kernel), at some accuracy.
  bool reduce_range = false;
  CalibrationMethod method = CalibrationMethod::kMinMax;
  // The model input's range chosen by the error it causes in the outputs (quantizer.cc,
  // search_input_range); off: the method's range, as for every other tensor.
  bool input_search = true;
  // 8 or 16. With 16, every model input that gets a QuantizeLinear -> DequantizeLinear pair (with
  // the layout-only nodes after it: Transpose, Reshape, ...) gets an int16 one (asymmetric,
  // scale = (hi - lo) / 65535), for stems that read raw sensor features such as MFCCs: one scale
  // serves features of very different ranges, and 8 bits round the narrow ones coarsely. The
  // other activations stay int8; the biases of the layers reading the input take the int16 scale.
  // int16 QuantizeLinear / DequantizeLinear need opset 21: the model is raised to it (and to IR
  // version 10), restating the nodes whose signature changed since its own opset; a node whose
  // meaning cannot be restated (Resize-10, Upsample, GroupNormalization-18, DFT before 20, a
  // training BatchNormalization) is an error (kInvalidArgument). The input-range search rounds
  // such an input to 16 bits.
  int input_bits = 8;
  // Node names left in float.
  std::vector<std::string> exclude;
  // Called as the work goes on: the stage ("calibrating", "input range of 'x'", "measuring") and
  // how much of it is done (done reaches total once per stage). Optional.
  std::function<void(const std::string& stage, int done, int total)> progress;
};

// Signal-to-quantisation-noise ratio of one tensor over the calibration samples:
// 10 log10(sum x^2 / sum (x - x_int8)^2), x from the fp32 model, x_int8 from the quantised one.
struct TensorQuality {
  std::string node;     // the layer (or graph output) it belongs to
  std::string op_type;
  std::string tensor;
  double sqnr_db = 0;
};

struct QuantizeReport {
  int samples = 0;
  std::vector<std::string> quantized_nodes;
  std::vector<TensorQuality> layers;   // one per quantised layer, in graph order
  std::vector<TensorQuality> outputs;  // the model's outputs
  // Fraction of samples whose arg-max agrees between fp32 and int8 outputs (classifier outputs
  // only: rank 2 with batch 1; -1 otherwise).
  double top1_agreement = -1;
  std::vector<std::string> notes;
};

// One calibration sample: a tensor per model input, in the model's input order.
using Sample = std::vector<Tensor>;

// A runtime input of the model: its name and declared type.
struct ModelInput {
  std::string name;
  ValueType type;
};

// Calibration samples for the model's runtime `inputs`. With one input, every `.npy` file in `dir`
// (sorted by name); with several, `dir` holds one folder per input, named by
// calibration_folder_name(), read the same way, and the i-th sample of each input together form
// sample i (the counts must agree). A file holds one sample (the input's shape, or that shape
// without its batch dimension of 1) or several stacked along a first dimension; with a symbolic
// batch dimension each leading row is one sample (of batch 1). Errors name the file or folder and
// what was expected.
Result<std::vector<Sample>> load_calibration(const std::string& dir, const std::vector<ModelInput>& inputs);

// The folder of an input's calibration files in a multi-input calibration folder: the input's name
// with every character other than a letter, digit, '.', '-' or '_' replaced by '_'.
std::string calibration_folder_name(const std::string& input_name);

// Quantises the ONNX model `model_bytes` (external data is looked up in `base_dir`) and returns the
// serialised QDQ model. Fails (kInvalidArgument) when no node can be quantised.
Result<std::string> quantize_model(std::string_view model_bytes, const std::string& base_dir,
                                   const std::vector<Sample>& samples, const QuantizeOptions& options,
                                   QuantizeReport* report);

}  // namespace kiln::nn::quantize
