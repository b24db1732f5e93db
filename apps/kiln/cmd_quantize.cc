// kiln quantize MODEL --calibration DIR --output OUT.onnx [--per-channel] [--reduce-range]
//                     [--method minmax|percentile|entropy] [--exclude NODE...] [--no-input-search]
//                     [--input-bits 8|16] [--quiet] [--json]
//
// Post-training static quantisation (nn/quantize/quantizer.h): writes a standard QDQ ONNX model
// (symmetric int8 weights, asymmetric int8 activations; the model input int16 with --input-bits 16,
// at opset 21) and reports the quantisation error of every layer (SQNR in dB: higher is better;
// below ~20 dB a layer visibly hurts) so that a user can exclude the layers that hurt. The output
// file is written atomically: on any error there is none.
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <unistd.h>

#include <cstdio>
#include <filesystem>

#include "cli_common.h"
#include "kiln/core/file_util.h"
#include "kiln/nn/quantize/quantizer.h"
#include "verbs.h"

namespace kiln::cli {
namespace {

struct QuantizeArgs {
  std::string model, calibration, output, method = "minmax";
  std::vector<std::string> exclude;
  bool per_channel = false;
  bool reduce_range = false;
  bool no_input_search = false;
  int input_bits = 8;
  bool quiet = false;
  bool json = false;
};

int run_quantize(const QuantizeArgs& a) {
  nn::quantize::QuantizeOptions opts;
  opts.per_channel = a.per_channel;
  opts.reduce_range = a.reduce_range;
  opts.input_search = !a.no_input_search;
  if (a.input_bits != 8 && a.input_bits != 16)
    return fail("quantize", Status::invalid("--input-bits must be 8 or 16, got ", a.input_bits));
  opts.input_bits = a.input_bits;
  // A bar per stage on a terminal (a pipe or file gets none, so errors stay one line).
  std::string stage;
  int shown = -1;
  if (!a.quiet && isatty(STDERR_FILENO)) {
    opts.progress = [&stage, &shown](const std::string& now, int done, int total) {
      const int width = 30, filled = total > 0 ? done * width / total : width;
      if (now != stage) {
        if (!stage.empty()) std::fprintf(stderr, "\n");
        stage = now;
        shown = -1;
      }
      if (filled == shown && done != total) return;
      shown = filled;
      std::fprintf(stderr, "\r%-28s [%.*s%*s] %d/%d", stage.c_str(), filled, "##############################",
                   width - filled, "", done, total);
      std::fflush(stderr);
    };
  }
  opts.exclude = a.exclude;
  if (a.method == "minmax") opts.method = nn::quantize::CalibrationMethod::kMinMax;
  else if (a.method == "percentile") opts.method = nn::quantize::CalibrationMethod::kPercentile;
  else if (a.method == "entropy") opts.method = nn::quantize::CalibrationMethod::kEntropy;
  else return fail("quantize", Status::invalid("--method must be minmax, percentile or entropy, got '", a.method, "'"));
  Result<std::string> bytes = read_file(a.model);
  if (!bytes.is_ok()) return fail("quantize", bytes.status());
  nn::LoadOptions lo;
  lo.base_dir = std::filesystem::path(a.model).parent_path().string();
  Result<nn::Model> m = nn::Model::load_bytes(*bytes, lo);
  if (!m.is_ok()) return fail("quantize", m.status().with_context(a.model));
  const nn::Graph& g = m->graph();
  for (const std::string& ex : a.exclude) {
    bool found = false;
    for (const nn::Node& n : g.nodes) found |= n.name == ex;
    if (!found) return fail("quantize", Status::invalid("--exclude: the model has no node named '", ex, "'"));
  }
  std::vector<nn::quantize::ModelInput> inputs;
  for (int v : g.inputs) inputs.push_back({g.values[v].name, g.values[v].type});
  Result<std::vector<nn::quantize::Sample>> samples = nn::quantize::load_calibration(a.calibration, inputs);
  if (!samples.is_ok()) return fail("quantize", samples.status());
  nn::quantize::QuantizeReport report;
  Result<std::string> out = nn::quantize::quantize_model(*bytes, lo.base_dir, *samples, opts, &report);
  if (!stage.empty()) std::fprintf(stderr, "\n");
  if (!out.is_ok()) return fail("quantize", out.status().with_context(a.model));
  Status w = write_file_atomic(a.output, *out);
  if (!w.is_ok()) return fail("quantize", w);

  if (a.json) {
    nlohmann::json j;
    j["model"] = a.model;
    j["output"] = a.output;
    j["method"] = a.method;
    j["per_channel"] = a.per_channel;
    j["reduce_range"] = a.reduce_range;
    j["input_search"] = !a.no_input_search;
    j["input_bits"] = a.input_bits;
    j["samples"] = report.samples;
    j["quantized_nodes"] = report.quantized_nodes;
    nlohmann::json layers = nlohmann::json::array();
    for (const auto& l : report.layers)
      layers.push_back({{"node", l.node}, {"op_type", l.op_type}, {"tensor", l.tensor}, {"sqnr_db", l.sqnr_db}});
    j["layers"] = layers;
    nlohmann::json outs = nlohmann::json::array();
    for (const auto& o : report.outputs) outs.push_back({{"tensor", o.tensor}, {"sqnr_db", o.sqnr_db}});
    j["outputs"] = outs;
    if (report.top1_agreement >= 0) j["top1_agreement"] = report.top1_agreement;
    j["notes"] = report.notes;
    std::printf("%s\n", j.dump(2).c_str());
  } else {
    std::printf("quantised  %zu nodes (%s weights, %s calibration on %d samples%s) -> %s\n",
                report.quantized_nodes.size(), a.per_channel ? "per-channel" : "per-tensor", a.method.c_str(),
                report.samples, a.input_bits == 16 ? ", int16 input" : "", a.output.c_str());
    std::printf("%-10s %-32s %-8s %s\n", "SQNR dB", "node", "op", "tensor");
    for (const auto& l : report.layers)
      std::printf("%10.1f %-32s %-8s %s\n", l.sqnr_db, l.node.c_str(), l.op_type.c_str(), l.tensor.c_str());
    for (const auto& o : report.outputs)
      std::printf("%10.1f %-32s %-8s %s\n", o.sqnr_db, "(model output)", "", o.tensor.c_str());
    if (report.top1_agreement >= 0)
      std::printf("top-1      %.1f%% of calibration samples agree with fp32\n", 100 * report.top1_agreement);
    for (const std::string& n : report.notes) std::printf("note       %s\n", n.c_str());
  }
  return kExitOk;
}

}  // namespace

void register_quantize(CLI::App& app, int& exit_code) {
  auto args = std::make_shared<QuantizeArgs>();
  CLI::App* c = app.add_subcommand("quantize", "Post-training int8 quantisation into a QDQ ONNX model");
  c->add_option("MODEL", args->model, "fp32 ONNX model")->required();
  c->add_option("--calibration", args->calibration,
                "Folder of .npy calibration inputs (one sample or stacked per file; with several model inputs, "
                "one subfolder per input, named after it)")
      ->required();
  c->add_option("--output", args->output, "Where to write the quantised ONNX model")->required();
  c->add_flag("--per-channel", args->per_channel, "One weight scale per output channel (default: per tensor)");
  c->add_flag("--reduce-range", args->reduce_range,
              "7-bit weights in [-63, 63] (ONNX Runtime's reduce_range): about 2x faster int8 on AVX2 CPUs "
              "without VNNI, at some accuracy");
  c->add_option("--method", args->method, "Activation ranges: minmax, percentile (99.99%) or entropy (KL)");
  c->add_option("--exclude", args->exclude, "Node names to leave in float");
  c->add_flag("--no-input-search", args->no_input_search,
              "Keep the method's range for the model input too (default: the range, among clipped ones, that "
              "least changes the outputs)");
  c->add_option("--input-bits", args->input_bits,
                "8 (default) or 16: int16 QuantizeLinear/DequantizeLinear on the model input (the model is "
                "raised to opset 21), for stems reading raw sensor features such as MFCCs; other activations stay "
                "int8");
  c->add_flag("--quiet", args->quiet, "No progress bars (they appear only when stderr is a terminal)");
  c->add_flag("--json", args->json, "Print the report as one JSON object");
  c->callback([args, &exit_code] { exit_code = run_quantize(*args); });
}

}  // namespace kiln::cli
