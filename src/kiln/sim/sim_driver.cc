#include "kiln/sim/sim_driver.h"

#include <cmath>
#include <map>
#include <string>
#include <vector>

#include "kiln/sim/plant.h"

namespace kiln::sim {
namespace {

using control::EventKind;
using control::Params;
using control::TagType;

enum class Model { kSpindle, kFurnace, kConveyor };

struct SignalDef {
  const char* name;
  bool sensor;  // written into the image by the device
  unsigned mask;
};

const SignalDef kSpindleSignals[] = {{"vibration", true, control::kFloatTag | control::kWindowTag},
                                     {"speed", true, control::kFloatTag},
                                     {"severity", true, control::kFloatTag},
                                     {"speed_setpoint", false, control::kScalarTags}};
const SignalDef kFurnaceSignals[] = {{"temperature", true, control::kFloatTag}, {"power", false, control::kScalarTags}};
const SignalDef kConveyorSignals[] = {{"speed", true, control::kFloatTag},
                                      {"position", true, control::kFloatTag},
                                      {"item_present", true, control::kBoolTag},
                                      {"count", true, control::kIntTag | control::kFloatTag},
                                      {"command", false, control::kScalarTags},
                                      {"run", false, control::kBoolTag}};

class SimDevice final : public control::Device {
 public:
  Model model = Model::kSpindle;
  uint64_t seed = 1;
  std::map<std::string, int> sig;  // signal -> tag
  std::unique_ptr<Spindle> spindle;
  std::unique_ptr<Furnace> furnace;
  std::unique_ptr<Conveyor> conveyor;
  SpindleParams spindle_params;
  FurnaceParams furnace_params;
  ConveyorParams conveyor_params;
  struct Fault {
    std::string kind;
    double at_s, rate;
  };
  // Faults from the file, and from inject() for the next run only; applied when the device starts.
  std::vector<Fault> file_faults, faults;
  bool in_file = false;
  double report_at = 0.25;
  bool reported = false, fault_logged = false;
  double bearing_at = -1;

  // A fresh plant, so that every run of the cell starts from the same state and seed.
  void build_plant() {
    spindle.reset();
    furnace.reset();
    conveyor.reset();
    switch (model) {
      case Model::kSpindle: spindle = std::make_unique<Spindle>(seed, spindle_params); break;
      case Model::kFurnace: furnace = std::make_unique<Furnace>(seed, furnace_params); break;
      case Model::kConveyor: conveyor = std::make_unique<Conveyor>(seed, conveyor_params); break;
    }
    reported = fault_logged = false;
    bearing_at = -1;
    for (const Fault& f : file_faults) apply(f);
    for (const Fault& f : faults) apply(f);
  }
  void apply(const Fault& f) {
    if (model == Model::kSpindle) {
      spindle->inject_bearing_fault(f.at_s, f.rate);
      bearing_at = f.at_s;
    } else if (model == Model::kFurnace) {
      furnace->inject(f.kind == "heater_stuck" ? 0 : 1, f.at_s);
    } else {
      conveyor->inject_jam(f.at_s);
    }
  }

  int tag(const char* s) const {
    auto it = sig.find(s);
    return it == sig.end() ? -1 : it->second;
  }
  bool in_loop() const override { return true; }

  Status inject(std::string_view fault, double at_s, double rate) override {
    if (!(at_s >= 0) || at_s > 1e9) return Status::invalid("fault time must be between 0 and 1e9 s");
    bool known = (model == Model::kSpindle && fault == "bearing") ||
                 (model == Model::kFurnace && (fault == "heater_stuck" || fault == "sensor_nan")) ||
                 (model == Model::kConveyor && fault == "jam");
    if (known) {
      if (model == Model::kSpindle && !(rate > 0)) rate = 0.05;
      std::vector<Fault>& list = in_file ? file_faults : faults;
      list.push_back({std::string(fault), at_s, rate});
      apply(list.back());
      return Status::ok();
    }
    return Status::invalid("device '", name, "' has no fault '", fault, "' (spindle: bearing; furnace: heater_stuck, sensor_nan; conveyor: jam)");
  }

