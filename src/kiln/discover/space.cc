#include "kiln/discover/space.h"

#include <algorithm>
#include <memory>
#include <cmath>
#include <numeric>
#include <random>
#include <set>

#include "kiln/discover/design.h"

namespace kiln::discover {
namespace {

std::string fmt(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.10g", v);
  return buf;
}

double to_unit(const Parameter& p, double v) {
  if (p.high <= p.low) return 0.5;
  if (p.log) return (std::log(v) - std::log(p.low)) / (std::log(p.high) - std::log(p.low));
  return (v - p.low) / (p.high - p.low);
}

double from_unit(const Parameter& p, double u) {
  u = std::clamp(u, 0.0, 1.0);
  if (p.log) return std::exp(std::log(p.low) + u * (std::log(p.high) - std::log(p.low)));
  return p.low + u * (p.high - p.low);
}

}  // namespace

const char* param_type_name(ParamType t) {
  switch (t) {
    case ParamType::kContinuous: return "continuous";
    case ParamType::kInteger: return "integer";
    case ParamType::kCategorical: return "categorical";
  }
  return "?";
}

Result<SearchSpace> SearchSpace::create(std::vector<Parameter> params, std::vector<Mixture> mixtures,
                                        std::vector<LinearConstraint> constraints) {
  SearchSpace s;
  if (params.empty()) return Status::invalid("the search space has no parameters");
  std::set<std::string> names;
  for (const Parameter& p : params) {
    if (p.name.empty()) return Status::invalid("a parameter has no name");
    if (p.name == "id") return Status::invalid("parameter name 'id' is reserved for proposal ids");
    if (!names.insert(p.name).second) return Status::invalid("parameter '", p.name, "' is declared twice");
    if (p.type == ParamType::kCategorical) {
      if (p.values.empty()) return Status::invalid("categorical parameter '", p.name, "' has no values");
      std::set<std::string> vs(p.values.begin(), p.values.end());
      if (vs.size() != p.values.size()) return Status::invalid("categorical parameter '", p.name, "' lists a value twice");
      if (!p.descriptors.empty()) {
        if (p.descriptors.size() != p.values.size())
          return Status::invalid("parameter '", p.name, "': ", p.descriptors.size(), " descriptor rows for ", p.values.size(), " values");
        for (const auto& row : p.descriptors) {
          if (row.size() != p.descriptors[0].size() || row.empty())
            return Status::invalid("parameter '", p.name, "': descriptor rows must be non-empty and of equal length");
          for (double v : row)
            if (!std::isfinite(v)) return Status::invalid("parameter '", p.name, "': a descriptor is not finite");
        }
      }
    } else {
      if (!std::isfinite(p.low) || !std::isfinite(p.high) || p.low > p.high)
        return Status::invalid("parameter '", p.name, "': bounds [", p.low, ", ", p.high, "] must be finite with low <= high");
      if (p.log && (p.type != ParamType::kContinuous || p.low <= 0))
        return Status::invalid("parameter '", p.name, "': log scale needs a continuous parameter with low > 0");
      if (p.type == ParamType::kInteger && std::ceil(p.low) > std::floor(p.high))
        return Status::invalid("integer parameter '", p.name, "' has no integer in [", p.low, ", ", p.high, "]");
    }
  }
  s.params_ = std::move(params);
  s.mixture_of_.assign(s.params_.size(), -1);
  for (size_t m = 0; m < mixtures.size(); ++m) {
    const Mixture& mx = mixtures[m];
    if (mx.components.size() < 2) return Status::invalid("mixture ", m + 1, " needs at least two components");
    if (!std::isfinite(mx.total) || mx.total <= 0) return Status::invalid("mixture ", m + 1, ": total must be a positive number");
    std::vector<int> idx;
    double lo = 0, hi = 0;
    for (const std::string& c : mx.components) {
      int i = s.find(c);
      if (i < 0) return Status::invalid("mixture ", m + 1, ": component '", c, "' is not a declared parameter");
      if (s.params_[i].type != ParamType::kContinuous || s.params_[i].log)
        return Status::invalid("mixture ", m + 1, ": component '", c, "' must be a continuous parameter without log scale");
      if (s.params_[i].low < 0) return Status::invalid("mixture ", m + 1, ": component '", c, "' has a negative lower bound");
      if (s.mixture_of_[i] >= 0) return Status::invalid("parameter '", c, "' belongs to two mixtures");
      s.mixture_of_[i] = static_cast<int>(m);
      idx.push_back(i);
      lo += s.params_[i].low;
      hi += s.params_[i].high;
    }
    if (lo > mx.total * (1 + kMixtureTolerance) || hi < mx.total * (1 - kMixtureTolerance))
      return Status::invalid("mixture ", m + 1, ": bounds allow sums in [", lo, ", ", hi, "], which excludes the total ", mx.total);
    if (mx.max_nonzero < 0) return Status::invalid("mixture ", m + 1, ": max_nonzero must be >= 0");
    if (mx.max_nonzero > 0) {
      int forced = 0;
      std::vector<double> his;
      for (int i : idx) {
        forced += s.params_[i].low > 0;
        his.push_back(s.params_[i].high);
      }
      if (forced > mx.max_nonzero)
        return Status::invalid("mixture ", m + 1, ": ", forced, " components have a positive lower bound but max_nonzero is ", mx.max_nonzero);
      std::sort(his.rbegin(), his.rend());
      double best = 0;
      for (int k = 0; k < mx.max_nonzero && k < static_cast<int>(his.size()); ++k) best += his[k];
      if (best < mx.total * (1 - kMixtureTolerance))
        return Status::invalid("mixture ", m + 1, ": no ", mx.max_nonzero, " components can reach the total ", mx.total);
    }
    s.mix_idx_.push_back(std::move(idx));
  }
  s.mixtures_ = std::move(mixtures);
  for (size_t c = 0; c < constraints.size(); ++c) {
    const LinearConstraint& lc = constraints[c];
    if (lc.names.empty() || lc.names.size() != lc.coefficients.size())
      return Status::invalid("constraint ", c + 1, " needs one coefficient per parameter");
    if (!std::isfinite(lc.rhs)) return Status::invalid("constraint ", c + 1, ": the bound is not finite");
    std::vector<int> idx;
    for (size_t k = 0; k < lc.names.size(); ++k) {
      int i = s.find(lc.names[k]);
      if (i < 0) return Status::invalid("constraint ", c + 1, ": '", lc.names[k], "' is not a declared parameter");
      if (s.params_[i].type == ParamType::kCategorical)
        return Status::invalid("constraint ", c + 1, ": '", lc.names[k], "' is categorical");
      if (!std::isfinite(lc.coefficients[k])) return Status::invalid("constraint ", c + 1, ": a coefficient is not finite");
      idx.push_back(i);
    }
    s.con_idx_.push_back(std::move(idx));
  }
  s.constraints_ = std::move(constraints);
  s.desc_lo_.resize(s.params_.size());
  s.desc_hi_.resize(s.params_.size());
  for (size_t i = 0; i < s.params_.size(); ++i) {
    const Parameter& p = s.params_[i];
    s.offset_.push_back(s.dim_);
    if (p.type != ParamType::kCategorical) {
      ++s.dim_;
    } else if (p.descriptors.empty()) {
      s.dim_ += static_cast<int>(p.values.size());
    } else {
      size_t nd = p.descriptors[0].size();
      s.desc_lo_[i].assign(nd, INFINITY);
      s.desc_hi_[i].assign(nd, -INFINITY);
      for (const auto& row : p.descriptors)
        for (size_t j = 0; j < nd; ++j) {
          s.desc_lo_[i][j] = std::min(s.desc_lo_[i][j], row[j]);
          s.desc_hi_[i][j] = std::max(s.desc_hi_[i][j], row[j]);
        }
      s.dim_ += static_cast<int>(nd);
    }
  }
  return s;
}

int SearchSpace::find(std::string_view name) const {
  for (size_t i = 0; i < params_.size(); ++i)
    if (params_[i].name == name) return static_cast<int>(i);
  return -1;
}

void SearchSpace::encode(const Point& p, double* z) const {
  for (size_t i = 0; i < params_.size(); ++i) {
    const Parameter& pr = params_[i];
    double* out = z + offset_[i];
    if (pr.type != ParamType::kCategorical) {
      out[0] = to_unit(pr, p[i]);
    } else {
      int k = std::clamp(static_cast<int>(p[i]), 0, static_cast<int>(pr.values.size()) - 1);
      if (pr.descriptors.empty()) {
        for (size_t j = 0; j < pr.values.size(); ++j) out[j] = j == static_cast<size_t>(k) ? 1.0 : 0.0;
      } else {
        for (size_t j = 0; j < pr.descriptors[k].size(); ++j) {
          double span = desc_hi_[i][j] - desc_lo_[i][j];
          out[j] = span > 0 ? (pr.descriptors[k][j] - desc_lo_[i][j]) / span : 0.5;
        }
      }
    }
  }
}

std::vector<int> SearchSpace::lengthscale_groups() const {
  std::vector<int> g(dim_);
  int next = 0;
  for (size_t i = 0; i < params_.size(); ++i) {
    const int end = i + 1 < params_.size() ? offset_[i + 1] : dim_;
    const bool one_hot = params_[i].type == ParamType::kCategorical && params_[i].descriptors.empty();
    for (int c = offset_[i]; c < end; ++c) g[c] = one_hot ? next : next++;
    if (one_hot) ++next;
  }
  return g;
}

std::vector<int> SearchSpace::additive_components() const {
  std::vector<int> c(dim_, -1);
  int next = 0;
  for (size_t i = 0; i < params_.size(); ++i) {
    const int end = i + 1 < params_.size() ? offset_[i + 1] : dim_;
    if (params_[i].type != ParamType::kCategorical || !params_[i].descriptors.empty()) continue;
    for (int f = offset_[i]; f < end; ++f) c[f] = next;
    ++next;
  }
  if (next == 0) return {};
  for (int& v : c)
    if (v < 0) v = next;
  return c;
}

std::vector<int> SearchSpace::numeric_features() const {
  std::vector<int> f;
  for (size_t i = 0; i < params_.size(); ++i)
    if (params_[i].type != ParamType::kCategorical) f.push_back(offset_[i]);
  return f;
}

Eigen::MatrixXd SearchSpace::encode_all(const std::vector<Point>& ps) const {
  // Row-major scratch so encode() writes contiguous features, then one copy.
  Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor> z(ps.size(), dim_);
  for (size_t r = 0; r < ps.size(); ++r) encode(ps[r], z.row(r).data());
  return z;
}

double SearchSpace::feature_slope(int i, double v) const {
  const Parameter& p = params_[i];
  if (p.type != ParamType::kContinuous || p.high <= p.low) return 0;
  if (p.log) return 1.0 / (std::max(v, 1e-300) * (std::log(p.high) - std::log(p.low)));
  return 1.0 / (p.high - p.low);
}

Status SearchSpace::check(const Point& p) const {
  if (p.size() != params_.size()) return Status::invalid("a point has ", p.size(), " values for ", params_.size(), " parameters");
  for (size_t i = 0; i < params_.size(); ++i) {
    const Parameter& pr = params_[i];
    double v = p[i];
    if (!std::isfinite(v)) return Status::invalid("parameter '", pr.name, "' is not a finite number");
    if (pr.type == ParamType::kCategorical) {
      if (v != std::floor(v) || v < 0 || v >= static_cast<double>(pr.values.size()))
        return Status::invalid("parameter '", pr.name, "' is not one of its values");
      continue;
    }
    double slack = 1e-9 * std::max(1.0, std::abs(pr.high - pr.low));
    if (v < pr.low - slack || v > pr.high + slack)
      return Status::invalid("parameter '", pr.name, "' = ", fmt(v), " is outside its bounds [", fmt(pr.low), ", ", fmt(pr.high), "]");
    if (pr.type == ParamType::kInteger && v != std::round(v))
      return Status::invalid("integer parameter '", pr.name, "' = ", fmt(v), " is not an integer");
  }
  for (size_t m = 0; m < mixtures_.size(); ++m) {
    double sum = 0;
    int nonzero = 0;
    for (int i : mix_idx_[m]) {
      sum += p[i];
      nonzero += p[i] > 0;
    }
    const Mixture& mx = mixtures_[m];
    if (std::abs(sum - mx.total) > kMixtureTolerance * std::max(1.0, std::abs(mx.total))) {
      std::string comps;
      for (const std::string& c : mx.components) comps += (comps.empty() ? "" : "+") + c;
      return Status::invalid("mixture ", comps, " sums to ", fmt(sum), ", expected ", fmt(mx.total));
    }
    if (mx.max_nonzero > 0 && nonzero > mx.max_nonzero)
      return Status::invalid("mixture ", m + 1, " has ", nonzero, " non-zero components, at most ", mx.max_nonzero, " allowed");
  }
  for (size_t c = 0; c < constraints_.size(); ++c) {
    double lhs = 0;
    for (size_t k = 0; k < con_idx_[c].size(); ++k) lhs += constraints_[c].coefficients[k] * p[con_idx_[c][k]];
    if (lhs > constraints_[c].rhs + 1e-9 * std::max(1.0, std::abs(constraints_[c].rhs)))
      return Status::invalid("linear constraint ", c + 1, " is violated: ", fmt(lhs), " > ", fmt(constraints_[c].rhs));
  }
  return Status::ok();
}

Result<double> SearchSpace::parse_value(int i, std::string_view cell) const {
  const Parameter& p = params_[i];
  if (p.type == ParamType::kCategorical) {
    for (size_t k = 0; k < p.values.size(); ++k)
      if (p.values[k] == cell) return static_cast<double>(k);
    double v = 0;
    if (parse_number(cell, &v)) {
      for (size_t k = 0; k < p.values.size(); ++k) {  // numeric labels written differently: "1.0" vs "1"
        double lv = 0;
        if (parse_number(p.values[k], &lv) && lv == v) return static_cast<double>(k);
      }
    }
    std::string all;
    for (size_t k = 0; k < p.values.size() && k < 8; ++k) all += (k ? ", " : "") + p.values[k];
    if (p.values.size() > 8) all += ", ...";
    return Status::invalid("'", std::string(cell.substr(0, 64)), "' is not a value of '", p.name, "' (", all, ")");
  }
  double v = 0;
  if (cell.empty()) return Status::invalid("value is missing");
  if (!parse_number(cell, &v)) return Status::invalid("'", std::string(cell.substr(0, 64)), "' is not a finite number");
  return v;
}

std::string SearchSpace::format_value(int i, double v) const {
  const Parameter& p = params_[i];
  if (p.type == ParamType::kCategorical) {
    int k = std::clamp(static_cast<int>(v), 0, static_cast<int>(p.values.size()) - 1);
    return p.values[k];
  }
  if (p.type == ParamType::kInteger) return std::to_string(static_cast<long long>(std::llround(v)));
  return fmt(v);
}

bool project_bounded_simplex(double* x, const double* lo, const double* hi, const bool* active, int m, double total) {
  double slo = 0, shi = 0;
  for (int i = 0; i < m; ++i)
    if (active[i]) {
      slo += lo[i];
      shi += hi[i];
    } else {
      x[i] = 0;
    }
  if (slo > total + 1e-12 * std::max(1.0, total) || shi < total - 1e-12 * std::max(1.0, total)) return false;
  // Euclidean projection: find tau with sum clamp(x - tau, lo, hi) = total by bisection.
  // tau below min(x - hi) puts everything at hi; above max(x - lo) puts everything at lo.
  double tlo = 1e300, thi = -1e300;
  for (int i = 0; i < m; ++i)
    if (active[i]) {
      tlo = std::min(tlo, x[i] - hi[i]);
      thi = std::max(thi, x[i] - lo[i]);
    }
  auto sum_at = [&](double tau) {
    double s = 0;
    for (int i = 0; i < m; ++i)
      if (active[i]) s += std::clamp(x[i] - tau, lo[i], hi[i]);
    return s;
  };
  for (int it = 0; it < 200; ++it) {
    double mid = 0.5 * (tlo + thi);
    if (sum_at(mid) > total) tlo = mid; else thi = mid;
  }
  double tau = 0.5 * (tlo + thi);
  double s = 0;
  for (int i = 0; i < m; ++i)
    if (active[i]) {
      x[i] = std::clamp(x[i] - tau, lo[i], hi[i]);
      s += x[i];
    }
  // Spread the bisection's last rounding error over components with room, so sums are exact.
  double r = total - s;
  for (int i = 0; i < m && std::abs(r) > 0; ++i)
    if (active[i]) {
      double nx = std::clamp(x[i] + r, lo[i], hi[i]);
      r -= nx - x[i];
      x[i] = nx;
    }
  return true;
}

void SearchSpace::repair(Point& p) const {
  for (size_t i = 0; i < params_.size(); ++i) {
    const Parameter& pr = params_[i];
    if (pr.type == ParamType::kCategorical) {
      p[i] = std::clamp(std::round(p[i]), 0.0, static_cast<double>(pr.values.size() - 1));
    } else {
      p[i] = std::clamp(p[i], pr.low, pr.high);
      if (pr.type == ParamType::kInteger) p[i] = std::clamp(std::round(p[i]), std::ceil(pr.low), std::floor(pr.high));
    }
  }
  for (size_t m = 0; m < mixtures_.size(); ++m) {
    const auto& idx = mix_idx_[m];
    int k = static_cast<int>(idx.size());
    std::vector<double> x(k), lo(k), hi(k);
    std::unique_ptr<bool[]> act(new bool[k]);
    std::vector<std::pair<double, int>> order;
    for (int j = 0; j < k; ++j) {
      x[j] = p[idx[j]];
      lo[j] = params_[idx[j]].low;
      hi[j] = params_[idx[j]].high;
      order.push_back({x[j] - (lo[j] > 0 ? 1e300 : 0), j});
    }
    // Keep the largest max_nonzero components (those with a positive lower bound first).
    int limit = mixtures_[m].max_nonzero > 0 ? mixtures_[m].max_nonzero : k;
    std::sort(order.begin(), order.end(), [](auto& a, auto& b) { return a.first > b.first || (a.first == b.first && a.second < b.second); });
    for (int j = 0; j < k; ++j) act[j] = false;
    for (int r = 0; r < k; ++r) {
      int j = order[r].second;
      act[j] = r < limit && (x[j] > 0 || lo[j] > 0 || r == 0);
    }
    if (!project_bounded_simplex(x.data(), lo.data(), hi.data(), act.get(), k, mixtures_[m].total)) {
      // The kept support cannot reach the total: widen it with the largest upper bounds.
      std::vector<int> byhi(k);
      std::iota(byhi.begin(), byhi.end(), 0);
      std::sort(byhi.begin(), byhi.end(), [&](int a, int b) { return (lo[a] > 0) > (lo[b] > 0) || ((lo[a] > 0) == (lo[b] > 0) && hi[a] > hi[b]); });
      for (int j = 0; j < k; ++j) act[j] = false;
      for (int r = 0; r < limit; ++r) act[byhi[r]] = true;
      project_bounded_simplex(x.data(), lo.data(), hi.data(), act.get(), k, mixtures_[m].total);
    }
    for (int j = 0; j < k; ++j) p[idx[j]] = x[j];
  }
}

Result<std::vector<Point>> SearchSpace::sample(int n, Design design, uint64_t seed) const {
  std::vector<Point> out;
  if (n <= 0) return out;
  std::mt19937_64 rng(seed ^ 0xA5A5A5A5ull);
  int d = num_params();
  int attempts = 0;
  while (static_cast<int>(out.size()) < n) {
    int batch = std::max(2 * (n - static_cast<int>(out.size())), 16);
    Eigen::MatrixXd U;
    uint64_t s = seed + 7919ull * attempts;
    switch (design) {
      case Design::kSobol: U = sobol(batch, d, s); break;
      case Design::kLatinHypercube: U = latin_hypercube(batch, d, s); break;
      case Design::kRandom: U = uniform_random(batch, d, s); break;
    }
    for (int r = 0; r < batch && static_cast<int>(out.size()) < n; ++r) {
      Point p(d);
      for (int i = 0; i < d; ++i) {
        const Parameter& pr = params_[i];
        double u = U(r, i);
        if (pr.type == ParamType::kCategorical) {
          p[i] = std::min(std::floor(u * pr.values.size()), static_cast<double>(pr.values.size() - 1));
        } else if (pr.type == ParamType::kInteger) {
          double lo = std::ceil(pr.low), hi = std::floor(pr.high);
          p[i] = std::min(lo + std::floor(u * (hi - lo + 1)), hi);
        } else {
          p[i] = from_unit(pr, u);
        }
      }
      // Mixtures: exponential spacings of the design's uniforms give a uniform point on the
      // simplex; a random support honours the cardinality limit; projection honours bounds.
      for (size_t m = 0; m < mixtures_.size(); ++m) {
        const auto& idx = mix_idx_[m];
        int k = static_cast<int>(idx.size());
        int limit = mixtures_[m].max_nonzero > 0 ? mixtures_[m].max_nonzero : k;
        std::vector<int> order(k);
        std::iota(order.begin(), order.end(), 0);
        std::shuffle(order.begin(), order.end(), rng);
        std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return params_[idx[a]].low > 0 && !(params_[idx[b]].low > 0); });
        std::uniform_int_distribution<int> sz(1, limit);
        int support = limit < k ? sz(rng) : k;
        std::vector<double> x(k), lo(k), hi(k);
        std::unique_ptr<bool[]> act(new bool[k]);
        double sum = 0;
        for (int j = 0; j < k; ++j) {
          lo[j] = params_[idx[j]].low;
          hi[j] = params_[idx[j]].high;
          act[j] = false;
        }
        for (int r2 = 0; r2 < support; ++r2) act[order[r2]] = true;
        for (int j = 0; j < k; ++j) {
          x[j] = act[j] ? -std::log(std::max(1.0 - to_unit(params_[idx[j]], p[idx[j]]), 1e-12)) : 0;
          sum += x[j];
        }
        for (int j = 0; j < k; ++j) x[j] = sum > 0 ? x[j] / sum * mixtures_[m].total : 0;
        bool ok = project_bounded_simplex(x.data(), lo.data(), hi.data(), act.get(), k, mixtures_[m].total);
        if (!ok) {
          for (int j = 0; j < k; ++j) act[j] = false;
          std::vector<int> byhi(k);
          std::iota(byhi.begin(), byhi.end(), 0);
          std::sort(byhi.begin(), byhi.end(), [&](int a, int b) { return hi[a] > hi[b]; });
          for (int r2 = 0; r2 < limit; ++r2) act[byhi[r2]] = true;
          project_bounded_simplex(x.data(), lo.data(), hi.data(), act.get(), k, mixtures_[m].total);
        }
        for (int j = 0; j < k; ++j) p[idx[j]] = x[j];
      }
      if (check(p).is_ok()) out.push_back(std::move(p));
    }
    if (++attempts > 200)
      return Status::invalid("could not find ", n, " points that satisfy every constraint (found ", out.size(),
                             " in ", attempts, " rounds); are the linear constraints satisfiable?");
  }
  return out;
}

