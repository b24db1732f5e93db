#!/usr/bin/python3
"""The pilot line (examples/cells/pilot-line.yaml) on the simulated clock, through the kiln CLI.

- an injected bearing fault is detected (the interlock trips) no later than 200 ms after its
  severity crosses the cell's `report_at`, and never before the fault starts;
- the safe state is reached in the cycle the interlock trips (spindle setpoint at its safe value,
  alarm raised, in the same traced cycle);
- no false trip in 10 simulated minutes of healthy running;
- the over-temperature interlock trips on a stuck heater;
- the --stats JSON has the keys the issue names; two runs give identical statistics and events
  (apart from wall-clock execution and inference times);
- `kiln cell check` reports problems as file:line:column with exit code 2.

    test_pilot_line.py KILN PILOT_LINE_YAML MODEL_DIR
"""
import csv
import json
import os
import subprocess
import sys
import tempfile
import unittest

KILN, CELL, MODELS = sys.argv[1:4]
del sys.argv[1:4]


def free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# The cell's network devices (Modbus TCP server, MQTT Sparkplug B node) on private ports: the
# server must be able to listen, and no broker listens on the MQTT port, so the node keeps
# retrying with backoff on its own thread while the loops run undisturbed.
os.environ["KILN_MODBUS_PORT"] = str(free_port())
os.environ["KILN_MQTT_PORT"] = str(free_port())
NETWORK_DEVICES = ("scada:", "line_mqtt:")


def run(*args, expect=0):
    p = subprocess.run([KILN, "cell", *args], capture_output=True, text=True, timeout=300)
    if p.returncode != expect:
        raise AssertionError(f"kiln cell {' '.join(args)}: exit {p.returncode}, expected {expect}\n{p.stdout}\n{p.stderr}")
    return p


def run_cell(tmp, name, seconds, *extra):
    stats = os.path.join(tmp, name + ".json")
    run("run", CELL, "--models", MODELS, "--sim-clock", "--duration", str(seconds), "--quiet", "--stats", stats, *extra)
    with open(stats) as f:
        return json.load(f)


def events(stats, kind, text=""):
    return [e for e in stats["events"] if e["kind"] == kind and text in e["detail"]]


