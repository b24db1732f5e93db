// kiln bench MODEL [--threads N] [--warmup W] [--runs R] [--min-seconds S] [--input NAME=FILE] [--json]
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <random>

#include "cli_common.h"
#include "kiln/core/alloc_counter.h"
#include "kiln/core/cpu_features.h"
#include "verbs.h"

namespace kiln::cli {
namespace {

struct BenchArgs {
  std::string model;
  std::vector<std::string> inputs;
  std::vector<std::string> shapes;
  int threads = 1;
  int warmup = 20;
  int runs = 200;
  double min_seconds = 0;   // keep timing past `runs` until this much time has gone by
  int max_runs = 200000;    // ... but no more runs than this
  bool json = false;
  bool profile = false;
  bool no_optimize = false;
};

// Random data of the right dtype: normal floats, small non-negative integers, random bools.
void fill_random(Tensor& t, std::mt19937& rng) {
  std::normal_distribution<float> nd(0.f, 1.f);
  std::uniform_int_distribution<int> small(0, 3);
  for (int64_t i = 0; i < t.num_elements(); ++i) {
    switch (t.dtype()) {
      case DType::kFloat32: t.data<float>()[i] = nd(rng); break;
      case DType::kFloat64: t.data<double>()[i] = nd(rng); break;
      case DType::kBool: t.data<bool>()[i] = small(rng) & 1; break;
      case DType::kInt64: t.data<int64_t>()[i] = small(rng); break;
      case DType::kInt32: t.data<int32_t>()[i] = small(rng); break;
      case DType::kInt8: t.data<int8_t>()[i] = static_cast<int8_t>(small(rng)); break;
      case DType::kUInt8: t.data<uint8_t>()[i] = static_cast<uint8_t>(small(rng)); break;
      default: break;
    }
  }
}

double percentile(const std::vector<double>& sorted, double p) {
  if (sorted.empty()) return 0;
  double idx = p * (sorted.size() - 1);
  size_t lo = static_cast<size_t>(idx);
  size_t hi = std::min(lo + 1, sorted.size() - 1);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (idx - lo);
}

int run_bench(const BenchArgs& a) {
  Result<nn::Model> m = nn::Model::load(a.model);
  if (!m.is_ok()) return fail("bench", m.status());
  auto given = load_named_inputs(a.inputs);
  if (!given.is_ok()) return fail("bench", given.status());
  auto shapes = parse_shape_args(a.shapes);
  if (!shapes.is_ok()) return fail("bench", shapes.status());
  std::map<std::string, const Tensor*> by_name;
  for (const auto& [n, t] : *given) by_name[n] = &t;
  nn::CompileOptions opts;
  opts.threads = a.threads;
  opts.default_dim = 1;
  opts.input_shapes = *shapes;
  opts.optimize = !a.no_optimize;
  auto compiled_at = std::chrono::steady_clock::now();
  Result<nn::CompiledModel> cm = nn::compile_for_inputs(*m, by_name, opts);
  double compile_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - compiled_at).count();
  if (!cm.is_ok()) {
    Status s = cm.status();
    if (s.code() == StatusCode::kNeedsValue)
      s = Status::invalid(s.message(), "; pass that input's data with --input NAME=FILE.npy");
    return fail("bench", s);
  }
  std::mt19937 rng(42);
  std::vector<Tensor> owned;
  owned.reserve(cm->inputs().size());
  std::vector<TensorView> in;
  for (const nn::TensorSpec& s : cm->inputs()) {
    auto it = given->find(s.name);
    if (it != given->end()) {
      in.push_back(it->second.view());
      continue;
    }
    owned.emplace_back(s.dtype, s.shape);
    fill_random(owned.back(), rng);
    in.push_back(owned.back().view());
  }
  std::vector<Tensor> outs = cm->make_outputs();
  std::vector<TensorView> out;
  for (const Tensor& t : outs) out.push_back(t.view());
  for (int i = 0; i < a.warmup; ++i) {
    Status s = cm->run(in, out);
    if (!s.is_ok()) return fail("bench", s);
  }
  // At least --runs timed runs, and more until --min-seconds have passed (at most --max-runs). The
  // samples are stored in a buffer sized up front, so the timing loop itself allocates nothing.
  const int max_runs = a.min_seconds > 0 ? std::max(a.runs, a.max_runs) : a.runs;
  std::vector<double> us(static_cast<size_t>(max_runs));
  int runs = 0;
  const auto started = std::chrono::steady_clock::now();
  const auto min_duration = std::chrono::duration<double>(a.min_seconds);
  uint64_t allocs_before = heap_allocation_count();
  while (runs < max_runs && (runs < a.runs || std::chrono::steady_clock::now() - started < min_duration)) {
    auto t0 = std::chrono::steady_clock::now();
    Status s = cm->run(in, out);
    auto t1 = std::chrono::steady_clock::now();
    if (!s.is_ok()) return fail("bench", s);
    us[static_cast<size_t>(runs++)] = std::chrono::duration<double, std::micro>(t1 - t0).count();
  }
  uint64_t allocs = heap_allocation_count() - allocs_before;
  us.resize(static_cast<size_t>(runs));
  std::vector<double> step_us;
  if (a.profile) {
    for (int i = 0; i < a.runs; ++i) {
      Status s = cm->run_profiled(in, out, step_us);
      if (!s.is_ok()) return fail("bench", s);
    }
    for (double& t : step_us) t /= a.runs;
  }
  std::sort(us.begin(), us.end());
  double allocs_per_run = static_cast<double>(allocs) / runs;
  if (a.json) {
    nlohmann::ordered_json j;
    j["model"] = a.model;
    j["threads"] = a.threads;
    j["runs"] = runs;
    j["warmup"] = a.warmup;
    j["min_us"] = us.front();
    j["p50_us"] = percentile(us, 0.50);
    j["p90_us"] = percentile(us, 0.90);
    j["p99_us"] = percentile(us, 0.99);
    j["max_us"] = us.back();
    j["arena_bytes"] = cm->arena_bytes();
    j["allocs_per_run"] = allocs_per_run;
    j["compile_ms"] = compile_ms;
    j["isa"] = cpu_features().summary();
    if (a.profile)
      for (size_t i = 0; i < step_us.size(); ++i)
        j["profile"].push_back({{"node", cm->steps()[i].node_name}, {"op", cm->steps()[i].op_type},
                                {"impl", cm->steps()[i].impl}, {"mean_us", step_us[i]}});
    std::printf("%s\n", j.dump().c_str());
  } else {
    std::printf("model        %s\n", a.model.c_str());
    std::printf("runs         %d after %d warm-up, %d thread%s\n", runs, a.warmup, a.threads, a.threads == 1 ? "" : "s");
    std::printf("latency us   min %.1f  p50 %.1f  p90 %.1f  p99 %.1f  max %.1f\n", us.front(), percentile(us, 0.5),
                percentile(us, 0.9), percentile(us, 0.99), us.back());
    std::printf("arena        %zu bytes\n", cm->arena_bytes());
    std::printf("allocations  %.2f per run\n", allocs_per_run);
    std::printf("compile      %.1f ms\n", compile_ms);
    if (a.profile) {
      double total = 0;
      for (double t : step_us) total += t;
      std::printf("\nprofile (mean CPU time of the calling thread per run, %d runs)\n", a.runs);
      for (size_t i = 0; i < step_us.size(); ++i)
        std::printf("  %8.1f us %5.1f%%  %-18s %-22s %s\n", step_us[i], total > 0 ? 100 * step_us[i] / total : 0.0,
                    cm->steps()[i].op_type.c_str(), cm->steps()[i].impl.c_str(), cm->steps()[i].node_name.c_str());
    }
  }
  return kExitOk;
}

}  // namespace

