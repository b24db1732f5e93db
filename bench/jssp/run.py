#!/usr/bin/python3
"""Job-shop benchmark: Kiln's `kiln schedule` against the best-known bounds and CP-SAT's results.

    nice bench/jssp/run.py --kiln build/release/apps/kiln/kiln [--time-limit 10] [--cpu-time]
                           [--data ../shared/data/jssp] [--only ft,la,abz,orb,ta,mk,reschedule]
                           [--seed 1] [--out bench/jssp/results.json] [--resume]

For every instance of the chosen families (ft, la, abz, orb; Taillard ta11-ta50; Brandimarte
mk01-mk10) it runs `kiln schedule --threads 1 --time-limit T`, checks the schedule here,
independently of Kiln (precedence, machine capacity, durations), and reports per family the mean
and max gap to the best-known upper bound (bounds.csv) next to the gaps of OR-Tools CP-SAT's
published results stored beside the data (results_cpsat_9_15_6755.json: 600 s, 4 cores).
It then measures rescheduling: a generated 100 jobs x 10 machines instance (Taillard's
generator, fixed seeds) is scheduled and played by the dispatcher with random breakdowns,
overruns, rush orders and cancellations until at least 1,000 reschedules have been timed, and
p50/p99 response times are reported.

Runs one instance at a time (it is a timing benchmark); --resume skips instances already in
--out. Prints a markdown report on stdout.
"""
import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

FAMILIES = ["ft", "la", "abz", "orb", "swv", "yn", "ta"]


def taillard_instance(jobs, machines, time_seed, machine_seed):
    """Taillard's (1993) generator: durations U[1,99], random routes (Lehmer 16807 stream)."""
    state = [time_seed]

    def unif(seed_box, low, high):
        m, a, b, c = 2147483647, 16807, 127773, 2836
        s = seed_box[0]
        k = s // b
        s = a * (s % b) - k * c
        if s < 0:
            s += m
        seed_box[0] = s
        return low + int(s / m * (high - low + 1))

    d = [[unif(state, 1, 99) for _ in range(machines)] for _ in range(jobs)]
    mstate = [machine_seed]
    routes = []
    for j in range(jobs):
        r = list(range(machines))
        for i in range(machines):
            k = unif(mstate, i, machines - 1)
            r[i], r[k] = r[k], r[i]
        routes.append(r)
    lines = ["%d %d" % (jobs, machines)]
    for j in range(jobs):
        lines.append(" ".join("%d %d" % (routes[j][i], d[j][i]) for i in range(machines)))
    return "\n".join(lines) + "\n"