  void read(int64_t t_ns) override {
    const double t = static_cast<double>(t_ns) * 1e-9;
    control::ProcessImage& img = *env_.image;
    switch (model) {
      case Model::kSpindle: {
        double v = spindle->step(t);
        int vt = tag("vibration");
        if (vt >= 0) {
          if (img.spec(vt).type == TagType::kWindow) img.push(vt, static_cast<float>(v));
          else img.set(vt, v);
        }
        if (int st = tag("speed"); st >= 0) img.set(st, spindle->speed_rpm());
        double sev = spindle->bearing_severity(t);
        if (int sv = tag("severity"); sv >= 0) img.set(sv, sev);
        if (bearing_at >= 0 && t >= bearing_at && !fault_logged) {
          fault_logged = true;
          env_.events->post_at(env_.start_ns + t_ns, EventKind::kInfo, "fault injected: bearing (growing)");
        }
        if (!reported && sev >= report_at && sev > 0) {
          reported = true;
          env_.events->postf(EventKind::kFault, "%s: bearing fault severity reached %.2f", name.c_str(), report_at);
        }
        break;
      }
      case Model::kFurnace: {
        double temp = furnace->step(t);
        if (int tt = tag("temperature"); tt >= 0) img.set(tt, temp);
        break;
      }
      case Model::kConveyor: {
        conveyor->step(t);
        if (int a = tag("speed"); a >= 0) img.set(a, conveyor->speed());
        if (int a = tag("position"); a >= 0) img.set(a, conveyor->position());
        if (int a = tag("item_present"); a >= 0) img.set(a, conveyor->item_present() ? 1 : 0);
        if (int a = tag("count"); a >= 0) img.set(a, static_cast<double>(conveyor->count()));
        break;
      }
    }
  }

  // Actuators take the values the cycle just published (forced safe values included).
  void write(int64_t t_ns) override {
    const double t = static_cast<double>(t_ns) * 1e-9;
    const control::ProcessImage& img = *env_.image;
    switch (model) {
      case Model::kSpindle:
        if (int a = tag("speed_setpoint"); a >= 0) spindle->set_speed_setpoint(img.get(a));
        break;
      case Model::kFurnace:
        if (int a = tag("power"); a >= 0) furnace->set_power(img.get(a), t);
        break;
      case Model::kConveyor: {
        double cmd = 0;
        if (int a = tag("command"); a >= 0) cmd = img.get(a);
        if (int r = tag("run"); r >= 0 && img.get(r) == 0) cmd = 0;
        conveyor->set_command(cmd);
        break;
      }
    }
  }

  void stop() override { faults.clear(); }

