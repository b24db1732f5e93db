#include "kiln/discover/campaign.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <map>
#include <numeric>
#include <random>
#include <set>
#include <unordered_map>

#include "kiln/discover/forest.h"
#include "kiln/discover/mixed_gp.h"
#include "kiln/discover/optimise.h"

namespace kiln::discover {

int refit_due(int fitted_on) { return fitted_on + std::max(1, static_cast<int>(std::ceil(kRefitGrowth * fitted_on))); }

namespace {

// Fits the configured surrogate on (X, y).
Result<std::unique_ptr<Model>> fit_model(const Strategy& s, const SearchSpace& space, const Eigen::MatrixXd& X, const Eigen::VectorXd& y,
                                         uint64_t seed, const std::optional<GpHyper>& warm, std::optional<GpHyper>* fitted) {
  if (s.surrogate == SurrogateKind::kForest) {
    ForestOptions fo;
    fo.seed = seed;
    fo.warp_outputs = s.warp;
    KILN_ASSIGN_OR_RETURN(RandomForest rf, RandomForest::fit(X, y, fo));
    return std::unique_ptr<Model>(std::make_unique<RandomForest>(std::move(rf)));
  }
  // The additive categorical term or the input warp: MixedGp (plain Eigen, full refits), while
  // the campaign is small enough for that to stay fast; larger ones use the GP's pool screen and
  // light refits (kMixedGpMaxObservations, campaign.h).
  std::vector<int> comp = s.mixed_categorical ? space.additive_components() : std::vector<int>{};
  std::vector<int> warped = s.input_warp ? space.numeric_features() : std::vector<int>{};
  if (comp.size() != static_cast<size_t>(X.cols())) comp.clear();
  if ((!comp.empty() || !warped.empty()) && X.rows() <= kMixedGpMaxObservations) {
    MixedGpOptions mo;
    mo.kernel = s.kernel;
    mo.seed = seed;
    mo.warp_outputs = s.warp;
    mo.components = std::move(comp);
    mo.warped = std::move(warped);
    if (s.tie_categorical) mo.ls_groups = space.lengthscale_groups();
    KILN_ASSIGN_OR_RETURN(MixedGp gp, MixedGp::fit(X, y, mo));
    if (fitted) {  // a warm start for the GP once the campaign outgrows MixedGp
      GpHyper h;
      h.log_lengthscale = gp.lengthscales().array().log().matrix();
      h.log_signal = std::log(gp.signal_variance());
      h.log_noise = std::log(gp.noise_variance());
      h.fitted_on = 0;  // not a GP fit: the GP's first one is a full refit
      *fitted = h;
    }
    return std::unique_ptr<Model>(std::make_unique<MixedGp>(std::move(gp)));
  }
  GpOptions go;
  go.kernel = s.kernel;
  go.seed = seed;
  go.warp_outputs = s.warp;
  go.warm_start = warm;
  if (s.tie_categorical) {  // one lengthscale per one-hot categorical, not per label
    std::vector<int> g = space.lengthscale_groups();
    if (g.size() == static_cast<size_t>(X.cols()) && !g.empty() && g.back() + 1 < static_cast<int>(g.size())) go.ls_groups = std::move(g);
  }
  const int n = static_cast<int>(X.rows());
  if (n > kRefitMinObservations) {
    // Many observations and a warm start: one refinement from the previous optimum is enough;
    // the prior's centre joins it only once the data has grown by kRefitGrowth since the last
    // full refit, and in between the warm start gets kLightRefitEvals evaluations (campaign.h).
    go.restarts = warm ? 0 : 2;
    go.max_evals = warm ? 30 : 80;
    go.max_fit_points = 128;
    if (warm && warm->log_lengthscale.size() == X.cols() && warm->fitted_on > 0 && warm->fitted_on <= n &&
        n < refit_due(warm->fitted_on)) {
      go.max_evals = kLightRefitEvals;
      go.centre_start = false;
      KILN_ASSIGN_OR_RETURN(GaussianProcess gp, GaussianProcess::fit(X, y, go));
      if (fitted) {
        *fitted = gp.hyper();
        (*fitted)->fitted_on = warm->fitted_on;  // the full refit stays due at the same count
      }
      return std::unique_ptr<Model>(std::make_unique<GaussianProcess>(std::move(gp)));
    }
  }
  KILN_ASSIGN_OR_RETURN(GaussianProcess gp, GaussianProcess::fit(X, y, go));
  if (fitted) *fitted = gp.hyper();
  return std::unique_ptr<Model>(std::make_unique<GaussianProcess>(std::move(gp)));
}

}  // namespace

std::string point_key(const SearchSpace& space, const Point& p) {
  std::string k;
  for (int i = 0; i < space.num_params(); ++i) {
    if (i) k += '\x1f';
    k += space.format_value(i, p[i]);
  }
  return k;
}

Result<Campaign> Campaign::create(CampaignConfig config, const CsvTable* pool) {
  Campaign c;
  KILN_ASSIGN_OR_RETURN(c.space_, build_space(config));
  KILN_RETURN_IF_ERROR(config.strategy.validate());
  c.config_ = std::move(config);
  if (pool) {
    KILN_ASSIGN_OR_RETURN(c.pool_, load_pool(c.space_, *pool));
    c.has_pool_ = true;
    for (size_t i = 0; i < c.pool_.points.size(); ++i) c.pool_index_.emplace(point_key(c.space_, c.pool_.points[i]), static_cast<int>(i));
  }
  return c;
}

Result<Campaign> Campaign::create_with_pool(CampaignConfig config, Pool pool) {
  KILN_ASSIGN_OR_RETURN(Campaign c, create(std::move(config), nullptr));
  if (pool.points.empty()) return Status::invalid("the candidate pool is empty");
  if (pool.features.cols() != c.space_.dim()) return Status::invalid("the pool's features do not match the space");
  c.pool_ = std::move(pool);
  c.has_pool_ = true;
  for (size_t i = 0; i < c.pool_.points.size(); ++i) c.pool_index_.emplace(point_key(c.space_, c.pool_.points[i]), static_cast<int>(i));
  return c;
}

int Campaign::pool_row_of(const Point& p) const {
  if (!has_pool_) return -1;
  auto it = pool_index_.find(point_key(space_, p));
  return it == pool_index_.end() ? -1 : it->second;
}

Result<std::vector<Observation>> Campaign::parse_measurements(const CsvTable& t) const {
  const int P = space_.num_params(), O = static_cast<int>(config_.objectives.size());
  std::vector<int> pcol(P, -1), ocol(O, -1);
  int idcol = -1;
  for (int c = 0; c < static_cast<int>(t.header.size()); ++c) {
    const std::string& h = t.header[c];
    if (h == "id") {
      idcol = c;
      continue;
    }
    int i = space_.find(h);
    if (i >= 0) {
      pcol[i] = c;
      continue;
    }
    bool found = false;
    for (int j = 0; j < O; ++j)
      if (config_.objectives[j].name == h) {
        ocol[j] = c;
        found = true;
      }
    if (!found) return Status::invalid(t.source, " row 1, column '", h, "': not a parameter or objective of the campaign");
  }
  for (int j = 0; j < O; ++j)
    if (ocol[j] < 0) return Status::invalid(t.source, " row 1: objective '", config_.objectives[j].name, "' has no column");
  for (int i = 0; i < P; ++i)
    if (pcol[i] < 0 && idcol < 0)
      return Status::invalid(t.source, " row 1: parameter '", space_.param(i).name, "' has no column (and there is no 'id' column)");
  if (t.num_rows() == 0) return Status::invalid(t.source, ": no result rows");
  std::map<int64_t, const Proposal*> pend;
  for (const Proposal& p : pending_) pend[p.id] = &p;
  std::set<int64_t> observed_ids, seen_ids;
  for (const Observation& o : obs_)
    if (o.proposal_id) observed_ids.insert(o.proposal_id);
  std::vector<Observation> out;
  for (int r = 0; r < t.num_rows(); ++r) {
    Observation ob;
    ob.csv_row = t.line[r];
    const Proposal* prop = nullptr;
    if (idcol >= 0 && !t.rows[r][idcol].empty()) {
      double idv = 0;
      if (!parse_number(t.rows[r][idcol], &idv) || idv != std::floor(idv) || idv < 1 || idv > 9e15)
        return Status::invalid(t.where(r, idcol), ": '", t.rows[r][idcol].substr(0, 32), "' is not a proposal id");
      int64_t id = static_cast<int64_t>(idv);
      if (!seen_ids.insert(id).second) return Status::invalid(t.where(r, idcol), ": proposal ", id, " appears twice in this file");
      if (observed_ids.count(id)) return Status::invalid(t.where(r, idcol), ": proposal ", id, " is already observed");
      auto it = pend.find(id);
      if (it == pend.end()) return Status::invalid(t.where(r, idcol), ": proposal ", id, " does not exist");
      prop = it->second;
      ob.proposal_id = id;
    }
    ob.params.resize(P);
    for (int i = 0; i < P; ++i) {
      if (pcol[i] < 0 || (prop && t.rows[r][pcol[i]].empty())) {
        if (!prop) return Status::invalid(t.where(r, pcol[i]), ": value is missing");
        ob.params[i] = prop->params[i];
        continue;
      }
      Result<double> v = space_.parse_value(i, t.rows[r][pcol[i]]);
      if (!v.is_ok()) return Status::invalid(t.where(r, pcol[i]), ": ", v.status().message());
      ob.params[i] = *v;
    }
    Status s = space_.check(ob.params);
    if (!s.is_ok()) {
      int c = -1;
      for (int i = 0; i < P; ++i)
        if (s.message().find("'" + space_.param(i).name + "'") != std::string::npos) {
          c = pcol[i];
          break;
        }
      if (c < 0)  // a mixture: point at its first component's column
        for (const auto& m : config_.mixtures)
          if (s.message().find(m.components[0]) != std::string::npos) c = pcol[space_.find(m.components[0])];
      return Status::invalid(t.where(r, c), ": ", s.message());
    }
    for (int j = 0; j < O; ++j) {
      Result<double> v = t.number(r, ocol[j]);
      if (!v.is_ok()) return v.status();
      ob.objectives.push_back(*v);
    }
    out.push_back(std::move(ob));
  }
  return out;
}

void Campaign::add_measurements(const std::vector<Observation>& obs) {
  for (const Observation& o : obs) {
    obs_.push_back(o);
    obs_pool_row_.push_back(pool_row_of(o.params));
    if (o.proposal_id)
      pending_.erase(std::remove_if(pending_.begin(), pending_.end(), [&](const Proposal& p) { return p.id == o.proposal_id; }),
                     pending_.end());
  }
}

void Campaign::add_pending(const std::vector<Proposal>& p) { pending_.insert(pending_.end(), p.begin(), p.end()); }

Result<std::vector<Point>> Campaign::initial_design(int q) {
  int used = static_cast<int>(obs_.size() + pending_.size());
  if (has_pool_) {
    std::vector<char> avail(pool_.points.size(), 1);
    for (int r : obs_pool_row_)
      if (r >= 0) avail[r] = 0;
    for (const Proposal& p : pending_) {
      int r = pool_row_of(p.params);
      if (r >= 0) avail[r] = 0;
    }
    std::vector<int> rows;
    for (size_t i = 0; i < avail.size(); ++i)
      if (avail[i]) rows.push_back(static_cast<int>(i));
    if (static_cast<int>(rows.size()) < q)
      return Status::invalid("the pool has ", rows.size(), " candidates left (not yet observed or pending), fewer than the batch size ", q);
    std::mt19937_64 rng(config_.seed * 0x9E3779B97F4A7C15ull + used + 1);
    std::shuffle(rows.begin(), rows.end(), rng);
    std::vector<Point> out;
    for (int i = 0; i < q; ++i) out.push_back(pool_.points[rows[i]]);
    return out;
  }
  // Continue one space-filling sequence across calls: take its next q points.
  KILN_ASSIGN_OR_RETURN(std::vector<Point> design, space_.sample(used + q, config_.strategy.design, config_.seed));
  return std::vector<Point>(design.end() - q, design.end());
}

Result<std::vector<Point>> Campaign::recommend(int q) {
  if (q < 1) return Status::invalid("the batch size must be >= 1, got ", q);
  const Strategy& st = config_.strategy;
  if (static_cast<int>(obs_.size()) < std::max(st.initial, 2)) return initial_design(q);

  const int n = static_cast<int>(obs_.size()), O = static_cast<int>(config_.objectives.size());
  const uint64_t seed = config_.seed * 1000003ull + n * 7919ull + pending_.size();
  std::vector<Point> pts;
  for (const Observation& o : obs_) pts.push_back(o.params);
  Eigen::MatrixXd X = space_.encode_all(pts);
  Eigen::MatrixXd Y(n, O);
  for (int i = 0; i < n; ++i)
    for (int j = 0; j < O; ++j) Y(i, j) = (config_.objectives[j].maximize ? 1 : -1) * obs_[i].objectives[j];
  std::vector<Point> pend_pts;
  for (const Proposal& p : pending_) pend_pts.push_back(p.params);
  Eigen::MatrixXd Xp = space_.encode_all(pend_pts);

  std::vector<char> avail;
  if (has_pool_) {
    avail.assign(pool_.points.size(), 1);
    for (int r : obs_pool_row_)
      if (r >= 0) avail[r] = 0;
    for (const Point& p : pend_pts) {
      int r = pool_row_of(p);
      if (r >= 0) avail[r] = 0;
    }
  }

  OptimizeOptions oo;
  oo.q = q;
  oo.batch = st.batch;
  oo.design = st.design;
  oo.seed = seed;
  AcquisitionSpec spec;
  spec.kind = st.acquisition;
  spec.ucb_beta = st.ucb_beta;
  spec.seed = seed;

  auto run = [&](const std::vector<const Model*>& models, int qq, std::vector<char>& av) -> Result<std::vector<Point>> {
    OptimizeOptions o2 = oo;
    o2.q = qq;
    // Pending experiments enter as fantasies at their posterior mean.
    std::vector<std::unique_ptr<Model>> fm;
    std::vector<const Model*> mp = models;
    if (Xp.rows() > 0) {
      fm = fantasize(models, Xp);
      mp.clear();
      for (auto& m : fm) mp.push_back(m.get());
    }
    if (has_pool_) {
      KILN_ASSIGN_OR_RETURN(std::vector<int> rows, optimize_pool(mp, spec, pool_.features, av, o2));
      std::vector<Point> out;
      for (int r : rows) {
        out.push_back(pool_.points[r]);
        av[r] = 0;
      }
      return out;
    }
    return optimize_space(mp, spec, space_, o2);
  };

  if (O == 1) {
    std::optional<GpHyper> fitted;
    KILN_ASSIGN_OR_RETURN(auto model, fit_model(st, space_, X, Y.col(0), seed, hyper_, &fitted));
    if (fitted) hyper_ = fitted;
    return run({model.get()}, q, avail);
  }
  if (st.multi_objective == MultiObjectiveKind::kEHVI) {
    std::vector<std::unique_ptr<Model>> models;
    std::vector<const Model*> mp;
    for (int j = 0; j < O; ++j) {
      KILN_ASSIGN_OR_RETURN(auto m, fit_model(st, space_, X, Y.col(j), seed + j, std::nullopt, nullptr));
      mp.push_back(m.get());
      models.push_back(std::move(m));
    }
    spec.kind = AcquisitionKind::kEHVI;
    if (oo.batch == BatchMode::kJointMC) oo.batch = BatchMode::kKrigingBeliever;
    return run(mp, q, avail);
  }
  // ParEGO: each batch member scalarises with its own random weights (augmented Chebyshev on
  // objectives normalised to [0, 1] over the observations), earlier members as fantasies.
  std::vector<Point> out;
  std::mt19937_64 rng(seed + 99);
  Eigen::VectorXd lo = Y.colwise().minCoeff(), hi = Y.colwise().maxCoeff();
  for (int k = 0; k < q; ++k) {
    std::vector<double> w(O);
    double ws = 0;
    std::exponential_distribution<double> ex(1.0);
    for (double& v : w) ws += (v = ex(rng));
    Eigen::VectorXd s(n);
    for (int i = 0; i < n; ++i) {
      double mn = INFINITY, sum = 0;
      for (int j = 0; j < O; ++j) {
        double f = hi[j] > lo[j] ? (Y(i, j) - lo[j]) / (hi[j] - lo[j]) : 0.5;
        mn = std::min(mn, w[j] / ws * f);
        sum += w[j] / ws * f;
      }
      s[i] = mn + 0.05 * sum;
    }
    KILN_ASSIGN_OR_RETURN(auto model, fit_model(st, space_, X, s, seed + k, std::nullopt, nullptr));
    std::unique_ptr<Model> m = std::move(model);
    if (!out.empty()) {
      Eigen::MatrixXd Xo = space_.encode_all(out);
      m = std::move(fantasize({m.get()}, Xo)[0]);
    }
    KILN_ASSIGN_OR_RETURN(std::vector<Point> one, run({m.get()}, 1, avail));
    out.push_back(one[0]);
  }
  return out;
}

CampaignSummary Campaign::summary() const {
  CampaignSummary s;
  s.observations = static_cast<int>(obs_.size());
  s.pending = static_cast<int>(pending_.size());
  const int O = static_cast<int>(config_.objectives.size()), n = s.observations;
  if (n == 0) return s;
  Eigen::MatrixXd Y(n, O);
  for (int i = 0; i < n; ++i)
    for (int j = 0; j < O; ++j) Y(i, j) = (config_.objectives[j].maximize ? 1 : -1) * obs_[i].objectives[j];
  s.best_so_far.assign(O, {});
  for (int j = 0; j < O; ++j) {
    double b = -INFINITY;
    for (int i = 0; i < n; ++i) {
      b = std::max(b, Y(i, j));
      s.best_so_far[j].push_back(config_.objectives[j].maximize ? b : -b);
    }
  }
  if (O == 1) {
    int best = 0;
    Y.col(0).maxCoeff(&best);
    s.best = {best};
  } else {
    s.best = pareto_front(Y);
  }
  return s;
}

std::string Campaign::point_to_json(const Point& p) const {
  nlohmann::ordered_json j = nlohmann::ordered_json::object();
  for (int i = 0; i < space_.num_params(); ++i) {
    const Parameter& pr = space_.param(i);
    if (pr.type == ParamType::kCategorical) j[pr.name] = space_.format_value(i, p[i]);
    else if (pr.type == ParamType::kInteger) j[pr.name] = static_cast<long long>(std::llround(p[i]));
    else j[pr.name] = p[i];
  }
  return j.dump();
}

Result<Point> Campaign::point_from_json(const std::string& text) const {
  nlohmann::json j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return Status::invalid("stored parameters are not a JSON object");
  Point p(space_.num_params());
  for (int i = 0; i < space_.num_params(); ++i) {
    const Parameter& pr = space_.param(i);
    auto it = j.find(pr.name);
    if (it == j.end()) return Status::invalid("stored parameters lack '", pr.name, "'");
    if (it->is_number()) {
      p[i] = it->get<double>();
      if (pr.type == ParamType::kCategorical) return Status::invalid("stored value of '", pr.name, "' is not a label");
    } else if (it->is_string()) {
      KILN_ASSIGN_OR_RETURN(p[i], space_.parse_value(i, it->get<std::string>()));
    } else {
      return Status::invalid("stored value of '", pr.name, "' is neither a number nor a label");
    }
  }
  return p;
}

}  // namespace kiln::discover
