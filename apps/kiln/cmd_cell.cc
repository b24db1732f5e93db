// kiln cell check FILE [--models DIR]...
// kiln cell run FILE [--duration S] [--stats OUT.json] [--sim-clock] [--no-rt]
//                    [--inject DEVICE.FAULT@SECONDS[:RATE]]... [--models DIR]... [--quiet]
//                    [--trace OUT.csv --trace-loop LOOP --trace-tags TAG,...]   (with --sim-clock)
//
// `check` builds the cell without starting it (every tag, block, device, interlock and model) and
// prints every problem as file:line:column: message (exit 2), or a one-line summary (exit 0).
// `run` runs it (real time, or the simulated clock), shows a live status line on stderr, and ends
// with the loop statistics and the event log on stdout; --stats writes them as JSON. --trace
// records chosen tags (scalars, and arrays as NAME[i] columns) after every cycle of one loop as CSV:
// how examples/cells/train_anomaly.py gets the features a model is trained on from the cell itself.
#include <CLI/CLI.hpp>

#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstring>
#include <cstdio>
#include <string>
#include <vector>

#include "cli_common.h"
#include "kiln/control/cell.h"
#include "kiln/control/runtime.h"
#include "kiln/core/file_util.h"
#include "kiln/io/drivers.h"
#include "verbs.h"

namespace kiln::cli {
namespace {

namespace ctl = kiln::control;

struct CellArgs {
  std::string file;
  std::vector<std::string> models;
  double duration = 0;
  std::string stats;
  bool sim_clock = false, no_rt = false, quiet = false;
  std::vector<std::string> inject;
  std::string trace, trace_loop;
  std::vector<std::string> trace_tags;
};

// Writes one CSV row per cycle of one loop (simulated clock: runs on the calling thread).
class Trace {
 public:
  ~Trace() {
    if (f_ != nullptr) std::fclose(f_);
  }
  Status open(ctl::Cell& c, const CellArgs& a) {
    loop_ = c.find_loop(a.trace_loop);
    if (a.trace_loop.empty()) return Status::invalid("--trace needs --trace-loop (the loop after whose cycles to record)");
    if (loop_ < 0) return Status::invalid("--trace-loop: the cell has no loop '", a.trace_loop, "'");
    if (a.trace_tags.empty()) return Status::invalid("--trace needs --trace-tags");
    std::string header = "t_s";
    for (const auto& name : a.trace_tags) {
      int id = c.image().find(name);
      if (id < 0) return Status::invalid("--trace-tags: the cell has no tag '", name, "'");
      const ctl::TagSpec& s = c.image().spec(id);
      if (s.type == ctl::TagType::kWindow) return Status::invalid("--trace-tags: '", name, "' is a window; trace scalars and arrays");
      tags_.push_back(id);
      if (s.type == ctl::TagType::kArray)
        for (int i = 0; i < s.length; ++i) header += "," + name + "[" + std::to_string(i) + "]";
      else
        header += "," + name;
    }
    f_ = std::fopen(a.trace.c_str(), "w");
    if (f_ == nullptr) return Status::io("cannot write ", a.trace, ": ", std::strerror(errno));
    std::fprintf(f_, "%s\n", header.c_str());
    return Status::ok();
  }
  void record(ctl::Cell& c, const ctl::Loop& l, int64_t t_ns) {
    if (&l != &c.loop(loop_)) return;
    std::fprintf(f_, "%.6f", static_cast<double>(t_ns) * 1e-9);
    for (int id : tags_) {
      const ctl::TagSpec& s = c.image().spec(id);
      if (s.type == ctl::TagType::kArray) {
        buf_.resize(static_cast<size_t>(s.length));
        c.image().read_array(id, buf_);
        for (float v : buf_) std::fprintf(f_, ",%.9g", static_cast<double>(v));
      } else {
        std::fprintf(f_, ",%.9g", c.image().get(id));
      }
    }
    std::fputc('\n', f_);
  }
  Status close() {
    int rc = std::fclose(f_);
    f_ = nullptr;
    return rc == 0 ? Status::ok() : Status::io("writing the trace failed");
  }

