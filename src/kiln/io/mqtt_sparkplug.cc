#include "kiln/io/mqtt_sparkplug.h"

#include <MQTTClient.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstring>
#include <limits>
#include <mutex>
#include <thread>

#include "kiln/io/net_util.h"
#include "kiln/io/sparkplug_codec.h"

namespace kiln::io {
namespace {

using control::EventKind;
using control::TagType;

constexpr const char* kRebirth = "Node Control/Rebirth";

struct Metric {
  int tag = -1;
  std::string name;
  uint32_t datatype = kSpDouble;
  double deadband = 0;
  bool writable = false;
  double last = 0;  // value last published
};

uint64_t wall_ms() {
  return static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count());
}

bool acceptable(const control::TagSpec& s, double v) {
  if (!std::isfinite(v) || v < s.min || v > s.max) return false;
  if ((s.type == TagType::kInt || s.type == TagType::kBool) && v != std::nearbyint(v)) return false;
  return true;
}

class SparkplugNode final : public control::Device {
 public:
  std::string host = "127.0.0.1", group, node, device, client_id;
  int port = 1883;
  int64_t scan_ms = 100, keepalive_s = 10, connect_timeout_s = 5, backoff_min_ms = 200, backoff_max_ms = 10000;
  int status_tag = -1;
  std::vector<Metric> metrics;

  ~SparkplugNode() override { stop(); }

  Status start(const control::DeviceEnv& env) override {
    env_ = env;
    const std::string uri = "tcp://" + host + ":" + std::to_string(port);
    if (MQTTClient_create(&client_, uri.c_str(), client_id.c_str(), MQTTCLIENT_PERSISTENCE_NONE, nullptr) != MQTTCLIENT_SUCCESS)
      return Status::io("cannot create an MQTT client for ", uri);
    const std::string base = "spBv1.0/" + group + "/";
    birth_topic_ = base + "NBIRTH/" + node;
    death_topic_ = base + "NDEATH/" + node;
    data_topic_ = base + "NDATA/" + node;
    cmd_topic_ = base + "NCMD/" + node;
    if (!device.empty()) {
      dbirth_topic_ = base + "DBIRTH/" + node + "/" + device;
      ddeath_topic_ = base + "DDEATH/" + node + "/" + device;
      data_topic_ = base + "DDATA/" + node + "/" + device;
      dcmd_topic_ = base + "DCMD/" + node + "/" + device;
    }
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
    if (client_ != nullptr) MQTTClient_destroy(&client_);
    client_ = nullptr;
  }

 private:
  bool wait_ms(int64_t ms) {
    std::unique_lock<std::mutex> l(mu_);
    cv_.wait_for(l, std::chrono::milliseconds(ms), [this] { return stop_.load(); });
    return !stop_;
  }

  bool publish(const std::string& topic, const std::string& payload, int qos) {
    MQTTClient_message m = MQTTClient_message_initializer;
    m.payload = const_cast<char*>(payload.data());
    m.payloadlen = static_cast<int>(payload.size());
    m.qos = qos;
    m.retained = 0;
    MQTTClient_deliveryToken tok = 0;
    int rc = MQTTClient_publishMessage(client_, topic.c_str(), &m, &tok);
    if (rc == MQTTCLIENT_SUCCESS && qos > 0) rc = MQTTClient_waitForCompletion(client_, tok, 2000);
    return rc == MQTTCLIENT_SUCCESS;
  }

  std::string death_payload() const {
    OutMetric bd{.name = "bdSeq", .datatype = kSpUInt64, .value = static_cast<double>(bdseq_)};
    return encode_payload(wall_ms(), -1, std::span<const OutMetric>(&bd, 1));
  }

  bool birth() {
    const uint64_t now = wall_ms();
    std::vector<OutMetric> out;
    out.reserve(metrics.size() + 2);
    out.push_back({.name = "bdSeq", .datatype = kSpUInt64, .value = static_cast<double>(bdseq_), .timestamp_ms = now});
    out.push_back({.name = kRebirth, .datatype = kSpBoolean, .value = 0, .timestamp_ms = now});
    // With a `device`, the tags are that device's metrics (DBIRTH); else the node's own.
    std::vector<OutMetric> dev;
    std::vector<OutMetric>& tags = device.empty() ? out : dev;
    for (size_t i = 0; i < metrics.size(); ++i) {
      Metric& m = metrics[i];
      m.last = env_.image->get(m.tag);
      tags.push_back({.name = m.name, .alias = i + 1, .datatype = m.datatype, .value = m.last, .timestamp_ms = now});
    }
    seq_ = 0;
    if (!publish(birth_topic_, encode_payload(now, seq_, out), 0)) return false;
    if (device.empty()) return true;
    seq_ = (seq_ + 1) & 0xff;
    return publish(dbirth_topic_, encode_payload(now, seq_, dev), 0);
  }

