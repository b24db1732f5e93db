#!/usr/bin/python3
"""The `kiln schedule` command-line contract, driven from outside like a user would.

    /usr/bin/python3 tests/orchestrate/test_schedule_cli.py KILN_BINARY

Checks the JSON contract (makespan, operations with job/index/machine/start/end), that every
schedule it prints is feasible (checked here, independently of Kiln), the SVG, the three input
formats, determinism with --iterations, and that bad input gives exit code 2 with one message
naming the file and line.
"""
import json
import os
import subprocess
import sys
import tempfile
import unittest

KILN = None

FT06 = """6 6
2  1  0  3  1  6  3  7  5  3  4  6
1  8  2  5  4 10  5 10  0 10  3  4
2  5  3  4  5  8  0  9  1  1  4  7
1  5  0  5  2  5  3  3  4  8  5  9
2  9  1  3  4  5  5  4  0  3  3  1
1  3  3  3  5  9  0 10  4  4  2  1
"""

# ft06 again in Taillard's layout: durations, then 1-based machines.
FT06_TAILLARD = "6 6\n" + "\n".join(
    " ".join(row.split()[1::2]) for row in FT06.splitlines()[1:]) + "\n" + "\n".join(
    " ".join(str(int(m) + 1) for m in row.split()[0::2]) for row in FT06.splitlines()[1:]) + "\n"

FJSP = """3 3 2
2  2 1 4 2 6  1 3 5
3  1 2 3  2 1 2 3 7  1 1 4
2  3 1 5 2 4 3 6  2 2 2 3 3
"""


def kiln(*args, timeout=120):
    p = subprocess.run([KILN, *args], capture_output=True, text=True, timeout=timeout)
    assert p.returncode >= 0, "kiln %s crashed with signal %d\n%s" % (args, -p.returncode, p.stderr)
    return p


def parse_jobs(text, fmt):
    """[[{machine: duration, ...} per operation] per job], written independently of Kiln."""
    lines = [l.split() for l in text.splitlines() if l.strip()]
    n, m = int(lines[0][0]), int(lines[0][1])
    if fmt == "jssp":
        return [[{int(r[2 * i]): int(r[2 * i + 1])} for i in range(m)] for r in lines[1:1 + n]]
    if fmt == "taillard":
        times, machines = lines[1:1 + n], lines[1 + n:1 + 2 * n]
        return [[{int(machines[j][i]) - 1: int(times[j][i])} for i in range(m)] for j in range(n)]
    jobs = []
    for r in lines[1:1 + n]:
        v = [int(x) for x in r]
        ops, t = [], 1
        for _ in range(v[0]):
            k = v[t]
            ops.append({v[t + 1 + 2 * x] - 1: v[t + 2 + 2 * x] for x in range(k)})
            t += 1 + 2 * k
        jobs.append(ops)
    return jobs


def check_feasible(jobs, out):
    """Precedence, capacity, durations, completeness; returns the makespan."""
    ops = {(o["job"], o["index"]): o for o in out["operations"]}
    assert len(ops) == len(out["operations"]), "an operation appears twice"
    assert len(ops) == sum(len(j) for j in jobs), "operations missing"
    for j, job in enumerate(jobs):
        for i, options in enumerate(job):
            o = ops[(j, i)]
            assert o["machine"] in options, "(%d,%d) on an ineligible machine" % (j, i)
            assert o["end"] - o["start"] == options[o["machine"]], "(%d,%d) has the wrong duration" % (j, i)
            assert o["start"] >= 0
            if i:
                assert o["start"] >= ops[(j, i - 1)]["end"], "(%d,%d) starts before its predecessor ends" % (j, i)
    by_machine = {}
    for o in out["operations"]:
        by_machine.setdefault(o["machine"], []).append((o["start"], o["end"]))
    for m, iv in by_machine.items():
        iv.sort()
        for (a0, a1), (b0, b1) in zip(iv, iv[1:]):
            assert b0 >= a1 or a0 == a1 or b0 == b1, "overlap on machine %d" % m
    makespan = max(o["end"] for o in out["operations"])
    assert out["makespan"] == makespan
    return makespan