 private:
  std::FILE* f_ = nullptr;
  int loop_ = -1;
  std::vector<int> tags_;
  std::vector<float> buf_;
};

Result<std::unique_ptr<ctl::Cell>> load(const CellArgs& a) {
  ctl::CellOptions o;
  o.model_dirs = a.models;
  return ctl::Cell::load_file(a.file, io::builtin_drivers(), o);
}

int report_load_error(const std::string& verb, const Status& s) {
  // Located problems, one per line, compiler style; then a count.
  const std::string& m = s.message();
  int n = 0;
  size_t i = 0;
  while (i < m.size()) {
    size_t j = m.find('\n', i);
    if (j == std::string::npos) j = m.size();
    std::fprintf(stderr, "%s\n", m.substr(i, j - i).c_str());
    ++n;
    i = j + 1;
  }
  std::fprintf(stderr, "kiln cell %s: %d problem%s\n", verb.c_str(), n, n == 1 ? "" : "s");
  return kExitBadInput;
}

std::string summary(ctl::Cell& c) {
  std::string s = c.name() + ": " + std::to_string(c.image().size()) + " tags, " + std::to_string(c.num_loops()) + " loops (";
  for (int i = 0; i < c.num_loops(); ++i) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%s%s %g Hz", i ? ", " : "", c.loop(i).name.c_str(), 1e9 / static_cast<double>(c.loop(i).period_ns));
    s += buf;
  }
  int ils = 0, blocks = 0;
  for (int i = 0; i < c.num_loops(); ++i) {
    ils += static_cast<int>(c.loop(i).interlocks.size());
    blocks += static_cast<int>(c.loop(i).blocks.size());
  }
  s += "), " + std::to_string(blocks) + " blocks, " + std::to_string(c.num_devices()) + " devices, " + std::to_string(ils) +
       " interlocks, " + std::to_string(c.models().size()) + " models";
  return s;
}

int run_check(const CellArgs& a) {
  auto cell = load(a);
  if (!cell.is_ok()) return report_load_error("check", cell.status());
  std::printf("%s: ok — %s\n", a.file.c_str(), summary(**cell).c_str());
  return kExitOk;
}

Result<ctl::Injection> parse_injection(const std::string& s) {
  // DEVICE.FAULT@SECONDS[:RATE]
  size_t dot = s.find('.'), at = s.find('@');
  if (dot == std::string::npos || at == std::string::npos || at < dot)
    return Status::invalid("--inject '", s, "' must look like DEVICE.FAULT@SECONDS[:RATE] (e.g. spindle.bearing@15)");
  ctl::Injection in;
  in.device = s.substr(0, dot);
  in.fault = s.substr(dot + 1, at - dot - 1);
  std::string rest = s.substr(at + 1);
  size_t colon = rest.find(':');
  if (!ctl::parse_double(rest.substr(0, colon), &in.at_s) || in.at_s < 0)
    return Status::invalid("--inject '", s, "': '", rest.substr(0, colon), "' is not a time in seconds");
  if (colon != std::string::npos && (!ctl::parse_double(rest.substr(colon + 1), &in.rate) || in.rate < 0))
    return Status::invalid("--inject '", s, "': '", rest.substr(colon + 1), "' is not a rate");
  return in;
}

void print_report(ctl::Cell& c, const ctl::RunReport& r) {
  std::printf("\n== %s: %.1f s%s, stopped: %s%s\n", c.name().c_str(), r.duration_s, r.sim_clock ? " (simulated clock)" : "",
              r.stop_reason.c_str(), c.in_safe_state() ? ", outputs at safe values" : "");
  if (!r.sim_clock)
    std::printf("real time: %s, memory %s\n", r.sched_fifo ? "SCHED_FIFO" : "normal scheduling",
                r.memory_locked ? "locked" : "not locked");
  std::printf("\n%-12s %9s %9s %22s %22s %9s %7s\n", "loop", "period_us", "cycles", "wake jitter p50/p99/max", "exec p50/p99/max us",
              "overruns", "missed");
  for (int i = 0; i < c.num_loops(); ++i) {
    ctl::Loop& l = c.loop(i);
    char jit[64], ex[64];
    std::snprintf(jit, sizeof jit, "%.0f/%.0f/%.0f", l.jitter.percentile_us(0.5), l.jitter.percentile_us(0.99), l.jitter.max_us());
    std::snprintf(ex, sizeof ex, "%.1f/%.1f/%.1f", l.exec.percentile_us(0.5), l.exec.percentile_us(0.99), l.exec.max_us());
    std::printf("%-12s %9lld %9llu %22s %22s %9llu %7llu\n", l.name.c_str(), static_cast<long long>(l.period_ns / 1000),
                static_cast<unsigned long long>(l.cycles), jit, ex, static_cast<unsigned long long>(l.overruns),
                static_cast<unsigned long long>(l.missed));
  }
  auto models = c.models();
  if (!models.empty()) {
    std::printf("\n%-28s %-12s %9s %24s\n", "model", "loop", "runs", "inference p50/p99/max us");
    for (ctl::ModelStats* m : models) {
      char t[64];
      std::snprintf(t, sizeof t, "%.1f/%.1f/%.1f", m->infer.percentile_us(0.5), m->infer.percentile_us(0.99), m->infer.max_us());
      std::printf("%-28s %-12s %9llu %24s\n", m->name.c_str(), m->loop.c_str(), static_cast<unsigned long long>(m->runs), t);
    }
  }
  std::printf("\nevents:\n");
  for (const ctl::LoggedEvent& e : c.events().history())
    std::printf("%10.1f ms  %-16s %s\n", e.t_ms, ctl::event_kind_name(e.kind), e.detail.c_str());
  if (c.events().dropped() > 0) std::printf("(%llu events dropped: the log was full)\n", static_cast<unsigned long long>(c.events().dropped()));
}

int run_run(const CellArgs& a) {
  auto cell = load(a);
  if (!cell.is_ok()) return report_load_error("run", cell.status());
  ctl::Cell& c = **cell;
  ctl::RunOptions o;
  o.duration_s = a.duration;
  o.sim_clock = a.sim_clock;
  o.realtime = !a.no_rt;
  for (const auto& s : a.inject) {
    auto in = parse_injection(s);
    if (!in.is_ok()) return fail("cell run", in.status());
    o.injections.push_back(*in);
  }
  Trace trace;
  if (!a.trace.empty()) {
    if (!a.sim_clock) return fail("cell run", Status::invalid("--trace needs --sim-clock"));
    Status ts = trace.open(c, a);
    if (!ts.is_ok()) return fail("cell run", ts);
    o.on_cycle = [&](const ctl::Loop& l, int64_t t_ns) { trace.record(c, l, t_ns); };
  }
  o.on_warning = [](const std::string& w) { std::fprintf(stderr, "kiln cell run: warning: %s\n", w.c_str()); };
  const bool tty = isatty(STDERR_FILENO) != 0;
  double last_line = -1e9;
  if (!a.quiet) {
    o.on_status = [&](double t) {
      // On a terminal one line rewritten in place; in a log one line every 5 seconds.
      if (!tty && t - last_line < 5.0 - 1e-9) return;
      last_line = t;
      std::string s;
      char buf[160];
      std::snprintf(buf, sizeof buf, "t=%6.1fs", t);
      s += buf;
      for (int i = 0; i < c.num_loops(); ++i) {
        ctl::Loop& l = c.loop(i);
        std::snprintf(buf, sizeof buf, " | %s %llu cyc %llu ovr", l.name.c_str(), static_cast<unsigned long long>(l.live_cycles.load()),
                      static_cast<unsigned long long>(l.live_overruns.load()));
        s += buf;
      }
      for (int t_id : c.status_tags()) {
        std::snprintf(buf, sizeof buf, " | %s=%.4g", c.image().spec(t_id).name.c_str(), c.image().get(t_id));
        s += buf;
      }
      std::snprintf(buf, sizeof buf, " | %llu events%s", static_cast<unsigned long long>(c.events().posted()),
                    c.in_safe_state() ? " | SAFE STATE" : "");
      s += buf;
      if (tty) std::fprintf(stderr, "\r\033[K%s", s.c_str());
      else std::fprintf(stderr, "%s\n", s.c_str());
      std::fflush(stderr);
    };
  }
  auto rep = ctl::run_cell(c, o);
  if (tty && !a.quiet) std::fprintf(stderr, "\n");
  if (!rep.is_ok()) return fail("cell run", rep.status());
  if (!a.trace.empty()) {
    Status ts = trace.close();
    if (!ts.is_ok()) return fail("cell run", ts);
  }
  print_report(c, *rep);
  if (!a.stats.empty()) {
    Status s = write_file_atomic(a.stats, ctl::stats_json(c, *rep));
    if (!s.is_ok()) return fail("cell run", s);
  }
  return kExitOk;
}

}  // namespace

