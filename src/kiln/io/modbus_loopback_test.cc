// kiln's modbus_client polling kiln's modbus_server over loopback, both driven directly as
// Devices (no runtime): values and writes cross in both directions, and the client notices the
// server going away. Independent peers are in tests/interop; this runs under the sanitizer preset.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <string>
#include <thread>

#include "kiln/control/cell.h"
#include "kiln/core/clock.h"
#include "kiln/io/drivers.h"

namespace kiln::io {
namespace {

int free_port() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  close(fd);
  return ntohs(a.sin_port);
}

bool eventually(const std::function<bool()>& f) {
  for (int i = 0; i < 1000; ++i) {
    if (f()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return false;
}

TEST(ModbusLoopback, ClientAndServerExchangeValues) {
  const int port = free_port();
  const std::string text = R"(
cell: loopback
tags:
  served: float
  count: int
  polled_count: int
  missing: float
  setpoint: {type: float, min: 0, max: 50}
  polled: float
  command: float
  ok: bool
loops:
  - {name: idle, period_ms: 100}
devices:
  - name: srv
    driver: modbus_server
    port: )" + std::to_string(port) + R"(
    map:
      - {tag: served, register: input, address: 0, type: float32}
      - {tag: count, register: input, address: 2, type: uint16}
      - {tag: setpoint, register: holding, address: 0, type: int32, scale: 100, writable: true}
  - name: cli
    driver: modbus_client
    host: 127.0.0.1
    port: )" + std::to_string(port) + R"(
    period_ms: 10
    timeout_ms: 200
    backoff_ms: [10, 50]
    status: ok
    map:
      - {tag: polled, register: input, address: 0, type: float32}
      - {tag: polled_count, register: input, address: 2, type: uint16}
      - {tag: missing, register: input, address: 3}
      - {tag: command, register: holding, address: 0, type: int32, scale: 100, writable: true}
)";
  auto cell = control::Cell::load_text(text, "loopback.yaml", builtin_drivers(), {});
  ASSERT_TRUE(cell.is_ok()) << cell.status().message();
  control::Cell& c = **cell;
  control::ProcessImage& img = c.image();
  MonotonicClock clock;
  control::DeviceEnv env{&img, &c.events(), &clock, clock.now_ns(), false, &c.safe_flag()};
  control::Device* srv = c.find_device("srv");
  control::Device* cli = c.find_device("cli");
  ASSERT_TRUE(srv->start(env).is_ok());
  ASSERT_TRUE(cli->start(env).is_ok());
  const int served = img.find("served"), polled = img.find("polled"), command = img.find("command"), setpoint = img.find("setpoint"),
            ok = img.find("ok");
  // The client reads input 0..3 in one request; the server does not serve 3, so the client
  // splits the span and reads each entry alone: the served ones still arrive.
  img.set(served, 21.75);
  img.set(img.find("count"), 42);
  EXPECT_TRUE(eventually([&] { return img.get(polled) == 21.75 && img.get(img.find("polled_count")) == 42; }));
  EXPECT_EQ(img.get(ok), 1);
  img.set(command, 12.34);
  EXPECT_TRUE(eventually([&] { return img.get(setpoint) == 12.34; }));
  // Outside the setpoint's range: the server refuses (exception 03), the setpoint stays.
  img.set(command, 99);
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  EXPECT_EQ(img.get(setpoint), 12.34);
  srv->stop();
  EXPECT_TRUE(eventually([&] { return img.get(ok) == 0; }));
  cli->stop();
  c.events().drain();
  bool refused = false, down = false, missing = false;
  for (const auto& e : c.events().history()) {
    refused = refused || e.detail.find("rejected with exception 03") != std::string::npos;
    missing = missing || e.detail.find("peer refused input 3 (tag 'missing')") != std::string::npos;
    down = down || e.kind == control::EventKind::kDisconnected;
  }
  EXPECT_TRUE(refused);
  EXPECT_TRUE(down);
  EXPECT_TRUE(missing);
}

}  // namespace
}  // namespace kiln::io