void register_bench(CLI::App& app, int& exit_code) {
  auto args = std::make_shared<BenchArgs>();
  CLI::App* c = app.add_subcommand("bench", "Latency of a model on random (or given) inputs");
  c->add_option("MODEL", args->model, "ONNX model file")->required();
  c->add_option("--input", args->inputs, "NAME=FILE.npy to use instead of random data");
  c->add_option("--shape", args->shapes, "Bind an input shape, NAME=1x3x224x224 (dynamic dims default to 1)");
  c->add_option("--threads", args->threads, "Threads for inference")->check(CLI::Range(1, 256));
  c->add_option("--warmup", args->warmup, "Runs before timing")->check(CLI::Range(0, 1000000));
  c->add_option("--runs", args->runs, "Timed runs (at least)")->check(CLI::Range(1, 10000000));
  c->add_option("--min-seconds", args->min_seconds, "Keep timing until this many seconds have passed")
      ->check(CLI::Range(0.0, 3600.0));
  c->add_option("--max-runs", args->max_runs, "Cap on timed runs with --min-seconds")->check(CLI::Range(1, 10000000));
  c->add_flag("--json", args->json, "Print one JSON object");
  c->add_flag("--profile", args->profile, "Also time every step (extra runs after the timed ones)");
  c->add_flag("--no-optimize", args->no_optimize, "Reference kernels only, no graph passes (for comparison)");
  c->callback([args, &exit_code] { exit_code = run_bench(*args); });
}

}  // namespace kiln::cli
