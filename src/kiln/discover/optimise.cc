#include "kiln/discover/optimise.h"

#include <nlopt.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>

#include "kiln/discover/gp.h"

namespace kiln::discover {
namespace {

constexpr double kInvSqrt2 = 0.7071067811865476;

std::vector<const Model*> ptrs(const std::vector<std::unique_ptr<Model>>& ms) {
  std::vector<const Model*> out;
  for (auto& m : ms) out.push_back(m.get());
  return out;
}

double log_Phi_(double z) {
  if (z > -20) return std::log(0.5 * std::erfc(-z * kInvSqrt2));
  return -0.5 * z * z - 0.9189385332046728 - std::log(-z);
}

// Best available row for an analytic acquisition on a GP: exact variances in order of the
// bound, stopping once no remaining bound can beat the best exact value.
int best_analytic_gp(const GaussianProcess& gp, const Acquisition& acq, const Eigen::MatrixXd& F,
                     const std::vector<char>& available, double* value) {
  std::vector<int> rows;
  for (int i = 0; i < F.rows(); ++i)
    if (available[i]) rows.push_back(i);
  Eigen::MatrixXd Fa(rows.size(), F.cols());
  for (size_t i = 0; i < rows.size(); ++i) Fa.row(i) = F.row(rows[i]);
  Eigen::VectorXd mean, vub, err;
  gp.mean_and_variance_bound(Fa, &mean, &vub, &err);
  std::vector<double> ub(rows.size());
  for (size_t i = 0; i < rows.size(); ++i) ub[i] = acq.bound(mean[i] + err[i], vub[i]);
  std::vector<int> order(rows.size());
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](int a, int b) { return ub[a] > ub[b] || (ub[a] == ub[b] && a < b); });
  double best = -INFINITY;
  int best_i = -1;
  constexpr int kBlock = 64;
  for (size_t b = 0; b < order.size(); b += kBlock) {
    if (ub[order[b]] < best) break;
    int nb = static_cast<int>(std::min<size_t>(kBlock, order.size() - b));
    Eigen::MatrixXd Xb(nb, F.cols());
    for (int j = 0; j < nb; ++j) Xb.row(j) = Fa.row(order[b + j]);
    Eigen::VectorXd mu, var;
    gp.posterior(Xb, &mu, &var);
    for (int j = 0; j < nb; ++j) {
      double v = acq.from_moments(mu[j], var[j]);
      int i = order[b + j];
      if (v > best || (v == best && rows[i] < best_i)) {
        best = v;
        best_i = rows[i];
      }
    }
  }
  *value = best;
  return best_i;
}

// Scores of every available row (others -inf).
Eigen::VectorXd score_all(const Acquisition& acq, const Eigen::MatrixXd& F, const std::vector<char>& available) {
  Eigen::VectorXd s = Eigen::VectorXd::Constant(F.rows(), -INFINITY);
  std::vector<int> rows;
  for (int i = 0; i < F.rows(); ++i)
    if (available[i]) rows.push_back(i);
  constexpr int kBlock = 1024;
  for (size_t b = 0; b < rows.size(); b += kBlock) {
    int nb = static_cast<int>(std::min<size_t>(kBlock, rows.size() - b));
    Eigen::MatrixXd Xb(nb, F.cols());
    for (int j = 0; j < nb; ++j) Xb.row(j) = F.row(rows[b + j]);
    Eigen::VectorXd v;
    acq.evaluate(Xb, 1, &v);
    for (int j = 0; j < nb; ++j) s[rows[b + j]] = std::isnan(v[j]) ? -INFINITY : v[j];
  }
  return s;
}

int argmax(const Eigen::VectorXd& s) {
  int best = -1;
  for (int i = 0; i < s.size(); ++i)
    if (s[i] > -INFINITY && (best < 0 || s[i] > s[best])) best = i;
  return best;
}

