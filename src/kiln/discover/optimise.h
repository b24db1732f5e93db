// kiln/discover/optimise.h — choosing the next q experiments by maximising an acquisition.
//
// Two searches, one options struct (validated, like BoTorch's OptimizeAcqfInputs):
//  - over a candidate pool: every available row is scored. For a GP with an acquisition that
//    grows with the variance (log-EI, UCB) the exact variance — the expensive part — is computed
//    only for candidates whose cheap upper bound (GaussianProcess::mean_and_variance_bound)
//    could still beat the best exact score, so the answer equals brute force at a fraction of
//    the cost;
//  - over the constrained space: a feasible space-filling design (`raw_samples` points, Sobol or
//    Latin hypercube, mixtures and cardinality respected) is scored, the best `num_restarts`
//    seed local optimisations of the continuous parameters (NLopt SLSQP with the analytic
//    gradient, or COBYLA when there is none) under bounds, mixture equalities and linear
//    inequalities; integer and categorical values stay those of the design point.
// Batches of q: Kriging believer (each pick is added to the models as a fantasy observation at
// its posterior mean; also how pending experiments enter), local penalisation (González et al.
// 2016: the acquisition is multiplied by a soft exclusion zone around each pick), or joint
// Monte-Carlo qEI (greedy sequential maximisation of the joint qEI).
//
//   kiln::discover::OptimizeOptions o;  o.q = 4;  o.seed = 7;
//   KILN_ASSIGN_OR_RETURN(std::vector<int> rows,
//                         kiln::discover::optimize_pool({&gp}, spec, pool.features, available, o));
#pragma once

#include <Eigen/Core>
#include <cstdint>
#include <vector>

#include "kiln/core/status.h"
#include "kiln/discover/acquisition.h"
#include "kiln/discover/model.h"
#include "kiln/discover/space.h"

namespace kiln::discover {

enum class BatchMode { kKrigingBeliever, kLocalPenalization, kJointMC };
const char* batch_mode_name(BatchMode b);
Result<BatchMode> parse_batch_mode(std::string_view s);  // "kb", "lp", "qei"

struct OptimizeOptions {
  int q = 1;                      // proposals in the batch
  BatchMode batch = BatchMode::kKrigingBeliever;
  int num_restarts = 8;           // continuous: local optimisations
  int raw_samples = 512;          // continuous: design points scored to seed them
  int max_evals = 150;            // continuous: evaluations per local optimisation
  Design design = Design::kSobol; // continuous: the seeding design
  int thompson_candidates = 2000; // pools larger than this are screened by UCB before a joint draw
  int qei_candidates = 128;       // joint qEI: candidates kept after screening by log-EI
  uint64_t seed = 0;
  Status validate() const;
};

// Indices of q rows of `features` (available[i] != 0), best first. Fails when fewer than q
// rows are available.
Result<std::vector<int>> optimize_pool(const std::vector<const Model*>& models, const AcquisitionSpec& spec,
                                       const Eigen::MatrixXd& features, std::vector<char> available,
                                       const OptimizeOptions& options);

// q feasible points of `space`, best first.
Result<std::vector<Point>> optimize_space(const std::vector<const Model*>& models, const AcquisitionSpec& spec,
                                          const SearchSpace& space, const OptimizeOptions& options);

// The pool search without the variance bound (every exact variance computed): the slow,
// obvious reference the fast path is tested against.
Result<int> best_in_pool_reference(const Model& model, const AcquisitionSpec& spec, const Eigen::MatrixXd& features,
                                   const std::vector<char>& available);

// Fantasy conditioning used for pending experiments and Kriging-believer batches: each model
// gets the rows of X with its own posterior mean as the observed value.
std::vector<std::unique_ptr<Model>> fantasize(const std::vector<const Model*>& models, const Eigen::MatrixXd& X);

}  // namespace kiln::discover
