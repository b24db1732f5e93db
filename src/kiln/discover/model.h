// kiln/discover/model.h — the surrogate-model contract shared by the GP and the random forest.
//
// BoTorch's shape: a model is fitted on features X (n x d, unit cube) and targets y (oriented
// so that larger is better), and answers posterior queries at new features. Outcome transforms
// live inside the model: targets are warped (optional Yeo–Johnson power transform) and
// standardised, and every posterior is in those *model units*. Acquisition functions therefore
// take their thresholds from `train_targets()` or `to_model_units()`, never from raw values.
//
//   KILN_ASSIGN_OR_RETURN(auto gp, kiln::discover::GaussianProcess::fit(X, y, {}));
//   Eigen::VectorXd mean, var;
//   gp.posterior(Xcand, &mean, &var);                   // marginals, model units
//   auto believer = gp.condition_on(x_new, mean_new);   // a fantasy: same hyperparameters
#pragma once

#include <Eigen/Core>
#include <memory>

namespace kiln::discover {

// y -> standardise -> Yeo–Johnson(lambda) -> standardise. lambda = 1 is the identity warp.
class OutcomeTransform {
 public:
  // Fits the shift/scale (and lambda by maximum likelihood when `warp`).
  void fit(const Eigen::VectorXd& y, bool warp);
  double forward(double y) const;
  Eigen::VectorXd forward(const Eigen::VectorXd& y) const;
  double lambda() const { return lambda_; }

 private:
  double mu0_ = 0, sd0_ = 1, lambda_ = 1, mu1_ = 0, sd1_ = 1;
};

class Model {
 public:
  virtual ~Model() = default;
  virtual int dim() const = 0;
  virtual int num_train() const = 0;
  // Marginal posterior mean and variance of the latent objective at each row of X (m x dim).
  virtual void posterior(const Eigen::MatrixXd& X, Eigen::VectorXd* mean, Eigen::VectorXd* var) const = 0;
  // Joint posterior covariance (m x m) at the rows of X: Thompson sampling, qEI.
  virtual Eigen::MatrixXd posterior_covariance(const Eigen::MatrixXd& X) const = 0;
  // Mean and variance at x with their gradients wrt x; false when the model has none.
  virtual bool posterior_gradient(const Eigen::VectorXd& x, double* mean, double* var, Eigen::VectorXd* dmean,
                                  Eigen::VectorXd* dvar) const {
    return false;
  }
  // The model with extra observations (model units) and unchanged hyperparameters. Used for
  // pending experiments and Kriging-believer batches.
  virtual std::unique_ptr<Model> condition_on(const Eigen::MatrixXd& X, const Eigen::VectorXd& y) const = 0;
  // Training targets in model units (pending fantasies included).
  virtual const Eigen::VectorXd& train_targets() const = 0;
  // A raw (oriented) objective value in model units.
  virtual double to_model_units(double y) const = 0;
  virtual std::unique_ptr<Model> clone() const = 0;
};

}  // namespace kiln::discover
