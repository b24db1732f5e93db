// kiln/io/net_util.h — small network helpers the drivers share: checking at configure time that a
// listening port is free and that a host name resolves, and the exponential reconnect backoff.
//
//   KILN_RETURN_IF_ERROR(check_port_free("127.0.0.1", 5020));   // "port 5020 on 127.0.0.1 is in use"
//   KILN_RETURN_IF_ERROR(check_resolves("broker.local"));
//   Backoff b(100, 5000);           // 100 ms, 200 ms, 400 ms, ... at most 5 s
//   int wait_ms = b.next();  b.reset();
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>

#include "kiln/core/status.h"

namespace kiln::io {

// Binds (and at once closes) a TCP socket on host:port. An error says why ("in use", "cannot
// assign address"). host "" or "0.0.0.0" means every interface.
Status check_port_free(const std::string& host, int port);
// Resolves host with getaddrinfo (a numeric address always resolves).
Status check_resolves(const std::string& host);
// The first IPv4 address of host, dotted ("plc.local" -> "192.168.0.20"); libmodbus's TCP
// backend takes only that form.
Result<std::string> resolve_ipv4(const std::string& host);

class Backoff {
 public:
  Backoff(int64_t min_ms, int64_t max_ms) : min_(min_ms), max_(std::max(min_ms, max_ms)), next_(min_ms) {}
  // The wait before the next attempt; each call doubles the following one up to the maximum.
  int64_t next() {
    int64_t w = next_;
    next_ = std::min(max_, next_ * 2);
    return w;
  }
  void reset() { next_ = min_; }

 private:
  int64_t min_, max_, next_;
};

}  // namespace kiln::io
