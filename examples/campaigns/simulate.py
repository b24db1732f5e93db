#!/usr/bin/python3
"""Runs a campaign against a made-up response surface: init, then rounds of propose -> measure
(simulated) -> observe, then status. usage: simulate.py KILN CAMPAIGN.yaml [--rounds N] [-n Q]"""
import argparse
import csv
import io
import json
import math
import os
import subprocess
import tempfile


def measure(p):
    # Any smooth function of the parameters will do; unknown names contribute nothing.
    num = {k: (float(v) if not isinstance(v, str) else (len(v) % 3) / 3) for k, v in p.items()}
    s = sum(math.sin(3 * (i + 1) * (v if abs(v) <= 1 else math.log(abs(v) + 1) / 8)) for i, v in enumerate(num.values()))
    return {"instability": 1e5 * (2 - s / len(num)), "hardness": s, "haze": 1 + 0.5 * math.cos(s), "toughness": s}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("kiln")
    ap.add_argument("campaign")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("-n", type=int, default=3)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        db = os.path.join(tmp, "c.db")
        subprocess.run([a.kiln, "discover", "init", a.campaign, "--db", db], check=True)
        for r in range(a.rounds):
            props = json.loads(subprocess.run([a.kiln, "discover", "propose", "--db", db, "-n", str(a.n), "--json"],
                                              check=True, capture_output=True, text=True).stdout)
            objs = [o for o in ("instability", "hardness", "haze", "toughness")
                    if o in open(a.campaign).read()]
            out = io.StringIO()
            w = csv.writer(out)
            w.writerow(["id"] + objs)
            for p in props:
                m = measure(p["params"])
                w.writerow([p["id"]] + [m[o] for o in objs])
            res = os.path.join(tmp, f"r{r}.csv")
            open(res, "w").write(out.getvalue())
            subprocess.run([a.kiln, "discover", "observe", "--db", db, res], check=True)
        subprocess.run([a.kiln, "discover", "status", "--db", db], check=True)


if __name__ == "__main__":
    main()