def parse_jobs(path, fmt):
    rows = [l.split() for l in open(path) if l.strip() and not l.startswith("#")]
    n, m = int(rows[0][0]), int(rows[0][1])
    if fmt == "jssp":
        return [[{int(r[2 * i]): int(r[2 * i + 1])} for i in range(len(r) // 2)] for r in rows[1:1 + n]]
    jobs = []
    for r in rows[1:1 + n]:
        v = [int(x) for x in r]
        ops, t = [], 1
        for _ in range(v[0]):
            k = v[t]
            ops.append({v[t + 1 + 2 * x] - 1: v[t + 2 + 2 * x] for x in range(k)})
            t += 1 + 2 * k
        jobs.append(ops)
    return jobs


def check(jobs, out):
    """Independent feasibility check; returns the makespan or raises."""
    ops = {(o["job"], o["index"]): o for o in out["operations"]}
    if len(ops) != len(out["operations"]) or len(ops) != sum(len(j) for j in jobs):
        raise ValueError("operations missing or duplicated")
    for j, job in enumerate(jobs):
        for i, options in enumerate(job):
            o = ops[(j, i)]
            if o["machine"] not in options or o["end"] - o["start"] != options[o["machine"]] or o["start"] < 0:
                raise ValueError("operation (%d,%d) has a wrong machine or duration" % (j, i))
            if i and o["start"] < ops[(j, i - 1)]["end"]:
                raise ValueError("operation (%d,%d) starts before its predecessor ends" % (j, i))
    per = {}
    for o in out["operations"]:
        per.setdefault(o["machine"], []).append((o["start"], o["end"]))
    for iv in per.values():
        iv.sort()
        for (a0, a1), (b0, b1) in zip(iv, iv[1:]):
            if b0 < a1 and a0 != a1 and b0 != b1:
                raise ValueError("two operations overlap on a machine")
    mk = max(o["end"] for o in out["operations"])
    if mk != out["makespan"]:
        raise ValueError("makespan does not match the operations")
    return mk


def run_kiln(kiln, path, fmt, limit, cpu_time, seed, extra=()):
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "out.json")
        args = [kiln, "schedule", path, "--format", fmt, "--time-limit", str(limit), "--threads", "1",
                "--seed", str(seed), "--json", out, "--quiet", *extra]
        if cpu_time:
            args.append("--cpu-time")
        t0 = time.time()
        p = subprocess.run(args, capture_output=True, text=True)
        wall = time.time() - t0
        if p.returncode != 0:
            raise RuntimeError("kiln failed on %s: %s" % (path, p.stderr.strip()))
        with open(out) as f:
            return json.load(f), wall


def gap(value, best):
    return 100.0 * (value - best) / best


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kiln", required=True)
    ap.add_argument("--data", default=os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "data", "jssp"))
    ap.add_argument("--time-limit", type=float, default=10.0)
    ap.add_argument("--cpu-time", action="store_true", help="count the limit in CPU time of the search thread")
    ap.add_argument("--only", default="ft,la,abz,orb,ta,mk,reschedule", help="families; swv and yn too if named")
    ap.add_argument("--ta", default="11-50", help="Taillard range, e.g. 11-50")
    ap.add_argument("--events", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=1, help="kiln schedule --seed (one seed per run of this script)")
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results.json"))
    ap.add_argument("--resume", action="store_true")
    a = ap.parse_args()
    only = set(a.only.split(","))
    data = os.path.abspath(a.data)
    if not os.path.isdir(data):
        sys.exit("no benchmark data at %s (pass --data)" % data)

    results = {}
    if a.resume and os.path.exists(a.out):
        results = json.load(open(a.out)).get("instances", {})

    def save():
        with open(a.out, "w") as f:
            json.dump({"time_limit": a.time_limit, "cpu_time": a.cpu_time, "seed": a.seed, "instances": results}, f,
                      indent=1)

    bounds = {r["instance"]: r for r in csv.DictReader(open(os.path.join(data, "bounds.csv")))}
    cpsat = {}
    for e in json.load(open(os.path.join(data, "solutions", "results_cpsat_9_15_6755.json"))):
        name = e["instance"][:-2] if e["instance"].startswith("ta") and e["instance"].endswith("js") else e["instance"]
        cpsat[name] = e["ub"]["value"]
    lo, hi = (int(x) for x in a.ta.split("-"))

    todo = []
    for name in sorted(bounds):
        fam = bounds[name]["family"]
        if fam not in only or fam not in FAMILIES:
            continue
        if fam == "ta" and not (lo <= int(name[2:]) <= hi):
            continue
        todo.append((name, fam, os.path.join(data, "instances", name + ".txt"), "jssp", int(bounds[name]["upper_bound"])))
    if "mk" in only:
        mk = {r["instance"]: r for r in csv.DictReader(open(os.path.join(data, "fjsp", "bounds_brandimarte.csv")))}
        for i in range(1, 11):
            name = "mk%02d" % i
            todo.append((name, "mk", os.path.join(data, "fjsp", "brandimarte", name + ".txt"), "fjsp",
                         int(mk[name]["upper_bound"])))

    for name, fam, path, fmt, best in todo:
        if name in results:
            continue
        out, wall = run_kiln(a.kiln, path, fmt, a.time_limit, a.cpu_time, a.seed)
        mk_value = check(parse_jobs(path, fmt), out)
        results[name] = {"family": fam, "makespan": mk_value, "best_known": best, "gap": gap(mk_value, best),
                         "cpsat": cpsat.get(name), "cpsat_gap": gap(cpsat[name], best) if name in cpsat else None,
                         "seconds": out["seconds"], "seconds_to_best": out["seconds_to_best"], "wall": wall,
                         "iterations": out["iterations"]}
        print("%-6s %6d  best %6d  gap %5.2f%%  (%.1fs to best)" % (name, mk_value, best, results[name]["gap"],
                                                                    out["seconds_to_best"]), file=sys.stderr)
        save()

    if "reschedule" in only and "reschedule" not in results:
        with tempfile.TemporaryDirectory() as tmp:
            inst = os.path.join(tmp, "rand100x10.txt")
            with open(inst, "w") as f:
                f.write(taillard_instance(100, 10, 1166510396, 164000672))
            out, wall = run_kiln(a.kiln, inst, "jssp", a.time_limit, a.cpu_time, a.seed,
                                 ("--simulate", "--events", str(a.events)))
            sim = out["simulation"]
            results["reschedule"] = {"family": "reschedule", "planned": out["makespan"], "simulation": sim}
            save()

    # Report.
    print("| family | instances | Kiln mean gap | Kiln max gap | at best-known | CP-SAT mean gap | CP-SAT max gap |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    def taillard(first, last):
        return lambda name, fam: fam == "ta" and first <= int(name[2:]) <= last

    groups = [(f, (lambda f: lambda name, fam: fam == f)(f)) for f in ["ft", "la", "abz", "orb", "swv", "yn"]]
    groups.append(("ft+la+abz+orb", lambda name, fam: fam in ("ft", "la", "abz", "orb")))
    groups.append(("ta%02d-ta%02d" % (lo, hi), taillard(lo, hi)))
    for first in range(lo - lo % 10 + 1, hi + 1, 10):
        groups.append(("ta%02d-ta%02d" % (max(first, lo), min(first + 9, hi)), taillard(max(first, lo), min(first + 9, hi))))
    groups.append(("mk01-mk10", lambda name, fam: fam == "mk"))
    seen = set()
    for label, member in groups:
        if label in seen:
            continue
        seen.add(label)
        rows = [r for name, r in sorted(results.items()) if r["family"] != "reschedule" and member(name, r["family"])]
        if not rows:
            continue
        g = [r["gap"] for r in rows]
        c = [r["cpsat_gap"] for r in rows if r["cpsat_gap"] is not None]
        at = sum(1 for r in rows if r["gap"] <= 0)
        cp = ("%.2f%% | %.2f%%" % (statistics.mean(c), max(c))) if len(c) == len(rows) else "– | –"
        print("| %s | %d | %.2f%% | %.2f%% | %d | %s |" % (label, len(rows), statistics.mean(g), max(g), at, cp))
    if "reschedule" in results:
        s = results["reschedule"]["simulation"]
        print()
        print("Rescheduling, 100 jobs x 10 machines: %d reschedules over %d simulated runs; response p50 %.2f ms, "
              "p99 %.2f ms, max %.2f ms. Planned makespan %d; realised %.1f with rescheduling, %.1f keeping the "
              "plan's orders (means over runs)." % (s["reschedules"], s["runs"], s["response_ms"]["p50"],
                                                    s["response_ms"]["p99"], s["response_ms"]["max"],
                                                    s["planned_makespan"], s["mean_realised_makespan"],
                                                    s["mean_right_shift_makespan"]))


if __name__ == "__main__":
    main()
