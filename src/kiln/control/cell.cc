#include "kiln/control/cell.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>

#include "kiln/core/file_util.h"

namespace kiln::control {

// yaml-cpp recurses once per nesting level; hostile input ("[[[[..." or "- - - - ...") could
// exhaust the stack before it fails. Cell files are shallow: refuse deep nesting up front.
static Status check_nesting(std::string_view text) {
  int depth = 0, dashes = 0;
  bool in_single = false, in_double = false, line_start = true;
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (c == '\n') {
      in_single = in_double = false;
      line_start = true;
      dashes = 0;
      continue;
    }
    if (line_start) {
      if (c == ' ' || c == '\t') continue;
      if ((c == '-' || c == '?' || c == ':') && i + 1 < text.size() && (text[i + 1] == ' ' || text[i + 1] == '\t')) {
        if (++dashes > 24) return Status::invalid("nesting deeper than 24 levels on one line");
        continue;
      }
      line_start = false;
    }
    if (c == '\'' && !in_double) in_single = !in_single;
    else if (c == '"' && !in_single) in_double = !in_double;
    if (in_single || in_double) continue;
    if (c == '[' || c == '{') {
      if (++depth > 32) return Status::invalid("nesting deeper than 32 levels");
    } else if ((c == ']' || c == '}') && depth > 0) {
      --depth;
    }
  }
  return Status::ok();
}

class CellBuilder {
 public:
  CellBuilder(Cell& cell, const std::string& file, DriverTable drivers, const CellOptions& opt)
      : cell_(cell), drivers_(drivers) {
    env_.file = file;
    std::filesystem::path p(file);
    env_.cell_dir = p.has_parent_path() ? p.parent_path().string() : ".";
    env_.model_dirs = opt.model_dirs;
  }

  Status build(const YAML::Node& root) {
    if (!root.IsMap()) return located(env_, root, "a cell file is a mapping with tags, devices, loops and interlocks");
    Params top(root, env_);
    collect(top.string("cell", "cell"), &cell_.name_);
    YAML::Node desc = top.child("description");
    (void)desc;
    Result<int64_t> tick = top.integer("base_tick_us", 100, 1, 10'000'000);
    if (tick.is_ok()) cell_.base_tick_ns_ = *tick * 1000;
    else error(tick.status());
    Result<int64_t> wd = top.integer("watchdog_ms", 250, 1, 3'600'000);
    if (wd.is_ok()) cell_.watchdog_ns_ = *wd * 1'000'000;
    else error(wd.status());

    parse_tags(top.child("tags"), root);
    if (!cell_.image_) cell_.image_ = std::make_unique<ProcessImage>(std::vector<TagSpec>{});
    env_.image = cell_.image_.get();

    YAML::Node st = top.child("status");
    if (st.IsDefined()) {
      Result<std::vector<int>> t = top.tags("status", kScalarTags, false);
      if (t.is_ok()) cell_.status_tags_ = *t;
      else error(t.status());
    }
    // Loops before devices: an in-loop device names its loop.
    parse_loops(top.child("loops"), root);
    parse_devices(top.child("devices"));
    parse_interlocks(top.child("interlocks"));
    Status fin = top.finish();
    if (!fin.is_ok()) error(fin);
    if (errors_.empty()) check_ownership();
    if (errors_.empty()) finalise_loops();
    if (!errors_.empty()) {
      std::string all;
      for (const auto& e : errors_) all += (all.empty() ? "" : "\n") + e;
      return Status::invalid(all);
    }
    return Status::ok();
  }

 private:
  void error(const Status& s) {
    if (errors_.size() < 200) errors_.push_back(s.message());
  }
  template <typename T>
  bool collect(Result<T> r, T* out) {
    if (!r.is_ok()) {
      error(r.status());
      return false;
    }
    *out = std::move(r).value();
    return true;
  }

