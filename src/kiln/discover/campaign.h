// kiln/discover/campaign.h — an ask/tell campaign: search space + objectives + strategy + data.
//
// BayBE's shape: a Campaign holds the search space, the objectives and the recommender, and is
// driven by `recommend(q)` (ask) and `add_measurements(...)` (tell). Its state is plain data
// (observations, pending proposals, the last GP hyperparameters as a warm start), which
// CampaignStore (campaign_store.h) persists in SQLite. The campaign itself never touches disk.
//
// Recommendation: until `strategy.initial` observations exist, points come from a space-filling
// design (a continuing Sobol/LHS sequence, or seeded random rows of the pool); then one
// surrogate per objective is fitted (or one on a ParEGO scalarisation), pending experiments are
// added as fantasies, and the acquisition is maximised over the pool or the space. The same
// state and seed give the same proposals.
//
//   KILN_ASSIGN_OR_RETURN(auto cfg, kiln::discover::parse_campaign_yaml(yaml, "c.yaml"));
//   KILN_ASSIGN_OR_RETURN(auto c, kiln::discover::Campaign::create(cfg, /*pool=*/nullptr));
//   KILN_ASSIGN_OR_RETURN(auto batch, c.recommend(4));           // 4 points
//   KILN_ASSIGN_OR_RETURN(auto obs, c.parse_measurements(csv, {}));
//   c.add_measurements(obs);
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "kiln/core/status.h"
#include "kiln/discover/config.h"
#include "kiln/discover/gp.h"
#include "kiln/discover/space.h"

namespace kiln::discover {

struct Observation {
  Point params;
  std::vector<double> objectives;  // in the config's objective order, raw units
  int64_t proposal_id = 0;         // 0 when the row did not reference a proposal
  int csv_row = 0;                 // where it came from, for messages
};

struct Proposal {
  int64_t id = 0;
  Point params;
};

struct CampaignSummary {
  int observations = 0;
  int pending = 0;
  std::vector<int> best;                       // observation index of the best (single objective) or the Pareto front
  std::vector<std::vector<double>> best_so_far;  // per objective, after each observation (single objective: one curve)
};

class Campaign {
 public:
  // `pool` is the candidates CSV (or null for a continuous/mixed search).
  static Result<Campaign> create(CampaignConfig config, const CsvTable* pool);
  // The same with an already-validated pool (benchmarks build their pool from a dataset).
  static Result<Campaign> create_with_pool(CampaignConfig config, Pool pool);

  const CampaignConfig& config() const { return config_; }
  const SearchSpace& space() const { return space_; }
  const Pool* pool() const { return has_pool_ ? &pool_ : nullptr; }
  const std::vector<Observation>& observations() const { return obs_; }
  const std::vector<Proposal>& pending() const { return pending_; }

  // Validates a results table: columns are parameter names, objective names and optionally
  // `id`; every value is checked (numbers, bounds, mixtures, categorical labels, finite
  // objectives; ids must name a pending proposal, once). Errors name the row and column.
  Result<std::vector<Observation>> parse_measurements(const CsvTable& table) const;
  // Adds validated observations; proposals they reference stop being pending.
  void add_measurements(const std::vector<Observation>& obs);
  void add_pending(const std::vector<Proposal>& p);

  // q new points, taking pending proposals into account. Fails on a pool with fewer than q
  // unobserved, non-pending rows.
  Result<std::vector<Point>> recommend(int q);

  // Warm start for the next GP fit (persisted by the store between commands).
  const std::optional<GpHyper>& gp_hyper() const { return hyper_; }
  void set_gp_hyper(std::optional<GpHyper> h) { hyper_ = std::move(h); }

  CampaignSummary summary() const;
  // Row of the pool holding exactly this point (values compared as printed), or -1.
  int pool_row_of(const Point& p) const;

  // Point <-> JSON object text {"name": value-or-label, ...}, the form the store keeps.
  std::string point_to_json(const Point& p) const;
  Result<Point> point_from_json(const std::string& json) const;

 private:
  Result<std::vector<Point>> initial_design(int q);

  CampaignConfig config_;
  SearchSpace space_;
  Pool pool_;
  bool has_pool_ = false;
  std::unordered_map<std::string, int> pool_index_;
  std::vector<Observation> obs_;
  std::vector<int> obs_pool_row_;  // pool row of each observation (-1: none), found once when added
  std::vector<Proposal> pending_;
  std::optional<GpHyper> hyper_;
};

// How a campaign re-optimises the GP hyperparameters. Up to kRefitMinObservations
// observations: at every proposal, multi-start ML-II (warm-started). Above, on a 128-point
// subset: a full refit (the warm start and the prior's centre, 30 likelihood evaluations each)
// when the observations have grown by kRefitGrowth (5%) since the last full refit
// (GpHyper::fitted_on; unknown means now), and in between a light one: the warm start alone,
// kLightRefitEvals evaluations. A 500-point campaign runs a full refit every 25 proposals.
// bench/discover/refit_check.cc compares this with a full refit at every proposal
// (docs/benchmarks.md, "Proposal time").
constexpr int kRefitMinObservations = 200;
constexpr double kRefitGrowth = 0.05;
constexpr int kLightRefitEvals = 10;
// Strategies that need MixedGp (strategy.input_warp, categorical_kernel: mixed) use it up to
// this many observations and the GP (unwarped inputs, joint kernel) above.
constexpr int kMixedGpMaxObservations = kRefitMinObservations;
// The smallest observation count at which a full refit follows one on `fitted_on` observations.
int refit_due(int fitted_on);

// The key a point is matched by (pool membership, duplicates): values printed to 10 digits.
std::string point_key(const SearchSpace& space, const Point& p);

}  // namespace kiln::discover
