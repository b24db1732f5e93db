// kiln/discover/mixed_gp.h — GP with learnt input warping and, optionally, a kernel that mixes
// the joint ARD kernel with an additive one over the parameters (categorical inputs).
//
// Input warping (MixedGpOptions::warped; the default strategy's continuous and integer inputs):
// each warped feature x in [0, 1] becomes F(x) = 1 - (1 - t^a)^b, t = 1e-6 + (1 - 2e-6) x, a
// Kumaraswamy CDF (BoTorch's Warp input transform), with log a, log b ~ N(0, 0.75), bounds
// [0.1, 10], before the kernel. A stationary kernel on F(x) can follow a response that is flat
// over most of a range and steep near one end.
//
// Mixed kernel (MixedGpOptions::components; strategy categorical_kernel: mixed): the features
// are grouped into additive components (each one-hot categorical parameter is one; the
// continuous, integer and descriptor features together form one). With r² the scaled squared
// distance over all (warped) features, as in GaussianProcess, and r_c² over component c's
// features alone, the same lengthscales in both:
//   k(a, b) = s2 * ( w f(r) + (1 - w) / C * sum_c f(r_c) ),    C components, f Matérn-5/2 or RBF.
// The joint term is the one-hot ARD kernel of GaussianProcess; the additive term lets a label
// that was good in one experiment raise the prediction of every untried combination with it
// (the main effects); CoCaBO (Ru et al. 2020) mixes the sum and the product the same way. Without
// components, w = 1 (the joint kernel alone).
//
// All hyperparameters maximise the log marginal likelihood plus log priors (MAP-II), by NLopt's
// L-BFGS with the analytic gradient, from the prior's centre and `restarts` draws from the prior:
//   lengthscale ~ LogNormal(√2 + log(G)/2, √3)   (G lengthscale groups, a tied categorical once)
//   signal variance ~ LogNormal(0, 1), noise variance ~ LogNormal(-4, 1), logit w ~ N(0, 1.5²).
// The likelihood, gradient and posterior are plain Eigen, with no pool screen and no warm start:
// campaigns use MixedGp up to kMixedGpMaxObservations (campaign.h) and the GP above.
//
//   kiln::discover::MixedGpOptions o;  o.warped = space.numeric_features();
//   o.ls_groups = space.lengthscale_groups();
//   KILN_ASSIGN_OR_RETURN(kiln::discover::MixedGp gp, kiln::discover::MixedGp::fit(X, y, o));
#pragma once

#include <Eigen/Cholesky>
#include <Eigen/Core>
#include <cstdint>
#include <vector>

#include "kiln/core/status.h"
#include "kiln/discover/kernels.h"
#include "kiln/discover/model.h"

namespace kiln::discover {

struct MixedGpOptions {
  KernelType kernel = KernelType::kMatern52;
  bool warp_outputs = true;  // Yeo–Johnson before standardising
  int restarts = 4;          // random starts drawn from the prior, besides the prior's centre
  int max_evals = 150;       // likelihood evaluations per start
  int max_fit_points = 256;  // hyperparameters from a random subset of this size above it
  uint64_t seed = 0;
  // feature -> lengthscale group (as GpOptions::ls_groups); empty: one per feature.
  std::vector<int> ls_groups;
  // feature -> additive component, every component in [0, C) used; empty: no additive term
  // (the joint kernel alone, w = 1).
  std::vector<int> components;
  // Features whose values go through a learnt Kumaraswamy CDF before the kernel (input warping,
  // as BoTorch's Warp transform): x -> 1 - (1 - x^a)^b on [0, 1], with log a, log b ~ N(0, 0.75)
  // per warped feature. Empty: none.
  std::vector<int> warped;
  Status validate(int d) const;
};

class MixedGp final : public Model {
 public:
  static Result<MixedGp> fit(const Eigen::MatrixXd& X, const Eigen::VectorXd& y, const MixedGpOptions& options);

  int dim() const override { return static_cast<int>(X_.cols()); }
  int num_train() const override { return static_cast<int>(X_.rows()); }
  void posterior(const Eigen::MatrixXd& X, Eigen::VectorXd* mean, Eigen::VectorXd* var) const override;
  Eigen::MatrixXd posterior_covariance(const Eigen::MatrixXd& X) const override;
  bool posterior_gradient(const Eigen::VectorXd& x, double* mean, double* var, Eigen::VectorXd* dmean,
                          Eigen::VectorXd* dvar) const override;
  std::unique_ptr<Model> condition_on(const Eigen::MatrixXd& X, const Eigen::VectorXd& y) const override;
  const Eigen::VectorXd& train_targets() const override { return y_; }
  double to_model_units(double y) const override { return transform_.forward(y); }
  std::unique_ptr<Model> clone() const override { return std::make_unique<MixedGp>(*this); }

  // The kernel between the rows of A and B (no noise; unwarped features).
  Eigen::MatrixXd covariance(const Eigen::MatrixXd& A, const Eigen::MatrixXd& B) const;
  // The rows of X with the input warp applied.
  Eigen::MatrixXd warp_inputs(const Eigen::MatrixXd& X) const;
  const std::vector<int>& warped() const { return warped_; }
  const Eigen::VectorXd& warp_a() const { return wa_; }  // per warped feature
  const Eigen::VectorXd& warp_b() const { return wb_; }
  const Eigen::VectorXd& lengthscales() const { return ls_; }  // per feature
  double joint_weight() const { return w_; }                   // w above
  double signal_variance() const { return s2_; }
  double noise_variance() const { return noise_; }
  double log_posterior() const { return lml_; }

 private:
  Eigen::MatrixXd X_;
  Eigen::VectorXd y_;  // model units
  OutcomeTransform transform_;
  KernelType kernel_ = KernelType::kMatern52;
  std::vector<int> comp_;  // feature -> component
  int num_comp_ = 1;
  Eigen::VectorXd ls_;
  std::vector<int> warped_;
  Eigen::VectorXd wa_, wb_;
  double s2_ = 1, noise_ = 1e-4, w_ = 0.5, lml_ = 0;
  Eigen::MatrixXd L_;
  Eigen::VectorXd alpha_;
};

// The log marginal likelihood plus log priors of MixedGp and its gradient wrt theta = [log l per
// lengthscale group, log s2, log noise, logit w (only with components), log a and log b per
// warped feature]: what fit() maximises.
double mixed_gp_log_posterior(const Eigen::MatrixXd& X, const Eigen::VectorXd& y, KernelType kernel,
                              const std::vector<int>& ls_groups, const std::vector<int>& components,
                              const std::vector<int>& warped, const Eigen::VectorXd& theta, Eigen::VectorXd* grad);

}  // namespace kiln::discover
