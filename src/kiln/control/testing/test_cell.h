// kiln/control/testing/test_cell.h — helpers for control tests: build a cell from YAML text, poke
// tags, run cycles by hand, write small ONNX models to a temporary folder.
//
//   auto cell = kiln::control::testing::load("tags: {x: float, y: float}\nloops: ...");
//   set(*cell, "x", 2.0);
//   cycle(*cell, "main", 10);          // ten cycles of loop "main"
//   EXPECT_EQ(get(*cell, "y"), 4.0);
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "kiln/control/cell.h"
#include "kiln/sim/sim_driver.h"

namespace kiln::control::testing {

inline const DriverDef kTestDrivers[] = {sim::kSimulatedDriver};

// A fresh folder under the test temporary directory, private to this process and test (ctest
// runs test cases in parallel processes).
inline std::string temp_dir(const std::string& name) {
  const ::testing::TestInfo* t = ::testing::UnitTest::GetInstance()->current_test_info();
  std::string unique = "kiln_control_" + name + "_" + (t ? std::string(t->name()) : "") + "_" + std::to_string(getpid());
  std::filesystem::path p = std::filesystem::path(::testing::TempDir()) / unique;
  std::filesystem::remove_all(p);
  std::filesystem::create_directories(p);
  return p.string();
}

inline Result<std::unique_ptr<Cell>> try_load(const std::string& yaml, const std::string& file = "cell.yaml",
                                              DriverTable drivers = kTestDrivers, CellOptions options = {}) {
  return Cell::load_text(yaml, file, drivers, options);
}

inline std::unique_ptr<Cell> load(const std::string& yaml, const std::string& file = "cell.yaml", DriverTable drivers = kTestDrivers,
                                  CellOptions options = {}) {
  auto r = try_load(yaml, file, drivers, options);
  EXPECT_TRUE(r.is_ok()) << r.status().message();
  if (!r.is_ok()) return nullptr;
  return std::move(r).value();
}

inline int tag(Cell& c, const std::string& name) {
  int id = c.image().find(name);
  EXPECT_GE(id, 0) << "no tag " << name;
  return id;
}
inline void set(Cell& c, const std::string& name, double v) { c.image().set(tag(c, name), v); }
inline double get(Cell& c, const std::string& name) { return c.image().get(tag(c, name)); }

// Runs `n` cycles of one loop by hand (time advances by the loop's period each cycle).
inline void cycle(Cell& c, const std::string& loop, int n = 1) {
  int li = c.find_loop(loop);
  ASSERT_GE(li, 0) << "no loop " << loop;
  Loop& l = c.loop(li);
  for (int i = 0; i < n; ++i) c.cycle(l, static_cast<int64_t>(l.cycles) * l.period_ns);
}

}  // namespace kiln::control::testing
