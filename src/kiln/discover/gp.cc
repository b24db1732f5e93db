#include "kiln/discover/gp.h"


#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <random>
#include <vector>

#include "kiln/discover/internal/fit_subset.h"
#include "kiln/discover/internal/gp_lml.h"
#include "kiln/discover/internal/gp_posterior.h"
#include "kiln/discover/internal/map_fit_nlopt.h"
#include "kiln/discover/internal/gp_screen.h"

namespace kiln::discover {
namespace {

constexpr double kLog2Pi = 1.8378770664093453;
const double kLogLsLo = std::log(1e-2), kLogLsHi = std::log(1e2);
const double kLogSigLo = std::log(1e-2), kLogSigHi = std::log(1e2);
const double kLogNoiseLo = std::log(1e-6), kLogNoiseHi = std::log(2.0);
constexpr double kJitter = 1e-8;

double ls_prior_mean(int d) { return std::sqrt(2.0) + 0.5 * std::log(std::max(d, 1)); }
constexpr double kLsPriorSd = 1.7320508075688772;  // sqrt(3)
constexpr double kSigPriorMean = 0.0, kSigPriorSd = 1.0;
constexpr double kNoisePriorMean = -4.0, kNoisePriorSd = 1.0;

// The log priors of gp_log_posterior, added to *v and (when grad) to the gradient.
// theta holds d lengthscales; their prior's centre is that of prior_dim features.
void add_log_prior(const Eigen::VectorXd& theta, int d, int prior_dim, bool learn_noise, double* v, Eigen::VectorXd* grad) {
  const double mu = ls_prior_mean(prior_dim);
  for (int i = 0; i < d; ++i) *v -= 0.5 * std::pow((theta[i] - mu) / kLsPriorSd, 2);
  *v -= 0.5 * std::pow((theta[d] - kSigPriorMean) / kSigPriorSd, 2);
  if (learn_noise) *v -= 0.5 * std::pow((theta[d + 1] - kNoisePriorMean) / kNoisePriorSd, 2);
  if (grad) {
    for (int i = 0; i < d; ++i) (*grad)[i] -= (theta[i] - mu) / (kLsPriorSd * kLsPriorSd);
    (*grad)[d] -= (theta[d] - kSigPriorMean) / (kSigPriorSd * kSigPriorSd);
    if (learn_noise) (*grad)[d + 1] -= (theta[d + 1] - kNoisePriorMean) / (kNoisePriorSd * kNoisePriorSd);
  }
}

struct FitData {
  const Eigen::MatrixXd* X;
  const Eigen::VectorXd* y;
  KernelType kernel;
  bool learn_noise;
  double fixed_noise;
  bool priors;
  const std::vector<int>* groups;  // feature -> lengthscale group; null: one per feature
  int num_groups;                  // lengthscale parameters (d without groups)
  int prior_dim;                   // the lengthscale prior's centre is ls_prior_mean(prior_dim)
  double best = -INFINITY;
  Eigen::VectorXd best_theta;      // per feature: [log l_1..d, log s2, log noise]
};

// Packed optimiser variables [log l per group, log s2, (log noise)] and the log prior over
// them; the likelihood itself sees one lengthscale per feature (tied within a group).
double objective(unsigned n, const double* x, double* grad, void* data) {
  FitData* fd = static_cast<FitData*>(data);
  const int d = static_cast<int>(fd->X->cols()), G = fd->num_groups;
  Eigen::VectorXd theta(d + 2);
  for (int i = 0; i < d; ++i) theta[i] = x[fd->groups ? (*fd->groups)[i] : i];
  theta[d] = x[G];
  theta[d + 1] = fd->learn_noise ? x[G + 1] : std::log(fd->fixed_noise);
  Eigen::VectorXd g;
  double v;
  if (!fd->groups) {
    v = gp_log_posterior(*fd->X, *fd->y, fd->kernel, theta, fd->learn_noise, fd->fixed_noise, fd->priors, grad ? &g : nullptr);
  } else {
    v = gp_log_posterior(*fd->X, *fd->y, fd->kernel, theta, fd->learn_noise, fd->fixed_noise, false, grad ? &g : nullptr);
    if (std::isfinite(v)) {
      Eigen::VectorXd packed(G + 2), pg;
      for (int i = 0; i < G + 1; ++i) packed[i] = x[i];
      packed[G + 1] = theta[d + 1];
      if (grad) {
        pg.setZero(G + 2);
        for (int i = 0; i < d; ++i) pg[(*fd->groups)[i]] += g[i];
        pg[G] = g[d];
        pg[G + 1] = g[d + 1];
      }
      if (fd->priors) add_log_prior(packed, G, fd->prior_dim, fd->learn_noise, &v, grad ? &pg : nullptr);
      g = pg;
    }
  }
  return negate_for_nlopt(v, g, theta, n, grad, &fd->best, &fd->best_theta);
}

// Lower Cholesky factor of K (lower triangle given; K + jitter I with escalating jitter) by the
// fit's factorisation (internal/gp_lml.h); false when K is not positive definite even then.
bool robust_cholesky(const Eigen::MatrixXd& K, Eigen::MatrixXd* L, double* jitter_used) {
  const internal::GpLml& lml = internal::gp_lml();
  const int n = static_cast<int>(K.rows());
  double jitter = kJitter;
  for (int attempt = 0; attempt < 6; ++attempt, jitter *= 10) {
    *L = K;
    L->diagonal().array() += jitter;
    if (lml.cholesky(L->data(), n, n)) {
      L->triangularView<Eigen::StrictlyUpper>().setZero();
      if (jitter_used) *jitter_used = jitter;
      return true;
    }
  }
  return false;
}

}  // namespace

Status GpOptions::validate() const {
  if (restarts < 0 || restarts > 100) return Status::invalid("GP restarts must be in [0, 100], got ", restarts);
  if (max_evals < 1) return Status::invalid("GP max_evals must be >= 1");
  if (max_fit_points < 8) return Status::invalid("GP max_fit_points must be >= 8");
  if (!(fixed_noise > 0) || !std::isfinite(fixed_noise)) return Status::invalid("GP fixed_noise must be > 0");
  return Status::ok();
}

double gp_log_posterior(const Eigen::MatrixXd& X, const Eigen::VectorXd& y, KernelType kt, const Eigen::VectorXd& theta,
                        bool learn_noise, double fixed_noise, bool priors, Eigen::VectorXd* grad) {
  const int n = static_cast<int>(X.rows()), d = static_cast<int>(X.cols());
  const double noise = learn_noise ? std::exp(theta[d + 1]) : fixed_noise;
  // Buffers reused across the evaluations of a fit (hundreds of kilobytes at 128 points).
  thread_local std::vector<double> xs, work, gls;
  xs.resize(static_cast<size_t>(n) * d);
  for (int c = 0; c < d; ++c) {
    const double inv = 1.0 / std::exp(theta[c]);
    for (int i = 0; i < n; ++i) xs[static_cast<size_t>(c) * n + i] = X(i, c) * inv;
  }
  work.resize(static_cast<size_t>(internal::gp_lml_work_size(n)));
  gls.resize(d);
  internal::GpLmlArgs a;
  a.rbf = kt == KernelType::kRbf;
  a.n = n;
  a.d = d;
  a.xs = xs.data();
  a.ldx = n;
  a.y = y.data();
  a.s2 = std::exp(theta[d]);
  a.diag = noise + kJitter;
  a.grad = grad != nullptr;
  a.work = work.data();
  a.grad_ls = gls.data();
  if (!internal::gp_lml().evaluate(a)) return -INFINITY;
  double v = -0.5 * a.quad - a.logdet_half - 0.5 * n * kLog2Pi;
  if (grad) {
    grad->setZero(d + 2);
    for (int j = 0; j < d; ++j) (*grad)[j] = gls[j];
    (*grad)[d] = a.grad_s2;
    if (learn_noise) (*grad)[d + 1] = 0.5 * noise * a.trace_w;
  }
  if (priors) add_log_prior(theta, d, d, learn_noise, &v, grad);
  return v;
}

double gp_log_posterior_reference(const Eigen::MatrixXd& X, const Eigen::VectorXd& y, KernelType kt, const Eigen::VectorXd& theta,
                                  bool learn_noise, double fixed_noise, bool priors, Eigen::VectorXd* grad) {
  const int n = static_cast<int>(X.rows()), d = static_cast<int>(X.cols());
  Kernel k{kt, theta.head(d).array().exp().matrix(), std::exp(theta[d])};
  double noise = learn_noise ? std::exp(theta[d + 1]) : fixed_noise;
  Eigen::MatrixXd R2 = k.scaled_sqdist(X, X);
  Eigen::MatrixXd Kf, G;
  if (grad) k.from_sqdist_and_grad_factor(R2, &Kf, &G);
  else Kf = k.from_sqdist(R2);
  Eigen::MatrixXd K = Kf;
  K.diagonal().array() += noise + kJitter;
  Eigen::LLT<Eigen::Ref<Eigen::MatrixXd>> llt(K);  // factorises K in place
  if (llt.info() != Eigen::Success) return -INFINITY;
  Eigen::VectorXd alpha = llt.solve(y);
  const auto& Lm = llt.matrixLLT();
  double logdet = 0;
  for (int i = 0; i < n; ++i) logdet += std::log(Lm(i, i));
  double v = -0.5 * y.dot(alpha) - logdet - 0.5 * n * kLog2Pi;
  if (priors) {
    double mu = ls_prior_mean(d);
    for (int i = 0; i < d; ++i) v -= 0.5 * std::pow((theta[i] - mu) / kLsPriorSd, 2);
    v -= 0.5 * std::pow((theta[d] - kSigPriorMean) / kSigPriorSd, 2);
    if (learn_noise) v -= 0.5 * std::pow((theta[d + 1] - kNoisePriorMean) / kNoisePriorSd, 2);
  }
  if (grad) {
    grad->setZero(d + 2);
    // W = alpha alpha^T - K^-1, and M = W o G, built in place (the same values as the
    // expressions, without three more n x n temporaries per likelihood evaluation).
    Eigen::MatrixXd W = Eigen::MatrixXd::Identity(n, n);
    llt.solveInPlace(W);
    W = -W;
    W.noalias() += alpha * alpha.transpose();
    Eigen::MatrixXd& M = G;
    M.array() *= W.array();
    Eigen::VectorXd rows = M.rowwise().sum();
    Eigen::MatrixXd MX = M * X;
    for (int j = 0; j < d; ++j) {
      double t = 2.0 * X.col(j).array().square().matrix().dot(rows) - 2.0 * X.col(j).dot(MX.col(j));
      (*grad)[j] = 0.5 * t / (k.lengthscales[j] * k.lengthscales[j]);
    }
    (*grad)[d] = 0.5 * W.cwiseProduct(Kf).sum();
    if (learn_noise) (*grad)[d + 1] = 0.5 * noise * W.trace();
    if (priors) {
      double mu = ls_prior_mean(d);
      for (int i = 0; i < d; ++i) (*grad)[i] -= (theta[i] - mu) / (kLsPriorSd * kLsPriorSd);
      (*grad)[d] -= (theta[d] - kSigPriorMean) / (kSigPriorSd * kSigPriorSd);
      if (learn_noise) (*grad)[d + 1] -= (theta[d + 1] - kNoisePriorMean) / (kNoisePriorSd * kNoisePriorSd);
    }
  }
  return v;
}

Result<GaussianProcess> GaussianProcess::fit(const Eigen::MatrixXd& X, const Eigen::VectorXd& y, const GpOptions& o) {
  KILN_RETURN_IF_ERROR(o.validate());
  const int n = static_cast<int>(X.rows()), d = static_cast<int>(X.cols());
  if (n < 1 || y.size() != n) return Status::invalid("GP fit needs at least one observation and one target per row");
  if (d < 1) return Status::invalid("GP fit needs at least one feature");
  if (!X.allFinite() || !y.allFinite()) return Status::invalid("GP fit: features or targets are not finite");
  if (!o.ls_groups.empty()) {
    if (static_cast<int>(o.ls_groups.size()) != d) return Status::invalid("GP fit: ", o.ls_groups.size(), " lengthscale groups for ", d, " features");
    std::vector<char> used(d, 0);
    for (int g : o.ls_groups) {
      if (g < 0 || g >= d) return Status::invalid("GP fit: lengthscale group ", g, " out of range");
      used[g] = 1;
    }
    const int G = *std::max_element(o.ls_groups.begin(), o.ls_groups.end()) + 1;
    for (int g = 0; g < G; ++g)
      if (!used[g]) return Status::invalid("GP fit: lengthscale group ", g, " has no feature");
  }
  GaussianProcess gp;
  gp.transform_.fit(y, o.warp_outputs);
  Eigen::VectorXd ym = gp.transform_.forward(y);

  std::mt19937_64 rng(o.seed * 0x9E3779B97F4A7C15ull + 11);
  // Hyperparameters from a subset when there are many observations.
  Eigen::MatrixXd Xs;
  Eigen::VectorXd ys;
  fit_subset(X, ym, o.max_fit_points, rng, &Xs, &ys);

  // Lengthscale groups (GpOptions::ls_groups): G optimiser variables instead of d.
  const bool grouped = !o.ls_groups.empty();
  const int G = grouped ? *std::max_element(o.ls_groups.begin(), o.ls_groups.end()) + 1 : d;
  // The prior's centre grows with the number of lengthscales (Hvarfner et al.), so a tied
  // categorical counts once.
  const int prior_dim = G;
  const int np = G + 1 + (o.learn_noise ? 1 : 0);
  std::vector<double> lo(np), hi(np);
  for (int i = 0; i < G; ++i) {
    lo[i] = kLogLsLo;
    hi[i] = kLogLsHi;
  }
  lo[G] = kLogSigLo;
  hi[G] = kLogSigHi;
  if (o.learn_noise) {
    lo[G + 1] = kLogNoiseLo;
    hi[G + 1] = kLogNoiseHi;
  }
  std::vector<std::vector<double>> starts;
  std::vector<double> centre(np);
  for (int i = 0; i < G; ++i) centre[i] = std::clamp(ls_prior_mean(prior_dim), lo[i], hi[i]);
  centre[G] = 0;
  if (o.learn_noise) centre[G + 1] = kNoisePriorMean;
  if (o.warm_start && o.warm_start->log_lengthscale.size() == d) {
    std::vector<double> w(np, 0.0), cnt(G, 0.0);
    for (int i = 0; i < d; ++i) {  // a group starts from the mean of its features' values
      const int g = grouped ? o.ls_groups[i] : i;
      w[g] += o.warm_start->log_lengthscale[i];
      cnt[g] += 1;
    }
    for (int i = 0; i < G; ++i) w[i] = std::clamp(w[i] / cnt[i], lo[i], hi[i]);
    w[G] = std::clamp(o.warm_start->log_signal, lo[G], hi[G]);
    if (o.learn_noise) w[G + 1] = std::clamp(o.warm_start->log_noise, lo[G + 1], hi[G + 1]);
    starts.push_back(w);
  }
  if (o.centre_start || starts.empty()) starts.push_back(centre);
  std::normal_distribution<double> nd(0, 1);
  for (int r = 0; r < o.restarts; ++r) {
    std::vector<double> s(np);
    for (int i = 0; i < G; ++i) s[i] = std::clamp(ls_prior_mean(prior_dim) + kLsPriorSd * nd(rng), lo[i], hi[i]);
    s[G] = std::clamp(kSigPriorSd * nd(rng), lo[G], hi[G]);
    if (o.learn_noise) s[G + 1] = std::clamp(kNoisePriorMean + kNoisePriorSd * nd(rng), lo[G + 1], hi[G + 1]);
    starts.push_back(s);
  }

  FitData fd{&Xs, &ys, o.kernel, o.learn_noise, o.fixed_noise, o.priors, grouped ? &o.ls_groups : nullptr, G, prior_dim,
             -INFINITY, Eigen::VectorXd()};
  run_lbfgs_starts(lo, hi, objective, &fd, o.max_evals, starts);
  if (!std::isfinite(fd.best)) return Status::invalid("GP fit: the covariance matrix is singular for every hyperparameter start");

  gp.hyper_.log_lengthscale = fd.best_theta.head(d);
  gp.hyper_.log_signal = fd.best_theta[d];
  gp.hyper_.log_noise = o.learn_noise ? fd.best_theta[d + 1] : std::log(o.fixed_noise);
  gp.hyper_.fitted_on = n;
  gp.lml_ = fd.best;
  gp.kernel_ = Kernel{o.kernel, gp.hyper_.log_lengthscale.array().exp().matrix(), std::exp(gp.hyper_.log_signal)};
  gp.noise_ = std::exp(gp.hyper_.log_noise);
  KILN_RETURN_IF_ERROR(gp.condition(X, ym));
  return gp;
}

Result<GaussianProcess> GaussianProcess::with_hyper(const Eigen::MatrixXd& X, const Eigen::VectorXd& y, const GpHyper& h,
                                                    const GpOptions& o) {
  if (h.log_lengthscale.size() != X.cols()) return Status::invalid("GP hyperparameters have ", h.log_lengthscale.size(), " lengthscales for ", X.cols(), " features");
  if (X.rows() < 1 || y.size() != X.rows()) return Status::invalid("GP needs one target per row");
  GaussianProcess gp;
  gp.transform_.fit(y, o.warp_outputs);
  gp.hyper_ = h;
  gp.kernel_ = Kernel{o.kernel, h.log_lengthscale.array().exp().matrix(), std::exp(h.log_signal)};
  gp.noise_ = std::exp(h.log_noise);
  KILN_RETURN_IF_ERROR(gp.condition(X, gp.transform_.forward(y)));
  return gp;
}

Status GaussianProcess::condition(const Eigen::MatrixXd& X, const Eigen::VectorXd& ym) {
  X_ = X;
  y_ = ym;
  // The lower triangle of K by the fit's kernel path: differences, not a GEMM (internal/gp_lml.h).
  const int n = static_cast<int>(X.rows()), d = static_cast<int>(X.cols());
  const Eigen::MatrixXd Xs = X * kernel_.lengthscales.array().inverse().matrix().asDiagonal();
  Eigen::MatrixXd K(n, n);
  internal::gp_lml().kernel_lower(kernel_.type == KernelType::kRbf, Xs.data(), n, n, d, kernel_.signal_variance, noise_, K.data(), n);
  double jitter = 0;
  if (!robust_cholesky(K, &L_, &jitter)) return Status::invalid("GP: the covariance matrix is not positive definite");
  noise_ += jitter;  // what the factor actually holds, so conditioning updates stay consistent
  alpha_ = L_.triangularView<Eigen::Lower>().solve(y_);
  L_.triangularView<Eigen::Lower>().transpose().solveInPlace(alpha_);
  return Status::ok();
}

void GaussianProcess::posterior(const Eigen::MatrixXd& X, Eigen::VectorXd* mean, Eigen::VectorXd* var) const {
  const int m = static_cast<int>(X.rows());
  mean->resize(m);
  if (var) var->resize(m);
  constexpr int kBlock = 512;
  for (int b = 0; b < m; b += kBlock) {
    int nb = std::min(kBlock, m - b);
    Eigen::MatrixXd Ks = kernel_.matrix(X.middleRows(b, nb), X_);  // nb x n
    mean->segment(b, nb) = Ks * alpha_;
    if (var) {
      Eigen::MatrixXd V = Ks.transpose();
      L_.triangularView<Eigen::Lower>().solveInPlace(V);
      var->segment(b, nb) = (kernel_.signal_variance - V.colwise().squaredNorm().array()).max(1e-12).matrix().transpose();
    }
  }
}

void GaussianProcess::mean_and_variance_bound(const Eigen::MatrixXd& X, Eigen::VectorXd* mean, Eigen::VectorXd* var_ub,
                                              Eigen::VectorXd* mean_err) const {
  const int m = static_cast<int>(X.rows()), n = static_cast<int>(X_.rows()), d = static_cast<int>(X_.cols());
  mean->resize(m);
  var_ub->resize(m);
  if (mean_err) mean_err->resize(m);
  if (m == 0) return;
  const double s2 = kernel_.signal_variance;
  // Conditioning on any subset of the observations leaves a variance at least as large as
  // conditioning on all of them; the k nearest observations (in lengthscale units, i.e. the
  // most correlated) give a tight bound for a 4 x 4 solve per candidate.
  const int k = std::min(internal::kScreenMaxNear, n);
  const Eigen::ArrayXd inv = kernel_.lengthscales.array().inverse();
  const Eigen::MatrixXd Cs = X * inv.matrix().asDiagonal();  // candidates in lengthscale units
  // Observations dimension-major, padded with far-away points of weight 0.
  const int n_pad = (n + internal::kScreenPad - 1) / internal::kScreenPad * internal::kScreenPad;
  std::vector<double> obs(static_cast<size_t>(d) * n_pad, internal::kScreenPadCoord), alpha(n_pad, 0.0);
  double obs_norm = 0;
  for (int j = 0; j < n; ++j) {
    double sq = 0;
    for (int c = 0; c < d; ++c) {
      double v = X_(j, c) * inv[c];
      obs[static_cast<size_t>(c) * n_pad + j] = v;
      sq += v * v;
    }
    obs_norm = std::max(obs_norm, sq);
    alpha[j] = alpha_[j];
  }
  std::vector<int32_t> near_idx(static_cast<size_t>(m) * internal::kScreenMaxNear);
  std::vector<double> near_r2(near_idx.size());
  internal::GpScreenArgs a;
  a.rbf = kernel_.type == KernelType::kRbf;
  a.s2 = s2;
  a.d = d;
  a.obs = obs.data();
  a.alpha = alpha.data();
  a.n = n;
  a.n_pad = n_pad;
  a.cand = Cs.data();
  a.m = m;
  a.ldc = m;
  a.k_near = k;
  a.mean = mean->data();
  a.near_idx = near_idx.data();
  a.near_r2 = near_r2.data();
  internal::gp_screen().run(a);

  if (mean_err) {
    // How far this mean can be from posterior()'s, which forms r2 = |a|^2 + |b|^2 - 2ab by a
    // matrix product: r2 differs by at most 4 (d + 4) eps (|a|^2 + |b|^2) between the two (both
    // roundings), k by at most s2 |f'| <= s2 per unit of r2; the sums of n terms (plus the exp
    // of either path, a few ulp) by at most (n + 64) eps sum |k alpha| <= (n + 64) eps s2 |alpha|_1
    // (0 <= k <= s2); exp flushed to 0 below exp(-700) adds at most 1e-290 s2 |alpha|_1.
    constexpr double eps = std::numeric_limits<double>::epsilon();
    const double cand_norm = Cs.rowwise().squaredNorm().maxCoeff();
    const double r2_err = 4.0 * (d + 4) * eps * (obs_norm + cand_norm);
    mean_err->setConstant(s2 * (r2_err + (n + 64) * eps + 1e-290) * alpha_.lpNorm<1>());
  }
  auto f = [&](double r2) {
    if (kernel_.type == KernelType::kRbf) return s2 * std::exp(-0.5 * r2);
    double r = std::sqrt(r2), s5 = 2.23606797749979 * r;
    return s2 * (1 + s5 + (5.0 / 3.0) * r2) * std::exp(-s5);
  };
  Eigen::Matrix4d A;
  Eigen::Vector4d ks;
  for (int i = 0; i < m; ++i) {
    const int32_t* idx = &near_idx[static_cast<size_t>(i) * internal::kScreenMaxNear];
    const double* r2 = &near_r2[static_cast<size_t>(i) * internal::kScreenMaxNear];
    A.setIdentity();
    ks.setZero();
    for (int t = 0; t < k; ++t) {
      ks[t] = f(r2[t]);
      A(t, t) = s2 + noise_;
      for (int c = 0; c < t; ++c) {
        double q = 0;
        for (int e = 0; e < d; ++e) {
          double v = obs[static_cast<size_t>(e) * n_pad + idx[t]] - obs[static_cast<size_t>(e) * n_pad + idx[c]];
          q += v * v;
        }
        A(t, c) = A(c, t) = f(q);
      }
    }
    Eigen::LLT<Eigen::Matrix4d> llt(A);
    double v = llt.info() == Eigen::Success ? s2 - ks.dot(llt.solve(ks)) : s2 - ks[0] * ks[0] / (s2 + noise_);
    // A small relative margin for the rounding of this 4 x 4 solve and of posterior()'s
    // s2 - |L^-1 k|^2 (both subtract from s2).
    (*var_ub)[i] = std::max(v, 1e-12) + 1e-9 * s2;
  }
}

Eigen::MatrixXd GaussianProcess::posterior_covariance(const Eigen::MatrixXd& X) const {
  Eigen::MatrixXd Ks = kernel_.matrix(X_, X);  // n x m
  L_.triangularView<Eigen::Lower>().solveInPlace(Ks);
  Eigen::MatrixXd C = kernel_.matrix(X, X) - Ks.transpose() * Ks;
  return C;
}

bool GaussianProcess::posterior_gradient(const Eigen::VectorXd& x, double* mean, double* var, Eigen::VectorXd* dmean,
                                         Eigen::VectorXd* dvar) const {
  Eigen::VectorXd ks = kernel_.matrix(x.transpose(), X_).transpose();  // n
  Eigen::MatrixXd dK = kernel_.gradient_wrt_x(x, X_);                  // n x d
  posterior_with_gradient(L_, alpha_, kernel_.signal_variance, ks, dK, mean, var, dmean, dvar);
  return true;
}

std::unique_ptr<Model> GaussianProcess::condition_on(const Eigen::MatrixXd& Xn, const Eigen::VectorXd& yn) const {
  auto gp = std::make_unique<GaussianProcess>(*this);
  // Rank-one extensions of the Cholesky factor: O(n^2) per fantasy instead of O(n^3).
  condition_cholesky(&gp->X_, &gp->y_, &gp->L_, &gp->alpha_, Xn, yn, kernel_.signal_variance + noise_,
                     [&](const Eigen::MatrixXd& A, const auto& b) -> Eigen::VectorXd { return kernel_.matrix(A, b).col(0); });
  return gp;
}

}  // namespace kiln::discover