// Thompson draw over the available rows (screened by UCB when there are many).
int thompson_pick(const Model& m, const AcquisitionSpec& spec, const Eigen::MatrixXd& F, const std::vector<char>& available,
                  int max_candidates, uint64_t seed) {
  std::vector<int> rows;
  for (int i = 0; i < F.rows(); ++i)
    if (available[i]) rows.push_back(i);
  if (static_cast<int>(rows.size()) > max_candidates) {
    AcquisitionSpec u;
    u.kind = AcquisitionKind::kUCB;
    u.ucb_beta = 9.0;
    auto acq = make_acquisition(u, {&m});
    Eigen::VectorXd s = score_all(**acq, F, available);
    std::partial_sort(rows.begin(), rows.begin() + max_candidates, rows.end(), [&](int a, int b) { return s[a] > s[b]; });
    rows.resize(max_candidates);
    std::sort(rows.begin(), rows.end());
  }
  Eigen::MatrixXd X(rows.size(), F.cols());
  for (size_t i = 0; i < rows.size(); ++i) X.row(i) = F.row(rows[i]);
  AcquisitionSpec t = spec;
  t.kind = AcquisitionKind::kThompson;
  t.seed = seed;
  auto acq = make_acquisition(t, {&m});
  Eigen::VectorXd v;
  (*acq)->evaluate(X, 1, &v);
  int k = 0;
  v.maxCoeff(&k);
  return rows[k];
}

// Local penalisation (González et al. 2016) in log space: log Phi((L |x - xj| - M + mu_j) / s_j).
struct Penalizer {
  double L = 1, M = 0;
  std::vector<Eigen::VectorXd> centres;
  std::vector<double> mu, sd;
  double log_penalty(const Eigen::VectorXd& x) const {
    double p = 0;
    for (size_t j = 0; j < centres.size(); ++j)
      p += log_Phi_((L * (x - centres[j]).norm() - M + mu[j]) / std::max(sd[j], 1e-9));
    return p;
  }
};

Penalizer make_penalizer(const Model& m, const Eigen::MatrixXd& sample_features, uint64_t seed) {
  Penalizer p;
  p.M = m.train_targets().maxCoeff();
  // Lipschitz constant of the posterior mean, estimated from random pairs of sample points.
  Eigen::VectorXd mu, var;
  m.posterior(sample_features, &mu, &var);
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int> pick(0, static_cast<int>(sample_features.rows()) - 1);
  double L = 1e-6;
  for (int t = 0; t < 4000 && sample_features.rows() > 1; ++t) {
    int a = pick(rng), b = pick(rng);
    double dist = (sample_features.row(a) - sample_features.row(b)).norm();
    if (dist > 1e-9) L = std::max(L, std::abs(mu[a] - mu[b]) / dist);
  }
  p.L = L;
  return p;
}

void add_centre(Penalizer& p, const Model& m, const Eigen::VectorXd& x) {
  Eigen::VectorXd mu, var;
  m.posterior(x.transpose(), &mu, &var);
  p.centres.push_back(x);
  p.mu.push_back(mu[0]);
  p.sd.push_back(std::sqrt(var[0]));
}

// log of a positive version of the acquisition value, for multiplying by penalties.
double positive_log(AcquisitionKind k, double v) {
  if (k == AcquisitionKind::kLogEI || k == AcquisitionKind::kLogPI) return v;
  // softplus keeps UCB / qEI / EHVI values positive (González et al. use the same transform).
  double sp = v > 30 ? v : std::log1p(std::exp(v));
  return std::log(std::max(sp, 1e-300));
}

