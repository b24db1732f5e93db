// kiln/discover/gp.h — Gaussian-process surrogate: ARD kernels, learned noise, ML-II with priors.
//
// Inputs are features in the unit cube (SearchSpace::encode); targets are oriented so larger
// is better and go through the model's OutcomeTransform (standardise, optional Yeo–Johnson
// warp). Hyperparameters — one log-lengthscale per feature, log signal variance, log noise
// variance — maximise the log marginal likelihood plus log priors, by NLopt's L-BFGS from
// several starts (the prior's centre, an optional warm start, random draws from the prior):
//   lengthscale ~ LogNormal(√2 + log(d)/2, √3)  (scales with dimension: Hvarfner et al. 2024;
//                                                d counts lengthscales, a tied group once)
//   signal variance ~ LogNormal(0, 1), noise variance ~ LogNormal(-4, 1) in model units.
// Above `max_fit_points` observations the hyperparameters are fitted on a seeded random subset
// (the posterior always conditions on every observation), which keeps a proposal on 500
// observations in tens of milliseconds.
//
//   kiln::discover::GpOptions o;  o.seed = 7;
//   KILN_ASSIGN_OR_RETURN(kiln::discover::GaussianProcess gp, kiln::discover::GaussianProcess::fit(X, y, o));
//   Eigen::VectorXd mu, var;  gp.posterior(Xstar, &mu, &var);
#pragma once

#include <Eigen/Cholesky>
#include <Eigen/Core>
#include <cstdint>
#include <optional>
#include <vector>

#include "kiln/core/status.h"
#include "kiln/discover/kernels.h"
#include "kiln/discover/model.h"

namespace kiln::discover {

struct GpHyper {
  Eigen::VectorXd log_lengthscale;  // one per feature
  double log_signal = 0;            // log signal variance (model units)
  double log_noise = -4;            // log noise variance (model units)
  int fitted_on = 0;                // observations at the last full fit (0: unknown); fit() sets it to n
};

struct GpOptions {
  KernelType kernel = KernelType::kMatern52;
  bool learn_noise = true;
  double fixed_noise = 1e-4;   // noise variance in model units when !learn_noise
  int restarts = 4;            // random starts drawn from the prior (besides centre and warm start)
  int max_evals = 150;         // likelihood evaluations per start
  int max_fit_points = 256;    // hyperparameters from a random subset of this size above it
  bool warp_outputs = true;    // Yeo–Johnson before standardising
  bool priors = true;          // MAP instead of plain maximum likelihood
  uint64_t seed = 0;
  std::optional<GpHyper> warm_start;
  bool centre_start = true;    // also start from the prior's centre (always when there is no warm start)
  // Lengthscale groups: feature j shares the lengthscale of group ls_groups[j] (0-based, every
  // group in [0, G) used). Empty: one lengthscale per feature. The campaign ties the one-hot
  // columns of a categorical parameter, so a label change costs the same whichever labels.
  std::vector<int> ls_groups;

  Status validate() const;
};

class GaussianProcess final : public Model {
 public:
  // Fits transforms and hyperparameters, then conditions on all (X, y). X: n x d, y: n.
  static Result<GaussianProcess> fit(const Eigen::MatrixXd& X, const Eigen::VectorXd& y, const GpOptions& options);
  // Conditions with given hyperparameters (no optimisation): replay, tests.
  static Result<GaussianProcess> with_hyper(const Eigen::MatrixXd& X, const Eigen::VectorXd& y, const GpHyper& h,
                                            const GpOptions& options);

  int dim() const override { return static_cast<int>(X_.cols()); }
  int num_train() const override { return static_cast<int>(X_.rows()); }
  void posterior(const Eigen::MatrixXd& X, Eigen::VectorXd* mean, Eigen::VectorXd* var) const override;
  Eigen::MatrixXd posterior_covariance(const Eigen::MatrixXd& X) const override;
  bool posterior_gradient(const Eigen::VectorXd& x, double* mean, double* var, Eigen::VectorXd* dmean,
                          Eigen::VectorXd* dvar) const override;
  std::unique_ptr<Model> condition_on(const Eigen::MatrixXd& X, const Eigen::VectorXd& y) const override;
  const Eigen::VectorXd& train_targets() const override { return y_; }
  double to_model_units(double y) const override { return transform_.forward(y); }
  std::unique_ptr<Model> clone() const override { return std::make_unique<GaussianProcess>(*this); }

  // Posterior mean at the rows of X plus an upper bound on each variance that costs little
  // beyond the mean: conditioning on the 4 nearest observations instead of all of them gives a
  // variance >= the exact one. One pass over the observations per candidate, the cross-
  // covariance never stored (internal/gp_screen.h, AVX2 when the CPU has it). The mean is
  // summed differently from posterior()'s; `mean_err` (optional) bounds the difference, so
  // acq.bound(mean + mean_err, var_ub) bounds the exact acquisition value from above.
  // The pool optimiser computes exact variances only where the bound could matter.
  void mean_and_variance_bound(const Eigen::MatrixXd& X, Eigen::VectorXd* mean, Eigen::VectorXd* var_ub,
                               Eigen::VectorXd* mean_err = nullptr) const;

  const GpHyper& hyper() const { return hyper_; }
  const Kernel& kernel() const { return kernel_; }
  double noise_variance() const { return noise_; }
  // Log marginal likelihood of the fitted hyperparameters on the fitted subset (model units).
  double log_marginal_likelihood() const { return lml_; }

 private:
  Status condition(const Eigen::MatrixXd& X, const Eigen::VectorXd& y_model);

  Eigen::MatrixXd X_;
  Eigen::VectorXd y_;  // model units
  OutcomeTransform transform_;
  GpHyper hyper_;
  Kernel kernel_;
  double noise_ = 1e-4;
  double lml_ = 0;
  Eigen::MatrixXd L_;      // lower Cholesky factor of K + noise I
  Eigen::VectorXd alpha_;  // (K + noise I)^-1 y
};

// The log marginal likelihood (plus log priors when `priors`) and its gradient wrt the packed
// hyperparameters [log l_1..d, log s2, log noise]: what fit() maximises, exposed for tests.
// The kernel matrix, factorisation, K^-1 and gradient traces run in internal/gp_lml.h (per-ISA).
double gp_log_posterior(const Eigen::MatrixXd& X, const Eigen::VectorXd& y, KernelType kernel, const Eigen::VectorXd& theta,
                        bool learn_noise, double fixed_noise, bool priors, Eigen::VectorXd* grad);
// The same through Eigen (GEMM distances, LLT, K^-1 by solving with the identity): the
// reference gp_log_posterior is tested against (gp_lml_test.cc); equal up to rounding.
double gp_log_posterior_reference(const Eigen::MatrixXd& X, const Eigen::VectorXd& y, KernelType kernel, const Eigen::VectorXd& theta,
                                  bool learn_noise, double fixed_noise, bool priors, Eigen::VectorXd* grad);

}  // namespace kiln::discover
