#include "kiln/io/modbus_server.h"

#include <modbus/modbus.h>
#include <netinet/in.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <thread>

#include "kiln/io/net_util.h"

namespace kiln::io {
namespace {

using control::EventKind;
using control::TagType;

uint16_t be16(const uint8_t* p) { return static_cast<uint16_t>((p[0] << 8) | p[1]); }

ModbusTable write_table(int fc) { return (fc == 5 || fc == 15) ? ModbusTable::kCoil : ModbusTable::kHolding; }

// The value a client may store into a tag, or NaN when it is not acceptable.
bool acceptable(const control::TagSpec& s, double v) {
  if (!std::isfinite(v) || v < s.min || v > s.max) return false;
  if ((s.type == TagType::kInt || s.type == TagType::kBool) && v != std::nearbyint(v)) return false;
  return true;
}

}  // namespace

int check_modbus_request(const ModbusMap& map, const control::ProcessImage& image, const uint8_t* pdu, int len,
                         std::vector<TagWrite>* writes) {
  if (len < 1) return kIllegalFunction;
  const int fc = pdu[0];
  if (fc >= 1 && fc <= 4) return 0;  // reads: libmodbus checks the range against the table
  if (fc != 5 && fc != 6 && fc != 15 && fc != 16) return kIllegalFunction;
  if (len < 5) return kIllegalDataValue;
  const int start = be16(pdu + 1);
  int qty = 1;
  uint16_t words[128];
  if (fc == 5) {
    const uint16_t v = be16(pdu + 3);
    if (v != 0xFF00 && v != 0x0000) return kIllegalDataValue;
    words[0] = v ? 1 : 0;
  } else if (fc == 6) {
    words[0] = be16(pdu + 3);
  } else {
    if (len < 6) return kIllegalDataValue;
    qty = be16(pdu + 3);
    const int bytes = pdu[5];
    if (fc == 16 && (qty < 1 || qty > 123 || bytes != 2 * qty)) return kIllegalDataValue;
    if (fc == 15 && (qty < 1 || qty > 1968 || bytes != (qty + 7) / 8)) return kIllegalDataValue;
    if (len < 6 + bytes) return kIllegalDataValue;
    if (fc == 16) {
      for (int i = 0; i < qty; ++i) words[i] = be16(pdu + 6 + 2 * i);
    }
  }
  if (start + qty > 65536) return kIllegalDataAddress;
  const ModbusTable table = write_table(fc);
  // Every address written belongs to a writable entry, covered whole.
  int covered = 0;
  for (const ModbusEntry& e : map.entries) {
    if (e.table != table) continue;
    const int lo = std::max(start, e.address), hi = std::min(start + qty, e.address + e.width);
    if (lo >= hi) continue;
    if (!e.writable || e.address < start || e.address + e.width > start + qty) return kIllegalDataAddress;
    covered += e.width;
  }
  if (covered != qty) return kIllegalDataAddress;
  const size_t first = writes->size();
  for (const ModbusEntry& e : map.entries) {
    if (e.table != table || e.address < start || e.address >= start + qty) continue;
    double v;
    if (fc == 15) {
      const int bit = e.address - start;
      uint16_t b = (pdu[6 + bit / 8] >> (bit % 8)) & 1;
      v = decode_value(e, map.word_order, &b);
    } else {
      v = decode_value(e, map.word_order, words + (e.address - start));
    }
    if (!acceptable(image.spec(e.tag), v)) {
      writes->resize(first);
      return kIllegalDataValue;
    }
    writes->push_back({e.tag, v});
  }
  return 0;
}

namespace {

class ModbusServer final : public control::Device {
 public:
  std::string host = "127.0.0.1";
  int port = 0;
  int max_clients = 8;
  ModbusMap map;

  ~ModbusServer() override { stop(); }

