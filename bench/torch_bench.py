#!/usr/bin/python3
"""PyTorch CPU latency of one model exported by bench/export_models.py, batch 1.

    /usr/bin/python3 bench/torch_bench.py NAME [--models build/bench-models] [--threads N]
        [--input FILE.npy] [--modes eager,frozen] [--warmup 20] [--min-runs 100]
        [--min-seconds 1] [--max-runs 100000] [--output-dir DIR]

PyTorch cannot run an .onnx file, so this runs the *torch module the .onnx was exported from*:
the architecture of export_models.py with the state_dict saved beside the .onnx (NAME.pt), i.e.
the same weights. Models that were not exported from torch (the MLPerf Tiny tf2onnx conversions,
mnist-8, ../shared/data/models/generated/*) have no torch counterpart here and are skipped by
bench/compare.

Modes (each timed separately, in this order):
  eager   model(x) under torch.inference_mode()
  frozen  torch.jit.trace + torch.jit.freeze + torch.jit.optimize_for_inference (oneDNN path)
torch.set_num_threads(N) and torch.set_num_interop_threads(1). Latency = wall time
(time.perf_counter_ns) of one call; after --warmup untimed calls, calls are timed until at least
--min-runs calls AND --min-seconds of timed work. Prints one JSON object on stdout:
  {"name", "threads", "torch", "modes": {"eager": {p50_us, p90_us, p99_us, min_us, max_us, runs}, ...},
   "errors": {mode: message}}
With --output-dir, writes each mode's output as DIR/<mode>.npy (for the agreement check).
"""
import argparse
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def percentile(sorted_us, p):
    if not sorted_us:
        return 0.0
    idx = p * (len(sorted_us) - 1)
    lo = int(idx)
    hi = min(lo + 1, len(sorted_us) - 1)
    return sorted_us[lo] + (sorted_us[hi] - sorted_us[lo]) * (idx - lo)


def time_calls(fn, x, warmup, min_runs, min_seconds, max_runs):
    for _ in range(warmup):
        out = fn(x)
    us = []
    timed = 0.0
    while (len(us) < min_runs or timed < min_seconds * 1e6) and len(us) < max_runs:
        t0 = time.perf_counter_ns()
        out = fn(x)
        dt = (time.perf_counter_ns() - t0) / 1e3
        us.append(dt)
        timed += dt
    us.sort()
    return out, {"runs": len(us), "min_us": us[0], "p50_us": percentile(us, 0.5), "p90_us": percentile(us, 0.9),
                 "p99_us": percentile(us, 0.99), "max_us": us[-1], "mean_us": timed / len(us)}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("name")
    ap.add_argument("--models", default="build/bench-models")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--input", help=".npy input (default: seeded normal data of the exported shape)")
    ap.add_argument("--modes", default="eager,frozen")
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--min-runs", type=int, default=100)
    ap.add_argument("--min-seconds", type=float, default=1.0)
    ap.add_argument("--max-runs", type=int, default=100000)
    ap.add_argument("--output-dir")
    a = ap.parse_args()

    import torch
    torch.set_num_threads(a.threads)
    torch.set_num_interop_threads(1)
    import export_models  # noqa: E402  (needs torch)

    if a.name not in export_models.MODELS:
        sys.exit(f"torch_bench: unknown model '{a.name}' (known: {', '.join(export_models.MODELS)})")
    if not os.path.exists(os.path.join(a.models, a.name + ".pt")):
        sys.exit(f"torch_bench: {os.path.join(a.models, a.name + '.pt')} is missing; run bench/export_models.py {a.models}")
    model = export_models.load(a.name, a.models)
    shape = export_models.MODELS[a.name][1]
    if a.input:
        x = torch.from_numpy(np.load(a.input))
        if tuple(x.shape) != tuple(shape):
            sys.exit(f"torch_bench: {a.input} has shape {tuple(x.shape)}, {a.name} takes {tuple(shape)}")
    else:
        x = torch.randn(*shape, generator=torch.Generator().manual_seed(1))
    if a.output_dir:
        os.makedirs(a.output_dir, exist_ok=True)

    res = {"name": a.name, "threads": a.threads, "torch": torch.__version__, "modes": {}, "errors": {}}
    for mode in [m for m in a.modes.split(",") if m]:
        try:
            with torch.inference_mode() if mode == "eager" else torch.no_grad():
                if mode == "eager":
                    fn = model
                elif mode == "frozen":
                    traced = torch.jit.trace(model, x)
                    fn = torch.jit.optimize_for_inference(torch.jit.freeze(traced.eval()))
                else:
                    raise ValueError(f"unknown mode '{mode}' (eager, frozen)")
                out, stats = time_calls(fn, x, a.warmup, a.min_runs, a.min_seconds, a.max_runs)
            res["modes"][mode] = stats
            if a.output_dir:
                np.save(os.path.join(a.output_dir, mode + ".npy"), out.detach().numpy())
        except Exception as e:  # report and go on with the other modes
            res["errors"][mode] = f"{type(e).__name__}: {e}"[:500]
    print(json.dumps(res))


if __name__ == "__main__":
    main()
