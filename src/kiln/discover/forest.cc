#include "kiln/discover/forest.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>

namespace kiln::discover {

Status ForestOptions::validate() const {
  if (trees < 1 || trees > 10000) return Status::invalid("forest trees must be in [1, 10000], got ", trees);
  if (min_leaf < 1) return Status::invalid("forest min_leaf must be >= 1");
  if (!(max_features > 0 && max_features <= 1)) return Status::invalid("forest max_features must be in (0, 1]");
  return Status::ok();
}

Result<RandomForest> RandomForest::fit(const Eigen::MatrixXd& X, const Eigen::VectorXd& y, const ForestOptions& o) {
  KILN_RETURN_IF_ERROR(o.validate());
  if (X.rows() < 1 || y.size() != X.rows()) return Status::invalid("forest fit needs one target per row and at least one row");
  if (!X.allFinite() || !y.allFinite()) return Status::invalid("forest fit: features or targets are not finite");
  RandomForest rf;
  rf.options_ = o;
  rf.transform_.fit(y, o.warp_outputs);
  rf.grow(X, rf.transform_.forward(y));
  return rf;
}

void RandomForest::grow(const Eigen::MatrixXd& X, const Eigen::VectorXd& ym) {
  X_ = X;
  y_ = ym;
  const int n = static_cast<int>(X.rows()), d = static_cast<int>(X.cols());
  const int mtry = std::max(1, static_cast<int>(std::ceil(options_.max_features * d)));
  std::mt19937_64 rng(options_.seed * 0x9E3779B97F4A7C15ull + 5);
  trees_.assign(options_.trees, {});
  std::vector<int> feats(d);
  std::iota(feats.begin(), feats.end(), 0);
  for (int t = 0; t < options_.trees; ++t) {
    std::vector<int> sample(n);
    std::uniform_int_distribution<int> pick(0, n - 1);
    for (int& s : sample) s = pick(rng);
    std::vector<Node>& nodes = trees_[t];
    // Depth-first growth with an explicit stack of (node, begin, end) over `sample`.
    struct Task { int node, b, e; };
    nodes.push_back({});
    std::vector<Task> stack{{0, 0, n}};
    std::vector<std::pair<double, double>> vals;
    while (!stack.empty()) {
      Task task = stack.back();
      stack.pop_back();
      int cnt = task.e - task.b;
      double sum = 0, sq = 0;
      for (int i = task.b; i < task.e; ++i) {
        sum += ym[sample[i]];
        sq += ym[sample[i]] * ym[sample[i]];
      }
      nodes[task.node].value = sum / cnt;
      if (cnt < 2 * options_.min_leaf || sq - sum * sum / cnt < 1e-12) continue;
      std::shuffle(feats.begin(), feats.end(), rng);
      double best_gain = 1e-12, best_thr = 0;
      int best_f = -1;
      for (int fi = 0; fi < mtry; ++fi) {
        int f = feats[fi];
        vals.clear();
        for (int i = task.b; i < task.e; ++i) vals.push_back({X(sample[i], f), ym[sample[i]]});
        std::sort(vals.begin(), vals.end());
        double ls = 0;
        for (int i = 0; i + 1 < cnt; ++i) {
          ls += vals[i].second;
          int nl = i + 1, nr = cnt - nl;
          if (vals[i].first == vals[i + 1].first || nl < options_.min_leaf || nr < options_.min_leaf) continue;
          double rs = sum - ls;
          // Reduction in the sum of squared deviations.
          double gain = ls * ls / nl + rs * rs / nr - sum * sum / cnt;
          if (gain > best_gain) {
            best_gain = gain;
            best_f = f;
            best_thr = 0.5 * (vals[i].first + vals[i + 1].first);
          }
        }
      }
      if (best_f < 0) continue;
      int mid = static_cast<int>(std::partition(sample.begin() + task.b, sample.begin() + task.e,
                                                [&](int s) { return X(s, best_f) <= best_thr; }) - sample.begin());
      int l = static_cast<int>(nodes.size()), r = l + 1;
      nodes.push_back({});
      nodes.push_back({});
      nodes[task.node].feature = best_f;
      nodes[task.node].threshold = best_thr;
      nodes[task.node].left = l;
      nodes[task.node].right = r;
      stack.push_back({l, task.b, mid});
      stack.push_back({r, mid, task.e});
    }
  }
}

double RandomForest::predict_tree(int t, const double* x, int stride) const {
  const std::vector<Node>& nodes = trees_[t];
  int i = 0;
  while (nodes[i].feature >= 0) i = x[nodes[i].feature * stride] <= nodes[i].threshold ? nodes[i].left : nodes[i].right;
  return nodes[i].value;
}

void RandomForest::posterior(const Eigen::MatrixXd& X, Eigen::VectorXd* mean, Eigen::VectorXd* var) const {
  const int m = static_cast<int>(X.rows());
  const int stride = static_cast<int>(X.rows());
  mean->setZero(m);
  Eigen::VectorXd sq = Eigen::VectorXd::Zero(m);
  for (int t = 0; t < static_cast<int>(trees_.size()); ++t)
    for (int i = 0; i < m; ++i) {
      double v = predict_tree(t, X.data() + i, stride);
      (*mean)[i] += v;
      sq[i] += v * v;
    }
  double T = static_cast<double>(trees_.size());
  *mean /= T;
  if (var) *var = (sq.array() / T - mean->array().square()).max(1e-6).matrix();
}

Eigen::MatrixXd RandomForest::posterior_covariance(const Eigen::MatrixXd& X) const {
  Eigen::VectorXd mean, var;
  posterior(X, &mean, &var);
  return var.asDiagonal();
}

Eigen::VectorXd RandomForest::tree_predictions(const Eigen::VectorXd& x) const {
  Eigen::VectorXd out(trees_.size());
  for (int t = 0; t < static_cast<int>(trees_.size()); ++t) out[t] = predict_tree(t, x.data(), 1);
  return out;
}

std::unique_ptr<Model> RandomForest::condition_on(const Eigen::MatrixXd& Xn, const Eigen::VectorXd& yn) const {
  auto rf = std::make_unique<RandomForest>(*this);
  Eigen::MatrixXd X(X_.rows() + Xn.rows(), X_.cols());
  X << X_, Xn;
  Eigen::VectorXd y(y_.size() + yn.size());
  y << y_, yn;
  rf->grow(X, y);
  return rf;
}

}  // namespace kiln::discover
