#include "kiln/control/blocks.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <filesystem>

#include "kiln/control/fft.h"
#include "kiln/nn/compile.h"
#include "kiln/nn/model.h"

namespace kiln::control {

void CycleContext::fail(const char* detail) {
  if (fault) return;
  fault = true;
  std::snprintf(fault_detail, sizeof fault_detail, "%s", detail);
}

namespace {

int64_t mono_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

void add_reads(Block& b, const Expr& e) {
  for (int v : e.variables()) b.reads.push_back(v);
}

// ---------------------------------------------------------------------------------------------
class Pid final : public Block {
 public:
  int pv = -1, out = -1, manual = -1;
  Expr sp, manual_out;
  double kp = 1, ki = 0, kd = 0, lo = -INFINITY, hi = INFINITY, d_tau = 0, bias = 0;
  bool reverse = false;
  double integ = 0, last_pv = 0, d_state = 0;
  bool first = true;

  void reset() override {
    integ = 0;
    d_state = 0;
    first = true;
  }
  void step(CycleContext& c) override {
    double meas = c.tags[pv];
    double e = sp.eval(c.tags) - meas;
    if (reverse) e = -e;
    double dmeas = first ? 0.0 : (meas - last_pv) / c.dt;
    last_pv = meas;
    // Derivative on the measurement (no kick when the setpoint steps), first-order filtered.
    double a = d_tau > 0 ? c.dt / (d_tau + c.dt) : 1.0;
    d_state += a * (dmeas - d_state);
    double p = kp * e, d = -kd * d_state * (reverse ? -1 : 1);
    first = false;
    if (manual >= 0 && c.tags[manual] != 0) {
      double u = std::clamp(manual_out.eval(c.tags), lo, hi);
      // Bumpless: the integrator tracks so that switching back to automatic starts from u.
      integ = u - p - d - bias;
      c.tags[out] = u;
      return;
    }
    // Anti-windup by conditional integration: the integrator may bring the output up to a limit
    // but never pushes it further, so it does not wind up while the output is saturated and the
    // output leaves the limit as soon as the error changes sign.
    double inc = ki * e * c.dt;
    double u_try = bias + p + integ + d + inc;
    if (inc > 0 && u_try > hi) inc = std::max(0.0, hi - (bias + p + integ + d));
    else if (inc < 0 && u_try < lo) inc = std::min(0.0, lo - (bias + p + integ + d));
    integ += inc;
    if (!std::isfinite(integ)) integ = 0;
    c.tags[out] = std::clamp(bias + p + integ + d, lo, hi);
    if (std::isnan(meas)) c.tags[out] = NAN;
  }
};

Result<std::unique_ptr<Block>> make_pid(Params& p) {
  auto b = std::make_unique<Pid>();
  KILN_ASSIGN_OR_RETURN(b->pv, p.tag("pv", kScalarTags));
  KILN_ASSIGN_OR_RETURN(b->sp, p.expr("sp", 0, true));
  KILN_ASSIGN_OR_RETURN(b->out, p.tag("out", kFloatTag | kIntTag));
  KILN_ASSIGN_OR_RETURN(b->kp, p.number("kp", 1));
  KILN_ASSIGN_OR_RETURN(b->ki, p.number_in("ki", 0, 0, 1e9));
  KILN_ASSIGN_OR_RETURN(b->kd, p.number_in("kd", 0, 0, 1e9));
  KILN_ASSIGN_OR_RETURN(b->d_tau, p.number_in("d_filter", 0, 0, 1e6));
  KILN_ASSIGN_OR_RETURN(b->bias, p.number("bias", 0));
  KILN_ASSIGN_OR_RETURN(b->reverse, p.boolean("reverse", false));
  const TagSpec& os = p.env().image->spec(b->out);
  KILN_ASSIGN_OR_RETURN(b->lo, p.number("out_min", std::isfinite(os.min) ? os.min : -1e300));
  KILN_ASSIGN_OR_RETURN(b->hi, p.number("out_max", std::isfinite(os.max) ? os.max : 1e300));
  if (!(b->lo < b->hi)) return located(p.env(), p.node(), "out_min must be below out_max");
  KILN_ASSIGN_OR_RETURN(b->manual, p.tag("manual", kBoolTag, false));
  KILN_ASSIGN_OR_RETURN(b->manual_out, p.expr("manual_out", 0));
  b->reads = {b->pv};
  add_reads(*b, b->sp);
  add_reads(*b, b->manual_out);
  if (b->manual >= 0) b->reads.push_back(b->manual);
  b->writes = {b->out};
  return std::unique_ptr<Block>(std::move(b));
}

// ---------------------------------------------------------------------------------------------
class Lowpass final : public Block {
 public:
  int in = -1, out = -1;
  double tau = 1;
  bool first = true;
  double y = 0;
  void reset() override { first = true; }
  void step(CycleContext& c) override {
    double x = c.tags[in];
    if (first || std::isnan(y)) {
      y = x;
      first = false;
    } else {
      y += c.dt / (tau + c.dt) * (x - y);
    }
    c.tags[out] = y;
  }
};

Result<std::unique_ptr<Block>> make_lowpass(Params& p) {
  auto b = std::make_unique<Lowpass>();
  KILN_ASSIGN_OR_RETURN(b->in, p.tag("in", kScalarTags));
  KILN_ASSIGN_OR_RETURN(b->out, p.tag("out", kFloatTag));
  KILN_ASSIGN_OR_RETURN(b->tau, p.number_in("tau", 1, 0, 1e9, true));
  b->reads = {b->in};
  b->writes = {b->out};
  return std::unique_ptr<Block>(std::move(b));
}

class MovingAverage final : public Block {
 public:
  int in = -1, out = -1;
  std::vector<double> ring;
  size_t pos = 0, filled = 0;
  double sum = 0;
  uint64_t since_resum = 0;
  void reset() override {
    std::fill(ring.begin(), ring.end(), 0.0);
    pos = filled = 0;
    sum = 0;
  }
  void step(CycleContext& c) override {
    double x = c.tags[in];
    if (filled == ring.size()) sum -= ring[pos];
    else ++filled;
    ring[pos] = x;
    sum += x;
    pos = (pos + 1) % ring.size();
    // Re-add from scratch now and then so rounding errors (and a NaN that has left the window)
    // do not stay in the running sum forever.
    if (++since_resum >= ring.size() * 4 || std::isnan(sum)) {
      since_resum = 0;
      sum = 0;
      for (size_t i = 0; i < filled; ++i) sum += ring[(pos + ring.size() - 1 - i) % ring.size()];
    }
    c.tags[out] = sum / static_cast<double>(filled);
  }
};

Result<std::unique_ptr<Block>> make_moving_average(Params& p) {
  auto b = std::make_unique<MovingAverage>();
  KILN_ASSIGN_OR_RETURN(b->in, p.tag("in", kScalarTags));
  KILN_ASSIGN_OR_RETURN(b->out, p.tag("out", kFloatTag));
  KILN_ASSIGN_OR_RETURN(int64_t n, p.integer("n", 0, 1, 65536, true));
  b->ring.assign(static_cast<size_t>(n), 0.0);
  b->reads = {b->in};
  b->writes = {b->out};
  return std::unique_ptr<Block>(std::move(b));
}

// ---------------------------------------------------------------------------------------------
class BandEnergyBlock final : public Block {
 public:
  int in = -1, out_array = -1, rms = -1;
  std::vector<int> outs;
  std::unique_ptr<BandEnergy> be;
  std::vector<float> x, y;
  bool log = false;
  void step(CycleContext& c) override {
    c.image->read_window(in, x);
    double r = be->compute(x.data(), y.data());
    if (log)
      for (float& v : y) v = static_cast<float>(std::log10(static_cast<double>(v) + 1e-12));
    if (out_array >= 0) c.image->write_array(out_array, y);
    for (size_t i = 0; i < outs.size(); ++i) c.tags[outs[i]] = y[i];
    if (rms >= 0) c.tags[rms] = r;
  }
};

Result<std::unique_ptr<Block>> make_band_energy(Params& p) {
  auto b = std::make_unique<BandEnergyBlock>();
  const BuildEnv& env = p.env();
  KILN_ASSIGN_OR_RETURN(b->in, p.tag("in", kWindowTag | kArrayTag));
  KILN_ASSIGN_OR_RETURN(double rate, p.number_in("sample_rate", 0, 1e-3, 1e9, true));
  int len = env.image->spec(b->in).length;
  YAML::Node nn = p.child("n");
  KILN_ASSIGN_OR_RETURN(int64_t n, p.integer("n", len, 8, 16384));
  if (n > 16384) return located(env, nn.IsDefined() ? nn : p.node(), "at most 16384 samples per FFT; give a smaller 'n'");
  if ((n & (n - 1)) != 0) return located(env, nn.IsDefined() ? nn : p.node(), "'n' must be a power of two, got ", n);
  if (n > len) return located(env, nn.IsDefined() ? nn : p.node(), "'n' (", n, ") is longer than window '", env.image->spec(b->in).name, "' (", len, " samples)");
  YAML::Node bands = p.child("bands");
  if (!bands.IsSequence() || bands.size() == 0)
    return located(env, bands.IsDefined() ? bands : p.node(), "'bands' must be a list of [low_hz, high_hz] pairs");
  std::vector<std::pair<double, double>> bl;
  for (const YAML::Node& bn : bands) {
    if (!bn.IsSequence() || bn.size() != 2) return located(env, bn, "a band is [low_hz, high_hz]");
    KILN_ASSIGN_OR_RETURN(double lo, p.number_of(bn[0]));
    KILN_ASSIGN_OR_RETURN(double hi, p.number_of(bn[1]));
    if (!(lo >= 0 && hi > lo && hi <= rate / 2 + 1e-9))
      return located(env, bn, "band [", lo, ", ", hi, "] must satisfy 0 <= low < high <= sample_rate/2 (", rate / 2, ")");
    bl.emplace_back(lo, hi);
  }
  if (bl.size() > 256) return located(env, bands, "at most 256 bands");
  KILN_ASSIGN_OR_RETURN(b->log, p.boolean("log", false));
  YAML::Node on = p.child("out");
  if (!on.IsDefined()) return located(env, p.node(), "missing 'out' (an array tag or a list of float tags, one per band)");
  if (on.IsScalar() && env.image->find(on.Scalar()) >= 0 && env.image->spec(env.image->find(on.Scalar())).type == TagType::kArray) {
    KILN_ASSIGN_OR_RETURN(b->out_array, p.tag_of(on, kArrayTag));
    if (env.image->spec(b->out_array).length != static_cast<int>(bl.size()))
      return located(env, on, "array '", on.Scalar(), "' has ", env.image->spec(b->out_array).length, " elements, the block computes ", bl.size(), " bands");
    b->writes.push_back(b->out_array);
  } else {
    KILN_ASSIGN_OR_RETURN(b->outs, p.tags("out", kFloatTag));
    if (b->outs.size() != bl.size()) return located(env, on, "'out' lists ", b->outs.size(), " tags for ", bl.size(), " bands");
    for (int t : b->outs) b->writes.push_back(t);
  }
  KILN_ASSIGN_OR_RETURN(b->rms, p.tag("rms", kFloatTag, false));
  if (b->rms >= 0) b->writes.push_back(b->rms);
  b->be = std::make_unique<BandEnergy>(static_cast<int>(n), rate, bl);
  b->x.assign(static_cast<size_t>(n), 0.f);
  b->y.assign(bl.size(), 0.f);
  b->reads = {b->in};
  return std::unique_ptr<Block>(std::move(b));
}

// ---------------------------------------------------------------------------------------------
class Limit final : public Block {
 public:
  int in = -1, out = -1;
  Expr lo, hi;
  void step(CycleContext& c) override { c.tags[out] = std::fmin(std::fmax(c.tags[in], lo.eval(c.tags)), hi.eval(c.tags)); }
};

Result<std::unique_ptr<Block>> make_limit(Params& p) {
  auto b = std::make_unique<Limit>();
  KILN_ASSIGN_OR_RETURN(b->in, p.tag("in", kScalarTags));
  KILN_ASSIGN_OR_RETURN(b->out, p.tag("out", kFloatTag | kIntTag));
  KILN_ASSIGN_OR_RETURN(b->lo, p.expr("min", -1e300));
  KILN_ASSIGN_OR_RETURN(b->hi, p.expr("max", 1e300));
  b->reads = {b->in};
  add_reads(*b, b->lo);
  add_reads(*b, b->hi);
  b->writes = {b->out};
  return std::unique_ptr<Block>(std::move(b));
}

class RateLimit final : public Block {
 public:
  int in = -1, out = -1;
  double rise = 1, fall = 1, y = 0;
  bool first = true;
  void reset() override { first = true; }
  void step(CycleContext& c) override {
    double x = c.tags[in];
    if (first || std::isnan(y)) {
      y = x;
      first = false;
    } else {
      y += std::clamp(x - y, -fall * c.dt, rise * c.dt);
    }
    c.tags[out] = y;
  }
};

Result<std::unique_ptr<Block>> make_rate_limit(Params& p) {
  auto b = std::make_unique<RateLimit>();
  KILN_ASSIGN_OR_RETURN(b->in, p.tag("in", kScalarTags));
  KILN_ASSIGN_OR_RETURN(b->out, p.tag("out", kFloatTag));
  KILN_ASSIGN_OR_RETURN(b->rise, p.number_in("rise", 0, 0, 1e300, true));
  KILN_ASSIGN_OR_RETURN(b->fall, p.number_in("fall", b->rise, 0, 1e300));
  b->reads = {b->in};
  b->writes = {b->out};
  return std::unique_ptr<Block>(std::move(b));
}

class Hysteresis final : public Block {
 public:
  int in = -1, out = -1;
  Expr hi, lo;
  bool state = false;
  void reset() override { state = false; }
  void step(CycleContext& c) override {
    double x = c.tags[in];
    if (!state && x > hi.eval(c.tags)) state = true;
    else if (state && x < lo.eval(c.tags)) state = false;
    c.tags[out] = state ? 1 : 0;
  }
};

Result<std::unique_ptr<Block>> make_hysteresis(Params& p) {
  auto b = std::make_unique<Hysteresis>();
  KILN_ASSIGN_OR_RETURN(b->in, p.tag("in", kScalarTags));
  KILN_ASSIGN_OR_RETURN(b->out, p.tag("out", kBoolTag));
  KILN_ASSIGN_OR_RETURN(b->hi, p.expr("on_above", 0, true));
  KILN_ASSIGN_OR_RETURN(b->lo, p.expr("off_below", 0, true));
  if (b->hi.is_constant() && b->lo.is_constant() && b->lo.eval(nullptr) > b->hi.eval(nullptr))
    return located(p.env(), p.node(), "off_below must not be above on_above");
  b->reads = {b->in};
  add_reads(*b, b->hi);
  add_reads(*b, b->lo);
  b->writes = {b->out};
  return std::unique_ptr<Block>(std::move(b));
}

// IEC 61131-3 timers: TON (on-delay), TOF (off-delay), TP (pulse).
class Timer final : public Block {
 public:
  enum Mode { kTon, kTof, kTp } mode = kTon;
  Expr in;
  int out = -1, elapsed_tag = -1;
  double preset = 1, elapsed = 0;
  bool last_in = false, q = false;
  void reset() override {
    elapsed = 0;
    last_in = q = false;
  }
  void step(CycleContext& c) override {
    bool x = in.eval(c.tags) != 0;
    switch (mode) {
      case kTon:
        elapsed = x ? std::min(elapsed + c.dt, preset) : 0;
        q = x && elapsed >= preset - 1e-12;
        break;
      case kTof:
        if (x) {
          elapsed = 0;
          q = true;
        } else if (q) {
          elapsed = std::min(elapsed + c.dt, preset);
          if (elapsed >= preset - 1e-12) q = false;
        }
        break;
      case kTp:
        if (!q && x && !last_in) {
          q = true;
          elapsed = 0;
        }
        if (q) {
          elapsed += c.dt;
          if (elapsed >= preset - 1e-12) q = false;
        } else if (!x) {
          elapsed = 0;
        }
        break;
    }
    last_in = x;
    c.tags[out] = q ? 1 : 0;
    if (elapsed_tag >= 0) c.tags[elapsed_tag] = elapsed;
  }
};

Result<std::unique_ptr<Block>> make_timer(Params& p) {
  auto b = std::make_unique<Timer>();
  YAML::Node mn = p.child("mode");
  KILN_ASSIGN_OR_RETURN(std::string mode, p.string("mode", "ton"));
  if (mode == "ton") b->mode = Timer::kTon;
  else if (mode == "tof") b->mode = Timer::kTof;
  else if (mode == "tp") b->mode = Timer::kTp;
  else return located(p.env(), mn, "timer mode must be ton, tof or tp, got '", mode.substr(0, 32), "'");
  KILN_ASSIGN_OR_RETURN(b->in, p.expr("in", 0, true));
  KILN_ASSIGN_OR_RETURN(b->out, p.tag("out", kBoolTag));
  KILN_ASSIGN_OR_RETURN(b->preset, p.number_in("preset", 0, 0, 1e9, true));
  KILN_ASSIGN_OR_RETURN(b->elapsed_tag, p.tag("elapsed", kFloatTag, false));
  add_reads(*b, b->in);
  b->writes = {b->out};
  if (b->elapsed_tag >= 0) b->writes.push_back(b->elapsed_tag);
  return std::unique_ptr<Block>(std::move(b));
}

// ---------------------------------------------------------------------------------------------
class StateMachine final : public Block {
 public:
  struct Transition {
    int from;  // -1: any state
    int to;
    Expr when;
  };
  struct Output {
    int state, tag;
    Expr value;
  };
  std::vector<std::string> states;
  std::vector<Transition> transitions;
  std::vector<Output> outputs;
  int out = -1, initial = 0, state = 0;
  double state_time = 0;
  bool log_changes = true;
  void reset() override {
    state = initial;
    state_time = 0;
  }
  void step(CycleContext& c) override {
    double extra[1] = {state_time};
    for (const Transition& t : transitions) {
      if ((t.from == state || t.from < 0) && t.to != state && t.when.eval(c.tags, extra) != 0) {
        if (log_changes && c.events)
          c.events->postf(EventKind::kInfo, "%s: %s -> %s", name.c_str(), states[static_cast<size_t>(state)].c_str(),
                          states[static_cast<size_t>(t.to)].c_str());
        state = t.to;
        state_time = 0;
        extra[0] = 0;
        break;  // one transition per cycle: every state is visible for at least one cycle
      }
    }
    for (const Output& o : outputs)
      if (o.state == state) c.tags[o.tag] = o.value.eval(c.tags, extra);
    if (out >= 0) c.tags[out] = state;
    state_time += c.dt;
  }
};

Result<std::unique_ptr<Block>> make_state_machine(Params& p) {
  auto b = std::make_unique<StateMachine>();
  const BuildEnv& env = p.env();
  YAML::Node sn = p.child("states");
  if (!sn.IsSequence() || sn.size() == 0) return located(env, sn.IsDefined() ? sn : p.node(), "'states' must be a list of state names");
  for (const YAML::Node& s : sn) {
    KILN_ASSIGN_OR_RETURN(std::string name, p.string_of(s));
    if (std::find(b->states.begin(), b->states.end(), name) != b->states.end()) return located(env, s, "state '", name, "' listed twice");
    b->states.push_back(name);
  }
  auto state_of = [&](const YAML::Node& n, bool allow_any) -> Result<int> {
    KILN_ASSIGN_OR_RETURN(std::string name, p.string_of(n));
    if (allow_any && name == "*") return -1;
    auto it = std::find(b->states.begin(), b->states.end(), name);
    if (it == b->states.end()) return located(env, n, "unknown state '", name.substr(0, 64), "'");
    return static_cast<int>(it - b->states.begin());
  };
  YAML::Node in = p.child("initial");
  if (in.IsDefined()) {
    KILN_ASSIGN_OR_RETURN(b->initial, state_of(in, false));
  }
  b->state = b->initial;
  KILN_ASSIGN_OR_RETURN(b->out, p.tag("out", kIntTag | kFloatTag, false));
  KILN_ASSIGN_OR_RETURN(b->log_changes, p.boolean("log", true));
  const std::vector<std::string> extra = {"state_time"};
  YAML::Node tn = p.child("transitions");
  if (tn.IsDefined() && !tn.IsSequence()) return located(env, tn, "'transitions' must be a list of {from, to, when}");
  if (tn.IsDefined()) {
    for (const YAML::Node& t : tn) {
      if (!t.IsMap()) return located(env, t, "a transition is {from: STATE, to: STATE, when: EXPRESSION}");
      Params tp(t, env);
      YAML::Node f = tp.child("from"), to = tp.child("to");
      if (!f.IsDefined() || !to.IsDefined()) return located(env, t, "a transition needs 'from' and 'to'");
      StateMachine::Transition tr;
      KILN_ASSIGN_OR_RETURN(tr.from, state_of(f, true));
      KILN_ASSIGN_OR_RETURN(tr.to, state_of(to, false));
      KILN_ASSIGN_OR_RETURN(tr.when, tp.expr("when", 0, true, extra));
      KILN_RETURN_IF_ERROR(tp.finish());
      add_reads(*b, tr.when);
      b->transitions.push_back(std::move(tr));
    }
  }
  YAML::Node on = p.child("outputs");
  if (on.IsDefined()) {
    if (!on.IsMap()) return located(env, on, "'outputs' maps a state to {tag: value}");
    for (auto it = on.begin(); it != on.end(); ++it) {
      KILN_ASSIGN_OR_RETURN(int st, state_of(it->first, false));
      if (!it->second.IsMap()) return located(env, it->second, "outputs of a state are {tag: value or expression}");
      for (auto jt = it->second.begin(); jt != it->second.end(); ++jt) {
        StateMachine::Output o;
        o.state = st;
        KILN_ASSIGN_OR_RETURN(o.tag, p.tag_of(jt->first, kScalarTags));
        KILN_ASSIGN_OR_RETURN(o.value, p.expr_of(jt->second, extra));
        add_reads(*b, o.value);
        if (std::find(b->writes.begin(), b->writes.end(), o.tag) == b->writes.end()) b->writes.push_back(o.tag);
        b->outputs.push_back(std::move(o));
      }
    }
  }
  if (b->out >= 0) b->writes.push_back(b->out);
  return std::unique_ptr<Block>(std::move(b));
}

// ---------------------------------------------------------------------------------------------
class ExprBlock final : public Block {
 public:
  int out = -1;
  Expr e;
  void step(CycleContext& c) override { c.tags[out] = e.eval(c.tags); }
};

Result<std::unique_ptr<Block>> make_expr(Params& p) {
  auto b = std::make_unique<ExprBlock>();
  KILN_ASSIGN_OR_RETURN(b->out, p.tag("out", kScalarTags));
  KILN_ASSIGN_OR_RETURN(b->e, p.expr("expr", 0, true));
  add_reads(*b, b->e);
  b->writes = {b->out};
  return std::unique_ptr<Block>(std::move(b));
}

class Push final : public Block {
 public:
  Expr in;
  int out = -1;
  void step(CycleContext& c) override { c.image->push(out, static_cast<float>(in.eval(c.tags))); }
};

Result<std::unique_ptr<Block>> make_push(Params& p) {
  auto b = std::make_unique<Push>();
  KILN_ASSIGN_OR_RETURN(b->in, p.expr("in", 0, true));
  KILN_ASSIGN_OR_RETURN(b->out, p.tag("out", kWindowTag));
  add_reads(*b, b->in);
  b->writes = {b->out};
  return std::unique_ptr<Block>(std::move(b));
}

class Profile final : public Block {
 public:
  int out = -1, run = -1;
  std::vector<std::pair<double, double>> pts;
  bool repeat = false, last_run = false;
  double t = 0;
  void reset() override {
    t = 0;
    last_run = false;
  }
  void step(CycleContext& c) override {
    if (run >= 0) {
      bool r = c.tags[run] != 0;
      if (r && !last_run) t = 0;
      last_run = r;
      if (!r) {
        c.tags[out] = pts.front().second;
        return;
      }
    }
    double end = pts.back().first;
    double tt = (repeat && end > 0) ? std::fmod(t, end) : t;
    double v = pts.back().second;
    if (tt <= pts.front().first) v = pts.front().second;
    else
      for (size_t i = 1; i < pts.size(); ++i)
        if (tt <= pts[i].first) {
          double span = pts[i].first - pts[i - 1].first;
          double f = span > 0 ? (tt - pts[i - 1].first) / span : 1.0;
          v = pts[i - 1].second + f * (pts[i].second - pts[i - 1].second);
          break;
        }
    c.tags[out] = v;
    t += c.dt;
  }
};

Result<std::unique_ptr<Block>> make_profile(Params& p) {
  auto b = std::make_unique<Profile>();
  const BuildEnv& env = p.env();
  KILN_ASSIGN_OR_RETURN(b->out, p.tag("out", kFloatTag));
  KILN_ASSIGN_OR_RETURN(b->run, p.tag("run", kBoolTag, false));
  KILN_ASSIGN_OR_RETURN(b->repeat, p.boolean("repeat", false));
  YAML::Node pn = p.child("points");
  if (!pn.IsSequence() || pn.size() == 0) return located(env, pn.IsDefined() ? pn : p.node(), "'points' must be a list of [time_s, value]");
  for (const YAML::Node& pt : pn) {
    if (!pt.IsSequence() || pt.size() != 2) return located(env, pt, "a point is [time_s, value]");
    KILN_ASSIGN_OR_RETURN(double t, p.number_of(pt[0]));
    KILN_ASSIGN_OR_RETURN(double v, p.number_of(pt[1]));
    if (!b->pts.empty() && t < b->pts.back().first) return located(env, pt, "point times must not decrease");
    b->pts.emplace_back(t, v);
  }
  if (b->run >= 0) b->reads.push_back(b->run);
  b->writes = {b->out};
  return std::unique_ptr<Block>(std::move(b));
}

// ---------------------------------------------------------------------------------------------
// infer: tags -> (x - offset) * scale -> model -> y * scale + offset -> tags.
class Infer final : public Block {
 public:
  struct Binding {
    std::vector<int> scalars;  // scalar tags, or
    int vec = -1;              // one array / window tag
    bool window = false;
    std::vector<float> scale, offset;  // per element
    int index = 0;                     // model input / output index
  };
  nn::CompiledModel model;
  std::vector<Binding> in, out;
  std::vector<Tensor> in_t, out_t;
  std::vector<TensorView> in_v, out_v;
  std::vector<float> scratch;
  ModelStats stats;