// Greedy sequential joint qEI over the best `m` rows by log-EI.
Result<std::vector<int>> pool_joint_qei(const Model& model, const AcquisitionSpec& spec, const Eigen::MatrixXd& F,
                                        const std::vector<char>& available, const OptimizeOptions& o) {
  AcquisitionSpec le;
  le.kind = AcquisitionKind::kLogEI;
  KILN_ASSIGN_OR_RETURN(auto acq, make_acquisition(le, {&model}));
  Eigen::VectorXd s = score_all(*acq, F, available);
  std::vector<int> rows;
  for (int i = 0; i < F.rows(); ++i)
    if (available[i]) rows.push_back(i);
  int m = std::min<int>(o.qei_candidates, static_cast<int>(rows.size()));
  m = std::max(m, std::min<int>(o.q, static_cast<int>(rows.size())));
  std::partial_sort(rows.begin(), rows.begin() + m, rows.end(), [&](int a, int b) { return s[a] > s[b] || (s[a] == s[b] && a < b); });
  rows.resize(m);
  Eigen::MatrixXd X(m, F.cols());
  for (int i = 0; i < m; ++i) X.row(i) = F.row(rows[i]);
  Eigen::VectorXd mu, var;
  model.posterior(X, &mu, &var);
  Eigen::MatrixXd C = model.posterior_covariance(X);
  double best_f = model.train_targets().maxCoeff();
  std::vector<int> chosen;
  std::vector<char> used(m, 0);
  for (int k = 0; k < o.q; ++k) {
    Eigen::MatrixXd Z = normal_base_samples(spec.mc_samples, k + 1, spec.seed + 17);
    double best = -1;
    int best_c = -1;
    for (int c = 0; c < m; ++c) {
      if (used[c]) continue;
      std::vector<int> S = chosen;
      S.push_back(c);
      int q = static_cast<int>(S.size());
      Eigen::MatrixXd Cs(q, q);
      Eigen::VectorXd ms(q);
      for (int a = 0; a < q; ++a) {
        ms[a] = mu[S[a]];
        for (int b = 0; b < q; ++b) Cs(a, b) = C(S[a], S[b]);
      }
      Cs.diagonal().array() += 1e-9;
      Eigen::LLT<Eigen::MatrixXd> llt(Cs);
      Eigen::MatrixXd L = llt.info() == Eigen::Success ? Eigen::MatrixXd(llt.matrixL())
                                                       : Eigen::MatrixXd(Cs.diagonal().cwiseMax(0).cwiseSqrt().asDiagonal());
      double acc = 0;
      for (int t = 0; t < Z.rows(); ++t) acc += std::max((ms + L * Z.row(t).transpose()).maxCoeff() - best_f, 0.0);
      acc /= Z.rows();
      if (acc > best) {
        best = acc;
        best_c = c;
      }
    }
    if (best_c < 0) break;
    used[best_c] = 1;
    chosen.push_back(best_c);
  }
  std::vector<int> out;
  for (int c : chosen) out.push_back(rows[c]);
  return out;
}

}  // namespace

const char* batch_mode_name(BatchMode b) {
  switch (b) {
    case BatchMode::kKrigingBeliever: return "kb";
    case BatchMode::kLocalPenalization: return "lp";
    case BatchMode::kJointMC: return "qei";
  }
  return "?";
}

Result<BatchMode> parse_batch_mode(std::string_view s) {
  if (s == "kb" || s == "kriging_believer") return BatchMode::kKrigingBeliever;
  if (s == "lp" || s == "local_penalization") return BatchMode::kLocalPenalization;
  if (s == "qei" || s == "joint") return BatchMode::kJointMC;
  return Status::invalid("unknown batch mode '", std::string(s), "' (kb, lp, qei)");
}

Status OptimizeOptions::validate() const {
  if (q < 1 || q > 1000) return Status::invalid("batch size q must be in [1, 1000], got ", q);
  if (num_restarts < 1 || num_restarts > 1000) return Status::invalid("num_restarts must be in [1, 1000]");
  if (raw_samples < num_restarts) return Status::invalid("raw_samples (", raw_samples, ") must be >= num_restarts (", num_restarts, ")");
  if (max_evals < 1) return Status::invalid("max_evals must be >= 1");
  if (thompson_candidates < 1 || qei_candidates < 1) return Status::invalid("candidate limits must be >= 1");
  return Status::ok();
}

std::vector<std::unique_ptr<Model>> fantasize(const std::vector<const Model*>& models, const Eigen::MatrixXd& X) {
  std::vector<std::unique_ptr<Model>> out;
  for (const Model* m : models) {
    if (X.rows() == 0) {
      out.push_back(m->clone());
      continue;
    }
    Eigen::VectorXd mu, var;
    m->posterior(X, &mu, &var);
    out.push_back(m->condition_on(X, mu));
  }
  return out;
}

Result<int> best_in_pool_reference(const Model& model, const AcquisitionSpec& spec, const Eigen::MatrixXd& F,
                                   const std::vector<char>& available) {
  KILN_ASSIGN_OR_RETURN(auto acq, make_acquisition(spec, {&model}));
  int i = argmax(score_all(*acq, F, available));
  if (i < 0) return Status::invalid("no candidate is available");
  return i;
}

