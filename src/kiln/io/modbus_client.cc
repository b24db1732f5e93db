#include "kiln/io/modbus_client.h"

#include <modbus/modbus.h>
#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstring>
#include <limits>
#include <mutex>
#include <thread>

#include "kiln/io/modbus_map.h"
#include "kiln/io/net_util.h"

namespace kiln::io {
namespace {

using control::EventKind;

enum class OnLoss { kHold, kSafe, kNan };

class ModbusClient final : public control::Device {
 public:
  std::string host;
  int port = 502;
  int unit_id = 1;
  int64_t period_ms = 100, timeout_ms = 500, backoff_min_ms = 100, backoff_max_ms = 5000;
  int status_tag = -1;
  OnLoss on_loss = OnLoss::kHold;
  ModbusMap map;

  ~ModbusClient() override { stop(); }

  Status start(const control::DeviceEnv& env) override {
    env_ = env;
    last_written_.assign(map.entries.size(), std::numeric_limits<double>::quiet_NaN());
    // Resolved again at start: the address may have changed since the cell was checked.
    KILN_ASSIGN_OR_RETURN(std::string ip, resolve_ipv4(host));
    ctx_ = modbus_new_tcp(ip.c_str(), port);
    if (ctx_ == nullptr) return Status::io("cannot create a Modbus context for ", host, ":", port, ": ", modbus_strerror(errno));
    modbus_set_slave(ctx_, unit_id);
    const uint32_t s = static_cast<uint32_t>(timeout_ms / 1000), us = static_cast<uint32_t>((timeout_ms % 1000) * 1000);
    modbus_set_response_timeout(ctx_, s, us);
    modbus_set_byte_timeout(ctx_, s, us);
    if (status_tag >= 0) env_.image->set(status_tag, 0);
    stop_ = false;
    thread_ = std::thread([this] { run(); });
    return Status::ok();
  }

