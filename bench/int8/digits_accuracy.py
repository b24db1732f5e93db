#!/usr/bin/python3
"""fp32 vs int8 top-1 accuracy of a small CNN and an MLP on the handwritten digits that Debian's
python3-sklearn ships, quantised by `kiln quantize` on 200 calibration samples.

    /usr/bin/python3 bench/int8/digits_accuracy.py KILN_BINARY [--out DIR] [--json] [--ort] [--reduce-range]

Trains both models with Debian's python3-torch (fixed seeds), exports them to ONNX with a
symbolic batch dimension, writes 200 training samples as calibration data, quantises each model
(per-channel weights, each calibration method), runs the fp32 and the int8 model on the
held-back test split with `kiln run`, and prints accuracy, the accuracy drop and fp32/int8 top-1
agreement, and the output SQNR against fp32 on the test split. The int8 models run on Kiln's integer
kernels (see `kiln info`). --ort also runs the minmax int8 models in ONNX Runtime
(bench/ort_bench.js) on the same inputs.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split


class Cnn(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.c1 = torch.nn.Conv2d(1, 16, 3, padding=1)
        self.c2 = torch.nn.Conv2d(16, 32, 3, padding=1)
        self.fc = torch.nn.Linear(32 * 2 * 2, 10)

    def forward(self, x):
        x = torch.max_pool2d(torch.relu(self.c1(x)), 2)
        x = torch.max_pool2d(torch.relu(self.c2(x)), 2)
        return self.fc(torch.flatten(x, 1))


class Mlp(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Linear(64, 128), torch.nn.ReLU(), torch.nn.Linear(128, 64),
                                       torch.nn.ReLU(), torch.nn.Linear(64, 10))

    def forward(self, x):
        return self.net(x)


def train(model, x, y, epochs=60):
    torch.manual_seed(0)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    g = torch.Generator().manual_seed(0)
    for _ in range(epochs):
        perm = torch.randperm(len(xt), generator=g)
        for i in range(0, len(xt), 64):
            idx = perm[i:i + 64]
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(xt[idx]), yt[idx])
            loss.backward()
            opt.step()
    return model.eval()


def export(model, example, path):
    torch.onnx.export(model, torch.from_numpy(example), path, input_names=["x"], output_names=["y"],
                      dynamic_axes={"x": {0: "N"}, "y": {0: "N"}}, opset_version=13)


def kiln(binary, *args):
    p = subprocess.run([binary, *args], capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit("kiln %s failed (%d): %s" % (" ".join(args), p.returncode, p.stderr))
    return p.stdout


def predict(binary, model, x, work):
    np.save(os.path.join(work, "x.npy"), x)
    out = os.path.join(work, "out")
    kiln(binary, "run", model, "--input", "x=" + os.path.join(work, "x.npy"), "--output-dir", out)
    return np.load(os.path.join(out, "y.npy"))


def ort_predict(model, x, work):
    """ONNX Runtime (bench/ort_bench.js, onnxruntime-node) on the same file and inputs, or None."""
    script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "ort_bench.js")
    np.save(os.path.join(work, "x.npy"), x)
    out = os.path.join(work, "ort_out")
    try:
        p = subprocess.run(["node", script, model, "--input", "x=" + os.path.join(work, "x.npy"), "--output-dir", out],
                           capture_output=True, text=True, cwd=os.path.dirname(script))
    except FileNotFoundError:
        return None
    if p.returncode != 0:
        return None
    return np.load(os.path.join(out, "y.npy"))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("kiln")
    ap.add_argument("--out", help="keep the models and calibration data here")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--ort", action="store_true", help="also run the int8 models (minmax) in ONNX Runtime")
    ap.add_argument("--reduce-range", action="store_true",
                    help="7-bit weights (kiln quantize --reduce-range), into NAME.int8w7.METHOD.onnx")
    a = ap.parse_args()
    torch.manual_seed(0)
    np.random.seed(0)
    digits = load_digits()
    x = (digits.data / 16.0).astype(np.float32)
    y = digits.target.astype(np.int64)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.3, random_state=0, stratify=y)
    work = os.path.abspath(a.out or tempfile.mkdtemp(prefix="kiln_digits_"))  # ORT runs from bench/
    os.makedirs(work, exist_ok=True)
    rows = []
    for name, model, shape in (("cnn", Cnn(), (-1, 1, 8, 8)), ("mlp", Mlp(), (-1, 64))):
        xtr, xte = x_train.reshape(shape), x_test.reshape(shape)
        train(model, xtr, y_train)
        fp32 = os.path.join(work, name + ".onnx")
        export(model, xtr[:1], fp32)
        calib = os.path.join(work, name + "_calib")
        os.makedirs(calib, exist_ok=True)
        np.save(os.path.join(calib, "samples.npy"), xtr[:200])
        y32 = predict(a.kiln, fp32, xte, work).astype(np.float64)
        p32 = y32.argmax(axis=1)
        acc32 = float((p32 == y_test).mean())
        for method in ("minmax", "percentile", "entropy"):
            int8 = os.path.join(work, "%s.%s.%s.onnx" % (name, "int8w7" if a.reduce_range else "int8", method))
            report = json.loads(kiln(a.kiln, "quantize", fp32, "--calibration", calib, "--output", int8,
                                     "--per-channel", "--method", method, "--json",
                                     *(["--reduce-range"] if a.reduce_range else [])))
            info = json.loads(kiln(a.kiln, "info", int8, "--json", "--shape", "x=1x" + "x".join(str(d) for d in shape[1:])))
            y8 = predict(a.kiln, int8, xte, work)
            p8 = y8.argmax(axis=1)
            test_sqnr = float(10 * np.log10((y32 ** 2).sum() / ((y32 - y8) ** 2).sum()))
            acc8 = float((p8 == y_test).mean())
            ort = ort_predict(int8, xte, work) if a.ort and method == "minmax" else None
            ort_logits_sqnr = None
            if ort is not None:
                ort_logits_sqnr = float(10 * np.log10((y32 ** 2).sum() / ((y32 - ort) ** 2).sum()))
            rows.append({"model": name, "method": method, "test_samples": int(len(y_test)),
                         "ort_int8_top1": None if ort is None else float((ort.argmax(axis=1) == y_test).mean()),
                         "ort_int8_output_sqnr_db": ort_logits_sqnr,
                         "fp32_top1": acc32, "int8_top1": acc8, "drop_points": 100 * (acc32 - acc8),
                         "agreement": float((p8 == p32).mean()), "test_output_sqnr_db": test_sqnr,
                         "min_layer_sqnr_db": min(l["sqnr_db"] for l in report["layers"]) if report["layers"] else None,
                         "output_sqnr_db": report["outputs"][0]["sqnr_db"],
                         "integer_nodes": len(info.get("integer_nodes", []))})
    if a.json:
        print(json.dumps(rows, indent=2))
        return
    print("| model | calibration | fp32 top-1 | int8 top-1 | drop (points) | fp32/int8 agreement | output SQNR dB (test) | int8 nodes |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print("| %s | %s | %.2f%% | %.2f%% | %.2f | %.2f%% | %.1f | %d |" % (
            r["model"], r["method"], 100 * r["fp32_top1"], 100 * r["int8_top1"], r["drop_points"],
            100 * r["agreement"], r["test_output_sqnr_db"], r["integer_nodes"]))
    print("\n%d test samples (30%% stratified split, seed 0); 200 calibration samples from the training split." %
          rows[0]["test_samples"])
    for r in rows:
        if r["ort_int8_top1"] is not None:
            print("ONNX Runtime on %s.int8.%s.onnx: top-1 %.2f%%, output SQNR vs fp32 %.1f dB (test split)" %
                  (r["model"], r["method"], 100 * r["ort_int8_top1"], r["ort_int8_output_sqnr_db"]))


if __name__ == "__main__":
    main()
