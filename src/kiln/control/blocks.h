// kiln/control/blocks.h — the function blocks a loop runs, in order, every cycle.
//
// A block is built once from its YAML mapping (a factory in the block table below checks every
// parameter, resolves tags and allocates whatever state it needs) and then stepped every cycle
// with step(), which must not allocate, lock, block or throw. Blocks read and write scalar tags in
// the loop's local copy of the process image (`ctx.tags[id]`), so every block of a cycle sees the
// same inputs and the loop publishes the outputs together; arrays and windows are read from and
// written to the shared image directly (`ctx.image`).
//
// The catalogue (docs/control.md lists every parameter):
//   pid            PID with integrator clamping (anti-windup), derivative on measurement, manual mode
//                  with bumpless transfer back to automatic
//   lowpass        first-order filter            moving_average  mean of the last n samples
//   band_energy    FFT band powers over a window tag, optionally log10
//   limit          clamp to [min, max]           rate_limit      slew-rate limiter
//   hysteresis     comparator with on/off thresholds
//   timer          IEC 61131 TON / TOF / TP
//   state_machine  named states, guarded transitions, per-state outputs
//   expr           out = expression over tags
//   push           append a sample to a window tag
//   profile        piecewise-linear setpoint over time (ramp and soak)
//   infer          run a compiled Kiln model: tags -> scaled inputs -> outputs -> scaled tags
//
// Blocks are registered explicitly in one table (block_table()); a new block is one entry there.
//
//   const BlockDef* def = find_block("lowpass");
//   KILN_ASSIGN_OR_RETURN(std::unique_ptr<Block> b, def->create(node, env));
//   b->step(ctx);   // every cycle
#pragma once

#include <memory>
#include <span>
#include <string>
#include <vector>

#include "kiln/control/config_util.h"
#include "kiln/control/event_log.h"
#include "kiln/control/stats.h"
#include "kiln/control/tags.h"
#include "kiln/core/status.h"

namespace kiln::control {

// What a block sees in one cycle.
struct CycleContext {
  double* tags = nullptr;         // the loop's local scalar image, indexed by tag id
  ProcessImage* image = nullptr;  // the shared image (arrays, windows)
  EventLog* events = nullptr;
  int64_t t_ns = 0;               // this cycle's scheduled time, since the cell started
  double dt = 0;                  // the loop's period, seconds
  uint64_t cycle = 0;             // cycles run by this loop before this one
  bool fault = false;             // set by fail(): the loop takes the cell to its safe state
  char fault_detail[128] = {0};

  // Real-time safe: records the first fault of the cycle.
  void fail(const char* detail);
};

// Timing of an `infer` block's model, reported in the stats JSON under "models".
struct ModelStats {
  std::string name;   // the model file name
  std::string block;  // the block's name
  std::string loop;
  LatencyHistogram infer;
  uint64_t runs = 0;
  uint64_t failures = 0;  // run() errors and NaN outputs
};

class Block {
 public:
  virtual ~Block() = default;
  // Real-time safe: no allocation, no lock, no blocking call.
  virtual void step(CycleContext& ctx) = 0;
  // Back to the state after construction (the runtime calls it before the first cycle).
  virtual void reset() {}
  virtual ModelStats* model_stats() { return nullptr; }

  std::string name;
  std::string type;
  // Tags the block reads and writes (scalars, arrays and windows), for the cell's ownership check:
  // a tag is written by one loop or one device only.
  std::vector<int> reads, writes;
};

struct BlockDef {
  const char* type;
  const char* summary;
  Result<std::unique_ptr<Block>> (*create)(Params& p);
};

std::span<const BlockDef> block_table();
const BlockDef* find_block(std::string_view type);

}  // namespace kiln::control
