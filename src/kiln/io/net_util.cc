#include "kiln/io/net_util.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace kiln::io {

Status check_port_free(const std::string& host, int port) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE;
  addrinfo* res = nullptr;
  const std::string h = host.empty() ? "0.0.0.0" : host;
  const std::string svc = std::to_string(port);
  int rc = getaddrinfo(h.c_str(), svc.c_str(), &hints, &res);
  if (rc != 0) return Status::invalid("cannot resolve '", h, "': ", gai_strerror(rc));
  Status st = Status::ok();
  int fd = socket(res->ai_family, res->ai_socktype, res->ai_protocol);
  if (fd < 0) {
    st = Status::io("socket: ", std::strerror(errno));
  } else {
    // The same option the listener will use, so a port in TIME_WAIT is not reported as taken.
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, res->ai_addr, res->ai_addrlen) != 0) {
      int e = errno;
      if (e == EADDRINUSE) st = Status::invalid("port ", port, " on ", h, " is in use (another program listens there)");
      else st = Status::invalid("cannot listen on ", h, ":", port, ": ", std::strerror(e));
    }
    close(fd);
  }
  freeaddrinfo(res);
  return st;
}

Status check_resolves(const std::string& host) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  int rc = getaddrinfo(host.c_str(), nullptr, &hints, &res);
  if (rc != 0) return Status::invalid("host '", host, "' does not resolve: ", gai_strerror(rc));
  freeaddrinfo(res);
  return Status::ok();
}

Result<std::string> resolve_ipv4(const std::string& host) {
  addrinfo hints{};
  hints.ai_family = AF_INET;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  int rc = getaddrinfo(host.c_str(), nullptr, &hints, &res);
  if (rc != 0) return Status::invalid("host '", host, "' has no IPv4 address: ", gai_strerror(rc));
  char buf[INET_ADDRSTRLEN] = {0};
  inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in*>(res->ai_addr)->sin_addr, buf, sizeof buf);
  freeaddrinfo(res);
  return std::string(buf);
}

}  // namespace kiln::io
