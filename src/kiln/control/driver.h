// kiln/control/driver.h — the plugin boundary between a cell and the plant: a device driver.
//
// A device moves tags between the process image and something outside (a simulated motor, a
// Modbus peer, an MQTT broker). The boundary is deliberately narrow (open62541's plugin structs,
// ros2_control's hardware interfaces):
//   - a DriverDef {name, summary, create} in a table that the program passes to the cell
//     explicitly (no static-initialiser self-registration);
//   - create() reads the device's YAML mapping with Params (every error located) and declares
//     which tags it writes into the image (`writes`) and which it reads (`reads`);
//   - start()/stop() run outside the loops (open sockets, start the driver's own thread, say
//     goodbye);
//   - in-loop devices (in_loop() true, the simulated plant) instead have read()/write() called by
//     their loop at the start and end of each cycle; those must be real-time safe.
// Drivers that talk to the network never run in a loop: they run on their own threads and touch
// only the image (lock-free), so a dead peer never delays a cycle.
//
//   const DriverDef kMyDrivers[] = {{"simulated", "simulated plant", sim::create_device}};
//   auto cell = Cell::load_file("cell.yaml", kMyDrivers, {});
#pragma once

#include <atomic>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "kiln/control/config_util.h"
#include "kiln/control/event_log.h"
#include "kiln/control/tags.h"
#include "kiln/core/clock.h"
#include "kiln/core/status.h"

namespace kiln::control {

// What a device gets when the cell starts.
struct DeviceEnv {
  ProcessImage* image = nullptr;
  EventLog* events = nullptr;
  const Clock* clock = nullptr;
  int64_t start_ns = 0;          // the cell's time zero on `clock`
  bool sim_clock = false;
  const std::atomic<bool>* safe_state = nullptr;  // true once the cell is in its safe state
};

class Device {
 public:
  virtual ~Device() = default;

  // Not real-time. Errors (a port in use, a bad address) stop the cell from starting.
  virtual Status start(const DeviceEnv& env) {
    env_ = env;
    return Status::ok();
  }
  // Not real-time: stop threads, publish a last state, close connections. Called once.
  virtual void stop() {}

  // In-loop devices only, from their loop's thread: real-time safe.
  virtual bool in_loop() const { return false; }
  virtual void read(int64_t t_ns) {}
  virtual void write(int64_t t_ns) {}

  // Fault injection (simulated devices): `fault` starts at at_s seconds and grows by `rate` per
  // second (its meaning is the device's). Not real-time; call before start.
  virtual Status inject(std::string_view fault, double at_s, double rate) {
    return Status::unsupported("device '", name, "' (", driver, ") has no injectable faults");
  }

  std::string name, driver, loop;
  std::vector<int> writes, reads;  // tags this device writes into / reads from the image
  std::string location;            // file:line:column of its declaration

 protected:
  DeviceEnv env_;
};

struct DriverDef {
  const char* name;
  const char* summary;
  // `p` has `name`, `driver` and `loop` consumed already; create reads the rest and calls
  // p.finish(). It must not open sockets or start threads (kiln cell check calls it too).
  Result<std::unique_ptr<Device>> (*create)(Params& p);
};
using DriverTable = std::span<const DriverDef>;

}  // namespace kiln::control