class PilotLine(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="kiln_pilot_")

    def test_check_is_clean(self):
        p = run("check", CELL, "--models", MODELS)
        self.assertIn("3 loops", p.stdout)
        self.assertIn("1 models", p.stdout)

    def test_bearing_fault_is_detected_and_the_spindle_goes_safe_in_the_same_cycle(self):
        trace = os.path.join(self.tmp, "fault.csv")
        s = run_cell(self.tmp, "fault", 30, "--inject", "spindle.bearing@15", "--trace", trace, "--trace-loop", "monitor",
                     "--trace-tags", "spindle_sp,spindle_alarm,anomaly_score,bearing_severity")
        trips = events(s, "interlock", "bearing_anomaly")
        self.assertEqual(len(trips), 1, s["events"])
        crossed = events(s, "fault", "severity reached")
        self.assertEqual(len(crossed), 1, s["events"])
        t_trip, t_cross = trips[0]["t_ms"], crossed[0]["t_ms"]
        self.assertGreater(t_trip, 15000)                  # not before the fault exists
        self.assertLessEqual(t_trip, t_cross + 200)       # detected within 200 ms of the severity
        with open(trace) as f:
            rows = [{k: float(v) for k, v in r.items()} for r in csv.DictReader(f)]
        at = [i for i, r in enumerate(rows) if abs(r["t_s"] * 1000 - t_trip) < 0.5]
        self.assertEqual(len(at), 1, f"no traced monitor cycle at {t_trip} ms")
        i = at[0]
        self.assertEqual(rows[i]["spindle_sp"], 600)      # the safe speed, in the tripping cycle
        self.assertEqual(rows[i]["spindle_alarm"], 1)
        self.assertGreater(rows[i - 1]["spindle_sp"], 1700)
        self.assertEqual(rows[i - 1]["spindle_alarm"], 0)
        self.assertGreater(rows[i]["anomaly_score"], 1)
        self.assertTrue(all(r["spindle_sp"] == 600 for r in rows[i:]))  # latched
        il = [x for x in s["interlocks"] if x["name"] == "bearing_anomaly"][0]
        self.assertEqual(il["trips"], 1)

    def test_no_false_trip_in_ten_minutes_of_healthy_running(self):
        s = run_cell(self.tmp, "healthy", 600)
        self.assertEqual(events(s, "interlock"), [], s["events"])
        self.assertEqual(events(s, "fault"), [])
        self.assertEqual([x["trips"] for x in s["interlocks"]], [0, 0])
        monitor = [l for l in s["loops"] if l["name"] == "monitor"][0]
        self.assertEqual(monitor["cycles"], 30001)
        self.assertEqual(s["models"][0]["runs"], 30001)
        self.assertEqual(s["models"][0]["failures"], 0)

    def test_stuck_heater_trips_the_over_temperature_interlock(self):
        s = run_cell(self.tmp, "heater", 60, "--inject", "furnace.heater_stuck@30")
        trips = events(s, "interlock", "furnace_over_temperature")
        self.assertEqual(len(trips), 1, s["events"])
        self.assertGreater(trips[0]["t_ms"], 30000)
        self.assertEqual(events(s, "interlock", "bearing_anomaly"), [])

    def test_stats_keys_and_determinism(self):
        a = run_cell(self.tmp, "a", 20, "--inject", "spindle.bearing@5")
        b = run_cell(self.tmp, "b", 20, "--inject", "spindle.bearing@5")
        self.assertEqual([l["name"] for l in a["loops"]], ["vibration", "monitor", "furnace"])
        for l in a["loops"]:
            for k in ("name", "period_us", "cycles", "wake_jitter_us", "exec_us", "overruns"):
                self.assertIn(k, l)
            for k in ("p50", "p99", "p999", "max"):
                self.assertIn(k, l["wake_jitter_us"])
                self.assertIn(k, l["exec_us"])
        self.assertEqual(a["loops"][0]["period_us"], 1000)
        self.assertEqual(a["loops"][0]["cycles"], 20001)
        self.assertEqual(a["models"][0]["name"], "spindle_anomaly.onnx")
        self.assertIn("infer_us", a["models"][0])
        for e in a["events"]:
            self.assertEqual(sorted(e), ["detail", "kind", "t_ms"])
        for s in (a, b):
            # Network devices report on wall-clock time (connection attempts, the server's
            # start), which a simulated-clock run does not make deterministic.
            s["events"] = [e for e in s["events"] if not e["detail"].startswith(NETWORK_DEVICES)]
            for l in s["loops"]:
                del l["exec_us"]
            for m in s["models"]:
                del m["infer_us"]
        self.assertEqual(a, b)

    def test_check_locates_problems(self):
        with open(CELL) as f:
            text = f.read()
        bad = os.path.join(self.tmp, "bad.yaml")
        with open(bad, "w") as f:
            f.write(text.replace("pv: furnace_temp", "pv: furnace_tmp").replace("period_ms: 20", "period_us: 20500"))
        p = run("check", bad, "--models", MODELS, expect=2)
        self.assertRegex(p.stderr, r"bad\.yaml:\d+:\d+: unknown tag 'furnace_tmp'")
        self.assertRegex(p.stderr, r"bad\.yaml:\d+:\d+: period 20500 us is not a multiple of the base tick")
        p = run("check", CELL, "--models", self.tmp, expect=2)  # the model is not in that folder...
        self.assertRegex(p.stderr, r"pilot-line\.yaml:\d+:\d+: model 'spindle_anomaly\.onnx' not found")
        with open(bad, "w") as f:
            f.write(text[: len(text) // 3] + "\n  - [unclosed\n")
        p = run("check", bad, "--models", MODELS, expect=2)
        self.assertRegex(p.stderr, r"bad\.yaml:\d+:\d+: ")
        p = run("run", CELL, "--models", MODELS, "--sim-clock", "--duration", "1", "--inject", "spindle.warp@1", expect=2)
        self.assertIn("bearing", p.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
