// kiln/io/drivers.h — the table of device drivers Kiln ships, in one visible place.
//
// A cell names a driver per device (`driver: modbus_server`); Cell::load_file() looks it up in the
// table it is given. Programs pass builtin_drivers(); a program with its own plant adds rows to a
// copy of it (there is no self-registration by static initialisers).
//
//   auto cell = kiln::control::Cell::load_file("cell.yaml", kiln::io::builtin_drivers(), {});
#pragma once

#include "kiln/control/driver.h"

namespace kiln::io {

control::DriverTable builtin_drivers();

}  // namespace kiln::io