void register_cell(CLI::App& app, int& exit_code) {
  auto args = std::make_shared<CellArgs>();
  CLI::App* cell = app.add_subcommand("cell", "Real-time control cells: check a cell file, run it");
  cell->require_subcommand(1);
  CLI::App* check = cell->add_subcommand("check", "Build the cell without running it; report every problem as file:line:column");
  check->add_option("file", args->file, "Cell file (YAML)")->required();
  check->add_option("--models", args->models, "Folder to search for models after the cell file's folder (repeatable)");
  check->callback([args, &exit_code] { exit_code = run_check(*args); });

  CLI::App* run = cell->add_subcommand("run", "Run the cell; print loop statistics and the event log");
  run->add_option("file", args->file, "Cell file (YAML)")->required();
  run->add_option("--duration", args->duration, "Seconds to run (default: until SIGINT/SIGTERM)");
  run->add_option("--stats", args->stats, "Write statistics and the event log as JSON to this file");
  run->add_flag("--sim-clock", args->sim_clock, "Run on a simulated clock, faster than real time and deterministic");
  run->add_flag("--no-rt", args->no_rt, "Do not ask for SCHED_FIFO, CPU pinning or mlockall");
  run->add_flag("--quiet", args->quiet, "No live status line");
  run->add_option("--inject", args->inject, "Inject a fault into a simulated device: DEVICE.FAULT@SECONDS[:RATE]");
  run->add_option("--models", args->models, "Folder to search for models after the cell file's folder (repeatable)");
  run->add_option("--trace", args->trace, "With --sim-clock: write the --trace-tags after every cycle of --trace-loop as CSV");
  run->add_option("--trace-loop", args->trace_loop, "Loop whose cycles --trace records");
  run->add_option("--trace-tags", args->trace_tags, "Scalar or array tags --trace records")->delimiter(',');
  run->callback([args, &exit_code] { exit_code = run_run(*args); });
}

}  // namespace kiln::cli