  Status start(const control::DeviceEnv& env) override {
    env_ = env;
    int lo[4] = {65536, 65536, 65536, 65536}, hi[4] = {0, 0, 0, 0};
    for (const ModbusEntry& e : map.entries) {
      const int t = static_cast<int>(e.table);
      lo[t] = std::min(lo[t], e.address);
      hi[t] = std::max(hi[t], e.address + e.width);
    }
    for (int t = 0; t < 4; ++t) {
      if (hi[t] == 0) lo[t] = 0;
      start_[t] = lo[t];
    }
    mb_ = modbus_mapping_new_start_address(lo[0], hi[0] - lo[0], lo[1], hi[1] - lo[1], lo[2], hi[2] - lo[2], lo[3], hi[3] - lo[3]);
    if (mb_ == nullptr) return Status::io("cannot allocate the Modbus tables: ", modbus_strerror(errno));
    KILN_ASSIGN_OR_RETURN(std::string ip, resolve_ipv4(host));
    ctx_ = modbus_new_tcp(ip == "0.0.0.0" ? nullptr : ip.c_str(), port);
    if (ctx_ == nullptr) return Status::io("cannot create a Modbus context: ", modbus_strerror(errno));
    // A client that starts a frame and stalls costs this thread at most half a second.
    modbus_set_byte_timeout(ctx_, 0, 500'000);
    listen_fd_ = modbus_tcp_listen(ctx_, max_clients);
    if (listen_fd_ < 0) {
      const int e = errno;
      if (e == EADDRINUSE) return Status::io("port ", port, " on ", host, " is in use (another program listens there)");
      return Status::io("cannot listen on ", host, ":", port, ": ", modbus_strerror(e));
    }
    refresh();
    stop_.store(false);
    thread_ = std::thread([this] { serve(); });
    env_.events->postf(EventKind::kInfo, "%s: Modbus TCP server on %s:%d (%zu mapped tags)", name.c_str(), host.c_str(), port,
                       map.entries.size());
    return Status::ok();
  }

  void stop() override {
    stop_.store(true);
    if (thread_.joinable()) thread_.join();
    for (int fd : clients_) close(fd);
    clients_.clear();
    if (listen_fd_ >= 0) close(listen_fd_);
    listen_fd_ = -1;
    if (ctx_ != nullptr) modbus_free(ctx_);
    ctx_ = nullptr;
    if (mb_ != nullptr) modbus_mapping_free(mb_);
    mb_ = nullptr;
  }

 private:
  // The tables from the image (the server thread is their only user).
  void refresh() {
    uint16_t w[2];
    for (const ModbusEntry& e : map.entries) {
      encode_value(e, map.word_order, env_.image->get(e.tag), w);
      const int off = e.address - start_[static_cast<int>(e.table)];
      switch (e.table) {
        case ModbusTable::kCoil: mb_->tab_bits[off] = static_cast<uint8_t>(w[0]); break;
        case ModbusTable::kDiscrete: mb_->tab_input_bits[off] = static_cast<uint8_t>(w[0]); break;
        case ModbusTable::kHolding:
          for (int i = 0; i < e.width; ++i) mb_->tab_registers[off + i] = w[i];
          break;
        case ModbusTable::kInput:
          for (int i = 0; i < e.width; ++i) mb_->tab_input_registers[off + i] = w[i];
          break;
      }
    }
  }

  void handle(int fd, const uint8_t* q, int len) {
    const int hdr = modbus_get_header_length(ctx_);
    writes_.clear();
    const int exc = check_modbus_request(map, *env_.image, q + hdr, len - hdr, &writes_);
    if (exc != 0) {
      if (exc != kIllegalFunction)
        env_.events->postf(EventKind::kWarning, "%s: Modbus write (function %d, address %d) rejected with exception %02d", name.c_str(),
                           len > hdr ? q[hdr] : 0, len > hdr + 2 ? be16(q + hdr + 1) : -1, exc);
      modbus_reply_exception(ctx_, q, exc);
      return;
    }
    for (const TagWrite& w : writes_) env_.image->set(w.tag, w.value);
    refresh();
    modbus_reply(ctx_, q, len, mb_);
  }

  void serve() {
    uint8_t query[MODBUS_TCP_MAX_ADU_LENGTH];
    while (!stop_.load(std::memory_order_acquire)) {
      fd_set rd;
      FD_ZERO(&rd);
      FD_SET(listen_fd_, &rd);
      int maxfd = listen_fd_;
      for (int fd : clients_) {
        FD_SET(fd, &rd);
        maxfd = std::max(maxfd, fd);
      }
      timeval tv{0, 100'000};
      const int n = select(maxfd + 1, &rd, nullptr, nullptr, &tv);
      if (n <= 0) continue;
      if (FD_ISSET(listen_fd_, &rd)) {
        const int fd = accept(listen_fd_, nullptr, nullptr);
        if (fd >= 0) {
          if (static_cast<int>(clients_.size()) >= max_clients || fd >= FD_SETSIZE) {
            close(fd);
            env_.events->postf(EventKind::kWarning, "%s: refused a Modbus client (max_clients %d reached)", name.c_str(), max_clients);
          } else {
            clients_.push_back(fd);
          }
        }
      }
      for (size_t i = 0; i < clients_.size();) {
        const int fd = clients_[i];
        if (!FD_ISSET(fd, &rd)) {
          ++i;
          continue;
        }
        modbus_set_socket(ctx_, fd);
        const int rc = modbus_receive(ctx_, query);
        if (rc > 0) handle(fd, query, rc);
        if (rc < 0) {
          close(fd);
          clients_.erase(clients_.begin() + static_cast<long>(i));
        } else {
          ++i;
        }
      }
    }
  }

  modbus_t* ctx_ = nullptr;
  modbus_mapping_t* mb_ = nullptr;
  int listen_fd_ = -1;
  int start_[4] = {0, 0, 0, 0};
  std::vector<int> clients_;
  std::vector<TagWrite> writes_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace

Result<std::unique_ptr<control::Device>> create_modbus_server(control::Params& p) {
  const control::BuildEnv& env = p.env();
  auto d = std::make_unique<ModbusServer>();
  YAML::Node hn = p.child("host");
  KILN_ASSIGN_OR_RETURN(d->host, p.string("host", "127.0.0.1"));
  YAML::Node pn = p.child("port");
  KILN_ASSIGN_OR_RETURN(int64_t port, p.integer("port", 0, 1, 65535, true));
  d->port = static_cast<int>(port);
  KILN_ASSIGN_OR_RETURN(int64_t mc, p.integer("max_clients", 8, 1, 64));
  d->max_clients = static_cast<int>(mc);
  KILN_ASSIGN_OR_RETURN(d->map, parse_modbus_map(p, /*server=*/true));
  KILN_RETURN_IF_ERROR(p.finish());
  auto ip = resolve_ipv4(d->host);
  if (!ip.is_ok()) return control::located(env, hn, ip.status().message());
  // The port is probed (bound and released at once) so `kiln cell check` reports a port in use.
  if (Status s = check_port_free(*ip, d->port); !s.is_ok()) return control::located(env, pn, s.message());
  for (const ModbusEntry& e : d->map.entries) {
    if (std::find(d->reads.begin(), d->reads.end(), e.tag) == d->reads.end()) d->reads.push_back(e.tag);
    if (e.writable && std::find(d->writes.begin(), d->writes.end(), e.tag) == d->writes.end()) d->writes.push_back(e.tag);
  }
  return std::unique_ptr<control::Device>(std::move(d));
}

}  // namespace kiln::io
