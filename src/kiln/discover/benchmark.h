// kiln/discover/benchmark.h — pool-based benchmark campaigns against a finished dataset.
//
// Liang et al. (npj Comput. Mater. 7, 188, 2021) protocol: replicates (rows with identical
// inputs) are averaged into one pool entry; every run starts from the same `initial` random
// pool rows for every strategy; a strategy then picks one row at a time until `budget` rows are
// evaluated. Metrics, with the "top set" the best ceil(5% N) rows of the pool:
//   Top%(i)  fraction of the top set evaluated after i evaluations (mean over runs)
//   EF(i)    Top%(i) / Top%_random(i), with the exact random expectation i / N
//   AF       evaluations random search needs for Top% = 0.8 (0.8 N) / evaluations the
//            strategy needs (first i with mean Top%(i) >= 0.8); absent when not reached
// plus the mean number of evaluations until a top-1% row (best ceil(1% N)) is first evaluated
// (runs that never find one count as budget + 1), the fraction of runs that find the global
// best, and the wall time per proposal. Kiln's strategy runs the real Campaign code path.
//
//   KILN_ASSIGN_OR_RETURN(auto data, kiln::discover::make_benchmark_dataset(table, {"n", "theta"}, "toughness", true));
//   kiln::discover::BenchmarkOptions o;  o.runs = 30;
//   KILN_ASSIGN_OR_RETURN(auto result, kiln::discover::run_benchmark(data, o));
#pragma once

#include <Eigen/Core>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "kiln/core/status.h"
#include "kiln/discover/config.h"
#include "kiln/discover/csv.h"
#include "kiln/discover/space.h"

namespace kiln::discover {

struct BenchmarkDataset {
  SearchSpace space;   // numeric input columns -> continuous [min, max]; others -> categorical
  Pool pool;           // unique inputs
  Eigen::VectorXd y;   // averaged objective, oriented so larger is better
  std::vector<int> replicates;  // rows averaged into each pool entry
  std::string objective;
  bool maximize = true;
  int raw_rows = 0;
};

// Builds the pool from the table's `inputs` columns and `objective` column. Errors name the
// row and column of any missing or non-numeric objective.
Result<BenchmarkDataset> make_benchmark_dataset(const CsvTable& table, const std::vector<std::string>& inputs,
                                                const std::string& objective, bool maximize);

struct BenchmarkOptions {
  int budget = 50;
  int runs = 30;
  int initial = 5;
  uint64_t seed = 0;
  Strategy strategy;  // Kiln's strategy (the default one unless changed)
  std::string name = "kiln";
  // Called after every finished run with (runs done, total runs over all strategies).
  std::function<void(int, int)> progress;
  Status validate(int pool_size) const;
};

struct StrategyResult {
  std::string name;
  std::vector<std::vector<int>> order;  // per run: pool rows in evaluation order
  std::vector<double> proposal_ms;      // per run: mean wall time per proposal
  std::vector<double> top_pct;          // mean Top%(i), index i-1
  std::vector<double> ef;               // EF(i)
  double af = 0;                        // NaN when Top% 0.8 is not reached
  double evals_to_top1 = 0;             // mean, censored at budget + 1
  std::vector<int> run_evals_to_top1;   // per run: evaluations until the first top-1 % entry, 0 = none
  double frac_found_top1 = 0;
  double frac_found_best = 0;
  double top_pct_at_budget = 0;
  double mean_proposal_ms = 0;
};

struct BenchmarkResult {
  int pool_size = 0, top5_size = 0, top1_size = 0;
  std::vector<std::vector<int>> initial;  // per run: the shared starting rows
  std::vector<StrategyResult> strategies; // Kiln's, then random search
};

Result<BenchmarkResult> run_benchmark(const BenchmarkDataset& data, const BenchmarkOptions& options);
// Liang's metrics for given evaluation orders (shared by every strategy and by tests).
StrategyResult score_orders(const Eigen::VectorXd& y, std::vector<std::vector<int>> orders, int budget);

}  // namespace kiln::discover