  ModelStats* model_stats() override { return &stats; }
  void step(CycleContext& c) override {
    for (const Binding& b : in) {
      float* d = in_t[static_cast<size_t>(b.index)].data<float>();
      size_t n = b.scale.size();
      if (b.vec >= 0) {
        std::span<float> s(scratch.data(), n);
        if (b.window) c.image->read_window(b.vec, s);
        else c.image->read_array(b.vec, s);
        for (size_t i = 0; i < n; ++i) d[i] = (s[i] - b.offset[i]) * b.scale[i];
      } else {
        for (size_t i = 0; i < n; ++i) d[i] = static_cast<float>((c.tags[b.scalars[i]] - b.offset[i]) * b.scale[i]);
      }
    }
    int64_t t0 = mono_ns();
    Status s = model.run(in_v, out_v);
    stats.infer.record(mono_ns() - t0);
    ++stats.runs;
    if (!s.is_ok()) {
      ++stats.failures;
      c.fail("infer: the model failed to run");
      return;
    }
    for (const Binding& b : out) {
      const float* d = out_t[static_cast<size_t>(b.index)].data<float>();
      size_t n = b.scale.size();
      for (size_t i = 0; i < n; ++i) {
        if (std::isnan(d[i])) {
          ++stats.failures;
          c.fail("infer: the model produced NaN");
        }
        scratch[i] = d[i] * b.scale[i] + b.offset[i];
      }
      if (b.vec >= 0) c.image->write_array(b.vec, std::span<const float>(scratch.data(), n));
      else
        for (size_t i = 0; i < n; ++i) c.tags[b.scalars[i]] = scratch[i];
    }
  }
};

std::string resolve_model_path(const BuildEnv& env, const std::string& name, std::vector<std::string>* tried) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (fs::path(name).is_absolute()) return name;
  std::vector<std::string> dirs;
  dirs.push_back(env.cell_dir.empty() ? "." : env.cell_dir);
  for (const auto& d : env.model_dirs) dirs.push_back(d);
  if (const char* mp = std::getenv("KILN_MODEL_PATH")) {
    std::string s = mp;
    size_t i = 0;
    while (i <= s.size()) {
      size_t j = s.find(':', i);
      if (j == std::string::npos) j = s.size();
      if (j > i) dirs.push_back(s.substr(i, j - i));
      i = j + 1;
    }
  }
  for (const auto& d : dirs) {
    fs::path p = fs::path(d) / name;
    tried->push_back(p.string());
    if (fs::is_regular_file(p, ec)) return p.string();
  }
  return "";
}

Result<Infer::Binding> parse_binding(Params& p, const YAML::Node& n, const nn::CompiledModel& m, bool is_input, int default_index) {
  const BuildEnv& env = p.env();
  const auto& specs = is_input ? m.inputs() : m.outputs();
  const char* what = is_input ? "input" : "output";
  if (!n.IsMap()) return located(env, n, "a model ", what, " binding is {name, tags | tag, scale, offset}");
  Params bp(n, env);
  Infer::Binding b;
  YAML::Node nm = bp.child("name");
  if (nm.IsDefined()) {
    KILN_ASSIGN_OR_RETURN(std::string name, bp.string_of(nm));
    auto it = std::find_if(specs.begin(), specs.end(), [&](const nn::TensorSpec& s) { return s.name == name; });
    if (it == specs.end()) {
      std::string names;
      for (const auto& s : specs) names += (names.empty() ? "" : ", ") + s.name;
      return located(env, nm, "the model has no ", what, " '", name.substr(0, 64), "' (its ", what, "s: ", names, ")");
    }
    b.index = static_cast<int>(it - specs.begin());
  } else {
    if (default_index >= static_cast<int>(specs.size()))
      return located(env, n, "the model has only ", specs.size(), " ", what, "(s); name the one to bind");
    b.index = default_index;
  }
  const nn::TensorSpec& spec = specs[static_cast<size_t>(b.index)];
  if (spec.dtype != DType::kFloat32)
    return located(env, n, "model ", what, " '", spec.name, "' is ", dtype_name(spec.dtype), "; infer binds float32 tensors only");
  int64_t count = num_elements(spec.shape);
  YAML::Node tn = bp.child("tag"), tsn = bp.child("tags");
  YAML::Node src = tn.IsDefined() ? tn : tsn;
  if (!src.IsDefined() || (tn.IsDefined() && tsn.IsDefined()))
    return located(env, n, "give either 'tag' (an array or window tag) or 'tags' (a list of scalar tags)");
  int64_t given = 0;
  if (tn.IsDefined()) {
    unsigned mask = is_input ? (kArrayTag | kWindowTag | kScalarTags) : (kArrayTag | kScalarTags);
    KILN_ASSIGN_OR_RETURN(int id, bp.tag_of(tn, mask));
    const TagSpec& ts = env.image->spec(id);
    if (is_scalar(ts.type)) {
      b.scalars.push_back(id);
      given = 1;
    } else {
      b.vec = id;
      b.window = ts.type == TagType::kWindow;
      given = ts.length;
    }
  } else {
    KILN_ASSIGN_OR_RETURN(b.scalars, bp.tags("tags", is_input ? kScalarTags : (kFloatTag | kIntTag | kBoolTag)));
    given = static_cast<int64_t>(b.scalars.size());
  }
  if (given != count)
    return located(env, src, "model ", what, " '", spec.name, "' has ", count, " elements (shape ", shape_to_string(spec.shape),
                   "), the binding gives ", given, " value(s)");
  auto per_element = [&](const char* key, float def, std::vector<float>* out) -> Status {
    YAML::Node v = bp.child(key);
    out->assign(static_cast<size_t>(count), def);
    if (!v.IsDefined()) return Status::ok();
    if (v.IsScalar()) {
      KILN_ASSIGN_OR_RETURN(double x, bp.number_of(v));
      std::fill(out->begin(), out->end(), static_cast<float>(x));
      return Status::ok();
    }
    if (!v.IsSequence() || static_cast<int64_t>(v.size()) != count)
      return located(env, v, "'", key, "' must be a number or a list of ", count, " numbers");
    for (size_t i = 0; i < v.size(); ++i) {
      KILN_ASSIGN_OR_RETURN(double x, bp.number_of(v[i]));
      (*out)[i] = static_cast<float>(x);
    }
    return Status::ok();
  };
  KILN_RETURN_IF_ERROR(per_element("scale", 1.f, &b.scale));
  KILN_RETURN_IF_ERROR(per_element("offset", 0.f, &b.offset));
  KILN_RETURN_IF_ERROR(bp.finish());
  return b;
}

Result<std::unique_ptr<Block>> make_infer(Params& p) {
  auto b = std::make_unique<Infer>();
  const BuildEnv& env = p.env();
  YAML::Node mn = p.child("model");
  KILN_ASSIGN_OR_RETURN(std::string name, p.string("model", "", true));
  std::vector<std::string> tried;
  std::string path = resolve_model_path(env, name, &tried);
  if (path.empty()) {
    std::string list;
    for (const auto& t : tried) list += (list.empty() ? "" : ", ") + t;
    return located(env, mn, "model '", name.substr(0, 200), "' not found (looked for ", list,
                   "); add a folder with --models DIR or KILN_MODEL_PATH");
  }
  Result<nn::Model> m = nn::Model::load(path);
  if (!m.is_ok()) return located(env, mn, "model '", path, "' does not load: ", m.status().message());
  nn::CompileOptions co;
  co.default_dim = 1;
  KILN_ASSIGN_OR_RETURN(int64_t threads, p.integer("threads", 1, 1, 64));
  co.threads = static_cast<int>(threads);
  Result<nn::CompiledModel> cm = nn::compile(*m, co);
  if (!cm.is_ok()) return located(env, mn, "model '", path, "' does not compile: ", cm.status().message());
  b->model = std::move(*cm);
  YAML::Node ins = p.child("inputs"), outs = p.child("outputs");
  if (!ins.IsSequence()) return located(env, ins.IsDefined() ? ins : p.node(), "'inputs' must be a list of bindings");
  if (!outs.IsSequence()) return located(env, outs.IsDefined() ? outs : p.node(), "'outputs' must be a list of bindings");
  int k = 0;
  for (const YAML::Node& n : ins) {
    KILN_ASSIGN_OR_RETURN(Infer::Binding bi, parse_binding(p, n, b->model, true, k++));
    b->in.push_back(std::move(bi));
  }
  k = 0;
  for (const YAML::Node& n : outs) {
    KILN_ASSIGN_OR_RETURN(Infer::Binding bo, parse_binding(p, n, b->model, false, k++));
    b->out.push_back(std::move(bo));
  }
  for (size_t i = 0; i < b->model.inputs().size(); ++i) {
    bool bound = std::any_of(b->in.begin(), b->in.end(), [&](const Infer::Binding& x) { return x.index == static_cast<int>(i); });
    if (!bound) return located(env, ins, "model input '", b->model.inputs()[i].name, "' is not bound to any tag");
  }
  size_t most = 0;
  for (const auto& spec : b->model.inputs()) {
    b->in_t.emplace_back(spec.dtype, spec.shape);
    most = std::max(most, static_cast<size_t>(num_elements(spec.shape)));
  }
  b->out_t = b->model.make_outputs();
  for (const auto& t : b->out_t) most = std::max(most, static_cast<size_t>(t.num_elements()));
  for (auto& t : b->in_t) b->in_v.push_back(t.view());
  for (auto& t : b->out_t) b->out_v.push_back(t.view());
  b->scratch.assign(most, 0.f);
  for (const auto& bi : b->in) {
    if (bi.vec >= 0) b->reads.push_back(bi.vec);
    for (int t : bi.scalars) b->reads.push_back(t);
  }
  for (const auto& bo : b->out) {
    if (bo.vec >= 0) b->writes.push_back(bo.vec);
    for (int t : bo.scalars) b->writes.push_back(t);
  }
  b->stats.name = std::filesystem::path(path).filename().string();
  b->stats.loop = env.loop;
  return std::unique_ptr<Block>(std::move(b));
}

const BlockDef kBlocks[] = {
    {"pid", "PID controller (anti-windup, bumpless manual/auto)", make_pid},
    {"lowpass", "first-order low-pass filter", make_lowpass},
    {"moving_average", "mean of the last n samples", make_moving_average},
    {"band_energy", "FFT band powers over a window tag", make_band_energy},
    {"limit", "clamp to [min, max]", make_limit},
    {"rate_limit", "slew-rate limiter", make_rate_limit},
    {"hysteresis", "comparator with on/off thresholds", make_hysteresis},
    {"timer", "TON / TOF / TP timer", make_timer},
    {"state_machine", "named states with guarded transitions", make_state_machine},
    {"expr", "out = expression", make_expr},
    {"push", "append a sample to a window tag", make_push},
    {"profile", "piecewise-linear setpoint profile", make_profile},
    {"infer", "run a compiled Kiln model", make_infer},
};

}  // namespace

std::span<const BlockDef> block_table() { return kBlocks; }

const BlockDef* find_block(std::string_view type) {
  for (const BlockDef& d : kBlocks)
    if (type == d.type) return &d;
  return nullptr;
}

}  // namespace kiln::control