  bool changed(const Metric& m, double v) const {
    if (std::isnan(v) || std::isnan(m.last)) return std::isnan(v) != std::isnan(m.last);
    if (m.deadband > 0) return std::abs(v - m.last) > m.deadband;
    return v != m.last;
  }

  bool report() {
    const uint64_t now = wall_ms();
    out_.clear();
    for (size_t i = 0; i < metrics.size(); ++i) {
      Metric& m = metrics[i];
      const double v = env_.image->get(m.tag);
      if (!changed(m, v)) continue;
      m.last = v;
      out_.push_back({.name = {}, .alias = i + 1, .datatype = m.datatype, .value = v, .timestamp_ms = now});
    }
    if (out_.empty()) return true;
    seq_ = (seq_ + 1) & 0xff;
    return publish(data_topic_, encode_payload(now, seq_, out_), 0);
  }

  // An NCMD (node) or DCMD (device) payload: rebirth requests and writes to writable metrics.
  void command(const uint8_t* data, size_t size, const char* kind) {
    auto cmd = decode_command(data, size);
    if (!cmd.is_ok()) {
      env_.events->postf(EventKind::kWarning, "%s: %s ignored: %s", name.c_str(), kind, cmd.status().message().c_str());
      return;
    }
    for (const CommandMetric& c : *cmd) {
      if (c.name == kRebirth && std::strcmp(kind, "NCMD") == 0) {
        if (c.numeric && c.value != 0) {
          env_.events->postf(EventKind::kRebirth, "%s: rebirth requested by NCMD; NBIRTH republished (bdSeq %llu)", name.c_str(),
                             static_cast<unsigned long long>(bdseq_));
          birth();
        }
        continue;
      }
      Metric* m = nullptr;
      // With a device, the tags are its metrics: only a DCMD addresses them.
      const bool ours = device.empty() || std::strcmp(kind, "DCMD") == 0;
      for (size_t i = 0; ours && i < metrics.size() && m == nullptr; ++i)
        if ((!c.name.empty() && c.name == metrics[i].name) || (c.name.empty() && c.has_alias && c.alias == i + 1)) m = &metrics[i];
      const std::string label = !c.name.empty() ? c.name : "alias " + std::to_string(c.alias);
      if (m == nullptr) {
        env_.events->postf(EventKind::kWarning, "%s: %s for unknown metric '%.60s' ignored", name.c_str(), kind, label.c_str());
      } else if (!m->writable) {
        env_.events->postf(EventKind::kWarning, "%s: %s for read-only metric '%.60s' ignored", name.c_str(), kind, label.c_str());
      } else if (!c.numeric || !acceptable(env_.image->spec(m->tag), c.value)) {
        const control::TagSpec& s = env_.image->spec(m->tag);
        env_.events->postf(EventKind::kWarning, "%s: %s %.60s = %g refused (tag '%s' takes %s values in [%g, %g])", name.c_str(),
                           kind, label.c_str(), c.value, s.name.c_str(), control::tag_type_name(s.type), s.min, s.max);
      } else {
        env_.image->set(m->tag, c.value);
        env_.events->postf(EventKind::kInfo, "%s: %s set %s = %g", name.c_str(), kind, env_.image->spec(m->tag).name.c_str(), c.value);
      }
    }
  }

  bool connect() {
    const std::string will_payload = death_payload();
    MQTTClient_willOptions will = MQTTClient_willOptions_initializer;
    will.topicName = death_topic_.c_str();
    will.message = nullptr;
    will.payload.data = will_payload.data();
    will.payload.len = static_cast<int>(will_payload.size());
    will.qos = 1;
    will.retained = 0;
    MQTTClient_connectOptions o = MQTTClient_connectOptions_initializer;
    o.keepAliveInterval = static_cast<int>(keepalive_s);
    o.cleansession = 1;
    o.connectTimeout = static_cast<int>(connect_timeout_s);
    o.will = &will;
    const int rc = MQTTClient_connect(client_, &o);
    if (rc != MQTTCLIENT_SUCCESS) {
      last_error_ = rc;
      return false;
    }
    if (MQTTClient_subscribe(client_, cmd_topic_.c_str(), 0) != MQTTCLIENT_SUCCESS ||
        (!device.empty() && MQTTClient_subscribe(client_, dcmd_topic_.c_str(), 0) != MQTTCLIENT_SUCCESS) || !birth()) {
      MQTTClient_disconnect(client_, 0);
      last_error_ = -1;
      return false;
    }
    return true;
  }