  void parse_tags(const YAML::Node& tags, const YAML::Node& root) {
    std::vector<TagSpec> specs;
    if (!tags.IsDefined() || tags.IsNull()) {
      error(located(env_, root, "missing 'tags' (a mapping from tag name to {type, units, min, max, safe})"));
      return;
    }
    if (!tags.IsMap()) {
      error(located(env_, tags, "'tags' must map tag names to {type, units, min, max, safe, ...}"));
      return;
    }
    std::map<std::string, int> seen;
    ProcessImage empty;
    BuildEnv tenv = env_;
    tenv.image = &empty;
    for (auto it = tags.begin(); it != tags.end(); ++it) {
      if (!it->first.IsScalar()) {
        error(located(env_, it->first, "a tag name must be a string"));
        continue;
      }
      TagSpec s;
      s.name = it->first.Scalar();
      s.line = it->first.Mark().line + 1;
      s.column = it->first.Mark().column + 1;
      bool ok_name = !s.name.empty() && s.name.size() <= 64 && (std::isalpha(static_cast<unsigned char>(s.name[0])) || s.name[0] == '_');
      for (char c : s.name) ok_name = ok_name && (std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.');
      if (!ok_name) {
        error(located(env_, it->first, "tag name '", s.name.substr(0, 64), "' must start with a letter or '_' and contain only letters, digits, '_' and '.' (at most 64)"));
        continue;
      }
      if (seen.count(s.name)) {
        error(located(env_, it->first, "tag '", s.name, "' declared twice"));
        continue;
      }
      const YAML::Node v = it->second;  // a copy: `it->second` lives in a temporary
      if (v.IsScalar()) {
        // Short form: `speed: float`.
        if (!parse_type(v, &s)) continue;
      } else if (v.IsMap()) {
        Params p(v, tenv);
        YAML::Node tn = p.child("type");
        if (!tn.IsDefined()) {
          error(located(env_, v, "tag '", s.name, "' needs a type (bool, int, float, array or window)"));
          continue;
        }
        if (!parse_type(tn, &s)) continue;
        bool ok = collect(p.string("units", ""), &s.units) && collect(p.string("description", ""), &s.description) &&
                  collect(p.number("min", s.min), &s.min) && collect(p.number("max", s.max), &s.max);
        if (!ok) continue;
        if (s.type == TagType::kArray || s.type == TagType::kWindow) {
          int64_t len = 0;
          if (!collect(p.integer("length", 0, 1, 1 << 20, true), &len)) continue;
          s.length = static_cast<int>(len);
        } else if (p.has("length")) {
          error(located(env_, p.child("length"), "'length' is for array and window tags"));
          continue;
        }
        if (!(s.min <= s.max)) {
          error(located(env_, v, "tag '", s.name, "': min must not be above max"));
          continue;
        }
        if (!value_of(p, "initial", s, &s.initial, nullptr)) continue;
        bool has_safe = false;
        if (!value_of(p, "safe", s, &s.safe, &has_safe)) continue;
        s.has_safe = has_safe;
        if (s.initial < s.min || s.initial > s.max) {
          if (p.has("initial")) {
            error(located(env_, v["initial"], "initial value ", s.initial, " is outside [", s.min, ", ", s.max, "]"));
            continue;
          }
          s.initial = std::clamp(0.0, s.min, s.max);
        }
        if (s.has_safe && (s.safe < s.min || s.safe > s.max)) {
          error(located(env_, v["safe"], "safe value ", s.safe, " is outside [", s.min, ", ", s.max, "]"));
          continue;
        }
        Status f = p.finish();
        if (!f.is_ok()) {
          error(f);
          continue;
        }
      } else {
        error(located(env_, v, "tag '", s.name, "': expected a type or {type, units, min, max, safe, ...}"));
        continue;
      }
      if (s.type == TagType::kBool) {
        s.min = std::max(s.min, 0.0);
        s.max = std::min(s.max, 1.0);
      }
      seen[s.name] = static_cast<int>(specs.size());
      specs.push_back(std::move(s));
    }
    size_t elements = 0;
    for (const TagSpec& s : specs)
      if (!is_scalar(s.type)) elements += static_cast<size_t>(s.length);
    if (specs.size() > 100000) {
      error(located(env_, tags, "more than 100000 tags"));
      specs.clear();
    } else if (elements > (size_t{1} << 23)) {
      // Windows hold twice their length: keep the image under 64 MiB.
      error(located(env_, tags, "arrays and windows hold ", elements, " elements in all; at most ", size_t{1} << 23));
      specs.clear();
    }
    cell_.image_ = std::make_unique<ProcessImage>(std::move(specs));
  }

  bool parse_type(const YAML::Node& n, TagSpec* s) {
    static const std::pair<const char*, TagType> kTypes[] = {
        {"bool", TagType::kBool}, {"int", TagType::kInt}, {"float", TagType::kFloat}, {"array", TagType::kArray}, {"window", TagType::kWindow}};
    if (n.IsScalar())
      for (const auto& [name, t] : kTypes)
        if (n.Scalar() == name) {
          s->type = t;
          return true;
        }
    error(located(env_, n, "unknown tag type '", n.IsScalar() ? n.Scalar().substr(0, 32) : std::string("?"), "' (expected bool, int, float, array or window)"));
    return false;
  }

  // Reads `initial`/`safe`: numbers, or true/false for bool tags.
  bool value_of(Params& p, const char* key, const TagSpec& s, double* out, bool* present) {
    YAML::Node n = p.child(key);
    if (!n.IsDefined() || n.IsNull()) return true;
    if (!is_scalar(s.type)) {
      error(located(env_, n, "'", key, "' is for scalar tags"));
      return false;
    }
    if (present) *present = true;
    if (s.type == TagType::kBool && n.IsScalar()) {
      const std::string& v = n.Scalar();
      if (v == "true" || v == "True") {
        *out = 1;
        return true;
      }
      if (v == "false" || v == "False") {
        *out = 0;
        return true;
      }
    }
    Result<double> v = p.number_of(n);
    if (!v.is_ok()) {
      error(v.status());
      return false;
    }
    if (s.type == TagType::kInt && *v != std::floor(*v)) {
      error(located(env_, n, "'", key, "' of int tag '", s.name, "' must be an integer"));
      return false;
    }
    *out = *v;
    return true;
  }

  void parse_loops(const YAML::Node& loops, const YAML::Node& root) {
    if (!loops.IsDefined() || !loops.IsSequence() || loops.size() == 0) {
      error(located(env_, loops.IsDefined() ? loops : root, "'loops' must be a list with at least one loop"));
      return;
    }
    if (loops.size() > 64) {
      error(located(env_, loops, "at most 64 loops (one thread each)"));
      return;
    }
    for (const YAML::Node& ln : loops) {
      if (!ln.IsMap()) {
        error(located(env_, ln, "a loop is {name, period_us, blocks, ...}"));
        continue;
      }
      auto loop = std::make_unique<Loop>();
      loop->location = where(env_, ln);
      Params p(ln, env_);
      if (!collect(p.string("name", "", true), &loop->name)) continue;
      if (cell_.find_loop(loop->name) >= 0) {
        error(located(env_, ln["name"], "loop '", loop->name, "' declared twice"));
        continue;
      }
      int64_t period_us = 0;
      if (p.has("period_ms") && p.has("period_us")) {
        error(located(env_, ln, "give period_us or period_ms, not both"));
        continue;
      }
      YAML::Node pn = p.has("period_ms") ? ln["period_ms"] : ln["period_us"];
      if (p.has("period_ms")) {
        double ms = 0;
        if (!collect(p.number_in("period_ms", 0, 0.001, 3.6e6, true), &ms)) continue;
        period_us = static_cast<int64_t>(std::llround(ms * 1000));
        p.child("period_us");
      } else {
        if (!collect(p.integer("period_us", 0, 1, 3'600'000'000LL, true), &period_us)) continue;
        p.child("period_ms");
      }
      loop->period_ns = period_us * 1000;
      if (loop->period_ns % cell_.base_tick_ns_ != 0) {
        error(located(env_, pn, "period ", period_us, " us is not a multiple of the base tick (", cell_.base_tick_ns_ / 1000, " us)"));
        continue;
      }
      int64_t deadline_us = 0;
      if (!collect(p.integer("deadline_us", period_us, 1, period_us), &deadline_us)) continue;
      loop->deadline_ns = deadline_us * 1000;
      int64_t prio = 0, cpu = -1;
      if (!collect(p.integer("priority", 0, 0, 99), &prio) || !collect(p.integer("cpu", -1, -1, 1023), &cpu)) continue;
      loop->priority = static_cast<int>(prio);
      loop->cpu = static_cast<int>(cpu);
      YAML::Node on = p.child("overrun");
      if (on.IsDefined()) {
        if (!on.IsMap()) {
          error(located(env_, on, "'overrun' is {hold: true|false, safe_after: N}"));
          continue;
        }
        Params op(on, env_);
        int64_t sa = 0;
        bool ok = collect(op.boolean("hold", false), &loop->overrun.hold) && collect(op.integer("safe_after", 0, 0, 1'000'000), &sa);
        loop->overrun.safe_after = static_cast<int>(sa);
        Status f = op.finish();
        if (!f.is_ok()) {
          error(f);
          ok = false;
        }
        if (!ok) continue;
      }
      loop->dt = static_cast<double>(loop->period_ns) * 1e-9;
      BuildEnv lenv = env_;
      lenv.period_ns = loop->period_ns;
      lenv.loop = loop->name;
      YAML::Node bn = p.child("blocks");
      if (bn.IsDefined() && !bn.IsSequence()) {
        error(located(env_, bn, "'blocks' must be a list"));
      } else if (bn.IsDefined()) {
        for (const YAML::Node& b : bn) {
          if (++blocks_ > 4096) {
            error(located(env_, b, "more than 4096 blocks in the cell"));
            break;
          }
          if (!b.IsMap()) {
            error(located(env_, b, "a block is a mapping {type: ..., ...}"));
            continue;
          }
          Params bp(b, lenv);
          std::string type, bname;
          YAML::Node tn = bp.child("type");
          if (!collect(bp.string("type", "", true), &type) || !collect(bp.string("name", "", false), &bname)) continue;
          const BlockDef* def = find_block(type);
          if (def == nullptr) {
            std::string known;
            for (const BlockDef& d : block_table()) known += (known.empty() ? "" : ", ") + std::string(d.type);
            error(located(env_, tn, "unknown block type '", type.substr(0, 64), "' (known: ", known, ")"));
            continue;
          }
          Result<std::unique_ptr<Block>> blk = def->create(bp);
          if (!blk.is_ok()) {
            error(blk.status());
            continue;
          }
          Status f = bp.finish();
          if (!f.is_ok()) {
            error(f);
            continue;
          }
          (*blk)->type = type;
          (*blk)->name = bname.empty() ? loop->name + "." + type + std::to_string(loop->blocks.size()) : bname;
          if (ModelStats* ms = (*blk)->model_stats()) ms->block = (*blk)->name;
          block_where_[blk->get()] = where(env_, b);
          loop->blocks.push_back(std::move(*blk));
        }
      }
      Status f = p.finish();
      if (!f.is_ok()) error(f);
      cell_.loops_.push_back(std::move(loop));
    }
  }

  void parse_devices(const YAML::Node& devs) {
    if (!devs.IsDefined() || devs.IsNull()) return;
    if (!devs.IsSequence()) {
      error(located(env_, devs, "'devices' must be a list of {name, driver, ...}"));
      return;
    }
    for (const YAML::Node& dn : devs) {
      if (!dn.IsMap()) {
        error(located(env_, dn, "a device is {name, driver, ...}"));
        continue;
      }
      Params p(dn, env_);
      std::string name, driver, loop;
      YAML::Node drv = p.child("driver");
      if (!collect(p.string("name", "", true), &name) || !collect(p.string("driver", "", true), &driver) ||
          !collect(p.string("loop", "", false), &loop))
        continue;
      if (cell_.find_device(name) != nullptr) {
        error(located(env_, dn["name"], "device '", name, "' declared twice"));
        continue;
      }
      const DriverDef* def = nullptr;
      for (const DriverDef& d : drivers_)
        if (driver == d.name) def = &d;
      if (def == nullptr) {
        std::string known;
        for (const DriverDef& d : drivers_) known += (known.empty() ? "" : ", ") + std::string(d.name);
        error(located(env_, drv, "unknown driver '", driver.substr(0, 64), "' (known: ", known.empty() ? "none" : known, ")"));
        continue;
      }
      Result<std::unique_ptr<Device>> d = def->create(p);
      if (!d.is_ok()) {
        error(d.status());
        continue;
      }
      (*d)->name = name;
      (*d)->driver = driver;
      (*d)->loop = loop;
      (*d)->location = where(env_, dn);
      if ((*d)->in_loop()) {
        int li = cell_.find_loop(loop);
        if (loop.empty() || li < 0) {
          error(located(env_, loop.empty() ? dn : dn["loop"], "device '", name, "' (driver ", driver,
                        ") runs inside a loop: set 'loop' to one of the cell's loops"));
          continue;
        }
        cell_.loops_[static_cast<size_t>(li)]->devices.push_back(d->get());
      } else if (!loop.empty()) {
        error(located(env_, dn["loop"], "driver ", driver, " runs on its own thread; 'loop' does not apply"));
        continue;
      }
      cell_.devices_.push_back(std::move(*d));
    }
  }

  void parse_interlocks(const YAML::Node& ils) {
    if (!ils.IsDefined() || ils.IsNull()) return;
    if (!ils.IsSequence()) {
      error(located(env_, ils, "'interlocks' must be a list"));
      return;
    }
    for (const YAML::Node& in : ils) {
      if (!in.IsMap()) {
        error(located(env_, in, "an interlock is {name, loop, when, force, ...}"));
        continue;
      }
      Params p(in, env_);
      Interlock il;
      il.location = where(env_, in);
      std::string loop;
      YAML::Node ln = p.child("loop");
      if (!collect(p.string("name", "", true), &il.name) || !collect(p.string("loop", "", true), &loop)) continue;
      int li = cell_.find_loop(loop);
      if (li < 0) {
        error(located(env_, ln, "unknown loop '", loop.substr(0, 64), "'"));
        continue;
      }
      int64_t k = 1;
      if (!collect(p.expr("when", 0, true), &il.when) || !collect(p.integer("for_cycles", 1, 1, 1'000'000), &k) ||
          !collect(p.boolean("latch", true), &il.latch) || !collect(p.tag("reset", kBoolTag, false), &il.reset) ||
          !collect(p.boolean("cell_safe", false), &il.cell_safe))
        continue;
      il.for_cycles = static_cast<int>(k);
      YAML::Node fn = p.child("force");
      bool ok = true;
      if (fn.IsDefined() && !fn.IsMap()) {
        error(located(env_, fn, "'force' maps tags to values (a number, true/false, or 'safe')"));
        continue;
      }
      if (fn.IsDefined()) {
        for (auto it = fn.begin(); it != fn.end(); ++it) {
          Result<int> t = p.tag_of(it->first, kScalarTags);
          if (!t.is_ok()) {
            error(t.status());
            ok = false;
            continue;
          }
          const TagSpec& s = cell_.image_->spec(*t);
          double v = 0;
          const YAML::Node vn = it->second;
          if (vn.IsScalar() && vn.Scalar() == "safe") {
            if (!s.has_safe) {
              error(located(env_, vn, "tag '", s.name, "' has no safe value; give one in its declaration or a number here"));
              ok = false;
              continue;
            }
            v = s.safe;
          } else if (vn.IsScalar() && (vn.Scalar() == "true" || vn.Scalar() == "false")) {
            v = vn.Scalar() == "true" ? 1 : 0;
          } else {
            Result<double> r = p.number_of(vn);
            if (!r.is_ok()) {
              error(r.status());
              ok = false;
              continue;
            }
            v = *r;
          }
          il.force.emplace_back(*t, v);
        }
      }
      if (il.force.empty() && !il.cell_safe && ok) {
        error(located(env_, in, "interlock '", il.name, "' forces nothing: give 'force' or 'cell_safe: true'"));
        continue;
      }
      Status f = p.finish();
      if (!f.is_ok()) {
        error(f);
        continue;
      }
      if (ok) cell_.loops_[static_cast<size_t>(li)]->interlocks.push_back(std::move(il));
    }
  }

  // Each tag has at most one writer (a loop or a device); interlock forces are exempt (they
  // override, they do not write).
  void check_ownership() {
    std::map<int, std::string> writer;
    auto claim = [&](int tag, const std::string& who, const std::string& at) {
      auto it = writer.find(tag);
      if (it != writer.end() && it->second != who) {
        error(Status::invalid(at, ": tag '", cell_.image_->spec(tag).name, "' is written by ", who, " and by ", it->second,
                              "; a tag has one writer (use another tag, or an interlock to override)"));
        return;
      }
      writer[tag] = who;
    };
    for (auto& l : cell_.loops_)
      for (auto& b : l->blocks)
        for (int t : b->writes) claim(t, "loop '" + l->name + "'", block_where_[b.get()]);
    for (auto& d : cell_.devices_)
      for (int t : d->writes) claim(t, "device '" + d->name + "'", d->location);
  }

  void finalise_loops() {
    const ProcessImage& img = *cell_.image_;
    for (auto& l : cell_.loops_) {
      std::vector<int> owned, inputs;
      for (auto& b : l->blocks)
        for (int t : b->writes)
          if (is_scalar(img.spec(t).type) && std::find(owned.begin(), owned.end(), t) == owned.end()) owned.push_back(t);
      auto want = [&](int t) {
        if (is_scalar(img.spec(t).type) && std::find(owned.begin(), owned.end(), t) == owned.end() &&
            std::find(inputs.begin(), inputs.end(), t) == inputs.end())
          inputs.push_back(t);
      };
      for (auto& b : l->blocks)
        for (int t : b->reads) want(t);
      for (auto& il : l->interlocks) {
        for (int t : il.when.variables()) want(t);
        if (il.reset >= 0) want(il.reset);
      }
      std::sort(owned.begin(), owned.end());
      std::sort(inputs.begin(), inputs.end());
      l->owned = owned;
      l->inputs = inputs;
      l->local.assign(static_cast<size_t>(img.size()), 0.0);
    }
  }

  Cell& cell_;
  DriverTable drivers_;
  BuildEnv env_;
  std::vector<std::string> errors_;
  std::map<const Block*, std::string> block_where_;
  int blocks_ = 0;
};

Result<std::unique_ptr<Cell>> Cell::load_text(std::string_view text, const std::string& file, DriverTable drivers,
                                              const CellOptions& options) {
  if (text.size() > (size_t{1} << 20)) return Status::invalid(file, ": the cell file is larger than 1 MiB");
  Status nest = check_nesting(text);
  if (!nest.is_ok()) return Status::invalid(file, ": ", nest.message());
  std::unique_ptr<Cell> cell(new Cell());
  cell->file_ = file;
  CellBuilder b(*cell, file, drivers, options);
  try {
    YAML::Node root = YAML::Load(std::string(text));
    KILN_RETURN_IF_ERROR(b.build(root));
  } catch (const YAML::Exception& e) {
    if (e.mark.line >= 0)
      return Status::invalid(file, ":", e.mark.line + 1, ":", e.mark.column + 1, ": ", e.msg);
    return Status::invalid(file, ": ", e.msg);
  } catch (const std::exception& e) {
    return Status::invalid(file, ": ", e.what());
  }
  cell->events_.set_clock(&monotonic_clock(), monotonic_clock().now_ns());
  cell->reset();
  return cell;
}

Result<std::unique_ptr<Cell>> Cell::load_file(const std::string& path, DriverTable drivers, const CellOptions& options) {
  Result<std::string> text = read_file(path, size_t{1} << 20);
  if (!text.is_ok()) return text.status();
  return load_text(*text, path, drivers, options);
}

Cell::~Cell() = default;

int Cell::find_loop(std::string_view name) const {
  for (size_t i = 0; i < loops_.size(); ++i)
    if (loops_[i]->name == name) return static_cast<int>(i);
  return -1;
}

Device* Cell::find_device(std::string_view name) {
  for (auto& d : devices_)
    if (d->name == name) return d.get();
  return nullptr;
}

std::vector<ModelStats*> Cell::models() {
  std::vector<ModelStats*> out;
  for (auto& l : loops_)
    for (auto& b : l->blocks)
      if (ModelStats* m = b->model_stats()) out.push_back(m);
  return out;
}

void Cell::reset() {
  image_->reset();
  events_.clear();
  safe_.store(false, std::memory_order_release);
  for (auto& l : loops_) {
    for (auto& b : l->blocks) b->reset();
    for (auto& il : l->interlocks) {
      il.count = 0;
      il.tripped = false;
      il.last_reset = false;
      il.trips = 0;
    }
    for (int i = 0; i < image_->size(); ++i) l->local[static_cast<size_t>(i)] = image_->get(i);
    l->jitter.clear();
    l->exec.clear();
    l->cycles = l->overruns = l->missed = l->held = 0;
    l->consecutive_overruns = l->max_consecutive_overruns = 0;
    l->live_cycles = 0;
    l->live_overruns = 0;
    l->last_beat_ns = 0;
  }
  for (ModelStats* m : models()) {
    m->infer.clear();
    m->runs = m->failures = 0;
  }
}

void Cell::enter_safe_state(const char* reason) {
  bool expected = false;
  if (!safe_.compare_exchange_strong(expected, true, std::memory_order_acq_rel)) return;
  for (int i = 0; i < image_->size(); ++i) {
    const TagSpec& s = image_->spec(i);
    if (s.has_safe) image_->force(i, s.safe);
  }
  events_.postf(EventKind::kSafeState, "%s", reason);
}

void Cell::evaluate_interlock(Loop& l, Interlock& il, CycleContext& ctx) {
  bool cond = il.when.eval(ctx.tags) != 0;
  il.count = cond ? il.count + 1 : 0;
  bool reset_edge = false;
  if (il.reset >= 0) {
    bool r = ctx.tags[il.reset] != 0;
    reset_edge = r && !il.last_reset;
    il.last_reset = r;
  }
  if (!il.tripped && il.count >= il.for_cycles) {
    il.tripped = true;
    ++il.trips;
    for (const auto& [tag, v] : il.force) {
      image_->force(tag, v);
      ctx.tags[tag] = v;
    }
    events_.postf(EventKind::kInterlock, "%s: %.100s (loop %s, cycle %llu)", il.name.c_str(), il.when.text().c_str(),
                  l.name.c_str(), static_cast<unsigned long long>(ctx.cycle));
    if (il.cell_safe) enter_safe_state(il.name.c_str());
  } else if (il.tripped && !cond && (!il.latch || reset_edge)) {
    il.tripped = false;
    if (!in_safe_state())
      for (const auto& [tag, v] : il.force) image_->unforce(tag);
    events_.postf(EventKind::kInterlockClear, "%s", il.name.c_str());
  }
}

bool Cell::cycle(Loop& l, int64_t t_ns, const Clock* clock, int64_t deadline_abs_ns) {
  CycleContext ctx;
  ctx.tags = l.local.data();
  ctx.image = image_.get();
  ctx.events = &events_;
  ctx.t_ns = t_ns;
  ctx.dt = l.dt;
  ctx.cycle = l.cycles;
  for (Device* d : l.devices) d->read(t_ns);
  for (int id : l.inputs) {
    double v = image_->get(id);
    if (std::isnan(v) && !ctx.fault) {
      char buf[128];
      std::snprintf(buf, sizeof buf, "loop %s: input tag %s is NaN", l.name.c_str(), image_->spec(id).name.c_str());
      ctx.fail(buf);
    }
    l.local[static_cast<size_t>(id)] = v;
  }
  for (auto& b : l.blocks) b->step(ctx);
  for (Interlock& il : l.interlocks) evaluate_interlock(l, il, ctx);
  bool publish = true;
  if (l.overrun.hold && clock != nullptr && clock->now_ns() > deadline_abs_ns) publish = false;
  for (int id : l.owned) {
    double v = l.local[static_cast<size_t>(id)];
    if (std::isnan(v)) {
      if (!ctx.fault) {
        char buf[128];
        std::snprintf(buf, sizeof buf, "loop %s: output tag %s is NaN", l.name.c_str(), image_->spec(id).name.c_str());
        ctx.fail(buf);
      }
      continue;  // never publish NaN: the tag keeps its last value (or its safe value, below)
    }
    const TagSpec& s = image_->spec(id);
    v = std::clamp(v, s.min, s.max);
    if (s.type != TagType::kFloat) v = std::round(v);
    if (publish) l.local[static_cast<size_t>(id)] = image_->set(id, v);
  }
  if (ctx.fault) {
    events_.post(EventKind::kFault, ctx.fault_detail);
    enter_safe_state(ctx.fault_detail);
  }
  for (Device* d : l.devices) d->write(t_ns);
  ++l.cycles;
  l.live_cycles.store(l.cycles, std::memory_order_relaxed);
  if (!publish) ++l.held;
  return publish;
}

}  // namespace kiln::control
