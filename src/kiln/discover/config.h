// kiln/discover/config.h — the campaign file (YAML) that other tools generate.
//
// The keys below are a contract; Kiln adds optional keys but never renames these:
//
//   parameters:
//     - {name: theta, type: continuous, low: 0, high: 200}      # optional: log: true
//     - {name: n, type: integer, low: 6, high: 12}
//     - {name: solvent, type: categorical, values: [water, ethanol]}
//       # optional: descriptors: {water: [1.0, 80.1], ethanol: [0.79, 24.5]}
//   mixtures:                                   # optional
//     - {components: [Cs, FA, MA], total: 1.0}  # optional: max_nonzero: 2
//   constraints:                                # optional: sum coefficient * value <= max (or >= min)
//     - {coefficients: {theta: 1.0, n: 10.0}, max: 250}
//   objectives:
//     - {name: toughness, direction: maximize}
//   candidates: pool.csv                        # optional, relative to this file
//   seed: 7                                     # optional
//   strategy:                                   # optional; defaults shown
//     {surrogate: gp, kernel: matern52, acquisition: ucb, batch: kb,
//      multi_objective: ehvi, initial: 5, design: sobol, ucb_beta: 1.0, warp: true,
//      categorical_kernel: ard, input_warp: true}
//
// Parsing never throws and never aborts: every problem comes back as a Status naming the key
// path ("parameters[2].low") and the line in the file.
//
//   KILN_ASSIGN_OR_RETURN(kiln::discover::CampaignConfig c,
//                         kiln::discover::parse_campaign_yaml(text, "campaign.yaml"));
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "kiln/core/status.h"
#include "kiln/discover/acquisition.h"
#include "kiln/discover/kernels.h"
#include "kiln/discover/optimise.h"
#include "kiln/discover/space.h"

namespace kiln::discover {

struct Objective {
  std::string name;
  bool maximize = true;
};

enum class SurrogateKind { kGp, kForest };
enum class MultiObjectiveKind { kEHVI, kParEGO };

// How a campaign chooses experiments. The defaults are Kiln's benchmarked default strategy.
struct Strategy {
  SurrogateKind surrogate = SurrogateKind::kGp;
  KernelType kernel = KernelType::kMatern52;
  AcquisitionKind acquisition = AcquisitionKind::kUCB;
  BatchMode batch = BatchMode::kKrigingBeliever;
  MultiObjectiveKind multi_objective = MultiObjectiveKind::kEHVI;
  int initial = 5;            // observations before the model takes over (design points)
  Design design = Design::kSobol;
  double ucb_beta = 1.0;
  bool warp = true;           // Yeo–Johnson outcome warp (GP and forest outputs)
  bool tie_categorical = true;  // GP: one lengthscale per one-hot categorical parameter, not per label
  // GP with one-hot categorical parameters: "ard", the joint ARD kernel alone, or "mixed", the
  // joint kernel plus an additive one over the parameters (MixedGp, mixed_gp.h).
  bool mixed_categorical = false;
  // GP: a learnt Kumaraswamy CDF per continuous / integer input before the kernel (MixedGp,
  // up to kMixedGpMaxObservations observations).
  bool input_warp = true;
  Status validate() const;
};

struct CampaignConfig {
  std::vector<Parameter> parameters;
  std::vector<Mixture> mixtures;
  std::vector<LinearConstraint> constraints;
  std::vector<Objective> objectives;
  std::string candidates;  // as written in the file (relative to the file's folder)
  uint64_t seed = 0;
  Strategy strategy;
};

Result<CampaignConfig> parse_campaign_yaml(std::string_view text, const std::string& source);
// The search space the config declares.
Result<SearchSpace> build_space(const CampaignConfig& c);

}  // namespace kiln::discover
