#include "kiln/io/drivers.h"

#include "kiln/io/modbus_client.h"
#include "kiln/io/modbus_server.h"
#include "kiln/io/mqtt_sparkplug.h"
#include "kiln/sim/sim_driver.h"

namespace kiln::io {
namespace {

const control::DriverDef kDrivers[] = {
    sim::kSimulatedDriver,
    kModbusServerDriver,
    kModbusClientDriver,
    kMqttSparkplugDriver,
};

}  // namespace

control::DriverTable builtin_drivers() { return kDrivers; }

}  // namespace kiln::io