  void lost(const char* why) {
    connected_ = false;
    if (status_tag >= 0) env_.image->set(status_tag, 0);
    MQTTClient_disconnect(client_, 0);
    env_.events->postf(EventKind::kDisconnected, "%s: MQTT broker %s:%d lost (%s); reconnecting with backoff", name.c_str(), host.c_str(),
                       port, why);
  }

  void run() {
    Backoff backoff(backoff_min_ms, backoff_max_ms);
    bool first = true;
    auto next_scan = std::chrono::steady_clock::now();
    while (!stop_) {
      if (!connected_) {
        if (!connect()) {
          if (first) {
            env_.events->postf(EventKind::kDisconnected, "%s: MQTT broker %s:%d unreachable (paho %d); retrying with backoff", name.c_str(),
                               host.c_str(), port, last_error_);
          }
          first = false;
          if (!wait_ms(backoff.next())) break;
          continue;
        }
        first = false;
        connected_ = true;
        backoff.reset();
        if (status_tag >= 0) env_.image->set(status_tag, 1);
        env_.events->postf(EventKind::kConnected, "%s: connected to MQTT broker %s:%d; NBIRTH published (bdSeq %llu)", name.c_str(),
                           host.c_str(), port, static_cast<unsigned long long>(bdseq_));
        next_scan = std::chrono::steady_clock::now() + std::chrono::milliseconds(scan_ms);
      }
      const auto now = std::chrono::steady_clock::now();
      const int64_t left = std::chrono::duration_cast<std::chrono::milliseconds>(next_scan - now).count();
      char* topic = nullptr;
      int topic_len = 0;
      MQTTClient_message* msg = nullptr;
      const int rc = MQTTClient_receive(client_, &topic, &topic_len, &msg, static_cast<unsigned long>(std::clamp<int64_t>(left, 1, 1000)));
      if (msg != nullptr) {
        const bool dcmd = !device.empty() && topic != nullptr && dcmd_topic_ == std::string(topic, topic_len > 0 ? topic_len : std::strlen(topic));
        command(static_cast<const uint8_t*>(msg->payload), static_cast<size_t>(std::max(0, msg->payloadlen)), dcmd ? "DCMD" : "NCMD");
        MQTTClient_freeMessage(&msg);
      }
      if (topic != nullptr) MQTTClient_free(topic);
      if ((rc != MQTTCLIENT_SUCCESS && rc != MQTTCLIENT_TOPICNAME_TRUNCATED) || !MQTTClient_isConnected(client_)) {
        lost("connection closed");
        bdseq_ = (bdseq_ + 1) & 0xff;
        if (!wait_ms(backoff.next())) break;
        continue;
      }
      if (std::chrono::steady_clock::now() >= next_scan) {
        next_scan += std::chrono::milliseconds(scan_ms);
        if (next_scan < std::chrono::steady_clock::now()) next_scan = std::chrono::steady_clock::now();
        if (!report()) {
          lost("publish failed");
          bdseq_ = (bdseq_ + 1) & 0xff;
          if (!wait_ms(backoff.next())) break;
        }
      }
    }
    if (connected_) {
      // An orderly goodbye: NDEATH ourselves (the broker drops the will on a clean disconnect).
      if (!device.empty()) {
        seq_ = (seq_ + 1) & 0xff;
        publish(ddeath_topic_, encode_payload(wall_ms(), seq_, {}), 1);
      }
      publish(death_topic_, death_payload(), 1);
      MQTTClient_disconnect(client_, 1000);
      connected_ = false;
      if (status_tag >= 0) env_.image->set(status_tag, 0);
    }
  }