Result<std::vector<int>> optimize_pool(const std::vector<const Model*>& models, const AcquisitionSpec& spec,
                                       const Eigen::MatrixXd& F, std::vector<char> available, const OptimizeOptions& o) {
  KILN_RETURN_IF_ERROR(o.validate());
  KILN_RETURN_IF_ERROR(spec.validate(static_cast<int>(models.size())));
  if (static_cast<int>(available.size()) != F.rows()) return Status::internal("pool availability has the wrong size");
  int n_avail = static_cast<int>(std::count_if(available.begin(), available.end(), [](char c) { return c != 0; }));
  if (n_avail < o.q)
    return Status::invalid("the pool has ", n_avail, " candidates left (not yet observed or pending), fewer than the batch size ", o.q);
  if (o.batch == BatchMode::kJointMC && models.size() == 1 &&
      (spec.kind == AcquisitionKind::kLogEI || spec.kind == AcquisitionKind::kQEI))
    return pool_joint_qei(*models[0], spec, F, available, o);

  // The caller's models until the first fantasy; then copies that own the fantasies.
  std::vector<std::unique_ptr<Model>> owned;
  std::vector<const Model*> cur = models;
  std::vector<int> chosen;
  Penalizer pen;
  Eigen::VectorXd base_scores;
  if (o.batch == BatchMode::kLocalPenalization && o.q > 1) {
    pen = make_penalizer(*models[0], F, o.seed + 3);
    KILN_ASSIGN_OR_RETURN(auto acq, make_acquisition(spec, cur));
    base_scores = score_all(*acq, F, available);
  }
  for (int k = 0; k < o.q; ++k) {
    int pick = -1;
    if (o.batch == BatchMode::kLocalPenalization && o.q > 1 && spec.kind != AcquisitionKind::kThompson) {
      double best = -INFINITY;
      for (int i = 0; i < F.rows(); ++i) {
        if (!available[i]) continue;
        double v = positive_log(spec.kind, base_scores[i]) + pen.log_penalty(F.row(i).transpose());
        if (v > best) {
          best = v;
          pick = i;
        }
      }
    } else if (spec.kind == AcquisitionKind::kThompson) {
      pick = thompson_pick(*cur[0], spec, F, available, o.thompson_candidates, spec.seed + 7919 * (k + 1) + o.seed);
    } else {
      AcquisitionSpec sk = spec;
      sk.seed = spec.seed + k;
      KILN_ASSIGN_OR_RETURN(auto acq, make_acquisition(sk, cur));
      const GaussianProcess* gp = cur.size() == 1 ? dynamic_cast<const GaussianProcess*>(cur[0]) : nullptr;
      // The bound prunes well for UCB; for log-EI most candidates' bounds beat the best exact
      // value (their variance bound is loose where the mean is far below the incumbent), so the
      // bound only adds work there (measured in docs/benchmarks.md): score everything instead.
      if (gp && spec.kind == AcquisitionKind::kUCB && std::isfinite(acq->bound(0.0, 1.0))) {
        double v;
        pick = best_analytic_gp(*gp, *acq, F, available, &v);
      } else {
        pick = argmax(score_all(*acq, F, available));
      }
    }
    if (pick < 0) {  // every score was -inf/NaN: fall back to the first available row
      for (int i = 0; i < F.rows() && pick < 0; ++i)
        if (available[i]) pick = i;
    }
    chosen.push_back(pick);
    available[pick] = 0;
    if (k + 1 < o.q) {
      if (o.batch == BatchMode::kLocalPenalization && spec.kind != AcquisitionKind::kThompson) {
        add_centre(pen, *models[0], F.row(pick).transpose());
      } else {
        auto next = fantasize(cur, F.row(pick));
        owned = std::move(next);
        cur = ptrs(owned);
      }
    }
  }
  return chosen;
}

namespace {

struct LocalProblem {
  const SearchSpace* space;
  const Acquisition* acq;
  const Penalizer* pen;  // may be null
  AcquisitionKind kind;
  Point base;            // the start point (discrete values kept)
  std::vector<int> vars; // parameter index of each optimisation variable
  std::vector<double> scratch;
  int evals = 0;

