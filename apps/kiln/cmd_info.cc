// kiln info MODEL [--shape NAME=DIMS ...] [--json]
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <cstdio>
#include <map>

#include "cli_common.h"
#include "kiln/core/cpu_features.h"
#include "verbs.h"

namespace kiln::cli {
namespace {

struct InfoArgs {
  std::string model;
  std::vector<std::string> shapes;
  bool json = false;
};

std::string human_bytes(double b) {
  const char* unit[] = {"B", "KiB", "MiB", "GiB"};
  int u = 0;
  while (b >= 1024 && u < 3) {
    b /= 1024;
    ++u;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, u ? "%.1f %s" : "%.0f %s", b, unit[u]);
  return buf;
}

int run_info(const InfoArgs& a) {
  Result<nn::Model> m = nn::Model::load(a.model);
  if (!m.is_ok()) return fail("info", m.status());
  const nn::Graph& g = m->graph();
  auto shapes = parse_shape_args(a.shapes);
  if (!shapes.is_ok()) return fail("info", shapes.status());
  nn::CompileOptions opts;
  opts.input_shapes = *shapes;
  opts.default_dim = 1;
  Result<nn::CompiledModel> cm = nn::compile(*m, opts);

  int64_t params = 0;
  for (const nn::Value& v : g.values)
    if (v.constant && v.producer < 0) params += v.constant->num_elements();
  std::map<std::string, int> histogram;
  for (const nn::Node& n : g.nodes) ++histogram[n.domain.empty() ? n.op_type : n.domain + "." + n.op_type];
  int64_t macs = 0;
  if (cm.is_ok())
    for (const nn::StepInfo& s : cm->steps()) macs += s.macs;

  nlohmann::ordered_json j;
  j["model"] = a.model;
  j["ir_version"] = g.ir_version;
  j["producer"] = g.producer;
  for (const auto& [d, v] : g.opsets) j["opsets"][d.empty() ? "ai.onnx" : d] = v;
  auto io = [&](const std::vector<int>& ids, const std::vector<nn::TensorSpec>* compiled) {
    nlohmann::ordered_json arr = nlohmann::json::array();
    for (size_t i = 0; i < ids.size(); ++i) {
      const nn::Value& v = g.values[ids[i]];
      nlohmann::ordered_json e;
      e["name"] = v.name;
      e["dtype"] = dtype_name(v.type.dtype);
      e["declared"] = v.type.to_string();
      if (compiled) {
        for (const nn::TensorSpec& s : *compiled)
          if (s.name == v.name) {
            e["dtype"] = dtype_name(s.dtype);
            e["shape"] = s.shape;
          }
      }
      arr.push_back(e);
    }
    return arr;
  };
  j["inputs"] = io(g.inputs, cm.is_ok() ? &cm->inputs() : nullptr);
  j["outputs"] = io(g.outputs, cm.is_ok() ? &cm->outputs() : nullptr);
  j["nodes"] = g.nodes.size();
  j["operators"] = histogram;
  j["parameters"] = params;
  if (cm.is_ok()) {
    j["macs"] = macs;
    j["arena_bytes"] = cm->arena_bytes();
    j["constant_bytes"] = cm->constant_bytes();
    j["steps"] = cm->steps().size();
    j["folded_nodes"] = cm->folded_nodes();
    j["removed_nodes"] = cm->removed_nodes();
    j["view_nodes"] = cm->view_nodes();
    std::map<std::string, int> impls;
    for (const nn::StepInfo& s : cm->steps()) ++impls[s.op_type + ":" + s.impl];
    j["kernels"] = impls;
    // Nodes of a quantised model that run on integer kernels (passes/quantized.cc); the ones that
    // fall back to float on dequantised values are listed in the notes.
    std::vector<std::string> integer_nodes;
    for (const nn::StepInfo& s : cm->steps())
      if (s.op_type == "QConv" || s.op_type == "QDense" || s.op_type == "QPool" || s.op_type == "QAdd" ||
          s.op_type == "QMul")
        integer_nodes.push_back(s.node_name + " (" + s.op_type + ", " + s.impl + ")");
    j["integer_nodes"] = integer_nodes;
  } else {
    j["compile_error"] = cm.status().message();
  }
  std::vector<std::string> notes = m->notes();
  if (cm.is_ok()) {
    notes.insert(notes.end(), cm->notes().begin(), cm->notes().end());
    // Without VNNI, 8-bit weights need int16 products (qs8_gemm_avx2): say what 7-bit ones buy.
    int exact_avx2 = 0;
    for (const nn::StepInfo& s : cm->steps()) exact_avx2 += s.impl == "qs8_gemm_avx2";
    if (exact_avx2 > 0)
      notes.push_back("int8: this CPU has no VNNI, so " + std::to_string(exact_avx2) +
                      " layers with 8-bit weights multiply in int16 (qs8_gemm_avx2: at most 1.6x fp32's rate on a Zen 3, "
                      "bench/int8/mac_peaks.cc); weights quantised with `kiln quantize --reduce-range` (7 bits) run on "
                      "qs8_gemm_avx2_w7, about 1.2x faster again (docs/int8.md)");
  }
  j["notes"] = notes;
  j["cpu"] = cpu_features().brand;
  j["isa"] = cpu_features().summary();

  if (a.json) {
    std::printf("%s\n", j.dump(2).c_str());
  } else {
    std::printf("model      %s\n", a.model.c_str());
    std::printf("format     ONNX IR %lld, producer %s, opsets", static_cast<long long>(g.ir_version),
                g.producer.empty() ? "?" : g.producer.c_str());
    for (const auto& [d, v] : g.opsets) std::printf(" %s:%d", d.empty() ? "ai.onnx" : d.c_str(), v);
    std::printf("\n");
    for (const char* side : {"inputs", "outputs"})
      for (const auto& e : j[side])
        std::printf("%-10s %-24s %-8s %s%s\n", side == std::string("inputs") ? "input" : "output",
                    e["name"].get<std::string>().c_str(), e["dtype"].get<std::string>().c_str(),
                    e.contains("shape") ? shape_to_string(e["shape"].get<Shape>()).c_str() : "",
                    e.contains("shape") ? "" : e["declared"].get<std::string>().c_str());
    std::printf("nodes      %zu (", g.nodes.size());
    bool first = true;
    for (const auto& [op, n] : histogram) {
      std::printf("%s%s %d", first ? "" : ", ", op.c_str(), n);
      first = false;
    }
    std::printf(")\n");
    std::printf("parameters %lld\n", static_cast<long long>(params));
    if (cm.is_ok()) {
      std::printf("MACs       %lld (%.2f M)\n", static_cast<long long>(macs), macs / 1e6);
      std::printf("arena      %zu bytes (%s)\n", cm->arena_bytes(), human_bytes(cm->arena_bytes()).c_str());
      std::printf("constants  %zu bytes (%s)\n", cm->constant_bytes(), human_bytes(cm->constant_bytes()).c_str());
      std::printf("plan       %zu steps, %d nodes folded at compile time, %d removed, %d views without copy\n",
                  cm->steps().size(), cm->folded_nodes(), cm->removed_nodes(), cm->view_nodes());
      const auto& ints = j["integer_nodes"];
      if (!ints.empty()) {
        std::printf("int8       %zu nodes run on integer kernels\n", ints.size());
        for (const auto& e : ints) std::printf("int8 node  %s\n", e.get<std::string>().c_str());
      }
    } else {
      std::printf("compile    %s\n", cm.status().message().c_str());
    }
    for (const std::string& n : notes) std::printf("note       %s\n", n.c_str());
    std::printf("cpu        %s [%s]\n", cpu_features().brand.c_str(), cpu_features().summary().c_str());
  }
  return cm.is_ok() ? kExitOk : kExitBadInput;
}

}  // namespace

void register_info(CLI::App& app, int& exit_code) {
  auto args = std::make_shared<InfoArgs>();
  CLI::App* c = app.add_subcommand("info", "Inputs, outputs, operators, parameters, MACs and arena size of a model");
  c->add_option("MODEL", args->model, "ONNX model file")->required();
  c->add_option("--shape", args->shapes, "Bind an input shape, NAME=1x3x224x224 (dynamic dims default to 1)");
  c->add_flag("--json", args->json, "Print one JSON object");
  c->callback([args, &exit_code] { exit_code = run_info(*args); });
}

}  // namespace kiln::cli
