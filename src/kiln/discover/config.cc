#include "kiln/discover/config.h"

#include <yaml-cpp/yaml.h>

#include <cmath>
#include <set>

namespace kiln::discover {
namespace {

std::string at(const YAML::Node& n, const std::string& path) {
  const YAML::Mark m = n.Mark();
  return m.line >= 0 ? path + " (line " + std::to_string(m.line + 1) + ")" : path;
}

Result<double> get_number(const YAML::Node& n, const std::string& path) {
  if (!n.IsScalar()) return Status::invalid(at(n, path), ": expected a number");
  double v = 0;
  if (!parse_number(n.Scalar(), &v)) return Status::invalid(at(n, path), ": '", n.Scalar().substr(0, 64), "' is not a finite number");
  return v;
}

Result<std::string> get_string(const YAML::Node& n, const std::string& path) {
  if (!n.IsScalar()) return Status::invalid(at(n, path), ": expected a string");
  return n.Scalar();
}

Result<bool> get_bool(const YAML::Node& n, const std::string& path) {
  if (!n.IsScalar()) return Status::invalid(at(n, path), ": expected true or false");
  const std::string& s = n.Scalar();
  if (s == "true" || s == "True" || s == "yes") return true;
  if (s == "false" || s == "False" || s == "no") return false;
  return Status::invalid(at(n, path), ": expected true or false, got '", s.substr(0, 32), "'");
}

Status check_keys(const YAML::Node& n, const std::string& path, const std::set<std::string>& allowed) {
  for (auto it = n.begin(); it != n.end(); ++it) {
    if (!it->first.IsScalar()) return Status::invalid(at(n, path), ": keys must be strings");
    if (!allowed.count(it->first.Scalar())) {
      std::string list;
      for (const auto& a : allowed) list += (list.empty() ? "" : ", ") + a;
      return Status::invalid(at(it->first, path), ": unknown key '", it->first.Scalar().substr(0, 64), "' (expected one of ", list, ")");
    }
  }
  return Status::ok();
}

// yaml-cpp recurses per nesting level; hostile input could exhaust the stack before it fails.
Status check_nesting(std::string_view text) {
  int depth = 0;
  bool in_single = false, in_double = false;
  for (char c : text) {
    if (c == '\'' && !in_double) in_single = !in_single;
    else if (c == '"' && !in_single) in_double = !in_double;
    else if (c == '\n') in_single = in_double = false;
    if (in_single || in_double) continue;
    if (c == '[' || c == '{') {
      if (++depth > 32) return Status::invalid("nesting deeper than 32 levels");
    } else if ((c == ']' || c == '}') && depth > 0) {
      --depth;
    }
  }
  size_t indent = 0;
  bool line_start = true;
  for (char c : text) {
    if (c == '\n') {
      line_start = true;
      indent = 0;
    } else if (line_start && (c == ' ' || c == '-' || c == '\t')) {
      if (++indent > 256) return Status::invalid("indentation deeper than 256 columns");
    } else {
      line_start = false;
    }
  }
  return Status::ok();
}

Result<Parameter> parse_parameter(const YAML::Node& n, const std::string& path) {
  if (!n.IsMap()) return Status::invalid(at(n, path), ": expected a map like {name: x, type: continuous, low: 0, high: 1}");
  KILN_RETURN_IF_ERROR(check_keys(n, path, {"name", "type", "low", "high", "log", "values", "descriptors"}));
  Parameter p;
  if (!n["name"]) return Status::invalid(at(n, path), ": 'name' is missing");
  KILN_ASSIGN_OR_RETURN(p.name, get_string(n["name"], path + ".name"));
  std::string type = "continuous";
  if (n["type"]) {
    KILN_ASSIGN_OR_RETURN(type, get_string(n["type"], path + ".type"));
  }
  if (type == "continuous" || type == "integer") {
    p.type = type == "continuous" ? ParamType::kContinuous : ParamType::kInteger;
    if (!n["low"] || !n["high"]) return Status::invalid(at(n, path), ": parameter '", p.name, "' needs 'low' and 'high'");
    KILN_ASSIGN_OR_RETURN(p.low, get_number(n["low"], path + ".low"));
    KILN_ASSIGN_OR_RETURN(p.high, get_number(n["high"], path + ".high"));
    if (n["log"]) {
    KILN_ASSIGN_OR_RETURN(p.log, get_bool(n["log"], path + ".log"));
  }
    if (n["values"] || n["descriptors"]) return Status::invalid(at(n, path), ": 'values'/'descriptors' are for categorical parameters");
  } else if (type == "categorical") {
    p.type = ParamType::kCategorical;
    const YAML::Node v = n["values"];
    if (!v || !v.IsSequence() || v.size() == 0) return Status::invalid(at(n, path), ": categorical parameter '", p.name, "' needs a non-empty list 'values'");
    for (size_t i = 0; i < v.size(); ++i) {
      KILN_ASSIGN_OR_RETURN(std::string s, get_string(v[i], path + ".values[" + std::to_string(i) + "]"));
      p.values.push_back(s);
    }
    if (const YAML::Node d = n["descriptors"]) {
      if (!d.IsMap()) return Status::invalid(at(d, path + ".descriptors"), ": expected a map from value to a list of numbers");
      for (const std::string& val : p.values) {
        const YAML::Node row = d[val];
        if (!row || !row.IsSequence()) return Status::invalid(at(d, path + ".descriptors"), ": value '", val, "' has no descriptor list");
        std::vector<double> r;
        for (size_t j = 0; j < row.size(); ++j) {
          KILN_ASSIGN_OR_RETURN(double x, get_number(row[j], path + ".descriptors." + val + "[" + std::to_string(j) + "]"));
          r.push_back(x);
        }
        p.descriptors.push_back(std::move(r));
      }
      if (d.size() != p.values.size()) return Status::invalid(at(d, path + ".descriptors"), ": descriptors name a value that is not in 'values'");
    }
    if (n["low"] || n["high"] || n["log"]) return Status::invalid(at(n, path), ": categorical parameter '", p.name, "' takes no low/high/log");
  } else {
    return Status::invalid(at(n["type"], path + ".type"), ": unknown type '", type.substr(0, 32), "' (continuous, integer, categorical)");
  }
  return p;
}

Status parse_strategy(const YAML::Node& n, Strategy* s) {
  const std::string path = "strategy";
  if (!n.IsMap()) return Status::invalid(at(n, path), ": expected a map");
  KILN_RETURN_IF_ERROR(check_keys(n, path, {"surrogate", "kernel", "acquisition", "batch", "multi_objective", "initial", "design", "ucb_beta", "warp", "tie_categorical", "categorical_kernel", "input_warp"}));
  if (n["surrogate"]) {
    KILN_ASSIGN_OR_RETURN(std::string v, get_string(n["surrogate"], path + ".surrogate"));
    if (v == "gp") s->surrogate = SurrogateKind::kGp;
    else if (v == "forest" || v == "rf") s->surrogate = SurrogateKind::kForest;
    else return Status::invalid(at(n["surrogate"], path + ".surrogate"), ": expected gp or forest");
  }
  if (n["kernel"]) {
    KILN_ASSIGN_OR_RETURN(std::string v, get_string(n["kernel"], path + ".kernel"));
    if (v == "matern52") s->kernel = KernelType::kMatern52;
    else if (v == "rbf") s->kernel = KernelType::kRbf;
    else return Status::invalid(at(n["kernel"], path + ".kernel"), ": expected matern52 or rbf");
  }
  if (n["acquisition"]) {
    KILN_ASSIGN_OR_RETURN(std::string v, get_string(n["acquisition"], path + ".acquisition"));
    Result<AcquisitionKind> k = parse_acquisition(v);
    if (!k.is_ok()) return k.status().with_context(at(n["acquisition"], path + ".acquisition"));
    s->acquisition = *k;
  }
  if (n["batch"]) {
    KILN_ASSIGN_OR_RETURN(std::string v, get_string(n["batch"], path + ".batch"));
    Result<BatchMode> b = parse_batch_mode(v);
    if (!b.is_ok()) return b.status().with_context(at(n["batch"], path + ".batch"));
    s->batch = *b;
  }
  if (n["multi_objective"]) {
    KILN_ASSIGN_OR_RETURN(std::string v, get_string(n["multi_objective"], path + ".multi_objective"));
    if (v == "ehvi") s->multi_objective = MultiObjectiveKind::kEHVI;
    else if (v == "parego") s->multi_objective = MultiObjectiveKind::kParEGO;
    else return Status::invalid(at(n["multi_objective"], path + ".multi_objective"), ": expected ehvi or parego");
  }
  if (n["initial"]) {
    KILN_ASSIGN_OR_RETURN(double v, get_number(n["initial"], path + ".initial"));
    if (v != std::floor(v) || v < 1 || v > 10000) return Status::invalid(at(n["initial"], path + ".initial"), ": expected an integer in [1, 10000]");
    s->initial = static_cast<int>(v);
  }
  if (n["design"]) {
    KILN_ASSIGN_OR_RETURN(std::string v, get_string(n["design"], path + ".design"));
    if (v == "sobol") s->design = Design::kSobol;
    else if (v == "lhs") s->design = Design::kLatinHypercube;
    else if (v == "random") s->design = Design::kRandom;
    else return Status::invalid(at(n["design"], path + ".design"), ": expected sobol, lhs or random");
  }
  if (n["ucb_beta"]) {
    KILN_ASSIGN_OR_RETURN(s->ucb_beta, get_number(n["ucb_beta"], path + ".ucb_beta"));
  }
  if (n["warp"]) {
    KILN_ASSIGN_OR_RETURN(s->warp, get_bool(n["warp"], path + ".warp"));
  }
  if (n["tie_categorical"]) {
    KILN_ASSIGN_OR_RETURN(s->tie_categorical, get_bool(n["tie_categorical"], path + ".tie_categorical"));
  }
  if (n["categorical_kernel"]) {
    KILN_ASSIGN_OR_RETURN(std::string v, get_string(n["categorical_kernel"], path + ".categorical_kernel"));
    if (v == "ard") s->mixed_categorical = false;
    else if (v == "mixed") s->mixed_categorical = true;
    else return Status::invalid(at(n["categorical_kernel"], path + ".categorical_kernel"), ": expected ard or mixed");
  }
  if (n["input_warp"]) {
    KILN_ASSIGN_OR_RETURN(s->input_warp, get_bool(n["input_warp"], path + ".input_warp"));
  }
  return s->validate();
}

Result<CampaignConfig> parse_node(const YAML::Node& root) {
  CampaignConfig c;
  if (!root.IsMap()) return Status::invalid("the campaign file must be a YAML map with 'parameters' and 'objectives'");
  KILN_RETURN_IF_ERROR(check_keys(root, "campaign", {"parameters", "mixtures", "constraints", "objectives", "candidates", "seed", "strategy", "name"}));
  const YAML::Node ps = root["parameters"];
  if (!ps || !ps.IsSequence() || ps.size() == 0) return Status::invalid("'parameters' must be a non-empty list");
  for (size_t i = 0; i < ps.size(); ++i) {
    KILN_ASSIGN_OR_RETURN(Parameter p, parse_parameter(ps[i], "parameters[" + std::to_string(i) + "]"));
    c.parameters.push_back(std::move(p));
  }
  if (const YAML::Node ms = root["mixtures"]) {
    if (!ms.IsSequence()) return Status::invalid(at(ms, "mixtures"), ": expected a list");
    for (size_t i = 0; i < ms.size(); ++i) {
      std::string path = "mixtures[" + std::to_string(i) + "]";
      const YAML::Node m = ms[i];
      if (!m.IsMap()) return Status::invalid(at(m, path), ": expected a map like {components: [a, b], total: 1}");
      KILN_RETURN_IF_ERROR(check_keys(m, path, {"components", "total", "max_nonzero"}));
      Mixture mx;
      const YAML::Node comps = m["components"];
      if (!comps || !comps.IsSequence()) return Status::invalid(at(m, path), ": 'components' must be a list of parameter names");
      for (size_t j = 0; j < comps.size(); ++j) {
        KILN_ASSIGN_OR_RETURN(std::string s, get_string(comps[j], path + ".components[" + std::to_string(j) + "]"));
        mx.components.push_back(s);
      }
      if (m["total"]) {
    KILN_ASSIGN_OR_RETURN(mx.total, get_number(m["total"], path + ".total"));
  }
      if (m["max_nonzero"]) {
        KILN_ASSIGN_OR_RETURN(double k, get_number(m["max_nonzero"], path + ".max_nonzero"));
        if (k != std::floor(k) || k < 0 || k > 1e6) return Status::invalid(at(m["max_nonzero"], path + ".max_nonzero"), ": expected a non-negative integer");
        mx.max_nonzero = static_cast<int>(k);
      }
      c.mixtures.push_back(std::move(mx));
    }
  }
  if (const YAML::Node cs = root["constraints"]) {
    if (!cs.IsSequence()) return Status::invalid(at(cs, "constraints"), ": expected a list");
    for (size_t i = 0; i < cs.size(); ++i) {
      std::string path = "constraints[" + std::to_string(i) + "]";
      const YAML::Node n = cs[i];
      if (!n.IsMap()) return Status::invalid(at(n, path), ": expected a map like {coefficients: {a: 1, b: 2}, max: 10}");
      KILN_RETURN_IF_ERROR(check_keys(n, path, {"coefficients", "max", "min"}));
      const YAML::Node co = n["coefficients"];
      if (!co || !co.IsMap() || co.size() == 0) return Status::invalid(at(n, path), ": 'coefficients' must map parameter names to numbers");
      LinearConstraint lc;
      for (auto it = co.begin(); it != co.end(); ++it) {
        KILN_ASSIGN_OR_RETURN(std::string name, get_string(it->first, path + ".coefficients"));
        KILN_ASSIGN_OR_RETURN(double a, get_number(it->second, path + ".coefficients." + name));
        lc.names.push_back(name);
        lc.coefficients.push_back(a);
      }
      bool has_max = static_cast<bool>(n["max"]), has_min = static_cast<bool>(n["min"]);
      if (has_max == has_min) return Status::invalid(at(n, path), ": give exactly one of 'max' or 'min'");
      if (has_max) {
        KILN_ASSIGN_OR_RETURN(lc.rhs, get_number(n["max"], path + ".max"));
      } else {
        // sum a x >= m  <=>  sum (-a) x <= -m
        KILN_ASSIGN_OR_RETURN(double mn, get_number(n["min"], path + ".min"));
        for (double& a : lc.coefficients) a = -a;
        lc.rhs = -mn;
      }
      c.constraints.push_back(std::move(lc));
    }
  }
  const YAML::Node os = root["objectives"];
  if (!os || !os.IsSequence() || os.size() == 0) return Status::invalid("'objectives' must be a non-empty list");
  std::set<std::string> names;
  for (const Parameter& p : c.parameters) names.insert(p.name);
  for (size_t i = 0; i < os.size(); ++i) {
    std::string path = "objectives[" + std::to_string(i) + "]";
    const YAML::Node o = os[i];
    if (!o.IsMap()) return Status::invalid(at(o, path), ": expected a map like {name: y, direction: maximize}");
    KILN_RETURN_IF_ERROR(check_keys(o, path, {"name", "direction"}));
    Objective ob;
    if (!o["name"]) return Status::invalid(at(o, path), ": 'name' is missing");
    KILN_ASSIGN_OR_RETURN(ob.name, get_string(o["name"], path + ".name"));
    if (ob.name.empty() || ob.name == "id") return Status::invalid(at(o, path), ": objective name '", ob.name, "' is not allowed");
    if (!names.insert(ob.name).second) return Status::invalid(at(o, path), ": name '", ob.name, "' is already used");
    std::string dir = "maximize";
    if (o["direction"]) {
    KILN_ASSIGN_OR_RETURN(dir, get_string(o["direction"], path + ".direction"));
  }
    if (dir == "maximize" || dir == "max" || dir == "maximise") ob.maximize = true;
    else if (dir == "minimize" || dir == "min" || dir == "minimise") ob.maximize = false;
    else return Status::invalid(at(o["direction"], path + ".direction"), ": expected maximize or minimize");
    c.objectives.push_back(std::move(ob));
  }
  if (c.objectives.size() > 3) return Status::invalid("at most 3 objectives are supported, got ", c.objectives.size());
  if (const YAML::Node cand = root["candidates"]) {
    KILN_ASSIGN_OR_RETURN(c.candidates, get_string(cand, "candidates"));
  }
  if (const YAML::Node seed = root["seed"]) {
    KILN_ASSIGN_OR_RETURN(double s, get_number(seed, "seed"));
    if (s != std::floor(s) || s < 0 || s > 9.0e15) return Status::invalid(at(seed, "seed"), ": expected a non-negative integer");
    c.seed = static_cast<uint64_t>(s);
  }
  if (const YAML::Node st = root["strategy"]) KILN_RETURN_IF_ERROR(parse_strategy(st, &c.strategy));
  return c;
}

}  // namespace

Status Strategy::validate() const {
  if (initial < 1) return Status::invalid("strategy.initial must be >= 1");
  if (!(ucb_beta >= 0) || !std::isfinite(ucb_beta)) return Status::invalid("strategy.ucb_beta must be >= 0");
  if (acquisition == AcquisitionKind::kEHVI) return Status::invalid("strategy.acquisition: ehvi is chosen by multi_objective, not here");
  return Status::ok();
}

Result<CampaignConfig> parse_campaign_yaml(std::string_view text, const std::string& source) {
  if (text.size() > (size_t{1} << 20)) return Status::invalid(source, ": the campaign file is larger than 1 MiB");
  Status nest = check_nesting(text);
  if (!nest.is_ok()) return nest.with_context(source);
  Result<CampaignConfig> r = Status::invalid("unparsed");
  try {
    YAML::Node root = YAML::Load(std::string(text));
    r = parse_node(root);
  } catch (const YAML::Exception& e) {
    return Status::invalid(source, ": line ", e.mark.line + 1, ", column ", e.mark.column + 1, ": ", e.msg);
  } catch (const std::exception& e) {
    return Status::invalid(source, ": ", e.what());
  }
  if (!r.is_ok()) return r.status().with_context(source);
  Result<SearchSpace> s = build_space(*r);
  if (!s.is_ok()) return s.status().with_context(source);
  return r;
}

Result<SearchSpace> build_space(const CampaignConfig& c) {
  return SearchSpace::create(c.parameters, c.mixtures, c.constraints);
}

}  // namespace kiln::discover
