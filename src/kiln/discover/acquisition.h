// kiln/discover/acquisition.h — how valuable an experiment would be, given a surrogate.
//
// BoTorch's contract: an acquisition function is built over a model and maps a batch of
// candidates X with shape (b) x q x d to b values, larger is better. Here X is a (b*q) x d
// matrix; candidate i occupies rows [i*q, (i+1)*q). Analytic acquisitions take q = 1 and also
// give gradients for the continuous optimiser. All values are in model units.
//
//   log-EI   log E[max(f - best, 0)], computed stably far into the tail (Ament et al. 2023), so
//            the optimiser still sees a slope where plain EI underflows to 0.
//   UCB      mean + sqrt(beta) * sd
//   log-PI   log P(f > best)
//   qEI      E[max_j max(f_j - best, 0)] over the q points jointly, Monte-Carlo with fixed
//            quasi-random base samples (so values are deterministic and comparable)
//   EHVI     expected hypervolume improvement of 2–3 objectives over the observed Pareto front,
//            Monte-Carlo over the independent objective posteriors with fixed base samples
//   Thompson a posterior draw; evaluate() draws jointly over the b candidates given.
//
//   kiln::discover::AcquisitionSpec spec;  spec.kind = kiln::discover::AcquisitionKind::kLogEI;
//   auto acq = kiln::discover::make_acquisition(spec, {&gp});
//   Eigen::VectorXd v;  acq->evaluate(Xcand, /*q=*/1, &v);
#pragma once

#include <Eigen/Core>
#include <cstdint>
#include <memory>
#include <string_view>
#include <vector>

#include "kiln/core/status.h"
#include "kiln/discover/model.h"

namespace kiln::discover {

enum class AcquisitionKind { kLogEI, kUCB, kLogPI, kThompson, kQEI, kEHVI };
const char* acquisition_name(AcquisitionKind k);
Result<AcquisitionKind> parse_acquisition(std::string_view s);  // "logei", "ucb", "pi", "thompson", "qei", "ehvi"

struct AcquisitionSpec {
  AcquisitionKind kind = AcquisitionKind::kLogEI;
  double ucb_beta = 2.0;
  int mc_samples = 128;      // qEI and EHVI
  uint64_t seed = 0;         // base samples (qEI, EHVI) and Thompson draws
  Eigen::VectorXd ref_point; // EHVI, model units; empty = from the data (worst - 10% of range)
  Status validate(int num_models) const;
};

class Acquisition {
 public:
  virtual ~Acquisition() = default;
  // out[i] = value of candidate i = rows [i*q, (i+1)*q) of X.
  virtual void evaluate(const Eigen::MatrixXd& X, int q, Eigen::VectorXd* out) const = 0;
  // q = 1 value and gradient wrt the features; false when not available.
  virtual bool value_and_gradient(const Eigen::VectorXd& x, double* v, Eigen::VectorXd* g) const { return false; }
  // An upper bound of the value at a point with this mean and at most this variance; +inf
  // when the acquisition is not monotone in the variance. Lets the pool optimiser skip exact
  // variances that cannot win.
  virtual double bound(double mean, double var_upper) const { return INFINITY; }
  // The value from a marginal mean and variance (analytic acquisitions only).
  virtual double from_moments(double mean, double var) const { return -INFINITY; }
  virtual bool analytic() const { return false; }
};

// Builds the acquisition over one model per objective (one model except for EHVI). The
// incumbent best_f is the largest training target of models[0] (fantasies included).
Result<std::unique_ptr<Acquisition>> make_acquisition(const AcquisitionSpec& spec, const std::vector<const Model*>& models);

// Stable log(phi(z) + z * Phi(z)), the scaled expected improvement; exposed for tests.
double log_h(double z);
// Hypervolume dominated by `points` (rows, maximisation) above `ref` for 1–3 objectives.
double hypervolume(const Eigen::MatrixXd& points, const Eigen::VectorXd& ref);
// Rows of Y (maximisation) not dominated by any other row.
std::vector<int> pareto_front(const Eigen::MatrixXd& Y);
// n x q standard-normal quasi-random base samples (Sobol + inverse CDF), fixed by seed.
Eigen::MatrixXd normal_base_samples(int n, int q, uint64_t seed);

}  // namespace kiln::discover