Result<Pool> load_pool(const SearchSpace& space, const CsvTable& t) {
  std::vector<int> col(space.num_params(), -1);
  for (int c = 0; c < static_cast<int>(t.header.size()); ++c) {
    if (t.header[c] == "id") continue;
    int i = space.find(t.header[c]);
    if (i < 0) return Status::invalid(t.source, " row 1, column '", t.header[c], "': not a parameter of the campaign");
    col[i] = c;
  }
  for (int i = 0; i < space.num_params(); ++i)
    if (col[i] < 0) return Status::invalid(t.source, " row 1: parameter '", space.param(i).name, "' has no column");
  if (t.num_rows() == 0) return Status::invalid(t.source, ": the candidate pool is empty");
  Pool pool;
  pool.points.reserve(t.num_rows());
  for (int r = 0; r < t.num_rows(); ++r) {
    Point p(space.num_params());
    for (int i = 0; i < space.num_params(); ++i) {
      Result<double> v = space.parse_value(i, t.rows[r][col[i]]);
      if (!v.is_ok()) return Status::invalid(t.where(r, col[i]), ": ", v.status().message());
      p[i] = *v;
    }
    Status s = space.check(p);
    if (!s.is_ok()) {
      // Point at the first column the message names, else the row.
      int c = -1;
      for (int i = 0; i < space.num_params(); ++i)
        if (s.message().find("'" + space.param(i).name + "'") != std::string::npos) { c = col[i]; break; }
      return Status::invalid(t.where(r, c), ": ", s.message());
    }
    pool.points.push_back(std::move(p));
    pool.csv_rows.push_back(t.line[r]);
  }
  pool.features = space.encode_all(pool.points);
  return pool;
}

}  // namespace kiln::discover