  void stop() override {
    {
      std::lock_guard<std::mutex> g(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
    if (ctx_ != nullptr) {
      modbus_close(ctx_);
      modbus_free(ctx_);
      ctx_ = nullptr;
    }
  }

 private:
  // Sleeps up to ms, waking early when stop() is called. Returns false when stopping.
  bool wait_ms(int64_t ms) {
    std::unique_lock<std::mutex> l(mu_);
    cv_.wait_for(l, std::chrono::milliseconds(ms), [this] { return stop_.load(); });
    return !stop_;
  }

  // Connecting to a free port of the local ephemeral range can connect the socket to itself
  // (TCP simultaneous open); that is no peer.
  static bool self_connected(int fd) {
    sockaddr_storage a{}, b{};
    socklen_t la = sizeof a, lb = sizeof b;
    if (fd < 0 || getsockname(fd, reinterpret_cast<sockaddr*>(&a), &la) != 0 || getpeername(fd, reinterpret_cast<sockaddr*>(&b), &lb) != 0)
      return false;
    return la == lb && std::memcmp(&a, &b, la) == 0;
  }

  void lost(const char* why) {
    modbus_close(ctx_);
    connected_ = false;
    if (status_tag >= 0) env_.image->set(status_tag, 0);
    for (const ModbusEntry& e : map.entries) {
      if (e.writable) continue;
      const control::TagSpec& s = env_.image->spec(e.tag);
      if (on_loss == OnLoss::kSafe && s.has_safe) env_.image->set(e.tag, s.safe);
      if (on_loss == OnLoss::kNan) env_.image->set(e.tag, std::numeric_limits<double>::quiet_NaN());
    }
    std::fill(last_written_.begin(), last_written_.end(), std::numeric_limits<double>::quiet_NaN());
    env_.events->postf(EventKind::kDisconnected, "%s: Modbus peer %s:%d down (%s); reconnecting with backoff", name.c_str(), host.c_str(),
                       port, why);
  }

  // Read entries of one table at consecutive addresses, fetched by one request.
  struct Span {
    ModbusTable table;
    int start = 0, count = 0;
    std::vector<size_t> entries;
  };

  void plan_spans() {
    std::vector<size_t> reads;
    for (size_t i = 0; i < map.entries.size(); ++i)
      if (!map.entries[i].writable) reads.push_back(i);
    std::stable_sort(reads.begin(), reads.end(), [&](size_t x, size_t y) {
      const ModbusEntry &a = map.entries[x], &b = map.entries[y];
      return a.table != b.table ? a.table < b.table : a.address < b.address;
    });
    spans_.clear();
    for (size_t i : reads) {
      const ModbusEntry& e = map.entries[i];
      const bool bits = e.table == ModbusTable::kCoil || e.table == ModbusTable::kDiscrete;
      const int limit = bits ? MODBUS_MAX_READ_BITS : MODBUS_MAX_READ_REGISTERS;
      if (!spans_.empty()) {
        Span& s = spans_.back();
        // Only back to back: a gap might be an address the peer does not serve.
        if (s.table == e.table && e.address == s.start + s.count && s.count + e.width <= limit) {
          s.count += e.width;
          s.entries.push_back(i);
          continue;
        }
      }
      spans_.push_back({e.table, e.address, e.width, {i}});
    }
  }

  // A Modbus exception from the peer (an address it does not serve, say): a span of several
  // entries is split so that each is read alone from now on; a single entry is reported once.
  void refused(size_t k, int err) {
    Span s = spans_[k];
    if (s.entries.size() > 1) {
      spans_.erase(spans_.begin() + static_cast<long>(k));
      for (size_t i : s.entries) {
        const ModbusEntry& e = map.entries[i];
        spans_.push_back({e.table, e.address, e.width, {i}});
      }
      return;
    }
    report_refusal(s.entries[0], err);
  }

  void report_refusal(size_t i, int err) {
    if (reported_[i]) return;
    reported_[i] = true;
    const ModbusEntry& e = map.entries[i];
    env_.events->postf(EventKind::kWarning, "%s: peer refused %s %d (tag '%s'): %s", name.c_str(), modbus_table_name(e.table), e.address,
                       env_.image->spec(e.tag).name.c_str(), modbus_strerror(err));
  }

  static bool is_exception(int err) { return err > MODBUS_ENOBASE && err <= EMBXGTAR; }

  // Writes changed tags (one request each), then reads every span. Returns false when the
  // connection is gone (timeouts included).
  bool poll() {
    uint16_t w[2];
    for (size_t i = 0; i < map.entries.size(); ++i) {
      const ModbusEntry& e = map.entries[i];
      if (!e.writable) continue;
      const double v = env_.image->get(e.tag);
      if (v == last_written_[i]) continue;
      encode_value(e, map.word_order, v, w);
      int rc;
      if (e.table == ModbusTable::kCoil) rc = modbus_write_bit(ctx_, e.address, w[0]);
      else if (e.width == 1) rc = modbus_write_register(ctx_, e.address, w[0]);
      else rc = modbus_write_registers(ctx_, e.address, 2, w);
      if (rc >= 0) {
        last_written_[i] = v;
      } else if (is_exception(errno)) {
        report_refusal(i, errno);
        last_written_[i] = v;  // not again until the value changes
      } else {
        lost(modbus_strerror(errno));
        return false;
      }
    }
    for (size_t k = 0; k < spans_.size(); ++k) {
      const Span& s = spans_[k];
      int rc = 0;
      switch (s.table) {
        case ModbusTable::kCoil: rc = modbus_read_bits(ctx_, s.start, s.count, bits_); break;
        case ModbusTable::kDiscrete: rc = modbus_read_input_bits(ctx_, s.start, s.count, bits_); break;
        case ModbusTable::kHolding: rc = modbus_read_registers(ctx_, s.start, s.count, regs_); break;
        case ModbusTable::kInput: rc = modbus_read_input_registers(ctx_, s.start, s.count, regs_); break;
      }
      if (rc < 0) {
        const int err = errno;
        if (is_exception(err)) {
          refused(k, err);
          continue;
        }
        lost(modbus_strerror(err));
        return false;
      }
      for (size_t i : s.entries) {
        const ModbusEntry& e = map.entries[i];
        const int off = e.address - s.start;
        uint16_t b = bits_[off];
        const uint16_t* src = (e.type == ModbusType::kBit) ? &b : regs_ + off;
        env_.image->set(e.tag, decode_value(e, map.word_order, src));
      }
    }
    return true;
  }

  void run() {
    reported_.assign(map.entries.size(), false);
    plan_spans();
    Backoff backoff(backoff_min_ms, backoff_max_ms);
    bool first = true;
    auto next = std::chrono::steady_clock::now();
    while (!stop_) {
      if (!connected_) {
        int rc = modbus_connect(ctx_);
        int err = errno;
        if (rc == 0 && self_connected(modbus_get_socket(ctx_))) {
          rc = -1;
          err = ECONNREFUSED;
        }
        if (rc != 0) {
          modbus_close(ctx_);
          if (first) {
            env_.events->postf(EventKind::kDisconnected, "%s: Modbus peer %s:%d unreachable (%s); retrying with backoff", name.c_str(),
                               host.c_str(), port, modbus_strerror(err));
          }
          first = false;
          if (!wait_ms(backoff.next())) break;
          continue;
        }
        first = false;
        connected_ = true;
        backoff.reset();
        if (status_tag >= 0) env_.image->set(status_tag, 1);
        env_.events->postf(EventKind::kConnected, "%s: connected to Modbus peer %s:%d", name.c_str(), host.c_str(), port);
        next = std::chrono::steady_clock::now();
      }
      if (!poll()) {
        if (!wait_ms(backoff.next())) break;
        continue;
      }
      if (status_tag >= 0) env_.image->set(status_tag, 1);
      next += std::chrono::milliseconds(period_ms);
      auto now = std::chrono::steady_clock::now();
      if (next < now) next = now;  // a slow peer: poll again at once, do not try to catch up
      std::unique_lock<std::mutex> l(mu_);
      cv_.wait_until(l, next, [this] { return stop_.load(); });
    }
  }

  modbus_t* ctx_ = nullptr;
  bool connected_ = false;
  std::vector<double> last_written_;
  std::vector<bool> reported_;
  std::vector<Span> spans_;
  uint16_t regs_[MODBUS_MAX_READ_REGISTERS] = {};
  uint8_t bits_[MODBUS_MAX_READ_BITS] = {};
  std::mutex mu_;
  std::condition_variable cv_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace

Result<std::unique_ptr<control::Device>> create_modbus_client(control::Params& p) {
  const control::BuildEnv& env = p.env();
  auto d = std::make_unique<ModbusClient>();
  YAML::Node hn = p.child("host");
  KILN_ASSIGN_OR_RETURN(d->host, p.string("host", "", true));
  KILN_ASSIGN_OR_RETURN(int64_t port, p.integer("port", 502, 1, 65535));
  d->port = static_cast<int>(port);
  KILN_ASSIGN_OR_RETURN(int64_t unit, p.integer("unit_id", 1, 0, 255));
  d->unit_id = static_cast<int>(unit);
  KILN_ASSIGN_OR_RETURN(d->period_ms, p.integer("period_ms", 100, 1, 3'600'000));
  KILN_ASSIGN_OR_RETURN(d->timeout_ms, p.integer("timeout_ms", 500, 1, 60'000));
  YAML::Node bn = p.child("backoff_ms");
  if (bn.IsDefined()) {
    if (!bn.IsSequence() || bn.size() != 2) return control::located(env, bn, "backoff_ms is [first, most] in milliseconds");
    KILN_ASSIGN_OR_RETURN(double lo, p.number_of(bn[0]));
    KILN_ASSIGN_OR_RETURN(double hi, p.number_of(bn[1]));
    if (!(lo >= 1 && hi >= lo && hi <= 3'600'000)) return control::located(env, bn, "backoff_ms needs 1 <= first <= most <= 3600000");
    d->backoff_min_ms = static_cast<int64_t>(lo);
    d->backoff_max_ms = static_cast<int64_t>(hi);
  }
  KILN_ASSIGN_OR_RETURN(d->status_tag, p.tag("status", control::kBoolTag | control::kIntTag, false));
  YAML::Node ln = p.child("on_loss");
  KILN_ASSIGN_OR_RETURN(std::string loss, p.string("on_loss", "hold"));
  if (loss == "hold") d->on_loss = OnLoss::kHold;
  else if (loss == "safe") d->on_loss = OnLoss::kSafe;
  else if (loss == "nan") d->on_loss = OnLoss::kNan;
  else return control::located(env, ln, "on_loss '", loss.substr(0, 32), "' must be hold, safe or nan");
  KILN_ASSIGN_OR_RETURN(d->map, parse_modbus_map(p, /*server=*/false));
  KILN_RETURN_IF_ERROR(p.finish());
  if (auto ip = resolve_ipv4(d->host); !ip.is_ok()) return control::located(env, hn, ip.status().message());
  for (const ModbusEntry& e : d->map.entries) {
    auto& v = e.writable ? d->reads : d->writes;
    if (std::find(v.begin(), v.end(), e.tag) == v.end()) v.push_back(e.tag);
  }
  if (d->status_tag >= 0) d->writes.push_back(d->status_tag);
  return std::unique_ptr<control::Device>(std::move(d));
}

}  // namespace kiln::io