  Point point(const double* v) const {
    Point p = base;
    for (size_t k = 0; k < vars.size(); ++k) p[vars[k]] = v[k];
    return p;
  }
};

double local_objective(unsigned n, const double* v, double* grad, void* data) {
  LocalProblem* lp = static_cast<LocalProblem*>(data);
  ++lp->evals;
  Point p = lp->point(v);
  Eigen::VectorXd z(lp->space->dim());
  lp->space->encode(p, z.data());
  double val;
  if (grad) {
    Eigen::VectorXd g;
    if (!lp->acq->value_and_gradient(z, &val, &g)) {
      std::fill(grad, grad + n, 0.0);
      return 1e300;
    }
    for (unsigned k = 0; k < n; ++k) {
      int i = lp->vars[k];
      grad[k] = -g[lp->space->feature_offset(i)] * lp->space->feature_slope(i, v[k]);
    }
  } else {
    Eigen::VectorXd out;
    lp->acq->evaluate(z.transpose(), 1, &out);
    val = out[0];
    if (lp->pen) val = positive_log(lp->kind, val) + lp->pen->log_penalty(z);
  }
  if (!std::isfinite(val)) return 1e300;
  return -val;
}

struct LinearRow {
  std::vector<double> a;
  double b;
  const LocalProblem* lp;
};

// sum_k a_k v_k - b  (<= 0 for inequalities, == 0 for equalities)
double linear_constraint(unsigned n, const double* v, double* grad, void* data) {
  const LinearRow* r = static_cast<const LinearRow*>(data);
  double s = -r->b;
  for (unsigned k = 0; k < n; ++k) {
    s += r->a[k] * v[k];
    if (grad) grad[k] = r->a[k];
  }
  return s;
}

}  // namespace