  MQTTClient client_ = nullptr;
  std::string birth_topic_, death_topic_, data_topic_, cmd_topic_, dbirth_topic_, ddeath_topic_, dcmd_topic_;
  uint64_t bdseq_ = 0;
  int64_t seq_ = 0;
  int last_error_ = 0;
  bool connected_ = false;
  std::vector<OutMetric> out_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

bool valid_id(const std::string& s) {
  if (s.empty() || s.size() > 128) return false;
  for (char c : s)
    if (c == '/' || c == '+' || c == '#' || static_cast<unsigned char>(c) < 0x20) return false;
  return true;
}

}  // namespace

Result<std::unique_ptr<control::Device>> create_mqtt_sparkplug(control::Params& p) {
  const control::BuildEnv& env = p.env();
  auto d = std::make_unique<SparkplugNode>();
  YAML::Node hn = p.child("host");
  KILN_ASSIGN_OR_RETURN(d->host, p.string("host", "127.0.0.1"));
  KILN_ASSIGN_OR_RETURN(int64_t port, p.integer("port", 1883, 1, 65535));
  d->port = static_cast<int>(port);
  YAML::Node gn = p.child("group"), nn = p.child("node");
  KILN_ASSIGN_OR_RETURN(d->group, p.string("group", "", true));
  KILN_ASSIGN_OR_RETURN(d->node, p.string("node", "", true));
  if (!valid_id(d->group)) return control::located(env, gn, "group id '", d->group.substr(0, 64), "' must be 1-128 characters without / + #");
  if (!valid_id(d->node)) return control::located(env, nn, "node id '", d->node.substr(0, 64), "' must be 1-128 characters without / + #");
  YAML::Node dn = p.child("device");
  KILN_ASSIGN_OR_RETURN(d->device, p.string("device", ""));
  if (p.has("device") && !valid_id(d->device))
    return control::located(env, dn, "device id '", d->device.substr(0, 64), "' must be 1-128 characters without / + #");
  KILN_ASSIGN_OR_RETURN(d->client_id, p.string("client_id", "kiln-" + d->group + "-" + d->node));
  KILN_ASSIGN_OR_RETURN(d->scan_ms, p.integer("scan_ms", 100, 1, 3'600'000));
  KILN_ASSIGN_OR_RETURN(d->keepalive_s, p.integer("keepalive_s", 10, 1, 65535));
  KILN_ASSIGN_OR_RETURN(d->connect_timeout_s, p.integer("connect_timeout_s", 5, 1, 600));
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
  YAML::Node mn = p.child("metrics");
  if (!mn.IsSequence() || mn.size() == 0)
    return control::located(env, mn.IsDefined() ? mn : p.node(), "'metrics' must be a list of tag names or {tag, name, datatype, deadband, writable}");
  for (const YAML::Node& en : mn) {
    Metric m;
    m.datatype = 0;  // 0: from the tag's type, below
    if (en.IsScalar()) {
      KILN_ASSIGN_OR_RETURN(m.tag, p.tag_of(en, control::kScalarTags));
    } else if (en.IsMap()) {
      control::Params ep(en, env);
      KILN_ASSIGN_OR_RETURN(m.tag, ep.tag("tag", control::kScalarTags));
      YAML::Node namen = ep.child("name");
      KILN_ASSIGN_OR_RETURN(m.name, ep.string("name", ""));
      if (ep.has("name") && (m.name.empty() || m.name.size() > 200 || m.name == kRebirth || m.name == "bdSeq"))
        return control::located(env, namen, "metric name '", m.name.substr(0, 64), "' is empty, too long or reserved");
      YAML::Node tn = ep.child("datatype");
      KILN_ASSIGN_OR_RETURN(std::string dt, ep.string("datatype", ""));
      if (dt == "boolean") m.datatype = kSpBoolean;
      else if (dt == "int32") m.datatype = kSpInt32;
      else if (dt == "int64") m.datatype = kSpInt64;
      else if (dt == "float") m.datatype = kSpFloat;
      else if (dt == "double") m.datatype = kSpDouble;
      else if (!dt.empty()) return control::located(env, tn, "unknown datatype '", dt.substr(0, 32), "' (expected boolean, int32, int64, float or double)");
      KILN_ASSIGN_OR_RETURN(m.deadband, ep.number_in("deadband", 0, 0, 1e300));
      KILN_ASSIGN_OR_RETURN(m.writable, ep.boolean("writable", false));
      KILN_RETURN_IF_ERROR(ep.finish());
    } else {
      return control::located(env, en, "a metric is a tag name or {tag, name, datatype, deadband, writable}");
    }
    const control::TagSpec& s = env.image->spec(m.tag);
    if (m.name.empty()) m.name = s.name;
    if (m.datatype == 0) m.datatype = s.type == TagType::kBool ? kSpBoolean : s.type == TagType::kInt ? kSpInt64 : kSpDouble;
    for (const Metric& o : d->metrics)
      if (o.name == m.name) return control::located(env, en, "metric '", m.name, "' declared twice");
    if (m.writable && std::find(d->writes.begin(), d->writes.end(), m.tag) == d->writes.end()) d->writes.push_back(m.tag);
    if (std::find(d->reads.begin(), d->reads.end(), m.tag) == d->reads.end()) d->reads.push_back(m.tag);
    d->metrics.push_back(std::move(m));
  }
  KILN_RETURN_IF_ERROR(p.finish());
  if (Status s = check_resolves(d->host); !s.is_ok()) return control::located(env, hn, "broker ", s.message());
  if (d->status_tag >= 0) d->writes.push_back(d->status_tag);
  return std::unique_ptr<control::Device>(std::move(d));
}

}  // namespace kiln::io
