#!/usr/bin/python3
"""Kiln int8 vs Kiln fp32 vs ONNX Runtime on the same QDQ files, batch 1, 1 and 2 threads, plus
fp32-vs-int8 agreement on the MLPerf Tiny sample input available in ../shared/data.

    nice /usr/bin/python3 bench/int8/compare_int8.py --kiln build/release/apps/kiln/kiln \
        [--data ../shared/data/models] [--digits DIR] [--runs 2000] [--threads 1,2]

Pairs: MLPerf Tiny KWS (DS-CNN) and AD (FC autoencoder) as converted by tf2onnx (their own int8 QDQ
files); VWW (MobileNetV1-0.25) and the generated ResNet-8 and MobileNetV2 (../shared/data/models/
generated) quantised here by `kiln quantize` (random calibration data: for speed only); the digits
CNN / MLP of digits_accuracy.py when --digits names its --out folder.
ONNX Runtime is onnxruntime-node (bench/ort_bench.js, installed by scripts/install-deps --bench);
its figures include Node's per-call overhead (~10 us, see bench/README.md). Prints a markdown table.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))


def run(cmd):
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError("%s failed: %s" % (" ".join(cmd), p.stderr))
    return p.stdout


def kiln_p50(kiln, model, threads, runs):
    j = json.loads(run(["nice", "-n", "19", kiln, "bench", model, "--threads", str(threads), "--runs", str(runs),
                        "--warmup", str(max(20, runs // 10)), "--json"]))
    return j["p50_us"]


def ort_p50(model, threads):
    try:
        j = json.loads(run(["nice", "-n", "19", "node", os.path.join(HERE, "..", "ort_bench.js"), model, "--threads",
                            str(threads)]))
        return j["p50_us"]
    except (RuntimeError, FileNotFoundError, json.JSONDecodeError):
        return None


def sample_agreement(kiln, data, work):
    """AD01 on its sample input (40 frames of 640 features): output SQNR fp32 vs int8, and how many
    int8 outputs of Kiln's integer kernels equal the reference QDQ arithmetic (--no-optimize)."""
    tiny = os.path.join(data, "mlperf_tiny_onnx")
    bin_path = os.path.join(data, "mlperf_tiny", "ad", "normal_id_01_00000000_hist_librosa.bin")
    if not os.path.exists(bin_path):
        return None
    frames = np.fromfile(bin_path, dtype=np.float32).reshape(-1, 640)
    xs, xz, ys, yz = 0.39101523, 89, 0.36449847, 96  # input_1 / Identity parameters of ad01_int8.onnx
    sig = noise = 0.0
    same = total = 0
    for i, f in enumerate(frames):
        x = f.reshape(1, 640)
        np.save(os.path.join(work, "x.npy"), x)
        q = np.clip(np.rint(x / xs) + xz, -128, 127).astype(np.int8)
        np.save(os.path.join(work, "q.npy"), q)
        outs = {}
        for tag, model, inp, extra in (("fp32", "ad01_fp32.onnx", "x.npy", []), ("int8", "ad01_int8.onnx", "q.npy", []),
                                       ("ref", "ad01_int8.onnx", "q.npy", ["--no-optimize"])):
            od = os.path.join(work, tag)
            run([kiln, "run", os.path.join(tiny, model), "--input", "input_1=" + os.path.join(work, inp),
                 "--output-dir", od, *extra])
            outs[tag] = np.load(os.path.join(od, "Identity.npy"))
        y32 = outs["fp32"].astype(np.float64)
        y8 = (outs["int8"].astype(np.float64) - yz) * ys
        sig += (y32 ** 2).sum()
        noise += ((y32 - y8) ** 2).sum()
        same += int((outs["int8"] == outs["ref"]).sum())
        total += outs["int8"].size
    return {"frames": len(frames), "output_sqnr_db": 10 * np.log10(sig / noise), "int8_equal_to_reference": same / total}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--kiln", required=True)
    ap.add_argument("--data", default=os.path.join(HERE, "..", "..", "..", "shared", "data", "models"))
    ap.add_argument("--digits", help="the --out folder of digits_accuracy.py")
    ap.add_argument("--runs", type=int, default=2000)
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--json")
    a = ap.parse_args()
    work = tempfile.mkdtemp(prefix="kiln_int8_")
    tiny = os.path.join(a.data, "mlperf_tiny_onnx")
    pairs = []
    if os.path.isdir(tiny):
        pairs.append(("MLPerf Tiny KWS (DS-CNN)", os.path.join(tiny, "kws_ref_model_float32.onnx"),
                      os.path.join(tiny, "kws_ref_model.onnx"), None))
        pairs.append(("MLPerf Tiny AD (FC autoencoder)", os.path.join(tiny, "ad01_fp32.onnx"),
                      os.path.join(tiny, "ad01_int8.onnx"), None))
        calib = os.path.join(work, "vww_calib")
        os.makedirs(calib)
        np.save(os.path.join(calib, "random.npy"),
                np.random.default_rng(0).uniform(0, 1, (16, 96, 96, 3)).astype(np.float32))
        vww8 = os.path.join(work, "vww_96.int8.onnx")
        run([a.kiln, "quantize", os.path.join(tiny, "vww_96_float.onnx"), "--calibration", calib, "--output", vww8,
             "--per-channel"])
        pairs.append(("MLPerf Tiny VWW (MobileNetV1-0.25), kiln quantize", os.path.join(tiny, "vww_96_float.onnx"), vww8,
                      None))
    gen = os.path.join(a.data, "generated")
    for name, shape, runs in (("resnet8_cifar_32", (16, 1, 3, 32, 32), None), ("mobilenet_v2_224", (8, 1, 3, 224, 224), 60)):
        src = os.path.join(gen, name + ".onnx")
        if not os.path.exists(src):
            continue
        calib = os.path.join(work, name + "_calib")
        os.makedirs(calib)
        np.save(os.path.join(calib, "random.npy"), np.random.default_rng(0).normal(0, 1, shape).astype(np.float32))
        dst = os.path.join(work, name + ".int8.onnx")
        run([a.kiln, "quantize", src, "--calibration", calib, "--output", dst, "--per-channel"])
        pairs.append(("%s (generated), kiln quantize" % name, src, dst, runs))
    if a.digits:
        for name in ("cnn", "mlp"):
            pairs.append(("digits %s, kiln quantize" % name.upper(), os.path.join(a.digits, name + ".onnx"),
                          os.path.join(a.digits, name + ".int8.minmax.onnx"), None))
    rows = []
    for label, fp32, int8, pair_runs in pairs:
        runs = pair_runs or a.runs
        for t in [int(x) for x in a.threads.split(",")]:
            r = {"model": label, "threads": t, "kiln_fp32_us": kiln_p50(a.kiln, fp32, t, runs),
                 "kiln_int8_us": kiln_p50(a.kiln, int8, t, runs), "ort_int8_us": ort_p50(int8, t),
                 "ort_fp32_us": ort_p50(fp32, t)}
            rows.append(r)
            print(json.dumps(r), file=sys.stderr)
    agreement = sample_agreement(a.kiln, a.data, work) if os.path.isdir(tiny) else None
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"rows": rows, "ad01_sample": agreement}, f, indent=2)
    fmt = lambda v: "n/a" if v is None else "%.1f" % v
    ratio = lambda n, d: "n/a" if n is None or d is None else "%.2f" % (n / d)
    print("| model | threads | Kiln fp32 us | Kiln int8 us | int8 speed-up | ORT int8 us | Kiln int8 / ORT int8 | ORT fp32 us |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print("| %s | %d | %s | %s | %s | %s | %s | %s |" % (
            r["model"], r["threads"], fmt(r["kiln_fp32_us"]), fmt(r["kiln_int8_us"]),
            ratio(r["kiln_fp32_us"], r["kiln_int8_us"]), fmt(r["ort_int8_us"]), ratio(r["kiln_int8_us"], r["ort_int8_us"]),
            fmt(r["ort_fp32_us"])))
    ratios = [r["kiln_int8_us"] / r["ort_int8_us"] for r in rows if r["ort_int8_us"]]
    if ratios:
        print("\ngeometric mean Kiln int8 / ORT int8: %.2f over %d rows" % (float(np.exp(np.mean(np.log(ratios)))), len(ratios)))
    if agreement:
        print("\nAD01 sample input (%d frames): output SQNR fp32 vs int8 %.1f dB; int8 outputs equal to the reference "
              "QDQ arithmetic: %.2f%%" % (agreement["frames"], agreement["output_sqnr_db"],
                                          100 * agreement["int8_equal_to_reference"]))


if __name__ == "__main__":
    main()
