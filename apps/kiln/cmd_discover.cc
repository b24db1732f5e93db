// kiln discover init|propose|observe|status|benchmark — Bayesian-optimisation campaigns.
//
//   kiln discover init CAMPAIGN.yaml --db DB
//   kiln discover propose --db DB [-n Q] [--json]
//   kiln discover observe --db DB RESULTS.csv
//   kiln discover status --db DB [--svg PLOT.svg] [--json]
//   kiln discover benchmark DATASET.csv --inputs COLS --objective COL --direction max|min
//        [--budget N] [--runs R] [--initial K] [--seed S] [--json] [--svg PLOT.svg]
//
// Every command that changes the database does so in one transaction after all validation,
// so bad input (exit 2) leaves the database exactly as it was.
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>

#include "cli_common.h"
#include "kiln/core/file_util.h"
#include "kiln/discover/benchmark.h"
#include "kiln/discover/campaign_store.h"
#include "kiln/discover/svg.h"
#include "verbs.h"

namespace kiln::cli {
namespace {

namespace kd = kiln::discover;

struct DiscoverArgs {
  std::string yaml, db, results, dataset, svg, inputs, objective, direction = "max", header, surrogate, acquisition;
  int n = 1, budget = 50, runs = 30, initial = 5;
  double ucb_beta = -1;
  uint64_t seed = 0;
  bool json = false, quiet = false, untied_categorical = false;
  std::string warp;  // "on" / "off": override the default strategy's outcome warp
  std::string categorical_kernel;  // "ard" / "mixed": override the default strategy's
  std::string input_warp;          // "on" / "off": override the default strategy's
};

std::vector<std::string> split_list(const std::string& s) {
  std::vector<std::string> out;
  std::string cur;
  for (char c : s) {
    if (c == ',') {
      out.push_back(cur);
      cur.clear();
    } else {
      cur += c;
    }
  }
  out.push_back(cur);
  for (auto& x : out) {
    while (!x.empty() && x.front() == ' ') x.erase(x.begin());
    while (!x.empty() && x.back() == ' ') x.pop_back();
  }
  return out;
}

int run_init(const DiscoverArgs& a) {
  auto text = read_file(a.yaml, 1 << 20);
  if (!text.is_ok()) return fail("discover init", text.status());
  auto cfg = kd::parse_campaign_yaml(*text, a.yaml);
  if (!cfg.is_ok()) return fail("discover init", cfg.status());
  std::string pool_csv;
  if (!cfg->candidates.empty()) {
    std::filesystem::path p(cfg->candidates);
    if (p.is_relative()) p = std::filesystem::path(a.yaml).parent_path() / p;
    auto pt = read_file(p.string(), size_t{1} << 30);
    if (!pt.is_ok()) return fail("discover init", pt.status().with_context("candidates"));
    pool_csv = *pt;
    auto table = kd::parse_csv(pool_csv, p.string());
    if (!table.is_ok()) return fail("discover init", table.status());
    auto c = kd::Campaign::create(*cfg, &*table);
    if (!c.is_ok()) return fail("discover init", c.status());
  } else {
    auto c = kd::Campaign::create(*cfg, nullptr);
    if (!c.is_ok()) return fail("discover init", c.status());
  }
  auto store = kd::CampaignStore::create(a.db, *text, pool_csv);
  if (!store.is_ok()) return fail("discover init", store.status());
  std::printf("created campaign %s: %zu parameters, %zu objectives%s\n", a.db.c_str(), cfg->parameters.size(), cfg->objectives.size(),
              pool_csv.empty() ? "" : ", candidate pool stored");
  return kExitOk;
}

int run_propose(const DiscoverArgs& a) {
  if (a.n < 1 || a.n > 1000) return fail("discover propose", Status::invalid("-n must be in [1, 1000], got ", a.n));
  auto store = kd::CampaignStore::open(a.db);
  if (!store.is_ok()) return fail("discover propose", store.status());
  auto c = kd::load_campaign(*store);
  if (!c.is_ok()) return fail("discover propose", c.status());
  auto pts = c->recommend(a.n);
  if (!pts.is_ok()) return fail("discover propose", pts.status());
  std::vector<std::string> js;
  for (const kd::Point& p : *pts) js.push_back(c->point_to_json(p));
  std::string gp = c->gp_hyper() ? kd::gp_hyper_to_json(*c->gp_hyper()) : std::string();
  auto ids = store->add_proposals(js, gp);
  if (!ids.is_ok()) return fail("discover propose", ids.status());
  if (a.json) {
    nlohmann::ordered_json out = nlohmann::ordered_json::array();
    for (size_t i = 0; i < js.size(); ++i) {
      nlohmann::ordered_json e;
      e["id"] = (*ids)[i];
      e["params"] = nlohmann::ordered_json::parse(js[i]);
      out.push_back(e);
    }
    std::printf("%s\n", out.dump(2).c_str());
  } else {
    const kd::SearchSpace& s = c->space();
    std::printf("id");
    for (int i = 0; i < s.num_params(); ++i) std::printf(",%s", kd::csv_escape(s.param(i).name).c_str());
    std::printf("\n");
    for (size_t k = 0; k < pts->size(); ++k) {
      std::printf("%lld", static_cast<long long>((*ids)[k]));
      for (int i = 0; i < s.num_params(); ++i) std::printf(",%s", kd::csv_escape(s.format_value(i, (*pts)[k][i])).c_str());
      std::printf("\n");
    }
  }
  return kExitOk;
}

int run_observe(const DiscoverArgs& a) {
  auto store = kd::CampaignStore::open(a.db);
  if (!store.is_ok()) return fail("discover observe", store.status());
  auto bytes = read_file(a.results, size_t{1} << 30);
  if (!bytes.is_ok()) return fail("discover observe", bytes.status());
  std::string hash = kd::content_hash(*bytes);
  auto seen = store->has_result_file(hash);
  if (!seen.is_ok()) return fail("discover observe", seen.status());
  if (*seen) {
    std::printf("%s was already recorded; nothing changed\n", a.results.c_str());
    return kExitOk;
  }
  auto c = kd::load_campaign(*store);
  if (!c.is_ok()) return fail("discover observe", c.status());
  auto table = kd::parse_csv(*bytes, a.results);
  if (!table.is_ok()) return fail("discover observe", table.status());
  auto obs = c->parse_measurements(*table);
  if (!obs.is_ok()) return fail("discover observe", obs.status());
  std::vector<kd::StoredObservation> rows;
  for (const kd::Observation& o : *obs) {
    kd::StoredObservation so;
    so.proposal_id = o.proposal_id;
    so.params_json = c->point_to_json(o.params);
    so.objectives_json = nlohmann::json(o.objectives).dump();
    rows.push_back(std::move(so));
  }
  Status s = store->add_observations(rows, hash, std::filesystem::path(a.results).filename().string());
  if (!s.is_ok()) return fail("discover observe", s);
  std::printf("recorded %zu observations (%zu total)\n", rows.size(), c->observations().size() + rows.size());
  return kExitOk;
}

int run_status(const DiscoverArgs& a) {
  auto store = kd::CampaignStore::open(a.db);
  if (!store.is_ok()) return fail("discover status", store.status());
  auto c = kd::load_campaign(*store);
  if (!c.is_ok()) return fail("discover status", c.status());
  kd::CampaignSummary sum = c->summary();
  const auto& objs = c->config().objectives;
  nlohmann::ordered_json j;
  j["observations"] = sum.observations;
  j["pending"] = sum.pending;
  nlohmann::ordered_json best = nlohmann::ordered_json::array();
  for (int i : sum.best) {
    nlohmann::ordered_json e;
    e["params"] = nlohmann::ordered_json::parse(c->point_to_json(c->observations()[i].params));
    for (size_t k = 0; k < objs.size(); ++k) e["objectives"][objs[k].name] = c->observations()[i].objectives[k];
    best.push_back(e);
  }
  j[objs.size() == 1 ? "best" : "pareto_front"] = best;
  nlohmann::ordered_json pend = nlohmann::ordered_json::array();
  for (const kd::Proposal& p : c->pending()) pend.push_back({{"id", p.id}, {"params", nlohmann::ordered_json::parse(c->point_to_json(p.params))}});
  j["pending_proposals"] = pend;
  if (a.json) {
    std::printf("%s\n", j.dump(2).c_str());
  } else {
    std::printf("campaign %s: %d observations, %d pending\n", a.db.c_str(), sum.observations, sum.pending);
    std::printf(objs.size() == 1 ? "best so far:\n" : "Pareto front (%zu points):\n", best.size());
    for (const auto& e : best) std::printf("  %s -> %s\n", e["params"].dump().c_str(), e["objectives"].dump().c_str());
    for (const auto& p : pend) std::printf("  pending %s: %s\n", p["id"].dump().c_str(), p["params"].dump().c_str());
  }
  if (!a.svg.empty()) {
    kd::LineChart chart;
    chart.title = "Best so far";
    chart.x_label = "observations";
    chart.y_label = objs.size() == 1 ? objs[0].name : "objective";
    for (size_t k = 0; k < objs.size() && k < sum.best_so_far.size(); ++k) {
      kd::Series s{objs[k].name, {}, sum.best_so_far[k]};
      for (size_t i = 0; i < s.y.size(); ++i) s.x.push_back(static_cast<double>(i + 1));
      chart.series.push_back(std::move(s));
    }
    Status w = write_file_atomic(a.svg, kd::render_svg(chart));
    if (!w.is_ok()) return fail("discover status", w);
  }
  return kExitOk;
}

void progress_bar(int done, int total) {
  const int width = 30;
  int filled = total ? done * width / total : width;
  std::fprintf(stderr, "\r[%.*s%*s] %d/%d runs", filled, "##############################", width - filled, "", done, total);
  if (done == total) std::fprintf(stderr, "\n");
  std::fflush(stderr);
}

double json_num(double v) { return std::isfinite(v) ? v : NAN; }

int run_benchmark(const DiscoverArgs& a) {
  const char* verb = "discover benchmark";
  std::string text;
  {
    auto t = read_file(a.dataset, size_t{1} << 30);
    if (!t.is_ok()) return fail(verb, t.status());
    text = std::move(t).value();
  }
  if (!a.header.empty()) {
    // Headerless files (Olympus data.csv): the column names come from --header.
    std::string h;
    for (const std::string& c : split_list(a.header)) h += (h.empty() ? "" : ",") + kd::csv_escape(c);
    text = h + "\n" + text;
  }
  auto table = kd::parse_csv(text, a.dataset);
  if (!table.is_ok()) return fail(verb, table.status());
  if (a.direction != "max" && a.direction != "min" && a.direction != "maximize" && a.direction != "minimize")
    return fail(verb, Status::invalid("--direction must be max or min, got '", a.direction, "'"));
  bool maximize = a.direction == "max" || a.direction == "maximize";
  auto data = kd::make_benchmark_dataset(*table, split_list(a.inputs), a.objective, maximize);
  if (!data.is_ok()) return fail(verb, data.status());
  kd::BenchmarkOptions o;
  o.budget = a.budget;
  o.runs = a.runs;
  o.initial = a.initial;
  o.seed = a.seed;
  if (!a.surrogate.empty()) {
    if (a.surrogate == "gp") o.strategy.surrogate = kd::SurrogateKind::kGp;
    else if (a.surrogate == "forest") o.strategy.surrogate = kd::SurrogateKind::kForest;
    else return fail(verb, Status::invalid("--surrogate must be gp or forest"));
    o.name = "kiln-" + a.surrogate;
  }
  if (!a.acquisition.empty()) {
    auto k = kd::parse_acquisition(a.acquisition);
    if (!k.is_ok()) return fail(verb, k.status());
    o.strategy.acquisition = *k;
    o.name += "-" + a.acquisition;
  }
  if (a.ucb_beta >= 0) {
    o.strategy.ucb_beta = a.ucb_beta;
    o.name += "-beta" + std::to_string(a.ucb_beta).substr(0, 4);
  }
  if (a.untied_categorical) {
    o.strategy.tie_categorical = false;
    o.name += "-untied";
  }
  // A two-way switch: sets `field` from `value` (when given) and marks a change from the default in
  // the strategy's name.
  auto two_way = [&](const std::string& value, const char* flag, const char* yes, const char* no, bool* field,
                     const char* yes_suffix, const char* no_suffix) -> Status {
    if (value.empty()) return Status::ok();
    if (value != yes && value != no) return Status::invalid(flag, " must be ", yes, " or ", no, ", got '", value, "'");
    const bool on = value == yes;
    if (on != *field) o.name += on ? yes_suffix : no_suffix;
    *field = on;
    return Status::ok();
  };
  for (Status st : {two_way(a.warp, "--warp", "on", "off", &o.strategy.warp, "-warp", "-nowarp"),
                    two_way(a.categorical_kernel, "--categorical-kernel", "mixed", "ard", &o.strategy.mixed_categorical,
                            "-mixedcat", "-ardcat"),
                    two_way(a.input_warp, "--input-warp", "on", "off", &o.strategy.input_warp, "-inwarp", "-noinwarp")})
    if (!st.is_ok()) return fail(verb, st);
  if (!a.quiet) o.progress = progress_bar;
  auto res = kd::run_benchmark(*data, o);
  if (!res.is_ok()) return fail(verb, res.status());
  nlohmann::ordered_json j;
  j["dataset"] = a.dataset;
  j["objective"] = a.objective;
  j["direction"] = maximize ? "max" : "min";
  j["rows"] = data->raw_rows;
  j["pool_size"] = res->pool_size;
  j["top5_size"] = res->top5_size;
  j["top1_size"] = res->top1_size;
  j["budget"] = o.budget;
  j["runs"] = o.runs;
  j["initial_points"] = o.initial;
  j["seed"] = o.seed;
  nlohmann::ordered_json init = nlohmann::ordered_json::array();
  for (const auto& run : res->initial) {
    nlohmann::ordered_json r = nlohmann::ordered_json::array();
    for (int row : run) {
      nlohmann::ordered_json vals = nlohmann::ordered_json::array();
      for (int i = 0; i < data->space.num_params(); ++i) vals.push_back(data->space.format_value(i, data->pool.points[row][i]));
      r.push_back(vals);
    }
    init.push_back(r);
  }
  j["initial"] = init;
  for (const kd::StrategyResult& s : res->strategies) {
    nlohmann::ordered_json e;
    e["name"] = s.name;
    e["evals_to_top1_mean"] = s.evals_to_top1;
    e["frac_found_top1"] = s.frac_found_top1;
    e["frac_found_best"] = s.frac_found_best;
    e["top_pct_at_budget"] = s.top_pct_at_budget;
    e["ef_at_budget"] = s.ef.back();
    if (std::isfinite(s.af)) e["af_at_0_8"] = s.af;
    else e["af_at_0_8"] = nullptr;
    e["mean_proposal_ms"] = s.mean_proposal_ms;
    e["top_pct"] = s.top_pct;
    e["ef"] = s.ef;
    // Per run: the objective of each evaluation in order (starting points first), and when the
    // first top-1 % entry came (null: not within the budget).
    nlohmann::ordered_json runs = nlohmann::ordered_json::array();
    for (size_t r = 0; r < s.order.size(); ++r) {
      nlohmann::ordered_json run;
      const int first = r < s.run_evals_to_top1.size() ? s.run_evals_to_top1[r] : 0;
      if (first > 0) run["evals_to_top1"] = first;
      else run["evals_to_top1"] = nullptr;
      nlohmann::ordered_json ys = nlohmann::ordered_json::array();
      for (size_t i = 0; i < s.order[r].size() && i < static_cast<size_t>(o.budget); ++i)
        ys.push_back((data->maximize ? 1 : -1) * data->y[s.order[r][i]]);
      run["objective"] = ys;
      runs.push_back(run);
    }
    e["runs"] = runs;
    j["strategies"].push_back(e);
  }
  if (a.json) {
    std::printf("%s\n", j.dump(1).c_str());
  } else {
    std::printf("%s: %d rows, pool %d unique inputs, top-5%% set %d, top-1%% set %d; budget %d, %d runs, %d initial\n",
                a.dataset.c_str(), data->raw_rows, res->pool_size, res->top5_size, res->top1_size, o.budget, o.runs, o.initial);
    std::printf("%-16s %12s %10s %10s %10s %8s %8s %12s\n", "strategy", "evals->top1", "P(top1)", "P(best)", "Top%@B", "EF@B", "AF@0.8", "ms/proposal");
    for (const kd::StrategyResult& s : res->strategies) {
      char af[32];
      if (std::isfinite(s.af)) std::snprintf(af, sizeof af, "%.1f", s.af);
      else std::snprintf(af, sizeof af, "-");
      std::printf("%-16s %12.1f %10.2f %10.2f %10.2f %8.2f %8s %12.2f\n", s.name.c_str(), s.evals_to_top1, s.frac_found_top1,
                  s.frac_found_best, s.top_pct_at_budget, s.ef.back(), af, s.mean_proposal_ms);
    }
  }
  if (!a.svg.empty()) {
    kd::LineChart chart;
    chart.title = "Top% (fraction of the pool's top 5% found)";
    chart.x_label = "evaluations";
    chart.y_label = "Top%";
    for (const kd::StrategyResult& s : res->strategies) {
      kd::Series ser{s.name, {}, s.top_pct};
      for (size_t i = 0; i < s.top_pct.size(); ++i) ser.x.push_back(static_cast<double>(i + 1));
      chart.series.push_back(std::move(ser));
    }
    Status w = write_file_atomic(a.svg, kd::render_svg(chart));
    if (!w.is_ok()) return fail(verb, w);
  }
  (void)json_num;
  return kExitOk;
}

}  // namespace

void register_discover(CLI::App& app, int& exit_code) {
  auto args = std::make_shared<DiscoverArgs>();
  CLI::App* d = app.add_subcommand("discover", "Bayesian-optimisation campaigns: choose the next experiment");
  d->require_subcommand(1);

  CLI::App* init = d->add_subcommand("init", "create a campaign database from a campaign YAML file");
  init->add_option("campaign", args->yaml, "campaign YAML")->required();
  init->add_option("--db", args->db, "campaign database (SQLite) to create")->required();
  init->callback([args, &exit_code] { exit_code = run_init(*args); });

  CLI::App* prop = d->add_subcommand("propose", "propose the next experiments and record them as pending");
  prop->add_option("--db", args->db, "campaign database")->required();
  prop->add_option("-n", args->n, "batch size");
  prop->add_flag("--json", args->json, "JSON list of {id, params}");
  prop->callback([args, &exit_code] { exit_code = run_propose(*args); });

  CLI::App* obs = d->add_subcommand("observe", "record measured results (CSV: parameters, objectives, optional id)");
  obs->add_option("--db", args->db, "campaign database")->required();
  obs->add_option("results", args->results, "results CSV")->required();
  obs->callback([args, &exit_code] { exit_code = run_observe(*args); });

  CLI::App* st = d->add_subcommand("status", "best so far, Pareto front, pending proposals");
  st->add_option("--db", args->db, "campaign database")->required();
  st->add_option("--svg", args->svg, "write a convergence plot");
  st->add_flag("--json", args->json, "JSON output");
  st->callback([args, &exit_code] { exit_code = run_status(*args); });

  CLI::App* b = d->add_subcommand("benchmark", "pool-based benchmark against a finished dataset (Liang et al. metrics)");
  b->add_option("dataset", args->dataset, "dataset CSV")->required();
  b->add_option("--inputs", args->inputs, "comma-separated input columns")->required();
  b->add_option("--objective", args->objective, "objective column")->required();
  b->add_option("--direction", args->direction, "max or min");
  b->add_option("--budget", args->budget, "evaluations per run (initial points included)");
  b->add_option("--runs", args->runs, "independent runs");
  b->add_option("--initial", args->initial, "random starting points per run, shared by every strategy");
  b->add_option("--seed", args->seed, "seed of the starting points and of the strategies");
  b->add_option("--header", args->header, "comma-separated column names for a file without a header row");
  b->add_option("--surrogate", args->surrogate, "gp (default) or forest");
  b->add_option("--acquisition", args->acquisition, "ucb (default), logei, pi, thompson");
  b->add_option("--ucb-beta", args->ucb_beta, "UCB's beta (default 1)");
  b->add_flag("--untied-categorical", args->untied_categorical,
              "one GP lengthscale per label of a categorical input (default: one per categorical input)");
  b->add_option("--warp", args->warp, "on / off: the Yeo-Johnson outcome warp of the GP (default: the strategy's)");
  b->add_option("--categorical-kernel", args->categorical_kernel,
                "ard / mixed: the GP kernel of categorical inputs, joint ARD alone or plus an additive one (default: the strategy's)");
  b->add_option("--input-warp", args->input_warp,
                "on / off: a learnt Kumaraswamy CDF per continuous or integer input of the GP (default: the strategy's)");
  b->add_flag("--json", args->json, "JSON output (metrics per strategy, starting points per run)");
  b->add_flag("--quiet", args->quiet, "no progress bar");
  b->add_option("--svg", args->svg, "write Top% against evaluations for each strategy");
  b->callback([args, &exit_code] { exit_code = run_benchmark(*args); });
}

}  // namespace kiln::cli
