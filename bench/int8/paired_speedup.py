#!/usr/bin/python3
"""Kiln int8 speed-up over Kiln fp32, measured in tight pairs.

    bench/int8/paired_speedup.py --kiln build/release/apps/kiln/kiln [--pairs 21] [--threads 1] \
        [--seconds 0.3] FP32.onnx:INT8.onnx ...

bench/compare --int8 times each engine for at least a second per round, so one round's fp32 and
int8 runs are several seconds apart. On a host that switches between speed regimes every few
seconds (this VM: KWS int8 at 19 us or 26-31 us, alternating about every 10 s), a round's two
runs often land in different regimes and the medians over rounds carry that noise. Here each pair
runs `kiln bench` on the two files back to back for a short time (`--seconds`, order alternating
between pairs), so both halves of a pair usually share a regime. Reported per model: the median
p50 of each file over the pairs, the median of the per-pair ratios fp32 / int8 (with the
interquartile range), and the ratio of the fastest pair p50s (both files in the fast regime).
The int8 and fp32 files, random inputs and everything else are what `kiln bench` uses.
"""
import argparse
import json
import statistics
import subprocess
import sys


def bench(kiln, model, threads, seconds):
    out = subprocess.run([kiln, "bench", model, "--threads", str(threads), "--warmup", "20", "--runs", "50",
                          "--min-seconds", str(seconds), "--json"], check=True, capture_output=True, text=True).stdout
    return json.loads(out)["p50_us"]


def us(v):
    return f"{v / 1000:.3g} ms" if v >= 1000 else f"{v:.3g} µs"


def quartiles(v):
    q = statistics.quantiles(v, n=4)
    return q[0], q[2]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kiln", required=True)
    ap.add_argument("--pairs", type=int, default=21)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seconds", type=float, default=0.3)
    ap.add_argument("--json", help="write the raw pairs here")
    ap.add_argument("models", nargs="+", help="FP32.onnx:INT8.onnx")
    a = ap.parse_args()
    rows, raw = [], {}
    for spec in a.models:
        fp32, int8 = spec.split(":")
        f, q = [], []
        for i in range(a.pairs):
            order = [(fp32, f), (int8, q)] if i % 2 == 0 else [(int8, q), (fp32, f)]
            for model, sink in order:
                sink.append(bench(a.kiln, model, a.threads, a.seconds))
            print(f"\r{int8}: pair {i + 1}/{a.pairs}", end="", file=sys.stderr, flush=True)
        print(file=sys.stderr)
        ratios = [x / y for x, y in zip(f, q)]
        lo, hi = quartiles(ratios)
        rows.append((int8, statistics.median(f), statistics.median(q), statistics.median(ratios), lo, hi,
                     min(f) / min(q)))
        raw[spec] = {"fp32_p50_us": f, "int8_p50_us": q}
    print(f"{a.threads} thread(s), {a.pairs} pairs of {a.seconds} s `kiln bench` runs per model")
    print("| int8 file | fp32 p50 (median) | int8 p50 (median) | median paired ratio (IQR) | fastest fp32 / fastest int8 |")
    print("|---|---:|---:|---:|---:|")
    for m, f, q, r, lo, hi, fast in rows:
        print(f"| {m} | {us(f)} | {us(q)} | {r:.2f} ({lo:.2f}–{hi:.2f}) | {fast:.2f} |")
    gm = statistics.geometric_mean([r[3] for r in rows])
    gf = statistics.geometric_mean([r[6] for r in rows])
    print(f"\nGeometric mean over {len(rows)} models: median paired ratio {gm:.2f}, fastest-pair ratio {gf:.2f}")
    if a.json:
        with open(a.json, "w") as fh:
            json.dump(raw, fh, indent=1)


if __name__ == "__main__":
    main()
