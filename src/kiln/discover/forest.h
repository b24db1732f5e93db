// kiln/discover/forest.h — random-forest surrogate: the cheap alternative to the GP.
//
// Bootstrap-aggregated regression trees (variance-reduction splits on a random subset of
// features at each node). The posterior mean is the average over trees and the variance their
// spread, which Liang et al. (2021) found competitive with ARD GPs on materials data. Targets go
// through the same OutcomeTransform as the GP, so posteriors are in model units. The forest has
// no gradients and no joint covariance (posterior_covariance is diagonal); fantasies retrain.
//
//   kiln::discover::ForestOptions o;  o.trees = 100;  o.seed = 3;
//   KILN_ASSIGN_OR_RETURN(auto rf, kiln::discover::RandomForest::fit(X, y, o));
//   rf.posterior(Xcand, &mean, &var);
#pragma once

#include <Eigen/Core>
#include <cstdint>
#include <vector>

#include "kiln/core/status.h"
#include "kiln/discover/model.h"

namespace kiln::discover {

struct ForestOptions {
  int trees = 100;
  int min_leaf = 1;            // minimum observations in a leaf
  double max_features = 1.0;   // fraction of features tried at each split
  bool warp_outputs = true;
  uint64_t seed = 0;
  Status validate() const;
};

class RandomForest final : public Model {
 public:
  static Result<RandomForest> fit(const Eigen::MatrixXd& X, const Eigen::VectorXd& y, const ForestOptions& o);

  int dim() const override { return static_cast<int>(X_.cols()); }
  int num_train() const override { return static_cast<int>(X_.rows()); }
  void posterior(const Eigen::MatrixXd& X, Eigen::VectorXd* mean, Eigen::VectorXd* var) const override;
  Eigen::MatrixXd posterior_covariance(const Eigen::MatrixXd& X) const override;
  std::unique_ptr<Model> condition_on(const Eigen::MatrixXd& X, const Eigen::VectorXd& y) const override;
  const Eigen::VectorXd& train_targets() const override { return y_; }
  double to_model_units(double y) const override { return transform_.forward(y); }
  std::unique_ptr<Model> clone() const override { return std::make_unique<RandomForest>(*this); }

  // Per-tree predictions at x (size trees): a Thompson draw picks one tree.
  Eigen::VectorXd tree_predictions(const Eigen::VectorXd& x) const;

 private:
  struct Node {
    int feature = -1;  // -1: leaf
    double threshold = 0;
    int left = -1, right = -1;
    double value = 0;
  };
  void grow(const Eigen::MatrixXd& X, const Eigen::VectorXd& y);
  double predict_tree(int t, const double* x, int stride) const;

  ForestOptions options_;
  Eigen::MatrixXd X_;
  Eigen::VectorXd y_;  // model units
  OutcomeTransform transform_;
  std::vector<std::vector<Node>> trees_;
};

}  // namespace kiln::discover
