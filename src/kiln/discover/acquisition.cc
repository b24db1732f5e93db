#include "kiln/discover/acquisition.h"

#include <Eigen/Cholesky>
#include <algorithm>
#include <cmath>
#include <numeric>

#include "kiln/discover/design.h"

namespace kiln::discover {
namespace {

constexpr double kInvSqrt2 = 0.7071067811865476;
constexpr double kLogSqrt2Pi = 0.9189385332046728;

double log_phi(double z) { return -0.5 * z * z - kLogSqrt2Pi; }

// log Phi(z), stable for very negative z.
double log_Phi(double z) {
  if (z > -20) return std::log(0.5 * std::erfc(-z * kInvSqrt2));
  double t = -z, inv2 = 1 / (t * t);
  return log_phi(z) - std::log(t) + std::log1p(-inv2 + 3 * inv2 * inv2 - 15 * inv2 * inv2 * inv2);
}

double inverse_normal_cdf(double p) {
  static const double a[] = {-3.969683028665376e+01, 2.209460984245205e+02, -2.759285104469687e+02,
                             1.383577518672690e+02, -3.066479806614716e+01, 2.506628277459239e+00};
  static const double b[] = {-5.447609879822406e+01, 1.615858368580409e+02, -1.556989798598866e+02,
                             6.680131188771972e+01, -1.328068155288572e+01};
  static const double c[] = {-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e+00,
                             -2.549732539343734e+00, 4.374664141464968e+00, 2.938163982698783e+00};
  static const double d[] = {7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e+00, 3.754408661907416e+00};
  p = std::clamp(p, 1e-300, 1 - 1e-16);
  double x;
  if (p < 0.02425) {
    double q = std::sqrt(-2 * std::log(p));
    x = (((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) / ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1);
  } else if (p <= 1 - 0.02425) {
    double q = p - 0.5, r = q * q;
    x = (((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * q /
        (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1);
  } else {
    double q = std::sqrt(-2 * std::log1p(-p));
    x = -(((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) / ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1);
  }
  // One Halley step brings Acklam's 1e-9 to full double precision.
  double e = 0.5 * std::erfc(-x * kInvSqrt2) - p;
  double u = e * std::sqrt(2 * M_PI) * std::exp(0.5 * x * x);
  return x - u / (1 + 0.5 * x * u);
}

double best_of(const Model& m) {
  const Eigen::VectorXd& y = m.train_targets();
  return y.size() ? y.maxCoeff() : 0.0;
}

class LogEI final : public Acquisition {
 public:
  LogEI(const Model& m) : m_(m), best_(best_of(m)) {}
  bool analytic() const override { return true; }
  double from_moments(double mu, double var) const override {
    double s = std::sqrt(std::max(var, 1e-18));
    return std::log(s) + log_h((mu - best_) / s);
  }
  double bound(double mu, double var_ub) const override { return from_moments(mu, var_ub); }
  void evaluate(const Eigen::MatrixXd& X, int q, Eigen::VectorXd* out) const override {
    Eigen::VectorXd mu, var;
    m_.posterior(X, &mu, &var);
    out->resize(X.rows());
    for (int i = 0; i < X.rows(); ++i) (*out)[i] = from_moments(mu[i], var[i]);
  }
  bool value_and_gradient(const Eigen::VectorXd& x, double* v, Eigen::VectorXd* g) const override {
    double mu, var;
    Eigen::VectorXd dmu, dvar;
    if (!m_.posterior_gradient(x, &mu, &var, &dmu, &dvar)) return false;
    double s = std::sqrt(var), z = (mu - best_) / s, lh = log_h(z);
    *v = std::log(s) + lh;
    // d logEI/d mu = Phi(z) / (s h(z));  d logEI/d s = phi(z) / (s h(z)).
    double dmu_c = std::exp(log_Phi(z) - lh) / s, ds_c = std::exp(log_phi(z) - lh) / s;
    *g = dmu_c * dmu + ds_c * dvar / (2 * s);
    return true;
  }

 private:
  const Model& m_;
  double best_;
};

class UCB final : public Acquisition {
 public:
  UCB(const Model& m, double beta) : m_(m), k_(std::sqrt(beta)) {}
  bool analytic() const override { return true; }
  double from_moments(double mu, double var) const override { return mu + k_ * std::sqrt(std::max(var, 0.0)); }
  double bound(double mu, double var_ub) const override { return from_moments(mu, var_ub); }
  void evaluate(const Eigen::MatrixXd& X, int q, Eigen::VectorXd* out) const override {
    Eigen::VectorXd mu, var;
    m_.posterior(X, &mu, &var);
    *out = mu + k_ * var.cwiseSqrt();
  }
  bool value_and_gradient(const Eigen::VectorXd& x, double* v, Eigen::VectorXd* g) const override {
    double mu, var;
    Eigen::VectorXd dmu, dvar;
    if (!m_.posterior_gradient(x, &mu, &var, &dmu, &dvar)) return false;
    double s = std::sqrt(var);
    *v = mu + k_ * s;
    *g = dmu + k_ * dvar / (2 * s);
    return true;
  }

 private:
  const Model& m_;
  double k_;
};

class LogPI final : public Acquisition {
 public:
  LogPI(const Model& m) : m_(m), best_(best_of(m)) {}
  bool analytic() const override { return true; }
  double from_moments(double mu, double var) const override {
    return log_Phi((mu - best_) / std::sqrt(std::max(var, 1e-18)));
  }
  void evaluate(const Eigen::MatrixXd& X, int q, Eigen::VectorXd* out) const override {
    Eigen::VectorXd mu, var;
    m_.posterior(X, &mu, &var);
    out->resize(X.rows());
    for (int i = 0; i < X.rows(); ++i) (*out)[i] = from_moments(mu[i], var[i]);
  }
  bool value_and_gradient(const Eigen::VectorXd& x, double* v, Eigen::VectorXd* g) const override {
    double mu, var;
    Eigen::VectorXd dmu, dvar;
    if (!m_.posterior_gradient(x, &mu, &var, &dmu, &dvar)) return false;
    double s = std::sqrt(var), z = (mu - best_) / s;
    *v = log_Phi(z);
    double r = std::exp(log_phi(z) - *v);  // phi / Phi
    *g = r * (dmu / s - z * dvar / (2 * var));
    return true;
  }

 private:
  const Model& m_;
  double best_;
};

class Thompson final : public Acquisition {
 public:
  Thompson(const Model& m, uint64_t seed) : m_(m), seed_(seed) {}
  void evaluate(const Eigen::MatrixXd& X, int q, Eigen::VectorXd* out) const override {
    Eigen::VectorXd mu, var;
    m_.posterior(X, &mu, &var);
    Eigen::MatrixXd C = m_.posterior_covariance(X);
    C.diagonal().array() += 1e-9 * std::max(1.0, C.diagonal().maxCoeff());
    Eigen::LDLT<Eigen::MatrixXd> ldlt(C);
    Eigen::MatrixXd z = normal_base_samples(1, static_cast<int>(X.rows()), seed_).transpose();
    Eigen::VectorXd d = ldlt.vectorD().cwiseMax(0).cwiseSqrt();
    Eigen::VectorXd w = ldlt.matrixL() * (d.asDiagonal() * z.col(0));
    *out = mu + (ldlt.transpositionsP().transpose() * w);
  }

 private:
  const Model& m_;
  uint64_t seed_;
};

class QEI final : public Acquisition {
 public:
  QEI(const Model& m, int samples, uint64_t seed) : m_(m), best_(best_of(m)), samples_(samples), seed_(seed) {}
  void evaluate(const Eigen::MatrixXd& X, int q, Eigen::VectorXd* out) const override {
    int b = static_cast<int>(X.rows()) / q;
    out->resize(b);
    Eigen::MatrixXd Z = normal_base_samples(samples_, q, seed_);
    for (int i = 0; i < b; ++i) {
      Eigen::MatrixXd Xi = X.middleRows(i * q, q);
      Eigen::VectorXd mu, var;
      m_.posterior(Xi, &mu, &var);
      Eigen::MatrixXd C = m_.posterior_covariance(Xi);
      C.diagonal().array() += 1e-9;
      Eigen::LLT<Eigen::MatrixXd> llt(C);
      Eigen::MatrixXd L = llt.info() == Eigen::Success ? Eigen::MatrixXd(llt.matrixL())
                                                       : Eigen::MatrixXd(var.cwiseMax(0).cwiseSqrt().asDiagonal());
      double acc = 0;
      for (int s = 0; s < samples_; ++s) {
        Eigen::VectorXd f = mu + L * Z.row(s).transpose();
        acc += std::max(f.maxCoeff() - best_, 0.0);
      }
      (*out)[i] = acc / samples_;
    }
  }

 private:
  const Model& m_;
  double best_;
  int samples_;
  uint64_t seed_;
};

class EHVI final : public Acquisition {
 public:
  EHVI(std::vector<const Model*> models, Eigen::VectorXd ref, int samples, uint64_t seed)
      : models_(std::move(models)), ref_(std::move(ref)), samples_(samples) {
    int m = static_cast<int>(models_.size());
    int n = models_[0]->num_train();
    Eigen::MatrixXd Y(n, m);
    for (int j = 0; j < m; ++j) Y.col(j) = models_[j]->train_targets().head(n);
    if (ref_.size() != m) {
      ref_.resize(m);
      for (int j = 0; j < m; ++j) {
        double lo = Y.col(j).minCoeff(), hi = Y.col(j).maxCoeff();
        ref_[j] = lo - 0.1 * std::max(hi - lo, 1e-6);
      }
    }
    for (int i : pareto_front(Y)) front_.push_back(Y.row(i).transpose());
    Eigen::MatrixXd F(front_.size(), m);
    for (size_t i = 0; i < front_.size(); ++i) F.row(i) = front_[i].transpose();
    hv0_ = hypervolume(F, ref_);
    Z_ = normal_base_samples(samples_, m, seed);
  }
  void evaluate(const Eigen::MatrixXd& X, int q, Eigen::VectorXd* out) const override {
    const int m = static_cast<int>(models_.size()), n = static_cast<int>(X.rows());
    Eigen::MatrixXd mu(n, m), sd(n, m);
    for (int j = 0; j < m; ++j) {
      Eigen::VectorXd a, v;
      models_[j]->posterior(X, &a, &v);
      mu.col(j) = a;
      sd.col(j) = v.cwiseMax(0).cwiseSqrt();
    }
    out->resize(n);
    Eigen::MatrixXd F(front_.size() + 1, m);
    for (size_t i = 0; i < front_.size(); ++i) F.row(i) = front_[i].transpose();
    for (int i = 0; i < n; ++i) {
      double acc = 0;
      for (int s = 0; s < samples_; ++s) {
        Eigen::VectorXd y = mu.row(i).transpose() + sd.row(i).transpose().cwiseProduct(Z_.row(s).transpose());
        // Quick reject: a sample dominated by the front, or not above the reference, adds nothing.
        bool above = (y.array() > ref_.array()).all();
        if (!above) continue;
        bool dominated = false;
        for (const auto& p : front_)
          if ((p.array() >= y.array()).all()) { dominated = true; break; }
        if (dominated) continue;
        F.row(front_.size()) = y.transpose();
        acc += hypervolume(F, ref_) - hv0_;
      }
      (*out)[i] = acc / samples_;
    }
  }

 private:
  std::vector<const Model*> models_;
  Eigen::VectorXd ref_;
  int samples_;
  std::vector<Eigen::VectorXd> front_;
  double hv0_ = 0;
  Eigen::MatrixXd Z_;
};

}  // namespace

const char* acquisition_name(AcquisitionKind k) {
  switch (k) {
    case AcquisitionKind::kLogEI: return "logei";
    case AcquisitionKind::kUCB: return "ucb";
    case AcquisitionKind::kLogPI: return "pi";
    case AcquisitionKind::kThompson: return "thompson";
    case AcquisitionKind::kQEI: return "qei";
    case AcquisitionKind::kEHVI: return "ehvi";
  }
  return "?";
}

Result<AcquisitionKind> parse_acquisition(std::string_view s) {
  for (AcquisitionKind k : {AcquisitionKind::kLogEI, AcquisitionKind::kUCB, AcquisitionKind::kLogPI, AcquisitionKind::kThompson,
                            AcquisitionKind::kQEI, AcquisitionKind::kEHVI})
    if (s == acquisition_name(k)) return k;
  if (s == "ei" || s == "log_ei") return AcquisitionKind::kLogEI;
  if (s == "logpi") return AcquisitionKind::kLogPI;
  if (s == "ts") return AcquisitionKind::kThompson;
  return Status::invalid("unknown acquisition '", std::string(s), "' (logei, ucb, pi, thompson, qei, ehvi)");
}

Status AcquisitionSpec::validate(int num_models) const {
  if (!(ucb_beta >= 0) || !std::isfinite(ucb_beta)) return Status::invalid("ucb beta must be >= 0");
  if (mc_samples < 1 || mc_samples > 100000) return Status::invalid("mc_samples must be in [1, 100000]");
  if (num_models < 1) return Status::invalid("an acquisition needs a model");
  if (kind == AcquisitionKind::kEHVI && (num_models < 2 || num_models > 3))
    return Status::invalid("EHVI needs 2 or 3 objectives, got ", num_models);
  if (kind != AcquisitionKind::kEHVI && num_models != 1)
    return Status::invalid(acquisition_name(kind), " takes one objective; use ehvi or parego for ", num_models);
  if (ref_point.size() && ref_point.size() != num_models) return Status::invalid("ref_point needs one value per objective");
  return Status::ok();
}

Result<std::unique_ptr<Acquisition>> make_acquisition(const AcquisitionSpec& spec, const std::vector<const Model*>& models) {
  KILN_RETURN_IF_ERROR(spec.validate(static_cast<int>(models.size())));
  const Model& m = *models[0];
  std::unique_ptr<Acquisition> a;
  switch (spec.kind) {
    case AcquisitionKind::kLogEI: a = std::make_unique<LogEI>(m); break;
    case AcquisitionKind::kUCB: a = std::make_unique<UCB>(m, spec.ucb_beta); break;
    case AcquisitionKind::kLogPI: a = std::make_unique<LogPI>(m); break;
    case AcquisitionKind::kThompson: a = std::make_unique<Thompson>(m, spec.seed); break;
    case AcquisitionKind::kQEI: a = std::make_unique<QEI>(m, spec.mc_samples, spec.seed); break;
    case AcquisitionKind::kEHVI: a = std::make_unique<EHVI>(models, spec.ref_point, spec.mc_samples, spec.seed); break;
  }
  return a;
}

double log_h(double z) {
  if (z > -1) {
    double h = std::exp(log_phi(z)) + z * 0.5 * std::erfc(-z * kInvSqrt2);
    return std::log(std::max(h, 1e-300));
  }
  // h(z) = phi(z) * (1 - t * m(t)), t = -z, m(t) = Phi(-t)/phi(t) = sqrt(pi/2) erfcx(t/sqrt2).
  double t = -z;
  double one_minus;
  if (t < 25) {
    double x = t * kInvSqrt2;
    double erfcx = std::exp(x * x) * std::erfc(x);
    one_minus = 1 - t * std::sqrt(M_PI / 2) * erfcx;
  } else {
    double inv2 = 1 / (t * t);
    one_minus = inv2 * (1 - 3 * inv2 + 15 * inv2 * inv2);
  }
  return log_phi(z) + std::log(std::max(one_minus, 1e-300));
}

double hypervolume(const Eigen::MatrixXd& P, const Eigen::VectorXd& ref) {
  const int m = static_cast<int>(ref.size());
  std::vector<Eigen::VectorXd> pts;
  for (int i = 0; i < P.rows(); ++i)
    if ((P.row(i).transpose().array() > ref.array()).all()) pts.push_back(P.row(i).transpose());
  if (pts.empty()) return 0;
  if (m == 1) {
    double b = ref[0];
    for (auto& p : pts) b = std::max(b, p[0]);
    return b - ref[0];
  }
  if (m == 2) {
    std::sort(pts.begin(), pts.end(), [](const auto& a, const auto& b) { return a[0] > b[0]; });
    double hv = 0, ymax = ref[1];
    for (auto& p : pts) {
      if (p[1] > ymax) {
        hv += (p[0] - ref[0]) * (p[1] - ymax);
        ymax = p[1];
      }
    }
    return hv;
  }
  // Three objectives: slice along the third, sum 2-D hypervolumes of the points above each slice.
  std::sort(pts.begin(), pts.end(), [](const auto& a, const auto& b) { return a[2] > b[2]; });
  double hv = 0;
  Eigen::VectorXd ref2 = ref.head(2);
  for (size_t i = 0; i < pts.size(); ++i) {
    double lo = i + 1 < pts.size() ? pts[i + 1][2] : ref[2];
    if (pts[i][2] <= lo) continue;
    Eigen::MatrixXd S(i + 1, 2);
    for (size_t j = 0; j <= i; ++j) S.row(j) = pts[j].head(2).transpose();
    hv += hypervolume(S, ref2) * (pts[i][2] - lo);
  }
  return hv;
}

std::vector<int> pareto_front(const Eigen::MatrixXd& Y) {
  std::vector<int> out;
  for (int i = 0; i < Y.rows(); ++i) {
    bool dominated = false;
    for (int j = 0; j < Y.rows() && !dominated; ++j) {
      if (j == i) continue;
      bool ge = (Y.row(j).array() >= Y.row(i).array()).all();
      bool gt = (Y.row(j).array() > Y.row(i).array()).any();
      // Exact duplicates: keep the first.
      dominated = ge && (gt || j < i);
    }
    if (!dominated) out.push_back(i);
  }
  return out;
}

Eigen::MatrixXd normal_base_samples(int n, int q, uint64_t seed) {
  Eigen::MatrixXd U = sobol(n, q, seed);
  return U.unaryExpr([](double u) { return inverse_normal_cdf(std::clamp(u, 1e-12, 1 - 1e-12)); });
}

}  // namespace kiln::discover
