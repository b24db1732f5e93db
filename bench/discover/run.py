#!/usr/bin/python3
"""bench/discover: Kiln's default strategy beside scikit-learn's GP (Matern-5/2 ARD + EI) on the
materials datasets, in the same run, with Liang et al.'s protocol.

For each dataset, `kiln discover benchmark --json` runs Kiln's campaigns and random search and
reports the shared starting points of every run; this script then runs scikit-learn's GP-ARD +
EI from exactly those starting points on the same pool (replicates averaged, the same key for
"same input" as Kiln: values printed with 10 significant digits) and scores all strategies with
the same metrics.

  /usr/bin/python3 bench/discover/run.py --kiln build/release/apps/kiln/kiln [--runs 30]
        [--datasets crossed_barrel,agnp] [--data ../shared/data/materials] [--out DIR]
"""
import argparse
import csv
import io
import json
import math
import os
import subprocess
import sys
import time
import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.gaussian_process import GaussianProcessRegressor
from sklearn.gaussian_process.kernels import ConstantKernel, Matern, WhiteKernel
from scipy.stats import norm

HERE = os.path.dirname(os.path.abspath(__file__))


def key(v):
    try:
        return f"{float(v):.10g}"
    except ValueError:
        return v


def load_pool(path, spec):
    with open(path, newline="", encoding="utf-8-sig") as f:
        rows = list(csv.reader(f))
    if "header" in spec:
        header = spec["header"]
    else:
        header, rows = [h.strip() for h in rows[0]], rows[1:]
    rows = [r for r in rows if any(c.strip() for c in r)]
    idx = [header.index(c) for c in spec["inputs"]]
    oi = header.index(spec["objective"])
    groups, order = {}, []
    for r in rows:
        k = tuple(key(r[i].strip()) for i in idx)
        if k not in groups:
            groups[k] = []
            order.append(k)
        groups[k].append(float(r[oi]))
    sign = 1.0 if spec["direction"] == "max" else -1.0
    y = np.array([sign * np.mean(groups[k]) for k in order])
    # Features: numeric columns min-max scaled, others one-hot (what Kiln's benchmark does).
    cols = []
    for j in range(len(idx)):
        vals = [k[j] for k in order]
        try:
            num = np.array([float(v) for v in vals])
            lo, hi = num.min(), num.max()
            cols.append(((num - lo) / (hi - lo) if hi > lo else np.full(len(num), 0.5))[:, None])
        except ValueError:
            labels = sorted(set(vals))
            cols.append(np.array([[1.0 if v == l else 0.0 for l in labels] for v in vals]))
    X = np.hstack(cols)
    return X, y, {k: i for i, k in enumerate(order)}


