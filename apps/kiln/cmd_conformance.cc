// kiln conformance DIR... [--report md|json] [--output FILE] [--gate] [--min-node-pass F]
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <unistd.h>

#include <cstdio>
#include <map>

#include "cli_common.h"
#include "kiln/core/file_util.h"
#include "kiln/nn/conformance.h"
#include "verbs.h"

namespace kiln::cli {
namespace {

struct ConfArgs {
  std::vector<std::string> dirs;
  std::string report = "md";
  std::string output;
  bool gate = false;
  bool require_all_pass = false;
  bool no_optimize = false;
  double min_node_pass = 0.8;
  double rtol = 1e-3, atol = 1e-7;
  std::string command_line;
};

struct Tally {
  int pass = 0, fail = 0, unsupported = 0;
  int total() const { return pass + fail + unsupported; }
};

std::string md_escape(std::string s) {
  for (char& c : s)
    if (c == '|' || c == '\n') c = ' ';
  return s;
}

int run_conformance(const ConfArgs& a) {
  std::vector<std::string> cases;
  for (const std::string& d : a.dirs) {
    auto c = nn::list_conformance_cases(d);
    if (!c.is_ok()) return fail("conformance", c.status());
    cases.insert(cases.end(), c->begin(), c->end());
  }
  if (cases.empty()) return fail("conformance", Status::not_found("no test cases (folders with model.onnx) found"));
  nn::ConformanceOptions opts;
  opts.rtol = a.rtol;
  opts.atol = a.atol;
  opts.optimize = !a.no_optimize;
  std::vector<nn::CaseResult> results;
  std::map<std::string, Tally> tally;
  bool tty = isatty(2);
  for (size_t i = 0; i < cases.size(); ++i) {
    nn::CaseResult r = nn::run_conformance_case(cases[i], opts);
    Tally& t = tally[r.category];
    (r.outcome == nn::Outcome::kPass ? t.pass : r.outcome == nn::Outcome::kFail ? t.fail : t.unsupported)++;
    if (tty) std::fprintf(stderr, "\r[%zu/%zu] %-60.60s", i + 1, cases.size(), r.name.c_str());
    else if ((i + 1) % 100 == 0 || i + 1 == cases.size()) std::fprintf(stderr, "[%zu/%zu] cases run\n", i + 1, cases.size());
    if (r.outcome == nn::Outcome::kFail && !tty) std::fprintf(stderr, "FAIL %s/%s: %s\n", r.category.c_str(), r.name.c_str(), r.detail.c_str());
    results.push_back(std::move(r));
  }
  if (tty) std::fprintf(stderr, "\r%80s\r", "");

  Tally all;
  for (const auto& [c, t] : tally) {
    all.pass += t.pass;
    all.fail += t.fail;
    all.unsupported += t.unsupported;
  }
  std::string text;
  if (a.report == "json") {
    nlohmann::ordered_json j;
    j["command"] = a.command_line;
    j["rtol"] = a.rtol;
    j["atol"] = a.atol;
    for (const auto& [c, t] : tally)
      j["categories"][c] = {{"cases", t.total()}, {"pass", t.pass}, {"fail", t.fail}, {"unsupported", t.unsupported}};
    j["total"] = {{"cases", all.total()}, {"pass", all.pass}, {"fail", all.fail}, {"unsupported", all.unsupported}};
    for (const nn::CaseResult& r : results)
      j["cases"].push_back({{"category", r.category}, {"name", r.name}, {"outcome", nn::outcome_name(r.outcome)},
                            {"detail", r.detail}});
    text = j.dump(2) + "\n";
  } else {
    text += "# ONNX backend conformance\n\n";
    char tol[96];
    std::snprintf(tol, sizeof tol, "rtol %g, atol %g", a.rtol, a.atol);
    text += "Produced by `" + a.command_line + "` (tolerances: " + tol + ").\n\n";
    text += "| category | cases | pass | fail | unsupported | pass rate |\n|---|---:|---:|---:|---:|---:|\n";
    auto row = [&](const std::string& name, const Tally& t) {
      char buf[256];
      std::snprintf(buf, sizeof buf, "| %s | %d | %d | %d | %d | %.1f%% |\n", name.c_str(), t.total(), t.pass, t.fail,
                    t.unsupported, t.total() ? 100.0 * t.pass / t.total() : 0.0);
      text += buf;
    };
    for (const auto& [c, t] : tally) row(c, t);
    row("**all**", all);
    for (nn::Outcome kind : {nn::Outcome::kFail, nn::Outcome::kUnsupported}) {
      bool any = false;
      for (const nn::CaseResult& r : results) {
        if (r.outcome != kind) continue;
        if (!any) text += kind == nn::Outcome::kFail ? "\n## Failing cases\n\n" : "\n## Unsupported cases\n\n";
        any = true;
        text += "- `" + r.category + "/" + r.name + "`: " + md_escape(r.detail) + "\n";
      }
    }
  }
  if (a.output.empty()) {
    std::fputs(text.c_str(), stdout);
  } else {
    Status w = write_file_atomic(a.output, text);
    if (!w.is_ok()) return fail("conformance", w);
  }
  std::fprintf(stderr, "conformance: %d cases, %d pass, %d fail, %d unsupported\n", all.total(), all.pass, all.fail,
               all.unsupported);
  if (a.gate) {
    bool ok = all.fail == 0;
    if (!ok) std::fprintf(stderr, "gate: %d case(s) give a wrong answer\n", all.fail);
    auto node = tally.find("node");
    if (node != tally.end() && node->second.total() > 0) {
      double rate = static_cast<double>(node->second.pass) / node->second.total();
      if (rate < a.min_node_pass) {
        std::fprintf(stderr, "gate: node pass rate %.1f%% is below %.1f%%\n", 100 * rate, 100 * a.min_node_pass);
        ok = false;
      }
    }
    if (!ok) return kExitCheckFailed;
  }
  if (a.require_all_pass && all.pass != all.total()) {
    std::fprintf(stderr, "gate: %d case(s) did not pass\n", all.total() - all.pass);
    return kExitCheckFailed;
  }
  return kExitOk;
}

}  // namespace

void register_conformance(CLI::App& app, int& exit_code) {
  auto args = std::make_shared<ConfArgs>();
  CLI::App* c = app.add_subcommand("conformance", "Run ONNX backend test cases and classify pass/fail/unsupported");
  c->add_option("DIR", args->dirs, "Case folders or folders of cases (e.g. /usr/share/libonnx-testdata/data/node)")
      ->required();
  c->add_option("--report", args->report, "md or json")->check(CLI::IsMember({"md", "json"}));
  c->add_option("--output", args->output, "Write the report to this file instead of stdout");
  c->add_flag("--gate", args->gate, "Exit 1 if any case fails or the node pass rate is below --min-node-pass");
  c->add_flag("--require-all-pass", args->require_all_pass, "Exit 1 unless every case passes (for our own models)");
  c->add_option("--min-node-pass", args->min_node_pass, "Minimum pass rate of the 'node' category for --gate")
      ->check(CLI::Range(0.0, 1.0));
  c->add_flag("--no-optimize", args->no_optimize, "Reference kernels only, no graph passes");
  c->add_option("--rtol", args->rtol, "Relative tolerance");
  c->add_option("--atol", args->atol, "Absolute tolerance");
  c->callback([args, &exit_code, c] {
    args->command_line = "kiln conformance";
    for (const std::string& d : args->dirs) args->command_line += " " + d;
    if (args->report != "md") args->command_line += " --report " + args->report;
    if (args->gate) args->command_line += " --gate";
    if (args->no_optimize) args->command_line += " --no-optimize";
    exit_code = run_conformance(*args);
  });
}

}  // namespace kiln::cli