  Status start(const control::DeviceEnv& env) override {
    env_ = env;
    build_plant();
    // Actuators start from the image's initial values.
    write(0);
    return Status::ok();
  }
};

}  // namespace

Result<std::unique_ptr<control::Device>> create_simulated_device(Params& p) {
  auto d = std::make_unique<SimDevice>();
  const control::BuildEnv& env = p.env();
  YAML::Node mn = p.child("model");
  KILN_ASSIGN_OR_RETURN(std::string model, p.string("model", "", true));
  std::span<const SignalDef> defs;
  if (model == "spindle") {
    d->model = Model::kSpindle;
    defs = kSpindleSignals;
  } else if (model == "furnace") {
    d->model = Model::kFurnace;
    defs = kFurnaceSignals;
  } else if (model == "conveyor") {
    d->model = Model::kConveyor;
    defs = kConveyorSignals;
  } else {
    return control::located(env, mn, "unknown simulated model '", model.substr(0, 32), "' (expected spindle, furnace or conveyor)");
  }
  KILN_ASSIGN_OR_RETURN(int64_t seed, p.integer("seed", 1, 0, int64_t{1} << 53));
  d->seed = static_cast<uint64_t>(seed);
  YAML::Node pn = p.child("params");
  if (pn.IsDefined() && !pn.IsMap()) return control::located(env, pn, "'params' must be a mapping of model parameters");
  Params pp(pn.IsDefined() ? pn : YAML::Node(YAML::NodeType::Map), env);
  switch (d->model) {
    case Model::kSpindle: {
      SpindleParams sp;
      KILN_ASSIGN_OR_RETURN(sp.rated_rpm, pp.number_in("rated_rpm", sp.rated_rpm, 1, 1e6));
      KILN_ASSIGN_OR_RETURN(sp.tau_s, pp.number_in("tau_s", sp.tau_s, 1e-4, 1e4));
      KILN_ASSIGN_OR_RETURN(sp.noise_g, pp.number_in("noise_g", sp.noise_g, 0, 1e3));
      KILN_ASSIGN_OR_RETURN(sp.resonance_hz, pp.number_in("resonance_hz", sp.resonance_hz, 1, 1e6));
      KILN_ASSIGN_OR_RETURN(sp.bpfo_ratio, pp.number_in("bpfo_ratio", sp.bpfo_ratio, 0.1, 100));
      KILN_ASSIGN_OR_RETURN(sp.fault_g, pp.number_in("fault_g", sp.fault_g, 0, 1e3));
      KILN_ASSIGN_OR_RETURN(sp.wander, pp.number_in("wander", sp.wander, 0, 1));
      d->spindle_params = sp;
      break;
    }
    case Model::kFurnace: {
      FurnaceParams fp;
      KILN_ASSIGN_OR_RETURN(fp.ambient_c, pp.number("ambient_c", fp.ambient_c));
      KILN_ASSIGN_OR_RETURN(fp.gain_c_per_pct, pp.number_in("gain_c_per_pct", fp.gain_c_per_pct, 0, 1e3));
      KILN_ASSIGN_OR_RETURN(fp.tau_s, pp.number_in("tau_s", fp.tau_s, 1e-3, 1e6));
      KILN_ASSIGN_OR_RETURN(fp.dead_time_s, pp.number_in("dead_time_s", fp.dead_time_s, 0, 30));
      KILN_ASSIGN_OR_RETURN(fp.noise_c, pp.number_in("noise_c", fp.noise_c, 0, 100));
      d->furnace_params = fp;
      break;
    }
    case Model::kConveyor: {
      ConveyorParams cp;
      KILN_ASSIGN_OR_RETURN(cp.max_speed, pp.number_in("max_speed", cp.max_speed, 0, 100));
      KILN_ASSIGN_OR_RETURN(cp.items_per_m, pp.number_in("items_per_m", cp.items_per_m, 1e-3, 1e3));
      d->conveyor_params = cp;
      break;
    }
  }
  KILN_RETURN_IF_ERROR(pp.finish());
  d->build_plant();
  YAML::Node sn = p.child("signals");
  if (!sn.IsMap() || sn.size() == 0) {
    std::string names;
    for (const auto& s : defs) names += (names.empty() ? "" : ", ") + std::string(s.name);
    return control::located(env, sn.IsDefined() ? sn : p.node(), "'signals' must map signals of the ", model, " model (", names, ") to tags");
  }
  for (auto it = sn.begin(); it != sn.end(); ++it) {
    const SignalDef* def = nullptr;
    std::string s = it->first.IsScalar() ? it->first.Scalar() : "";
    for (const auto& x : defs)
      if (s == x.name) def = &x;
    if (def == nullptr) {
      std::string names;
      for (const auto& x : defs) names += (names.empty() ? "" : ", ") + std::string(x.name);
      return control::located(env, it->first, "the ", model, " model has no signal '", s.substr(0, 32), "' (it has: ", names, ")");
    }
    KILN_ASSIGN_OR_RETURN(int t, p.tag_of(it->second, def->mask));
    d->sig[s] = t;
    (def->sensor ? d->writes : d->reads).push_back(t);
  }
  KILN_ASSIGN_OR_RETURN(d->report_at, p.number_in("report_at", d->report_at, 0, 1));
  YAML::Node fn = p.child("faults");
  if (fn.IsDefined()) {
    if (!fn.IsSequence()) return control::located(env, fn, "'faults' must be a list of {kind, at_s, rate}");
    for (const YAML::Node& f : fn) {
      if (!f.IsMap()) return control::located(env, f, "a fault is {kind, at_s, rate, report_at}");
      Params fp(f, env);
      YAML::Node kn = fp.child("kind");
      KILN_ASSIGN_OR_RETURN(std::string kind, fp.string("kind", "", true));
      KILN_ASSIGN_OR_RETURN(double at, fp.number_in("at_s", 0, 0, 1e9, true));
      KILN_ASSIGN_OR_RETURN(double rate, fp.number_in("rate", 0.05, 0, 1e6));
      KILN_ASSIGN_OR_RETURN(d->report_at, fp.number_in("report_at", d->report_at, 0, 1));
      KILN_RETURN_IF_ERROR(fp.finish());
      d->in_file = true;
      Status s = d->inject(kind, at, rate);
      d->in_file = false;
      if (!s.is_ok()) return control::located(env, kn, s.message());
    }
  }
  KILN_RETURN_IF_ERROR(p.finish());
  return std::unique_ptr<control::Device>(std::move(d));
}

}  // namespace kiln::sim
