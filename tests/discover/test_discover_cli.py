#!/usr/bin/python3
"""The `kiln discover` contract, driven from outside: init/propose/observe/status, the bad-input
rules (message naming row and column, exit code 2, database unchanged), crash safety under
repeated `kill -9` during propose and observe, and the benchmark mode.

usage: test_discover_cli.py path/to/kiln
"""
import hashlib
import json
import math
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time

KILN = sys.argv[1]
failures = []


def run(*args, ok=True):
    p = subprocess.run([KILN, "discover", *args], capture_output=True, text=True, timeout=300)
    if ok and p.returncode != 0:
        raise AssertionError(f"kiln discover {' '.join(args)} failed ({p.returncode}): {p.stderr}")
    return p


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL:", what, file=sys.stderr)


def sha(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def write(path, text):
    with open(path, "w") as f:
        f.write(text)


def truth(theta, n, solvent, cs, fa, ma):
    return -((theta - 120) / 100) ** 2 - 0.05 * (n - 9) ** 2 + (0.3 if solvent == "ethanol" else 0) + cs - 0.5 * ma


CAMPAIGN = """
parameters:
  - {name: theta, type: continuous, low: 0, high: 200}
  - {name: n, type: integer, low: 6, high: 12}
  - {name: solvent, type: categorical, values: [water, ethanol]}
  - {name: Cs, type: continuous, low: 0, high: 1}
  - {name: FA, type: continuous, low: 0, high: 1}
  - {name: MA, type: continuous, low: 0, high: 1}
mixtures:
  - {components: [Cs, FA, MA], total: 1.0}
objectives:
  - {name: toughness, direction: maximize}
seed: 7
"""


def results_csv(path, rows, with_id=True):
    cols = (["id"] if with_id else []) + ["theta", "n", "solvent", "Cs", "FA", "MA", "toughness"]
    lines = [",".join(cols)]
    for r in rows:
        p = r["params"]
        y = truth(p["theta"], p["n"], p["solvent"], p["Cs"], p["FA"], p["MA"])
        vals = ([str(r["id"])] if with_id else []) + [repr(p["theta"]), str(p["n"]), p["solvent"], repr(p["Cs"]), repr(p["FA"]), repr(p["MA"]), repr(y)]
        lines.append(",".join(vals))
    write(path, "\n".join(lines) + "\n")


def test_contract(tmp):
    yaml = os.path.join(tmp, "c.yaml")
    db = os.path.join(tmp, "c.db")
    write(yaml, CAMPAIGN)
    run("init", yaml, "--db", db)
    check(run("init", yaml, "--db", db, ok=False).returncode == 2, "init refuses to overwrite")
    for rnd in range(4):
        props = json.loads(run("propose", "--db", db, "-n", "3", "--json").stdout)
        check(len(props) == 3 and all("id" in p and "params" in p for p in props), "propose --json shape")
        for p in props:
            s = p["params"]["Cs"] + p["params"]["FA"] + p["params"]["MA"]
            check(abs(s - 1) < 1e-6, f"mixture sums to 1 (got {s})")
            check(0 <= p["params"]["theta"] <= 200 and p["params"]["n"] in range(6, 13), "bounds respected")
        res = os.path.join(tmp, f"r{rnd}.csv")
        results_csv(res, props)
        out = run("observe", "--db", db, res).stdout
        check("recorded 3" in out, "observe reports rows")
        again = run("observe", "--db", db, res)
        check("already recorded" in again.stdout, "re-observing the same file is a no-op")
    st = json.loads(run("status", "--db", db, "--json").stdout)
    check(st["observations"] == 12 and st["pending"] == 0, f"status counts {st['observations']} {st['pending']}")
    check(len(st["best"]) == 1, "status best")
    svg = os.path.join(tmp, "conv.svg")
    run("status", "--db", db, "--svg", svg)
    check(open(svg).read().startswith("<svg"), "status --svg writes an SVG")
    text = run("propose", "--db", db, "-n", "2").stdout.splitlines()
    check(text[0].startswith("id,theta,n,solvent"), "propose prints a CSV header")
    st = json.loads(run("status", "--db", db, "--json").stdout)
    check(st["pending"] == 2, "proposals are recorded as pending")
    # A results file without id columns is accepted too (a measurement nobody proposed).
    free = os.path.join(tmp, "free.csv")
    results_csv(free, [{"id": 0, "params": {"theta": 50.0, "n": 7, "solvent": "water", "Cs": 0.2, "FA": 0.3, "MA": 0.5}}], with_id=False)
    run("observe", "--db", db, free)
    return db


def test_bad_input(tmp, db):
    head = "theta,n,solvent,Cs,FA,MA,toughness\n"
    cases = {
        "missing value": (head + "50,7,water,0.2,0.3,0.5,1\n50,,water,0.2,0.3,0.5,1\n", "row 3, column 'n'"),
        "non-numeric": (head + "abc,7,water,0.2,0.3,0.5,1\n", "row 2, column 'theta'"),
        "nan objective": (head + "50,7,water,0.2,0.3,0.5,nan\n", "row 2, column 'toughness'"),
        "out of bounds": (head + "50,7,water,0.2,0.3,0.5,1\n250,7,water,0.2,0.3,0.5,1\n", "row 3, column 'theta'"),
        "mixture sum": (head + "50,7,water,0.2,0.3,0.6,1\n", "row 2, column 'Cs'"),
        "unknown column": ("theta,n,solvent,Cs,FA,MA,toughness,colour\n50,7,water,0.2,0.3,0.5,1,red\n", "column 'colour'"),
        "unknown category": (head + "50,7,acetone,0.2,0.3,0.5,1\n", "row 2, column 'solvent'"),
        "unknown id": ("id," + head + "999,50,7,water,0.2,0.3,0.5,1\n", "row 2, column 'id'"),
        "ragged row": (head + "50,7,water\n", "row 2"),
    }
    for name, (csv, needle) in cases.items():
        path = os.path.join(tmp, "bad.csv")
        write(path, csv)
        before = sha(db)
        p = run("observe", "--db", db, path, ok=False)
        check(p.returncode == 2, f"{name}: exit code {p.returncode}")
        check(needle in p.stderr, f"{name}: message {p.stderr.strip()!r} lacks {needle!r}")
        check(sha(db) == before, f"{name}: database changed")
    before = sha(db)
    p = run("propose", "--db", db, "-n", "0", ok=False)
    check(p.returncode == 2 and sha(db) == before, "propose -n 0")
    corrupt = os.path.join(tmp, "corrupt.db")
    write(corrupt, "SQLite format 3\0" + "garbage" * 200)
    before = sha(corrupt)
    for verb in (["status"], ["propose"], ["observe", os.path.join(tmp, "r0.csv")]):
        p = run(verb[0], "--db", corrupt, *verb[1:], ok=False)
        check(p.returncode == 2 and "database" in p.stderr, f"corrupt database with {verb[0]}: {p.stderr.strip()}")
    check(sha(corrupt) == before, "corrupt database unchanged")
    # Pools: empty, and smaller than the batch.
    yaml = os.path.join(tmp, "pool.yaml")
    write(yaml, "parameters: [{name: x, low: 0, high: 1}]\nobjectives: [{name: y}]\ncandidates: pool.csv\n")
    write(os.path.join(tmp, "pool.csv"), "x\n")
    p = run("init", yaml, "--db", os.path.join(tmp, "empty.db"), ok=False)
    check(p.returncode == 2 and "empty" in p.stderr, f"empty pool: {p.stderr.strip()}")
    check(not os.path.exists(os.path.join(tmp, "empty.db")), "no database left behind for a bad pool")
    write(os.path.join(tmp, "pool.csv"), "x\n0.1\n0.5\n")
    pdb = os.path.join(tmp, "small.db")
    run("init", yaml, "--db", pdb)
    before = sha(pdb)
    p = run("propose", "--db", pdb, "-n", "3", ok=False)
    check(p.returncode == 2 and "fewer than the batch size" in p.stderr, f"pool smaller than batch: {p.stderr.strip()}")
    check(sha(pdb) == before, "pool smaller than batch: database unchanged")
    write(os.path.join(tmp, "pool.csv"), "x\n0.1\n1.5\n")
    p = run("init", yaml, "--db", os.path.join(tmp, "oob.db"), ok=False)
    check(p.returncode == 2 and "row 3, column 'x'" in p.stderr, f"pool out of bounds: {p.stderr.strip()}")


def counts(db):
    con = sqlite3.connect(db)
    try:
        obs = con.execute("SELECT count(*) FROM observations").fetchone()[0]
        files = con.execute("SELECT count(*) FROM result_files").fetchone()[0]
        batches = con.execute("SELECT batch, count(*) FROM proposals GROUP BY batch").fetchall()
        dup = con.execute("SELECT count(*) FROM (SELECT proposal_id FROM observations WHERE proposal_id IS NOT NULL "
                          "GROUP BY proposal_id HAVING count(*) > 1)").fetchone()[0]
        return obs, files, batches, dup
    finally:
        con.close()


def test_kill(tmp):
    """kill -9 at random moments of propose and observe: the database always opens, every batch
    and every results file is all-or-nothing, and re-running finishes the job exactly once."""
    rng = random.Random(11)
    yaml = os.path.join(tmp, "k.yaml")
    pool = os.path.join(tmp, "kpool.csv")
    prow = ["theta,n,solvent,Cs,FA,MA"]
    for i in range(3000):
        cs = rng.random()
        fa = rng.random() * (1 - cs)
        prow.append(f"{rng.random() * 200:.4f},{rng.randint(6, 12)},{rng.choice(['water', 'ethanol'])},{cs:.6f},{fa:.6f},{1 - cs - fa:.6f}")
    write(pool, "\n".join(prow) + "\n")
    write(yaml, CAMPAIGN + "candidates: kpool.csv\n")
    db = os.path.join(tmp, "k.db")
    run("init", yaml, "--db", db)
    expected_obs = 0
    killed = 0
    for it in range(24):
        props = json.loads(run("propose", "--db", db, "-n", "4", "--json").stdout)
        res = os.path.join(tmp, f"k{it}.csv")
        results_csv(res, props)
        for verb in (["propose", "--db", db, "-n", "4"], ["observe", "--db", db, res]):
            p = subprocess.Popen([KILN, "discover", *verb], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            time.sleep(rng.uniform(0.0, 0.25))
            if p.poll() is None:
                os.kill(p.pid, signal.SIGKILL)
                killed += 1
            p.wait()
            st = run("status", "--db", db, "--json", ok=False)
            check(st.returncode == 0, f"database opens after kill ({st.stderr.strip()})")
            obs, files, batches, dup = counts(db)
            check(all(n == 4 for _, n in batches), f"every proposal batch is complete: {batches}")
            check(dup == 0, "no proposal observed twice")
            check(obs in (expected_obs, expected_obs + 4), f"observations {obs} vs expected {expected_obs}(+4)")
        # Finish the job: re-running observe records the file exactly once.
        run("observe", "--db", db, res)
        expected_obs += 4
        obs, files, _, _ = counts(db)
        check(obs == expected_obs and files == it + 1, f"after re-run: {obs} observations, {files} files (expected {expected_obs}, {it + 1})")
    print(f"kill -9 test: {killed} processes killed mid-command, database consistent every time")


def test_benchmark(tmp):
    rng = random.Random(3)
    path = os.path.join(tmp, "bench.csv")
    lines = ["a,b,kind,score"]
    for i in range(150):
        a, b, k = rng.random(), rng.random(), rng.choice(["p", "q", "r"])
        y = math.sin(5 * a) * math.cos(3 * b) + (0.3 if k == "q" else 0)
        lines.append(f"{a:.5f},{b:.5f},{k},{y:.6f}")
        if i % 10 == 0:
            lines.append(f"{a:.5f},{b:.5f},{k},{y + 0.01:.6f}")
    write(path, "\n".join(lines) + "\n")
    svg = os.path.join(tmp, "bench.svg")
    p = run("benchmark", path, "--inputs", "a,b,kind", "--objective", "score", "--direction", "max",
            "--budget", "15", "--runs", "2", "--initial", "5", "--seed", "1", "--json", "--svg", svg)
    j = json.loads(p.stdout)
    check(j["pool_size"] == 150 and j["rows"] == 165, f"benchmark pool {j['pool_size']} rows {j['rows']}")
    check([s["name"] for s in j["strategies"]] == ["kiln", "random"], "benchmark strategies")
    check(len(j["initial"]) == 2 and len(j["initial"][0]) == 5, "benchmark reports the shared starting points")
    check(len(j["strategies"][0]["top_pct"]) == 15, "Top% curve per evaluation")
    for s in j["strategies"]:
        runs = s["runs"]
        check(len(runs) == 2 and all(len(r["objective"]) == 15 for r in runs), "per-run objective values")
        # The starting points are shared, and the per-run first top-1 % evaluations average to the mean.
        check(runs[0]["objective"][:5] == j["strategies"][0]["runs"][0]["objective"][:5], "shared starting points")
        firsts = [r["evals_to_top1"] if r["evals_to_top1"] is not None else 16 for r in runs]
        check(abs(sum(firsts) / 2 - s["evals_to_top1_mean"]) < 1e-9, "per-run evals to top-1 %")
        top = max(float(l.split(",")[3]) for l in lines[1:])
        check(max(max(r["objective"]) for r in runs) <= top + 1e-6, "objective values in the data's units")
    check(max(max(r["objective"]) for r in j["strategies"][0]["runs"]) > 0.5 * top, "Kiln's runs climb (sign kept)")
    check("runs" in p.stderr, "progress bar on stderr")
    check(open(svg).read().startswith("<svg"), "benchmark --svg")
    # The outcome warp is the default strategy's; --warp off runs (and names) the strategy without it.
    p2 = run("benchmark", path, "--inputs", "a,b,kind", "--objective", "score", "--direction", "max",
             "--budget", "15", "--runs", "2", "--initial", "5", "--seed", "1", "--json", "--quiet", "--warp", "off")
    j2 = json.loads(p2.stdout)
    check(j2["strategies"][0]["name"] == "kiln-nowarp", f"--warp off names the strategy ({j2['strategies'][0]['name']})")
    check(j2["initial"] == j["initial"], "--warp off keeps the starting points")
    check(j2["strategies"][0]["runs"] != j["strategies"][0]["runs"], "--warp off changes the proposals")
    p2 = run("benchmark", path, "--inputs", "a,b", "--objective", "score", "--warp", "maybe", ok=False)
    check(p2.returncode == 2 and "--warp" in p2.stderr, "benchmark --warp maybe is an error")
    # The input warp (continuous inputs) and the mixed categorical kernel are switches too.
    for flag, val, name in (("--input-warp", "off", "kiln-noinwarp"), ("--categorical-kernel", "mixed", "kiln-mixedcat")):
        p2 = run("benchmark", path, "--inputs", "a,b,kind", "--objective", "score", "--direction", "max",
                 "--budget", "15", "--runs", "2", "--initial", "5", "--seed", "1", "--json", "--quiet", flag, val)
        j2 = json.loads(p2.stdout)
        check(j2["strategies"][0]["name"] == name, f"{flag} {val} names the strategy ({j2['strategies'][0]['name']})")
        check(j2["initial"] == j["initial"], f"{flag} {val} keeps the starting points")
        check(j2["strategies"][0]["runs"] != j["strategies"][0]["runs"], f"{flag} {val} changes the proposals")
        p2 = run("benchmark", path, "--inputs", "a,b", "--objective", "score", flag, "maybe", ok=False)
        check(p2.returncode == 2 and flag in p2.stderr, f"benchmark {flag} maybe is an error")
    p = run("benchmark", path, "--inputs", "a,zz", "--objective", "score", ok=False)
    check(p.returncode == 2 and "zz" in p.stderr, "benchmark unknown column")


def main():
    with tempfile.TemporaryDirectory() as tmp:
        db = test_contract(tmp)
        test_bad_input(tmp, db)
        test_kill(tmp)
        test_benchmark(tmp)
    if failures:
        print(f"{len(failures)} failures", file=sys.stderr)
        sys.exit(1)
    print("discover CLI contract: all checks passed")


if __name__ == "__main__":
    main()
