// kiln run MODEL --input NAME=FILE.npy ... --output-dir DIR [--threads N]
#include <CLI/CLI.hpp>

#include <sys/stat.h>

#include <cstdio>

#include "cli_common.h"
#include "kiln/core/npy.h"
#include "verbs.h"

namespace kiln::cli {
namespace {

struct RunArgs {
  std::string model;
  std::vector<std::string> inputs;
  std::string output_dir;
  int threads = 1;
  bool no_optimize = false;
};

int run_run(const RunArgs& a) {
  Result<nn::Model> m = nn::Model::load(a.model);
  if (!m.is_ok()) return fail("run", m.status());
  auto inputs = load_named_inputs(a.inputs);
  if (!inputs.is_ok()) return fail("run", inputs.status());
  const nn::Graph& g = m->graph();
  std::map<std::string, const Tensor*> by_name;
  std::string names;
  for (int v : g.inputs) names += (names.empty() ? "'" : ", '") + g.values[v].name + "'";
  for (const auto& [name, t] : *inputs) {
    bool known = false;
    for (int v : g.inputs) known |= g.values[v].name == name;
    if (!known) return fail("run", Status::invalid("the model has no input '", name, "' (inputs: ", names, ")"));
    by_name[name] = &t;
  }
  for (int v : g.inputs)
    if (!by_name.count(g.values[v].name))
      return fail("run", Status::invalid("missing input '", g.values[v].name, "' (", g.values[v].type.to_string(),
                                         "); pass --input ", g.values[v].name, "=FILE.npy"));
  nn::CompileOptions opts;
  opts.threads = a.threads;
  opts.optimize = !a.no_optimize;
  Result<nn::CompiledModel> cm = nn::compile_for_inputs(*m, by_name, opts);
  if (!cm.is_ok()) return fail("run", cm.status());
  std::vector<TensorView> in;
  for (const nn::TensorSpec& s : cm->inputs()) {
    const Tensor* t = by_name.at(s.name);
    if (t->dtype() != s.dtype)
      return fail("run", Status::invalid("input '", s.name, "' must have dtype ", dtype_name(s.dtype), ", the file holds ",
                                         dtype_name(t->dtype())));
    in.push_back(t->view());
  }
  std::vector<Tensor> outs = cm->make_outputs();
  std::vector<TensorView> out;
  for (const Tensor& t : outs) out.push_back(t.view());
  Status s = cm->run(in, out);
  if (!s.is_ok()) return fail("run", s);
  if (::mkdir(a.output_dir.c_str(), 0755) != 0 && errno != EEXIST)
    return fail("run", Status::io("cannot create output folder '", a.output_dir, "'"));
  for (size_t i = 0; i < outs.size(); ++i) {
    std::string path = a.output_dir + "/" + safe_file_name(cm->outputs()[i].name) + ".npy";
    Status w = save_npy(path, outs[i].view());
    if (!w.is_ok()) return fail("run", w);
    std::printf("%s %s%s -> %s\n", cm->outputs()[i].name.c_str(), dtype_name(outs[i].dtype()).c_str(),
                shape_to_string(outs[i].shape()).c_str(), path.c_str());
  }
  return kExitOk;
}

}  // namespace

void register_run(CLI::App& app, int& exit_code) {
  auto args = std::make_shared<RunArgs>();
  CLI::App* c = app.add_subcommand("run", "Run a model once on .npy inputs and write each output as DIR/<name>.npy");
  c->add_option("MODEL", args->model, "ONNX model file")->required();
  c->add_option("--input", args->inputs, "NAME=FILE.npy (or a TensorProto .pb), once per model input");
  c->add_option("--output-dir", args->output_dir, "Folder for the outputs")->required();
  c->add_option("--threads", args->threads, "Threads for inference")->check(CLI::Range(1, 256));
  c->add_flag("--no-optimize", args->no_optimize, "Reference kernels only, no graph passes (for comparison)");
  c->callback([args, &exit_code] { exit_code = run_run(*args); });
}

}  // namespace kiln::cli
