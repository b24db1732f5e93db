// Fuzz target: an untrusted cell file (`kiln cell check` / `kiln cell run`) — parsed and built
// (tags, expressions, blocks, simulated devices, interlocks) and, when it builds, run for 10 ms
// on the simulated clock, so the blocks and devices see whatever the file configured.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "kiln/control/cell.h"
#include "kiln/control/runtime.h"
#include "kiln/sim/sim_driver.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const kiln::control::DriverDef kDrivers[] = {kiln::sim::kSimulatedDriver};
  std::string_view text(reinterpret_cast<const char*>(data), size);
  kiln::control::CellOptions options;
  options.model_dirs = {"/nonexistent"};
  auto cell = kiln::control::Cell::load_text(text, "fuzz.yaml", kDrivers, options);
  if (!cell.is_ok()) return 0;
  kiln::control::RunOptions o;
  o.duration_s = 0.01;
  o.sim_clock = true;
  o.handle_signals = false;
  (void)kiln::control::run_cell(**cell, o);
  return 0;
}
