// kiln/control/cell.h — a cell: tags, devices, periodic loops of blocks, interlocks — built from
// one YAML file (docs/control.md describes every key).
//
// Building a cell is the setup phase: the file is parsed, every tag resolved, every block built
// (models loaded and compiled), ownership checked (each tag has one writer), and every buffer
// allocated. Every problem found is reported, each as `file:line:column: message`, in one error.
// After that, Cell::cycle() runs one cycle of one loop without allocating, locking or blocking —
// the runtime (runtime.h) calls it from the loop's thread at each period.
//
//   KILN_ASSIGN_OR_RETURN(std::unique_ptr<Cell> cell, Cell::load_file("pilot-line.yaml", drivers, {}));
//   Loop& l = cell->loop(0);
//   cell->cycle(l, /*t_ns=*/0);          // what the runtime does every period
//
// A cycle: in-loop devices read → inputs copied from the shared image into the loop's local image
// → blocks run in order → interlocks evaluated (a trip forces its tags at once, in this cycle) →
// outputs clamped to their range, checked for NaN and published → in-loop devices write.
// A NaN, a failed model or too many consecutive overruns take the cell to its safe state: every
// tag with a `safe` value is forced to it until the cell stops.
#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "kiln/control/blocks.h"
#include "kiln/control/driver.h"
#include "kiln/control/event_log.h"
#include "kiln/control/expr.h"
#include "kiln/control/stats.h"
#include "kiln/control/tags.h"
#include "kiln/core/clock.h"
#include "kiln/core/status.h"

namespace kiln::control {

struct OverrunPolicy {
  bool hold = false;   // a cycle that misses its deadline does not publish (outputs keep their last values)
  int safe_after = 0;  // this many consecutive overruns take the cell to its safe state (0: never)
};

struct Interlock {
  std::string name;
  std::string location;
  Expr when;
  int for_cycles = 1;   // the condition must hold this many consecutive evaluations
  bool latch = true;    // stays tripped until `reset` rises (else clears when the condition does)
  int reset = -1;       // bool tag
  bool cell_safe = false;  // a trip also takes the whole cell to its safe state
  std::vector<std::pair<int, double>> force;  // tag -> forced value
  // State (touched only by the owning loop's thread).
  int count = 0;
  bool tripped = false;
  bool last_reset = false;
  uint64_t trips = 0;
};

struct Loop {
  std::string name;
  std::string location;
  int64_t period_ns = 0;
  int64_t deadline_ns = 0;  // relative to the scheduled wake time
  int priority = 0;         // SCHED_FIFO priority 1..99; 0: normal scheduling
  int cpu = -1;             // pinned CPU, -1: any
  OverrunPolicy overrun;
  std::vector<std::unique_ptr<Block>> blocks;
  std::vector<Interlock> interlocks;
  std::vector<Device*> devices;     // in-loop devices
  std::vector<int> inputs, owned;   // scalar tags copied in / published
  std::vector<double> local;        // the loop's scalar image
  double dt = 0;

  // Statistics (written by the loop's thread; read after it stopped).
  LatencyHistogram jitter, exec;
  uint64_t cycles = 0, overruns = 0, missed = 0, held = 0;
  int consecutive_overruns = 0, max_consecutive_overruns = 0;
  // Live values for the status line and the watchdog (any thread).
  std::atomic<uint64_t> live_cycles{0}, live_overruns{0};
  std::atomic<int64_t> last_beat_ns{0};
};

struct CellOptions {
  std::vector<std::string> model_dirs;  // where `infer` looks for models after the cell's folder
};

class Cell {
 public:
  static Result<std::unique_ptr<Cell>> load_file(const std::string& path, DriverTable drivers, const CellOptions& options);
  static Result<std::unique_ptr<Cell>> load_text(std::string_view text, const std::string& file, DriverTable drivers,
                                                 const CellOptions& options);
  ~Cell();

  const std::string& name() const { return name_; }
  ProcessImage& image() { return *image_; }
  EventLog& events() { return events_; }
  int num_loops() const { return static_cast<int>(loops_.size()); }
  Loop& loop(int i) { return *loops_[static_cast<size_t>(i)]; }
  int find_loop(std::string_view name) const;
  int num_devices() const { return static_cast<int>(devices_.size()); }
  Device& device(int i) { return *devices_[static_cast<size_t>(i)]; }
  Device* find_device(std::string_view name);
  std::vector<ModelStats*> models();
  const std::vector<int>& status_tags() const { return status_tags_; }
  int64_t base_tick_ns() const { return base_tick_ns_; }
  int64_t watchdog_ns() const { return watchdog_ns_; }

  // Real-time safe. `clock`/`deadline_abs_ns` (optional) let a hold-policy loop skip publishing
  // when the cycle has already missed its deadline. Returns false when the outputs were held.
  bool cycle(Loop& l, int64_t t_ns, const Clock* clock = nullptr, int64_t deadline_abs_ns = 0);

  // Real-time safe and idempotent: forces every tag that has a safe value, logs why.
  void enter_safe_state(const char* reason);
  bool in_safe_state() const { return safe_.load(std::memory_order_acquire); }
  const std::atomic<bool>& safe_flag() const { return safe_; }

  // Image, blocks, interlocks and statistics back to their initial state (before a run).
  void reset();

 private:
  Cell() = default;
  friend class CellBuilder;
  void evaluate_interlock(Loop& l, Interlock& il, CycleContext& ctx);

  std::string name_, file_;
  std::unique_ptr<ProcessImage> image_;
  EventLog events_;
  std::vector<std::unique_ptr<Device>> devices_;
  std::vector<std::unique_ptr<Loop>> loops_;
  std::vector<int> status_tags_;
  int64_t base_tick_ns_ = 100'000;
  int64_t watchdog_ns_ = 250'000'000;
  std::atomic<bool> safe_{false};
};

}  // namespace kiln::control
