"""Sparkplug B interop: kiln's mqtt_sparkplug driver against Debian's mosquitto, checked with an
independent decoder (npm sparkplug-payload, the Eclipse Tahu JavaScript codec).

  test_sparkplug.py KILN

What is checked: NBIRTH (bdSeq, Node Control/Rebirth, every metric with name, alias, datatype),
NDATA by exception (a metric inside its deadband is not sent), NCMD writes (a value outside the
tag's range is refused), rebirth on NCMD, reconnection after the broker restarts (new NBIRTH,
bdSeq + 1) while the loop keeps running, NDEATH as last will when kiln is killed, and NDEATH on
an orderly stop."""
import json
import os
import signal
import subprocess
import sys
import threading
import time

import paho.mqtt.client as mqtt

from peers import KilnCell, Mosquitto, free_port, tempdir, wait_until

HERE = os.path.dirname(os.path.abspath(__file__))
GROUP, NODE = "interop", "cell1"


class Codec:
    def __init__(self):
        script = os.path.join(HERE, "sparkplug_codec.js")
        if not os.path.isdir(os.path.join(HERE, "node_modules", "sparkplug-payload")):
            raise SystemExit("npm sparkplug-payload is missing from tests/interop/node_modules: run scripts/install-deps")
        self.p = subprocess.Popen(["node", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=HERE)

    def call(self, req):
        self.p.stdin.write(json.dumps(req) + "\n")
        self.p.stdin.flush()
        out = json.loads(self.p.stdout.readline())
        if "error" in out:
            raise AssertionError("sparkplug-payload: " + out["error"])
        return out

    def decode(self, data):
        return self.call({"op": "decode", "hex": data.hex()})

    def encode(self, payload):
        return bytes.fromhex(self.call({"op": "encode", "payload": payload})["hex"])

    def close(self):
        self.p.stdin.close()
        self.p.wait(timeout=5)


class Subscriber:
    """A persistent-session subscriber (QoS 1), so nothing is lost across a broker restart."""

    def __init__(self, port):
        self.msgs = []
        self.lock = threading.Lock()
        self.c = mqtt.Client(client_id="interop-observer", clean_session=False)
        self.c.on_connect = lambda c, u, f, rc: c.subscribe("spBv1.0/%s/#" % GROUP, qos=1)
        self.c.on_message = self._on_message
        self.c.reconnect_delay_set(min_delay=1, max_delay=1)
        self.c.connect("127.0.0.1", port, keepalive=5)
        self.c.loop_start()

    def _on_message(self, c, u, m):
        with self.lock:
            self.msgs.append((m.topic, bytes(m.payload)))

    def count(self):
        with self.lock:
            return len(self.msgs)

    def since(self, n, kind):
        with self.lock:
            return [p for t, p in self.msgs[n:] if t.split("/")[2] == kind]

    def publish(self, topic, payload):
        self.c.publish(topic, payload, qos=1).wait_for_publish(timeout=5)

    def close(self):
        self.c.loop_stop()
        self.c.disconnect()


def cell_text(port, device=""):
    dev = "    device: %s\n" % device if device else ""
    return f"""
cell: sparkplug_interop
tags:
  sp: {{type: float, min: 0, max: 100, initial: 5}}
  out: float
  ticks: int
  running: {{type: bool, initial: 1}}
  broker_ok: bool
loops:
  - name: main
    period_ms: 10
    blocks:
      - {{type: expr, out: out, expr: "sp"}}
      - {{type: expr, out: ticks, expr: "ticks + 1"}}
devices:
  - name: spb
    driver: mqtt_sparkplug
    port: {port}
    group: {GROUP}
    node: {NODE}
{dev}    scan_ms: 50
    keepalive_s: 2
    backoff_ms: [100, 400]
    status: broker_ok
    metrics:
      - {{tag: sp, writable: true}}
      - {{tag: out, name: Process/Out, deadband: 1.0}}
      - {{tag: ticks, deadband: 1.0e12}}
      - running
"""


def by_name(payload):
    return {m["name"]: m for m in payload["metrics"] if m.get("name")}


def check_birth(b, bdseq):
    m = by_name(b)
    assert b["seq"] == 0, b
    assert m["bdSeq"]["value"] == bdseq and m["bdSeq"]["type"] == "UInt64", m["bdSeq"]
    assert m["Node Control/Rebirth"]["type"] == "Boolean" and m["Node Control/Rebirth"]["value"] is False
    for name, typ in (("sp", "Double"), ("Process/Out", "Double"), ("ticks", "Int64"), ("running", "Boolean")):
        assert name in m, "NBIRTH lacks metric %s: %s" % (name, sorted(m))
        assert m[name]["type"] == typ, (name, m[name])
        assert m[name].get("alias"), (name, m[name])
    aliases = [m[n]["alias"] for n in ("sp", "Process/Out", "ticks", "running")]
    assert len(set(aliases)) == 4, aliases
    assert m["running"]["value"] is True
    return m


def main():
    kiln = os.path.abspath(sys.argv[1])
    codec = Codec()
    with tempdir() as work:
        port = free_port()
        broker = Mosquitto(work, port)
        broker.start()
        try:
            sub = Subscriber(port)
            wait_until(lambda: sub.c.is_connected(), 10, "the observer to connect")
            time.sleep(0.2)  # the SUBACK
            cell = KilnCell(kiln, work, cell_text(port))
            try:
                births = wait_until(lambda: sub.since(0, "NBIRTH"), 20, "NBIRTH")
                birth = codec.decode(births[0])
                m = check_birth(birth, 0)
                alias = {n: m[n]["alias"] for n in ("sp", "Process/Out", "ticks", "running")}
                assert m["sp"]["value"] == 5, m["sp"]
                print("NBIRTH ok:", sorted(m))

                cmd_topic = "spBv1.0/%s/NCMD/%s" % (GROUP, NODE)

                def ncmd(metrics):
                    sub.publish(cmd_topic, codec.encode({"timestamp": int(time.time() * 1000), "metrics": metrics}))

                def ndata_values(n0):
                    """alias -> list of values, over every NDATA since message n0."""
                    vals = {}
                    for p in sub.since(n0, "NDATA"):
                        d = codec.decode(p)
                        for x in d["metrics"]:
                            assert not x.get("name"), "NDATA should carry aliases only: %s" % x
                            vals.setdefault(x["alias"], []).append(x["value"])
                    return vals

                # A change beyond the deadband reaches NDATA; sp (deadband 0) and out follow.
                n0 = sub.count()
                ncmd([{"name": "sp", "type": "Double", "value": 10.0}])
                wait_until(lambda: 10.0 in ndata_values(n0).get(alias["Process/Out"], []), 10, "NDATA with out = 10")
                assert ndata_values(n0)[alias["sp"]][-1] == 10.0
                # 10 -> 10.5: sp changes, out (deadband 1) does not; then 12: out follows again.
                n1 = sub.count()
                ncmd([{"name": "sp", "type": "Double", "value": 10.5}])
                wait_until(lambda: 10.5 in ndata_values(n1).get(alias["sp"], []), 10, "NDATA with sp = 10.5")
                time.sleep(0.5)  # several scans and cycles: out would have been reported by now
                assert alias["Process/Out"] not in ndata_values(n1), "out moved 0.5 < deadband 1 but was sent: %s" % ndata_values(n1)
                n2 = sub.count()
                ncmd([{"name": "sp", "type": "Double", "value": 12.0}])
                wait_until(lambda: 12.0 in ndata_values(n2).get(alias["Process/Out"], []), 10, "NDATA with out = 12")
                # ticks changes every cycle but its deadband is huge: never in NDATA.
                assert alias["ticks"] not in ndata_values(0), "ticks sent despite its deadband"
                # Out of range and read-only writes are refused: no NDATA for sp, value stays 12.
                n3 = sub.count()
                ncmd([{"name": "sp", "type": "Double", "value": 500.0}, {"name": "running", "type": "Boolean", "value": False}])
                time.sleep(0.5)
                v = ndata_values(n3)
                assert alias["sp"] not in v and alias["running"] not in v, v
                # seq counts up by one per message since NBIRTH.
                seqs = [codec.decode(p)["seq"] for p in sub.since(0, "NDATA")]
                assert seqs == [(i + 1) % 256 for i in range(len(seqs))], seqs
                print("NDATA ok: deadbands respected, %d messages in sequence" % len(seqs))

                # Rebirth: a new NBIRTH, same bdSeq, current values.
                n4 = sub.count()
                ncmd([{"name": "Node Control/Rebirth", "type": "Boolean", "value": True}])
                rb = codec.decode(wait_until(lambda: sub.since(n4, "NBIRTH"), 10, "NBIRTH after rebirth")[0])
                m = check_birth(rb, 0)
                assert m["sp"]["value"] == 12.0, m["sp"]
                ticks_before = m["ticks"]["value"]
                print("rebirth ok")

                # Broker stops and comes back on the same port: kiln reconnects, NBIRTH with bdSeq 1.
                broker.stop()
                time.sleep(1.0)
                assert cell.alive(), cell.output()
                n5 = sub.count()
                broker.start()
                nb = codec.decode(wait_until(lambda: sub.since(n5, "NBIRTH"), 30, "NBIRTH after the broker restart")[0])
                m = check_birth(nb, 1)
                assert m["ticks"]["value"] > ticks_before, "the loop stopped while the broker was away"
                print("reconnect ok: bdSeq 1, loop ran on (ticks %d -> %d)" % (ticks_before, m["ticks"]["value"]))

                # Killed without a goodbye: the broker publishes the last will, NDEATH with bdSeq 1.
                n6 = sub.count()
                cell.stop(signal.SIGKILL)
                death = codec.decode(wait_until(lambda: sub.since(n6, "NDEATH"), 20, "NDEATH (last will)")[0])
                assert by_name(death)["bdSeq"]["value"] == 1, death
                print("last will ok")
            except BaseException:
                # What kiln and the broker saw, for whoever reads the failure.
                if cell.alive():
                    cell.stop(signal.SIGTERM)
                print("--- kiln output ---\n" + cell.output())
                with open(os.path.join(work, "mosquitto.log")) as f:
                    print("--- mosquitto log ---\n" + f.read()[-4000:])
                raise
            finally:
                if cell.alive():
                    cell.stop(signal.SIGKILL)

            # An orderly stop publishes NDEATH itself, and the stats carry the connection events.
            cell2 = KilnCell(kiln, work, cell_text(port), name="cell2.yaml")
            try:
                n7 = sub.count()
                wait_until(lambda: sub.since(n7, "NBIRTH"), 20, "NBIRTH of the second run")
                code = cell2.stop(signal.SIGTERM)
                assert code == 0, cell2.output()
                death = codec.decode(wait_until(lambda: sub.since(n7, "NDEATH"), 10, "NDEATH on an orderly stop")[0])
                assert by_name(death)["bdSeq"]["value"] == 0, death
                with open(cell2.stats) as f:
                    kinds = [e["kind"] for e in json.load(f)["events"]]
                assert "connected" in kinds, kinds
                print("orderly stop ok")
            finally:
                if cell2.alive():
                    cell2.stop(signal.SIGKILL)
            # With a device: NBIRTH has only the node's metrics, the tags go in DBIRTH/DDATA, writes by DCMD.
            cell3 = KilnCell(kiln, work, cell_text(port, device="furnace"), name="cell3.yaml")
            try:
                n8 = sub.count()
                nb = by_name(codec.decode(wait_until(lambda: sub.since(n8, "NBIRTH"), 20, "NBIRTH with a device")[0]))
                assert sorted(nb) == ["Node Control/Rebirth", "bdSeq"], sorted(nb)
                db = codec.decode(wait_until(lambda: sub.since(n8, "DBIRTH"), 10, "DBIRTH")[0])
                assert db["seq"] == 1, db
                dm = by_name(db)
                assert sorted(dm) == ["Process/Out", "running", "sp", "ticks"], sorted(dm)
                assert dm["sp"]["type"] == "Double" and dm["sp"]["alias"], dm["sp"]
                with sub.lock:
                    topics = [t for t, _ in sub.msgs[n8:]]
                assert "spBv1.0/%s/DBIRTH/%s/furnace" % (GROUP, NODE) in topics, topics
                n9 = sub.count()
                sub.publish("spBv1.0/%s/NCMD/%s" % (GROUP, NODE),
                            codec.encode({"metrics": [{"name": "sp", "type": "Double", "value": 30.0}]}))
                sub.publish("spBv1.0/%s/DCMD/%s/furnace" % (GROUP, NODE),
                            codec.encode({"metrics": [{"name": "sp", "type": "Double", "value": 20.0}]}))

                def ddata_sp():
                    return [x["value"] for p in sub.since(n9, "DDATA") for x in codec.decode(p)["metrics"] if x["alias"] == dm["sp"]["alias"]]
                wait_until(lambda: 20.0 in ddata_sp(), 10, "DDATA with sp = 20 after the DCMD")
                assert 30.0 not in ddata_sp(), "an NCMD wrote a device metric"
                assert not sub.since(n9, "NDATA"), "node data published although the tags belong to the device"
                n10 = sub.count()
                assert cell3.stop(signal.SIGTERM) == 0, cell3.output()
                wait_until(lambda: sub.since(n10, "NDEATH"), 10, "NDEATH after DDEATH")
                assert sub.since(n10, "DDEATH"), "no DDEATH on an orderly stop"
                with sub.lock:
                    kinds = [t.split("/")[2] for t, _ in sub.msgs[n10:]]
                assert kinds.index("DDEATH") < kinds.index("NDEATH"), kinds
                print("device ok: DBIRTH, DDATA, DCMD write, DDEATH before NDEATH")
            finally:
                if cell3.alive():
                    cell3.stop(signal.SIGKILL)
            sub.close()
        finally:
            broker.stop(signal.SIGKILL)
    codec.close()
    print("sparkplug interop: all checks passed")


if __name__ == "__main__":
    main()
