// kiln/sim/sim_driver.h — the `simulated` device driver: a plant model (spindle, furnace,
// conveyor) stepped inside a loop, mapping its signals to tags.
//
//   devices:
//     - name: spindle
//       driver: simulated
//       model: spindle            # spindle | furnace | conveyor
//       loop: vibration           # stepped at the start of each cycle of this loop
//       seed: 7
//       signals: {vibration: vib_window, speed: spindle_speed, speed_setpoint: spindle_sp}
//       report_at: 0.25           # log a `fault` event when the bearing severity reaches this
//       faults: [{kind: bearing, at_s: 15, rate: 0.05}]
//
// Signals a model writes (sensors) and reads (actuators):
//   spindle   writes vibration (float or window: one sample per cycle), speed, severity;
//             reads speed_setpoint
//   furnace   writes temperature; reads power
//   conveyor  writes speed, position, item_present, count; reads command, run
// Faults (from `faults:` or `kiln cell run --inject DEVICE.KIND@AT_S[:RATE]`): spindle `bearing`
// (severity grows from 0 by `rate` per second, default 0.05; a `fault` event is logged when it
// reaches `report_at`), furnace `heater_stuck` and `sensor_nan`, conveyor `jam`.
// Each start() rebuilds the plant from its seed, so every run of a cell starts identically.
#pragma once

#include <memory>

#include "kiln/control/driver.h"

namespace kiln::sim {

Result<std::unique_ptr<control::Device>> create_simulated_device(control::Params& p);

inline constexpr control::DriverDef kSimulatedDriver = {"simulated", "simulated plant (spindle, furnace, conveyor), stepped in a loop",
                                                        create_simulated_device};

}  // namespace kiln::sim
