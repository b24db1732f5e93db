#include "kiln/io/drivers.h"

#include "kiln/sim/sim_driver.h"

namespace kiln::io {
namespace {

const control::DriverDef kDrivers[] = {
    sim::kSimulatedDriver,
};

}  // namespace

control::DriverTable builtin_drivers() { return kDrivers; }

}  // namespace kiln::io