Result<std::vector<Point>> optimize_space(const std::vector<const Model*>& models, const AcquisitionSpec& spec,
                                          const SearchSpace& space, const OptimizeOptions& o) {
  KILN_RETURN_IF_ERROR(o.validate());
  KILN_RETURN_IF_ERROR(spec.validate(static_cast<int>(models.size())));
  std::vector<std::unique_ptr<Model>> owned;
  std::vector<const Model*> cur = models;
  std::vector<Point> out;
  Penalizer pen;
  bool use_lp = o.batch == BatchMode::kLocalPenalization && o.q > 1 && spec.kind != AcquisitionKind::kThompson;
  for (int k = 0; k < o.q; ++k) {
    KILN_ASSIGN_OR_RETURN(std::vector<Point> raw, space.sample(o.raw_samples, o.design, o.seed + 104729ull * k));
    Eigen::MatrixXd R = space.encode_all(raw);
    if (use_lp && k == 0) pen = make_penalizer(*models[0], R, o.seed + 5);
    AcquisitionSpec sk = spec;
    sk.seed = spec.seed + k;
    KILN_ASSIGN_OR_RETURN(auto acq, make_acquisition(sk, cur));
    Eigen::VectorXd scores;
    acq->evaluate(R, 1, &scores);
    for (int i = 0; i < scores.size(); ++i) {
      if (std::isnan(scores[i])) scores[i] = -INFINITY;
      if (use_lp && k > 0) scores[i] = positive_log(spec.kind, scores[i]) + pen.log_penalty(R.row(i).transpose());
    }
    std::vector<int> order(raw.size());
    std::iota(order.begin(), order.end(), 0);
    std::sort(order.begin(), order.end(), [&](int a, int b) { return scores[a] > scores[b] || (scores[a] == scores[b] && a < b); });
    Point best_p = raw[order[0]];
    double best_v = scores[order[0]];
    bool refine = spec.kind != AcquisitionKind::kThompson && spec.kind != AcquisitionKind::kQEI;
    for (int r = 0; refine && r < std::min<int>(o.num_restarts, static_cast<int>(order.size())); ++r) {
      LocalProblem lp{&space, acq.get(), use_lp && k > 0 ? &pen : nullptr, spec.kind, raw[order[r]], {}, {}, 0};
      std::vector<double> lo, hi, v;
      for (int i = 0; i < space.num_params(); ++i) {
        const Parameter& p = space.param(i);
        if (p.type != ParamType::kContinuous || p.high <= p.low) continue;
        bool fixed_zero = false;
        for (size_t m = 0; m < space.mixtures().size(); ++m) {
          const auto& idx = space.mixture_indices()[m];
          if (std::find(idx.begin(), idx.end(), i) != idx.end() && space.mixtures()[m].max_nonzero > 0 && lp.base[i] <= 0 &&
              p.low <= 0)
            fixed_zero = true;
        }
        if (fixed_zero) continue;
        lp.vars.push_back(i);
        lo.push_back(p.low);
        hi.push_back(p.high);
        v.push_back(std::clamp(lp.base[i], p.low, p.high));
      }
      if (lp.vars.empty()) continue;
      const unsigned n = static_cast<unsigned>(lp.vars.size());
      bool have_grad = !lp.pen && acq->analytic();
      Eigen::VectorXd z0(space.dim()), g0;
      space.encode(lp.base, z0.data());
      double v0;
      if (have_grad) have_grad = acq->value_and_gradient(z0, &v0, &g0);
      nlopt_opt opt = nlopt_create(have_grad ? NLOPT_LD_SLSQP : NLOPT_LN_COBYLA, n);
      nlopt_set_lower_bounds(opt, lo.data());
      nlopt_set_upper_bounds(opt, hi.data());
      nlopt_set_min_objective(opt, local_objective, &lp);
      nlopt_set_maxeval(opt, o.max_evals);
      nlopt_set_xtol_rel(opt, 1e-6);
      nlopt_set_ftol_abs(opt, 1e-9);
      std::vector<LinearRow> rows;
      rows.reserve(space.mixtures().size() + space.constraints().size());
      for (size_t m = 0; m < space.mixtures().size(); ++m) {
        LinearRow r{std::vector<double>(n, 0.0), space.mixtures()[m].total, &lp};
        for (int i : space.mixture_indices()[m]) {
          auto it = std::find(lp.vars.begin(), lp.vars.end(), i);
          if (it != lp.vars.end()) r.a[it - lp.vars.begin()] = 1.0;
          else r.b -= lp.base[i];
        }
        rows.push_back(r);
      }
      size_t n_eq = rows.size();
      for (const LinearConstraint& c : space.constraints()) {
        LinearRow r{std::vector<double>(n, 0.0), c.rhs, &lp};
        for (size_t t = 0; t < c.names.size(); ++t) {
          int i = space.find(c.names[t]);
          auto it = std::find(lp.vars.begin(), lp.vars.end(), i);
          if (it != lp.vars.end()) r.a[it - lp.vars.begin()] += c.coefficients[t];
          else r.b -= c.coefficients[t] * lp.base[i];
        }
        rows.push_back(r);
      }
      for (size_t j = 0; j < rows.size(); ++j) {
        if (j < n_eq) nlopt_add_equality_constraint(opt, linear_constraint, &rows[j], 1e-10);
        else nlopt_add_inequality_constraint(opt, linear_constraint, &rows[j], 1e-10);
      }
      double f = 0;
      nlopt_optimize(opt, v.data(), &f);
      nlopt_destroy(opt);
      Point p = lp.point(v.data());
      space.repair(p);
      if (!space.check(p).is_ok()) continue;
      Eigen::VectorXd z(space.dim()), val;
      space.encode(p, z.data());
      acq->evaluate(z.transpose(), 1, &val);
      double score = val[0];
      if (use_lp && k > 0) score = positive_log(spec.kind, score) + pen.log_penalty(z);
      if (score > best_v) {
        best_v = score;
        best_p = p;
      }
    }
    out.push_back(best_p);
    if (k + 1 < o.q) {
      Eigen::VectorXd z(space.dim());
      space.encode(best_p, z.data());
      if (use_lp) add_centre(pen, *models[0], z);
      else {
        auto next = fantasize(cur, z.transpose());
        owned = std::move(next);
        cur = ptrs(owned);
      }
    }
  }
  return out;
}

}  // namespace kiln::discover