class Schedule(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.dir = self.tmp.name

    def tearDown(self):
        self.tmp.cleanup()

    def write(self, name, text):
        path = os.path.join(self.dir, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def solve(self, text, fmt, *extra):
        inst = self.write("inst." + fmt, text)
        out = os.path.join(self.dir, "out.json")
        args = ["schedule", inst, "--time-limit", "0", "--iterations", "20000", "--json", out, "--quiet"]
        if fmt != "jssp":
            args += ["--format", fmt]
        p = kiln(*args, *extra)
        self.assertEqual(p.returncode, 0, p.stderr)
        with open(out) as f:
            return json.load(f), p

    def test_json_contract_and_optimum_of_ft06(self):
        out, p = self.solve(FT06, "jssp")
        self.assertEqual(out["makespan"], 55)
        self.assertEqual(check_feasible(parse_jobs(FT06, "jssp"), out), 55)
        for o in out["operations"]:
            self.assertEqual(set(o), {"job", "index", "machine", "start", "end"})
        self.assertIn("makespan 55", p.stdout)
        self.assertEqual(p.stderr, "")  # --quiet

    def test_taillard_and_flexible_formats(self):
        out, _ = self.solve(FT06_TAILLARD, "taillard")
        self.assertEqual(check_feasible(parse_jobs(FT06_TAILLARD, "taillard"), out), 55)
        out, _ = self.solve(FJSP, "fjsp")
        check_feasible(parse_jobs(FJSP, "fjsp"), out)

    def test_same_seed_same_schedule(self):
        a, _ = self.solve(FJSP, "fjsp", "--seed", "5")
        b, _ = self.solve(FJSP, "fjsp", "--seed", "5")
        self.assertEqual(a["operations"], b["operations"])

    def test_svg_gantt_with_critical_path(self):
        inst = self.write("ft06.txt", FT06)
        svg = os.path.join(self.dir, "g.svg")
        p = kiln("schedule", inst, "--time-limit", "0.2", "--svg", svg, "--threads", "2")
        self.assertEqual(p.returncode, 0, p.stderr)
        with open(svg) as f:
            text = f.read()
        self.assertTrue(text.startswith("<svg"))
        self.assertEqual(text.count("<title>job "), 36)
        self.assertIn("critical path", text)

    def test_documented_example_gives_a_gantt_chart(self):
        # The command in examples/schedule/cell.fjs, docs/orchestrate.md and README.md.
        inst = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "examples", "schedule", "cell.fjs")
        svg, js = os.path.join(self.dir, "cell.svg"), os.path.join(self.dir, "cell.json")
        p = kiln("schedule", inst, "--format", "fjsp", "--time-limit", "0", "--iterations", "20000",
                 "--svg", svg, "--json", js, "--quiet")
        self.assertEqual(p.returncode, 0, p.stderr)
        with open(inst) as f:
            jobs = parse_jobs("\n".join(l for l in f.read().splitlines() if not l.startswith("#")), "fjsp")
        with open(js) as f:
            out = json.load(f)
        check_feasible(jobs, out)
        with open(svg) as f:
            text = f.read()
        self.assertEqual(text.count("<title>job "), sum(len(j) for j in jobs))
        self.assertIn("makespan %d" % out["makespan"], text)

    def test_progress_on_stderr_for_long_runs(self):
        inst = self.write("ft06.txt", FT06)
        p = kiln("schedule", inst, "--time-limit", "1.2")
        self.assertEqual(p.returncode, 0, p.stderr)
        # ft06 is solved long before 0.5 s, so the final line is printed only if it changed; the
        # summary is on stdout either way.
        self.assertIn("makespan", p.stdout)

    def test_simulation_reports_response_times(self):
        out, p = self.solve(FT06, "jssp", "--simulate", "--events", "20")
        sim = out["simulation"]
        self.assertGreaterEqual(sim["reschedules"], 20)
        self.assertLessEqual(sim["response_ms"]["p50"], sim["response_ms"]["p99"])
        self.assertIn("rescheduling response", p.stdout)


class BadInput(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.dir = self.tmp.name

    def tearDown(self):
        self.tmp.cleanup()

    def check(self, text, fmt, where, *fragments):
        path = os.path.join(self.dir, "bad.txt")
        with open(path, "w") as f:
            f.write(text)
        p = kiln("schedule", path, "--format", fmt, "--time-limit", "0.1")
        self.assertEqual(p.returncode, 2, "expected exit code 2; stderr: %s" % p.stderr)
        self.assertEqual(p.stdout, "")
        lines = [l for l in p.stderr.splitlines() if l.strip()]
        self.assertEqual(len(lines), 1, p.stderr)
        self.assertIn("%s:%d:" % (path, where), p.stderr)
        for frag in fragments:
            self.assertIn(frag, p.stderr)

    def test_truncated(self):
        self.check("3 2\n0 5 1 3\n1 2 0 1\n", "jssp", 3, "ends early")
        self.check("2 2\n1 2\n", "taillard", 2, "ends early")
        self.check("2 3 1\n1 1 1 5\n", "fjsp", 2, "ends early")
        self.check("1 2\n2 1 1 5\n", "fjsp", 2, "ends after 1 of its 2 operations")

    def test_negative_duration(self):
        self.check("2 2\n0 5 1 3\n1 -2 0 1\n", "jssp", 3, "negative")
        self.check("2 2\n1 2\n3 -4\n1 2\n2 1\n", "taillard", 3, "negative")
        self.check("1 2\n1 1 1 -5\n", "fjsp", 2, "negative")

    def test_non_numeric_duration(self):
        self.check("2 2\n0 5 1 3\n1 two 0 1\n", "jssp", 3, "not an integer")
        self.check("2 2\n1 2\n3 x\n1 2\n2 1\n", "taillard", 3, "not an integer")
        self.check("1 2\n1 1 1 5.5\n", "fjsp", 2, "not an integer")

    def test_machine_out_of_range(self):
        self.check("2 2\n0 5 1 3\n1 2 5 1\n", "jssp", 3, "out of range")
        self.check("1 2\n1 2\n1 3\n", "taillard", 3, "out of range")
        self.check("1 2\n1 1 3 5\n", "fjsp", 2, "out of range")

    def test_operation_without_eligible_machine(self):
        self.check("1 2\n2 1 1 5 0\n", "fjsp", 2, "no eligible machine")

    def test_job_with_zero_operations(self):
        self.check("2 2\n1 1 1 5\n0\n", "fjsp", 3, "zero operations")
        self.check("2 0\n", "jssp", 1, "out of range")  # every job would have zero operations

    def test_missing_file_and_bad_options(self):
        p = kiln("schedule", "/no/such/file.txt")
        self.assertEqual(p.returncode, 2)
        self.assertIn("/no/such/file.txt", p.stderr)
        path = os.path.join(self.dir, "ok.txt")
        with open(path, "w") as f:
            f.write(FT06)
        for args in (["--format", "xml"], ["--threads", "0"], ["--time-limit", "-1"], ["--time-limit", "0"]):
            p = kiln("schedule", path, *args)
            self.assertEqual(p.returncode, 2, args)
            self.assertEqual(p.stdout, "")


if __name__ == "__main__":
    KILN = sys.argv.pop(1)
    unittest.main(verbosity=1)