def sklearn_run(X, y, init, budget, seed):
    d = X.shape[1]
    evaluated = list(init)
    avail = np.ones(len(y), bool)
    avail[evaluated] = False
    times = []
    while len(evaluated) < budget:
        t0 = time.perf_counter()
        kernel = ConstantKernel(1.0, (1e-3, 1e3)) * Matern(length_scale=np.ones(d), length_scale_bounds=(1e-2, 1e3), nu=2.5) \
            + WhiteKernel(1e-3, (1e-6, 1e1))
        gp = GaussianProcessRegressor(kernel=kernel, normalize_y=True, n_restarts_optimizer=0, random_state=seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            warnings.simplefilter("ignore", UserWarning)
            gp.fit(X[evaluated], y[evaluated])
        cand = np.flatnonzero(avail)
        mu, sd = gp.predict(X[cand], return_std=True)
        best = y[evaluated].max()
        xi = 0.01
        sd = np.maximum(sd, 1e-12)
        z = (mu - best - xi) / sd
        ei = (mu - best - xi) * norm.cdf(z) + sd * norm.pdf(z)
        pick = int(cand[int(np.argmax(ei))])
        times.append(time.perf_counter() - t0)
        evaluated.append(pick)
        avail[pick] = False
    return evaluated, 1000 * float(np.mean(times))


def score(y, orders, budget):
    N = len(y)
    s = np.sort(y)[::-1]
    n5, n1 = math.ceil(0.05 * N), math.ceil(0.01 * N)
    t5, t1, best = s[n5 - 1], s[n1 - 1], s[0]
    top5 = int((y >= t5).sum())
    top = np.zeros(budget)
    first1, foundb = [], 0
    for o in orders:
        got, f1, gb = 0, None, False
        for i in range(budget):
            v = y[o[i]]
            got += v >= t5
            if f1 is None and v >= t1:
                f1 = i + 1
            gb |= v >= best
            top[i] += got / top5 / len(orders)
        first1.append(f1 if f1 is not None else budget + 1)
        foundb += gb
    af = None
    for i in range(budget):
        if top[i] >= 0.8 - 1e-12:
            af = 0.8 * N / (i + 1)
            break
    return {"evals_to_top1_mean": float(np.mean(first1)), "frac_found_top1": float(np.mean([f <= budget for f in first1])),
            "frac_found_best": foundb / len(orders), "top_pct_at_budget": float(top[-1]), "ef_at_budget": float(top[-1] / (budget / N)),
            "af_at_0_8": af, "top_pct": top.tolist()}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--kiln", required=True)
    ap.add_argument("--data", default=os.path.join(HERE, "..", "..", "..", "shared", "data", "materials"))
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--budget", type=int, default=50)
    ap.add_argument("--initial", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--datasets", default="")
    ap.add_argument("--out", default="")
    ap.add_argument("--cache", default="", help="folder to reuse scikit-learn results from (same dataset, runs, seed)")
    ap.add_argument("--kiln-args", default="", help="extra arguments for kiln discover benchmark (strategy variants)")
    a = ap.parse_args()
    specs = json.load(open(os.path.join(HERE, "datasets.json")))
    if a.datasets:
        want = a.datasets.split(",")
        specs = [s for s in specs if s["name"] in want]
    if a.out:
        os.makedirs(a.out, exist_ok=True)
    results = []
    for spec in specs:
        path = os.path.join(a.data, spec["file"])
        if not os.path.exists(path):
            print(f"skip {spec['name']}: {path} not found", file=sys.stderr)
            continue
        cmd = [a.kiln, "discover", "benchmark", path, "--inputs", ",".join(spec["inputs"]), "--objective", spec["objective"],
               "--direction", spec["direction"], "--budget", str(a.budget), "--runs", str(a.runs), "--initial", str(a.initial),
               "--seed", str(a.seed), "--json", "--quiet"] + (a.kiln_args.split() if a.kiln_args else [])
        if "header" in spec:
            cmd += ["--header", ",".join(spec["header"])]
        if a.out:
            cmd += ["--svg", os.path.join(a.out, spec["name"] + ".svg")]
        t0 = time.time()
        k = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
        kiln_wall = time.time() - t0
        X, y, index = load_pool(path, spec)
        if len(y) != k["pool_size"]:
            sys.exit(f"{spec['name']}: pool sizes differ (kiln {k['pool_size']}, python {len(y)})")
        orders, ms = [], []
        t0 = time.time()
        cache = os.path.join(a.cache, f"{spec['name']}-r{a.runs}-b{a.budget}-i{a.initial}-s{a.seed}.json") if a.cache else ""
        if cache and os.path.exists(cache):
            orders, ms = json.load(open(cache))
        else:
            for r, init in enumerate(k["initial"]):
                rows = [index[tuple(key(v) for v in vals)] for vals in init]
                o, m = sklearn_run(X, y, rows, a.budget, a.seed * 1000003 + r)
                orders.append(o)
                ms.append(m)
            if cache:
                os.makedirs(a.cache, exist_ok=True)
                json.dump([orders, ms], open(cache, "w"))
        sk = score(y, orders, a.budget)
        sk["name"] = "sklearn-gp-ard-ei"
        sk["mean_proposal_ms"] = float(np.mean(ms))
        sk_wall = time.time() - t0
        entry = {"dataset": spec["name"], "pool_size": k["pool_size"], "rows": k["rows"], "runs": a.runs,
                 "strategies": [s for s in k["strategies"]] + [sk], "wall_s": {"kiln": kiln_wall, "sklearn": sk_wall}}
        results.append(entry)
        if a.out:
            with open(os.path.join(a.out, "results.json"), "w") as f:
                json.dump({"partial": True, "results": results}, f, indent=1)
        by = {s["name"]: s for s in entry["strategies"]}
        kn = k["strategies"][0]["name"]
        print(f"{spec['name']:18s} N={k['pool_size']:5d}  evals->top1 kiln {by[kn]['evals_to_top1_mean']:5.1f} sklearn {sk['evals_to_top1_mean']:5.1f} "
              f"random {by['random']['evals_to_top1_mean']:5.1f} | Top%@{a.budget} kiln {by[kn]['top_pct_at_budget']:.2f} "
              f"sklearn {sk['top_pct_at_budget']:.2f} random {by['random']['top_pct_at_budget']:.2f} | "
              f"ms/proposal kiln {by[kn]['mean_proposal_ms']:.1f} sklearn {sk['mean_proposal_ms']:.1f}", flush=True)
    if not results:
        sys.exit("no dataset found")
    kn = results[0]["strategies"][0]["name"]
    ratios = [next(s for s in r["strategies"] if s["name"] == kn)["evals_to_top1_mean"] /
              next(s for s in r["strategies"] if s["name"] == "sklearn-gp-ard-ei")["evals_to_top1_mean"] for r in results]
    gm = math.exp(sum(math.log(x) for x in ratios) / len(ratios))
    worse = [r["dataset"] for r in results
             if next(s for s in r["strategies"] if s["name"] == kn)["top_pct_at_budget"] + 1e-9 <
             next(s for s in r["strategies"] if s["name"] == "sklearn-gp-ard-ei")["top_pct_at_budget"]]
    print(f"geometric mean of evals-to-top-1% ratio (kiln / sklearn): {gm:.3f}; Top%@{a.budget} below sklearn on: {worse or 'none'}")
    # A markdown table for docs/benchmarks.md.
    print("\n| dataset | pool | strategy | evals to top-1% (mean) | Top%@50 | P(global best) | EF@50 | AF@0.8 | ms / proposal |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in results:
        for st in r["strategies"]:
            af = f"{st['af_at_0_8']:.1f}" if st.get("af_at_0_8") else "-"
            print(f"| {r['dataset']} | {r['pool_size']} | {st['name']} | {st['evals_to_top1_mean']:.1f} | {st['top_pct_at_budget']:.2f} | "
                  f"{st['frac_found_best']:.2f} | {st['ef_at_budget']:.1f} | {af} | {st['mean_proposal_ms']:.1f} |")
    if a.out:
        with open(os.path.join(a.out, "results.json"), "w") as f:
            json.dump({"geomean_ratio": gm, "below_sklearn": worse, "results": results}, f, indent=1)


if __name__ == "__main__":
    main()
