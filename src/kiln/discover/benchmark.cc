#include "kiln/discover/benchmark.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <map>
#include <numeric>
#include <random>
#include <set>

#include "kiln/discover/campaign.h"

namespace kiln::discover {

Status BenchmarkOptions::validate(int pool_size) const {
  if (initial < 1) return Status::invalid("--initial must be >= 1");
  if (budget <= initial) return Status::invalid("--budget (", budget, ") must be larger than --initial (", initial, ")");
  if (budget > pool_size) return Status::invalid("--budget (", budget, ") exceeds the pool size (", pool_size, " unique inputs)");
  if (runs < 1 || runs > 100000) return Status::invalid("--runs must be in [1, 100000]");
  return strategy.validate();
}

Result<BenchmarkDataset> make_benchmark_dataset(const CsvTable& t, const std::vector<std::string>& inputs, const std::string& objective,
                                                bool maximize) {
  if (inputs.empty()) return Status::invalid("--inputs names no columns");
  std::vector<int> icol;
  std::set<std::string> seen;
  for (const std::string& name : inputs) {
    int c = t.column(name);
    if (c < 0) return Status::invalid(t.source, " row 1: no input column '", name, "'");
    if (!seen.insert(name).second) return Status::invalid("input column '", name, "' is named twice");
    icol.push_back(c);
  }
  int ocol = t.column(objective);
  if (ocol < 0) return Status::invalid(t.source, " row 1: no objective column '", objective, "'");
  if (std::find(icol.begin(), icol.end(), ocol) != icol.end()) return Status::invalid("the objective column is also an input");
  if (t.num_rows() == 0) return Status::invalid(t.source, ": no data rows");
  // Column kinds: numeric when every cell parses, categorical otherwise.
  std::vector<Parameter> params;
  for (size_t k = 0; k < icol.size(); ++k) {
    Parameter p;
    p.name = inputs[k];
    bool numeric = true;
    double lo = INFINITY, hi = -INFINITY;
    std::set<std::string> labels;
    for (int r = 0; r < t.num_rows(); ++r) {
      const std::string& cell = t.rows[r][icol[k]];
      if (cell.empty()) return Status::invalid(t.where(r, icol[k]), ": value is missing");
      double v;
      if (numeric && parse_number(cell, &v)) {
        lo = std::min(lo, v);
        hi = std::max(hi, v);
      } else {
        numeric = false;
      }
      labels.insert(cell);
    }
    if (numeric) {
      p.type = ParamType::kContinuous;
      p.low = lo;
      p.high = hi;
    } else {
      p.type = ParamType::kCategorical;
      p.values.assign(labels.begin(), labels.end());
    }
    params.push_back(std::move(p));
  }
  BenchmarkDataset d;
  KILN_ASSIGN_OR_RETURN(d.space, SearchSpace::create(params, {}, {}));
  d.objective = objective;
  d.maximize = maximize;
  d.raw_rows = t.num_rows();
  std::map<std::string, int> index;
  std::vector<double> sum;
  for (int r = 0; r < t.num_rows(); ++r) {
    KILN_ASSIGN_OR_RETURN(double y, t.number(r, ocol));
    Point p(icol.size());
    for (size_t k = 0; k < icol.size(); ++k) {
      Result<double> v = d.space.parse_value(static_cast<int>(k), t.rows[r][icol[k]]);
      if (!v.is_ok()) return Status::invalid(t.where(r, icol[k]), ": ", v.status().message());
      p[k] = *v;
    }
    std::string key = point_key(d.space, p);
    auto it = index.find(key);
    if (it == index.end()) {
      index.emplace(key, static_cast<int>(d.pool.points.size()));
      d.pool.points.push_back(p);
      d.pool.csv_rows.push_back(t.line[r]);
      sum.push_back(y);
      d.replicates.push_back(1);
    } else {
      sum[it->second] += y;
      d.replicates[it->second] += 1;
    }
  }
  d.y.resize(sum.size());
  for (size_t i = 0; i < sum.size(); ++i) d.y[i] = (maximize ? 1 : -1) * sum[i] / d.replicates[i];
  d.pool.features = d.space.encode_all(d.pool.points);
  return d;
}

StrategyResult score_orders(const Eigen::VectorXd& y, std::vector<std::vector<int>> orders, int budget) {
  StrategyResult s;
  const int N = static_cast<int>(y.size());
  std::vector<double> sorted(y.data(), y.data() + N);
  std::sort(sorted.rbegin(), sorted.rend());
  const int n5 = static_cast<int>(std::ceil(0.05 * N)), n1 = static_cast<int>(std::ceil(0.01 * N));
  const double t5 = sorted[n5 - 1], t1 = sorted[n1 - 1], best = sorted[0];
  int top5_count = 0;
  for (int i = 0; i < N; ++i) top5_count += y[i] >= t5;
  const int R = static_cast<int>(orders.size());
  s.top_pct.assign(budget, 0.0);
  double found1 = 0, foundb = 0, evals1 = 0;
  for (const auto& ord : orders) {
    int got = 0, first1 = -1;
    bool gotbest = false;
    for (int i = 0; i < budget && i < static_cast<int>(ord.size()); ++i) {
      double v = y[ord[i]];
      got += v >= t5;
      if (first1 < 0 && v >= t1) first1 = i + 1;
      gotbest |= v >= best;
      s.top_pct[i] += static_cast<double>(got) / top5_count / R;
    }
    found1 += first1 > 0;
    s.run_evals_to_top1.push_back(first1 > 0 ? first1 : 0);
    foundb += gotbest;
    evals1 += first1 > 0 ? first1 : budget + 1;
  }
  s.frac_found_top1 = found1 / R;
  s.frac_found_best = foundb / R;
  s.evals_to_top1 = evals1 / R;
  s.top_pct_at_budget = s.top_pct[budget - 1];
  s.ef.resize(budget);
  for (int i = 0; i < budget; ++i) s.ef[i] = s.top_pct[i] / (static_cast<double>(i + 1) / N);
  s.af = NAN;
  for (int i = 0; i < budget; ++i)
    if (s.top_pct[i] >= 0.8 - 1e-12) {
      s.af = 0.8 * N / (i + 1);
      break;
    }
  s.order = std::move(orders);
  return s;
}

Result<BenchmarkResult> run_benchmark(const BenchmarkDataset& data, const BenchmarkOptions& o) {
  const int N = static_cast<int>(data.pool.points.size());
  KILN_RETURN_IF_ERROR(o.validate(N));
  BenchmarkResult res;
  res.pool_size = N;
  res.top5_size = static_cast<int>(std::ceil(0.05 * N));
  res.top1_size = static_cast<int>(std::ceil(0.01 * N));
  for (int r = 0; r < o.runs; ++r) {
    std::vector<int> rows(N);
    std::iota(rows.begin(), rows.end(), 0);
    std::mt19937_64 rng(o.seed * 1000003ull + r);
    std::shuffle(rows.begin(), rows.end(), rng);
    rows.resize(o.initial);
    res.initial.push_back(rows);
  }
  CampaignConfig cfg;
  cfg.parameters = data.space.params();
  cfg.objectives = {{data.objective, true}};  // y is already oriented
  cfg.strategy = o.strategy;
  cfg.strategy.initial = std::min(o.strategy.initial, o.initial);
  const int total = 2 * o.runs;
  std::vector<std::vector<int>> kiln_orders, random_orders;
  std::vector<double> ms;
  for (int r = 0; r < o.runs; ++r) {
    cfg.seed = o.seed * 1000003ull + r;
    KILN_ASSIGN_OR_RETURN(Campaign c, Campaign::create_with_pool(cfg, data.pool));
    std::vector<int> order = res.initial[r];
    std::vector<Observation> init;
    for (int row : order) init.push_back({data.pool.points[row], {data.y[row]}, 0, 0});
    c.add_measurements(init);
    double spent = 0;
    int proposals = 0;
    while (static_cast<int>(order.size()) < o.budget) {
      auto t0 = std::chrono::steady_clock::now();
      KILN_ASSIGN_OR_RETURN(std::vector<Point> next, c.recommend(1));
      spent += std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
      ++proposals;
      int row = c.pool_row_of(next[0]);
      if (row < 0) return Status::internal("benchmark: a proposal is not a pool row");
      order.push_back(row);
      c.add_measurements({{data.pool.points[row], {data.y[row]}, 0, 0}});
    }
    kiln_orders.push_back(order);
    ms.push_back(proposals ? spent / proposals : 0);
    if (o.progress) o.progress(r + 1, total);
  }
  std::vector<double> rms;
  for (int r = 0; r < o.runs; ++r) {
    auto t0 = std::chrono::steady_clock::now();
    std::vector<int> order = res.initial[r];
    std::vector<char> used(N, 0);
    for (int row : order) used[row] = 1;
    std::vector<int> rest;
    for (int i = 0; i < N; ++i)
      if (!used[i]) rest.push_back(i);
    std::mt19937_64 rng(o.seed * 1000003ull + r + 0x5eed);
    std::shuffle(rest.begin(), rest.end(), rng);
    for (int i = 0; static_cast<int>(order.size()) < o.budget; ++i) order.push_back(rest[i]);
    random_orders.push_back(order);
    rms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count() / (o.budget - o.initial));
    if (o.progress) o.progress(o.runs + r + 1, total);
  }
  StrategyResult k = score_orders(data.y, kiln_orders, o.budget);
  k.name = o.name;
  k.proposal_ms = ms;
  k.mean_proposal_ms = std::accumulate(ms.begin(), ms.end(), 0.0) / ms.size();
  StrategyResult rnd = score_orders(data.y, random_orders, o.budget);
  rnd.name = "random";
  rnd.proposal_ms = rms;
  rnd.mean_proposal_ms = std::accumulate(rms.begin(), rms.end(), 0.0) / rms.size();
  res.strategies = {std::move(k), std::move(rnd)};
  return res;
}

}  // namespace kiln::discover
