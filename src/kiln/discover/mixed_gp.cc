#include "kiln/discover/mixed_gp.h"


#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>

#include "kiln/discover/internal/fit_subset.h"
#include "kiln/discover/internal/gp_posterior.h"
#include "kiln/discover/internal/map_fit_nlopt.h"

namespace kiln::discover {
namespace {

constexpr double kLog2Pi = 1.8378770664093453;
constexpr double kSqrt5 = 2.23606797749979;
const double kLogLsLo = std::log(1e-2), kLogLsHi = std::log(1e2);
const double kLogSigLo = std::log(1e-2), kLogSigHi = std::log(1e2);
const double kLogNoiseLo = std::log(1e-6), kLogNoiseHi = std::log(2.0);
constexpr double kLogitLo = -6, kLogitHi = 6;
constexpr double kLsPriorSd = 1.7320508075688772;  // sqrt(3), as the GP's
constexpr double kSigPriorSd = 1.0, kNoisePriorMean = -4.0, kNoisePriorSd = 1.0, kLogitPriorSd = 1.5;
constexpr double kWarpPriorSd = 0.8660254037844386;  // sqrt(0.75), BoTorch's Warp prior
const double kLogWarpLo = std::log(0.1), kLogWarpHi = std::log(10.0);
constexpr double kWarpEps = 1e-6;  // features are mapped to [eps, 1 - eps] before the CDF

// Kumaraswamy CDF F = 1 - (1 - t^a)^b of t = eps + (1 - 2 eps) x, and dF/d(log a), dF/d(log b), dF/dx.
inline void kumaraswamy(double x, double a, double b, double* F, double* dla, double* dlb, double* dx) {
  const bool inside = x >= 0 && x <= 1;
  const double t = kWarpEps + (1 - 2 * kWarpEps) * std::clamp(x, 0.0, 1.0);
  const double lt = std::log(t), ta = std::exp(a * lt), om = std::max(1 - ta, 1e-300), lom = std::log(om);
  const double omb = std::exp(b * lom), omb1 = omb / om;
  *F = 1 - omb;
  if (dla) *dla = a * b * omb1 * ta * lt;
  if (dlb) *dlb = -b * omb * lom;
  if (dx) *dx = inside ? (1 - 2 * kWarpEps) * a * b * (ta / t) * omb1 : 0.0;
}

double ls_prior_mean(int g) { return std::sqrt(2.0) + 0.5 * std::log(std::max(g, 1)); }

// f(r) as a function of q = r^2 and P(q) = -2 df/dq (so that dk/d(log l_j) = s2 P u_j^2).
inline void f_and_p(KernelType t, double q, double* f, double* p) {
  if (t == KernelType::kRbf) {
    *f = *p = std::exp(-0.5 * q);
    return;
  }
  const double r = std::sqrt(std::max(q, 0.0)), e = std::exp(-kSqrt5 * r);
  *f = (1 + kSqrt5 * r + (5.0 / 3.0) * q) * e;
  *p = (5.0 / 3.0) * (1 + kSqrt5 * r) * e;
}

double sigmoid(double x) { return 1.0 / (1.0 + std::exp(-x)); }

int count_groups(const std::vector<int>& g, int d) { return g.empty() ? d : *std::max_element(g.begin(), g.end()) + 1; }

// Squared distance between row i of A and row k of B, summed per kernel component: qc[comp[j]].
inline void component_distances(const Eigen::MatrixXd& A, int i, const Eigen::MatrixXd& B, int k,
                                const std::vector<int>& comp, std::vector<double>& qc) {
  std::fill(qc.begin(), qc.end(), 0.0);
  for (int j = 0; j < static_cast<int>(A.cols()); ++j) {
    const double u = A(i, j) - B(k, j);
    qc[comp[j]] += u * u;
  }
}

// K (m x n) of the mixed kernel between As and Bs (already divided by the lengthscales).
Eigen::MatrixXd mixed_matrix(KernelType t, const Eigen::MatrixXd& As, const Eigen::MatrixXd& Bs, const std::vector<int>& comp, int C,
                             double s2, double w) {
  const int m = static_cast<int>(As.rows()), n = static_cast<int>(Bs.rows());
  Eigen::MatrixXd K(m, n);
  std::vector<double> qc(C);
  const double wa = w < 1 ? (1 - w) / C : 0.0;
  for (int i = 0; i < m; ++i)
    for (int k = 0; k < n; ++k) {
      component_distances(As, i, Bs, k, comp, qc);
      double q = 0, add = 0, f, p;
      for (int c = 0; c < C; ++c) {
        q += qc[c];
        if (wa == 0) continue;
        f_and_p(t, qc[c], &f, &p);
        add += f;
      }
      f_and_p(t, q, &f, &p);
      K(i, k) = s2 * (w * f + wa * add);
    }
  return K;
}

std::vector<int> identity_groups(int d) {
  std::vector<int> g(d);
  std::iota(g.begin(), g.end(), 0);
  return g;
}

struct FitData {
  const Eigen::MatrixXd* X;
  const Eigen::VectorXd* y;
  KernelType kernel;
  const std::vector<int>* groups;
  const std::vector<int>* comp;
  const std::vector<int>* warped;
  double best = -INFINITY;
  Eigen::VectorXd best_theta;
};

double objective(unsigned n, const double* x, double* grad, void* data) {
  FitData* fd = static_cast<FitData*>(data);
  Eigen::VectorXd theta = Eigen::Map<const Eigen::VectorXd>(x, n), g;
  double v = mixed_gp_log_posterior(*fd->X, *fd->y, fd->kernel, *fd->groups, *fd->comp, *fd->warped, theta, grad ? &g : nullptr);
  return negate_for_nlopt(v, g, theta, n, grad, &fd->best, &fd->best_theta);
}

bool jittered_cholesky(Eigen::MatrixXd K, Eigen::MatrixXd* L, double* jitter_used) {
  double jitter = 1e-8;
  for (int attempt = 0; attempt < 6; ++attempt, jitter *= 10) {
    Eigen::MatrixXd A = K;
    A.diagonal().array() += jitter;
    Eigen::LLT<Eigen::MatrixXd> llt(A);
    if (llt.info() == Eigen::Success) {
      *L = llt.matrixL();
      *jitter_used = jitter;
      return true;
    }
  }
  return false;
}

}  // namespace

Status MixedGpOptions::validate(int d) const {
  if (restarts < 0 || restarts > 100) return Status::invalid("mixed GP restarts must be in [0, 100], got ", restarts);
  if (max_evals < 1) return Status::invalid("mixed GP max_evals must be >= 1");
  if (max_fit_points < 8) return Status::invalid("mixed GP max_fit_points must be >= 8");
  for (const std::vector<int>* v : {&ls_groups, &components}) {
    if (v->empty()) continue;
    if (static_cast<int>(v->size()) != d) return Status::invalid("mixed GP: ", v->size(), " group entries for ", d, " features");
    std::vector<char> used(d, 0);
    for (int g : *v) {
      if (g < 0 || g >= d) return Status::invalid("mixed GP: group ", g, " out of range");
      used[g] = 1;
    }
    const int G = count_groups(*v, d);
    for (int g = 0; g < G; ++g)
      if (!used[g]) return Status::invalid("mixed GP: group ", g, " has no feature");
  }
  return Status::ok();
}

double mixed_gp_log_posterior(const Eigen::MatrixXd& X, const Eigen::VectorXd& y, KernelType kernel,
                              const std::vector<int>& ls_groups, const std::vector<int>& components,
                              const std::vector<int>& warped, const Eigen::VectorXd& theta, Eigen::VectorXd* grad) {
  const int n = static_cast<int>(X.rows()), d = static_cast<int>(X.cols());
  const std::vector<int> gid = ls_groups.empty() ? identity_groups(d) : ls_groups;
  const bool additive = !components.empty();
  const std::vector<int> comp = additive ? components : std::vector<int>(d, 0);
  const int G = count_groups(gid, d), C = additive ? count_groups(comp, d) : 1;
  const int P0 = G + 2 + (additive ? 1 : 0), nw = static_cast<int>(warped.size());
  const double s2 = std::exp(theta[G]), noise = std::exp(theta[G + 1]), w = additive ? sigmoid(theta[G + 2]) : 1.0;
  Eigen::VectorXd inv(d);
  for (int j = 0; j < d; ++j) inv[j] = std::exp(-theta[gid[j]]);
  Eigen::MatrixXd Xw = X, dA(n, nw), dB(n, nw);
  for (int k = 0; k < nw; ++k) {
    const int j = warped[k];
    const double a = std::exp(theta[P0 + 2 * k]), b = std::exp(theta[P0 + 2 * k + 1]);
    for (int i = 0; i < n; ++i) kumaraswamy(X(i, j), a, b, &Xw(i, j), &dA(i, k), &dB(i, k), nullptr);
  }
  const Eigen::MatrixXd Xs = Xw * inv.asDiagonal();
  Eigen::MatrixXd Kf(n, n), Kadd(n, n), Kjoint(n, n), Pj(n, n);
  std::vector<Eigen::MatrixXd> Pc(C, Eigen::MatrixXd(n, n));
  std::vector<double> qc(C);
  const double wa = additive ? (1 - w) / C : 0.0;
  for (int i = 0; i < n; ++i)
    for (int k = 0; k <= i; ++k) {
      component_distances(Xs, i, Xs, k, comp, qc);
      double q = 0, add = 0, f, p;
      for (int c = 0; c < C; ++c) {
        q += qc[c];
        if (!additive) continue;
        f_and_p(kernel, qc[c], &f, &p);
        add += f;
        Pc[c](i, k) = Pc[c](k, i) = p;
      }
      f_and_p(kernel, q, &f, &p);
      Kjoint(i, k) = Kjoint(k, i) = f;
      Kadd(i, k) = Kadd(k, i) = add / C;
      Pj(i, k) = Pj(k, i) = p;
      Kf(i, k) = Kf(k, i) = s2 * (w * f + wa * add);
    }
  Eigen::MatrixXd K = Kf;
  K.diagonal().array() += noise + 1e-8;
  Eigen::LLT<Eigen::MatrixXd> llt(K);
  if (llt.info() != Eigen::Success) return -INFINITY;
  const Eigen::MatrixXd& L = llt.matrixLLT();
  Eigen::VectorXd alpha = llt.solve(y);
  double v = -0.5 * y.dot(alpha) - L.diagonal().array().log().sum() - 0.5 * n * kLog2Pi;
  const double mu = ls_prior_mean(G);
  for (int g = 0; g < G; ++g) v -= 0.5 * std::pow((theta[g] - mu) / kLsPriorSd, 2);
  v -= 0.5 * std::pow(theta[G] / kSigPriorSd, 2);
  v -= 0.5 * std::pow((theta[G + 1] - kNoisePriorMean) / kNoisePriorSd, 2);
  if (additive) v -= 0.5 * std::pow(theta[G + 2] / kLogitPriorSd, 2);
  for (int i = 0; i < 2 * nw; ++i) v -= 0.5 * std::pow(theta[P0 + i] / kWarpPriorSd, 2);
  if (grad) {
    grad->setZero(P0 + 2 * nw);
    Eigen::MatrixXd W = Eigen::MatrixXd::Identity(n, n);
    llt.solveInPlace(W);
    W = -W;
    W.noalias() += alpha * alpha.transpose();
    std::vector<int> warp_index(d, -1);
    for (int k = 0; k < nw; ++k) warp_index[warped[k]] = k;
    // Lengthscales: dK/d(log l_j) = M o U_j^2 with M = s2 W o (w Pj + wa Pc[c(j)]) and U_j the
    // scaled differences; warp parameters: dK/dt = -M o U_j o V_j, V_j the scaled differences of dF/dt.
    const Eigen::MatrixXd WPj = W.cwiseProduct(Pj);
    for (int c = 0; c < C; ++c) {
      Eigen::MatrixXd M = s2 * w * WPj;
      if (additive) M += s2 * wa * W.cwiseProduct(Pc[c]);
      const Eigen::VectorXd rows = M.rowwise().sum();
      for (int j = 0; j < d; ++j) {
        if (comp[j] != c) continue;
        const Eigen::VectorXd xj = Xs.col(j), Mx = M * xj;
        // sum_ik M_ik (x_i - x_k)^2 = 2 sum_i x_i^2 rows_i - 2 x^T M x
        const double t = 2.0 * xj.array().square().matrix().dot(rows) - 2.0 * xj.dot(Mx);
        (*grad)[gid[j]] += 0.5 * t;
        if (const int k = warp_index[j]; k >= 0) {
          for (int e = 0; e < 2; ++e) {
            const Eigen::VectorXd vj = (e == 0 ? dA.col(k) : dB.col(k)) * inv[j];
            // -0.5 sum_ik M_ik (u_i - u_k)(v_i - v_k) = -(sum_i u_i v_i rows_i - v^T M u)
            (*grad)[P0 + 2 * k + e] -= xj.cwiseProduct(vj).dot(rows) - vj.dot(Mx);
          }
        }
      }
    }
    (*grad)[G] = 0.5 * W.cwiseProduct(Kf).sum();
    (*grad)[G + 1] = 0.5 * noise * W.trace();
    if (additive) (*grad)[G + 2] = 0.5 * s2 * w * (1 - w) * W.cwiseProduct(Kjoint - Kadd).sum();
    for (int g = 0; g < G; ++g) (*grad)[g] -= (theta[g] - mu) / (kLsPriorSd * kLsPriorSd);
    (*grad)[G] -= theta[G] / (kSigPriorSd * kSigPriorSd);
    (*grad)[G + 1] -= (theta[G + 1] - kNoisePriorMean) / (kNoisePriorSd * kNoisePriorSd);
    if (additive) (*grad)[G + 2] -= theta[G + 2] / (kLogitPriorSd * kLogitPriorSd);
    for (int i = 0; i < 2 * nw; ++i) (*grad)[P0 + i] -= theta[P0 + i] / (kWarpPriorSd * kWarpPriorSd);
  }
  return v;
}

Result<MixedGp> MixedGp::fit(const Eigen::MatrixXd& X, const Eigen::VectorXd& y, const MixedGpOptions& o) {
  const int n = static_cast<int>(X.rows()), d = static_cast<int>(X.cols());
  if (n < 1 || y.size() != n) return Status::invalid("mixed GP fit needs at least one observation and one target per row");
  if (d < 1) return Status::invalid("mixed GP fit needs at least one feature");
  if (!X.allFinite() || !y.allFinite()) return Status::invalid("mixed GP fit: features or targets are not finite");
  KILN_RETURN_IF_ERROR(o.validate(d));
  const std::vector<int> gid = o.ls_groups.empty() ? identity_groups(d) : o.ls_groups;
  const bool additive = !o.components.empty();
  const std::vector<int> comp = additive ? o.components : std::vector<int>(d, 0);
  const int G = count_groups(gid, d), C = additive ? count_groups(comp, d) : 1;
  const int P0 = G + 2 + (additive ? 1 : 0), nw = static_cast<int>(o.warped.size());

  MixedGp gp;
  gp.transform_.fit(y, o.warp_outputs);
  const Eigen::VectorXd ym = gp.transform_.forward(y);
  std::mt19937_64 rng(o.seed * 0x9E3779B97F4A7C15ull + 13);
  Eigen::MatrixXd Xs;
  Eigen::VectorXd ys;
  fit_subset(X, ym, o.max_fit_points, rng, &Xs, &ys);

  const int np = P0 + 2 * nw;
  std::vector<double> lo(np, kLogLsLo), hi(np, kLogLsHi);
  lo[G] = kLogSigLo;
  hi[G] = kLogSigHi;
  lo[G + 1] = kLogNoiseLo;
  hi[G + 1] = kLogNoiseHi;
  if (additive) {
    lo[G + 2] = kLogitLo;
    hi[G + 2] = kLogitHi;
  }
  for (int i = P0; i < np; ++i) {
    lo[i] = kLogWarpLo;
    hi[i] = kLogWarpHi;
  }
  const double mu = ls_prior_mean(G);
  std::vector<std::vector<double>> starts;
  std::vector<double> centre(np, 0.0);
  for (int i = 0; i < G; ++i) centre[i] = std::clamp(mu, kLogLsLo, kLogLsHi);
  centre[G + 1] = kNoisePriorMean;
  starts.push_back(centre);
  std::normal_distribution<double> nd(0, 1);
  for (int r = 0; r < o.restarts; ++r) {
    std::vector<double> s(np);
    for (int i = 0; i < G; ++i) s[i] = std::clamp(mu + kLsPriorSd * nd(rng), lo[i], hi[i]);
    s[G] = std::clamp(kSigPriorSd * nd(rng), lo[G], hi[G]);
    s[G + 1] = std::clamp(kNoisePriorMean + kNoisePriorSd * nd(rng), lo[G + 1], hi[G + 1]);
    if (additive) s[G + 2] = std::clamp(kLogitPriorSd * nd(rng), lo[G + 2], hi[G + 2]);
    for (int i = P0; i < np; ++i) s[i] = std::clamp(kWarpPriorSd * nd(rng), lo[i], hi[i]);
    starts.push_back(s);
  }
  FitData fd{&Xs, &ys, o.kernel, &gid, &o.components, &o.warped, -INFINITY, Eigen::VectorXd()};
  run_lbfgs_starts(lo, hi, objective, &fd, o.max_evals, starts);
  if (!std::isfinite(fd.best)) return Status::invalid("mixed GP fit: the covariance matrix is singular for every hyperparameter start");

  const Eigen::VectorXd& t = fd.best_theta;
  gp.kernel_ = o.kernel;
  gp.comp_ = comp;
  gp.num_comp_ = C;
  gp.ls_.resize(d);
  for (int j = 0; j < d; ++j) gp.ls_[j] = std::exp(t[gid[j]]);
  gp.s2_ = std::exp(t[G]);
  gp.noise_ = std::exp(t[G + 1]);
  gp.w_ = additive ? sigmoid(t[G + 2]) : 1.0;
  gp.warped_ = o.warped;
  gp.wa_.resize(nw);
  gp.wb_.resize(nw);
  for (int k = 0; k < nw; ++k) {
    gp.wa_[k] = std::exp(t[P0 + 2 * k]);
    gp.wb_[k] = std::exp(t[P0 + 2 * k + 1]);
  }
  gp.lml_ = fd.best;
  gp.X_ = X;
  gp.y_ = ym;
  Eigen::MatrixXd K = gp.covariance(X, X);
  K.diagonal().array() += gp.noise_;
  double jitter = 0;
  if (!jittered_cholesky(K, &gp.L_, &jitter)) return Status::invalid("mixed GP: the covariance matrix is not positive definite");
  gp.noise_ += jitter;
  gp.alpha_ = gp.L_.triangularView<Eigen::Lower>().solve(gp.y_);
  gp.L_.triangularView<Eigen::Lower>().transpose().solveInPlace(gp.alpha_);
  return gp;
}

Eigen::MatrixXd MixedGp::warp_inputs(const Eigen::MatrixXd& X) const {
  Eigen::MatrixXd Xw = X;
  for (size_t k = 0; k < warped_.size(); ++k)
    for (int i = 0; i < X.rows(); ++i) kumaraswamy(X(i, warped_[k]), wa_[k], wb_[k], &Xw(i, warped_[k]), nullptr, nullptr, nullptr);
  return Xw;
}

Eigen::MatrixXd MixedGp::covariance(const Eigen::MatrixXd& A, const Eigen::MatrixXd& B) const {
  const Eigen::VectorXd inv = ls_.array().inverse().matrix();
  if (warped_.empty()) return mixed_matrix(kernel_, A * inv.asDiagonal(), B * inv.asDiagonal(), comp_, num_comp_, s2_, w_);
  return mixed_matrix(kernel_, warp_inputs(A) * inv.asDiagonal(), warp_inputs(B) * inv.asDiagonal(), comp_, num_comp_, s2_, w_);
}

void MixedGp::posterior(const Eigen::MatrixXd& X, Eigen::VectorXd* mean, Eigen::VectorXd* var) const {
  const int m = static_cast<int>(X.rows());
  mean->resize(m);
  if (var) var->resize(m);
  constexpr int kBlock = 512;
  for (int b = 0; b < m; b += kBlock) {
    const int nb = std::min(kBlock, m - b);
    Eigen::MatrixXd Ks = covariance(X.middleRows(b, nb), X_);
    mean->segment(b, nb) = Ks * alpha_;
    if (var) {
      Eigen::MatrixXd V = Ks.transpose();
      L_.triangularView<Eigen::Lower>().solveInPlace(V);
      var->segment(b, nb) = (s2_ - V.colwise().squaredNorm().array()).max(1e-12).matrix().transpose();
    }
  }
}

Eigen::MatrixXd MixedGp::posterior_covariance(const Eigen::MatrixXd& X) const {
  Eigen::MatrixXd Ks = covariance(X_, X);
  L_.triangularView<Eigen::Lower>().solveInPlace(Ks);
  return covariance(X, X) - Ks.transpose() * Ks;
}

bool MixedGp::posterior_gradient(const Eigen::VectorXd& x, double* mean, double* var, Eigen::VectorXd* dmean,
                                 Eigen::VectorXd* dvar) const {
  const int n = static_cast<int>(X_.rows()), d = static_cast<int>(X_.cols()), C = num_comp_;
  Eigen::VectorXd ks(n);
  Eigen::MatrixXd dK(n, d);
  std::vector<double> qc(C), pc(C, 0.0);
  const double wa = w_ < 1 ? (1 - w_) / C : 0.0;
  // Warped coordinates of x and of the observations, and dF/dx at x (1 where not warped).
  Eigen::VectorXd xw = x, slope = Eigen::VectorXd::Ones(d);
  for (size_t k = 0; k < warped_.size(); ++k) kumaraswamy(x[warped_[k]], wa_[k], wb_[k], &xw[warped_[k]], nullptr, nullptr, &slope[warped_[k]]);
  const Eigen::MatrixXd Xw = warp_inputs(X_);
  for (int i = 0; i < n; ++i) {
    std::fill(qc.begin(), qc.end(), 0.0);
    for (int j = 0; j < d; ++j) {
      const double u = (xw[j] - Xw(i, j)) / ls_[j];
      qc[comp_[j]] += u * u;
    }
    double q = 0, add = 0, f, p;
    for (int c = 0; c < C; ++c) {
      q += qc[c];
      if (wa == 0) continue;
      f_and_p(kernel_, qc[c], &f, &pc[c]);
      add += f;
    }
    f_and_p(kernel_, q, &f, &p);
    ks[i] = s2_ * (w_ * f + wa * add);
    // dk/dx_j = -s2 (w P + wa P_c(j)) (F(x_j) - F(X_ij)) F'(x_j) / l_j^2
    for (int j = 0; j < d; ++j)
      dK(i, j) = -s2_ * (w_ * p + wa * pc[comp_[j]]) * (xw[j] - Xw(i, j)) * slope[j] / (ls_[j] * ls_[j]);
  }
  posterior_with_gradient(L_, alpha_, s2_, ks, dK, mean, var, dmean, dvar);
  return true;
}

std::unique_ptr<Model> MixedGp::condition_on(const Eigen::MatrixXd& Xn, const Eigen::VectorXd& yn) const {
  auto gp = std::make_unique<MixedGp>(*this);
  condition_cholesky(&gp->X_, &gp->y_, &gp->L_, &gp->alpha_, Xn, yn, s2_ + noise_,
                     [&](const Eigen::MatrixXd& A, const auto& b) -> Eigen::VectorXd { return covariance(A, b).col(0); });
  return gp;
}

}  // namespace kiln::discover
