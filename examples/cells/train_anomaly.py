#!/usr/bin/python3
"""Train the pilot line's spindle anomaly model (an autoencoder) and export it as ONNX.

The training data come from Kiln itself, so the features cannot drift from what the cell
computes: this script derives a training cell from pilot-line.yaml (same tags, same band_energy
block, no `infer` block, no network devices, another plant seed), runs it with
`kiln cell run --sim-clock --trace` for ten simulated minutes of a healthy spindle, and trains on
the `vib_features` rows recorded while `monitor_armed` was true.

The exported model maps the 8 log band energies to one number, the anomaly score:
    z = (x - mean) / std;  score = mean((z - decoder(encoder(z)))^2) / threshold
where mean/std come from the healthy data and the threshold is calibrated for the cell's interlock
on the score (which trips after `for_cycles` consecutive scores above 1.0): 1.25 x the largest
value that the smallest of `for_cycles` consecutive healthy errors reaches, on the training run
and on a held-out healthy run with another seed.

Deterministic (seeded, one CPU thread). A second run with the same features reuses the model
(a hash of the features and this script is kept beside it).

    /usr/bin/python3 examples/cells/train_anomaly.py --kiln build/release/apps/kiln/kiln \
        --cell examples/cells/pilot-line.yaml --out build/release/examples/cells
"""
import argparse
import hashlib
import os
import subprocess
import sys

import numpy as np
import yaml

TRAIN_SEED = 1001      # plant seeds, different from the cell's own (7)
HOLDOUT_SEED = 2002
SECONDS = 600


def training_cell(cell_path, seed, out_path):
    with open(cell_path) as f:
        cell = yaml.safe_load(f)
    for loop in cell["loops"]:
        loop["blocks"] = [b for b in loop.get("blocks", []) if b.get("type") != "infer"]
    cell["devices"] = [d for d in cell.get("devices", []) if d.get("driver") == "simulated"]
    for d in cell["devices"]:
        if d.get("model") == "spindle":
            d["seed"] = seed
    with open(out_path, "w") as f:
        yaml.safe_dump(cell, f, sort_keys=False)


def interlock_cycles(cell_path):
    """for_cycles of the interlock that watches anomaly_score (1 when there is none)."""
    with open(cell_path) as f:
        cell = yaml.safe_load(f)
    for il in cell.get("interlocks", []):
        if "anomaly_score" in str(il.get("when", "")):
            return int(il.get("for_cycles", 1))
    return 1


def sustained(err, k):
    """The smallest of every k consecutive values (what an interlock with for_cycles: k sees)."""
    if k <= 1 or len(err) < k:
        return err
    return np.min(np.stack([err[i:len(err) - k + 1 + i] for i in range(k)]), axis=0)


def healthy_features(kiln, cell_path, seed, work):
    derived = os.path.join(work, f"train-cell-{seed}.yaml")
    csv = os.path.join(work, f"healthy-features-{seed}.csv")
    training_cell(cell_path, seed, derived)
    cmd = [kiln, "cell", "run", derived, "--sim-clock", "--duration", str(SECONDS), "--quiet",
           "--trace", csv, "--trace-loop", "monitor", "--trace-tags", "vib_features,monitor_armed"]
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(f"train_anomaly: {' '.join(cmd)} failed ({p.returncode}):\n{p.stderr}")
    data = np.loadtxt(csv, delimiter=",", skiprows=1)
    armed = data[:, -1] > 0.5
    return data[armed, 1:-1].astype(np.float32)


def train(x, holdout, k):
    import torch

    torch.manual_seed(0)
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    mean = x.mean(axis=0)
    std = x.std(axis=0) + 1e-3
    z = torch.from_numpy((x - mean) / std)
    n = z.shape[1]
    ae = torch.nn.Sequential(
        torch.nn.Linear(n, 16), torch.nn.Tanh(), torch.nn.Linear(16, 4), torch.nn.Tanh(),
        torch.nn.Linear(4, 16), torch.nn.Tanh(), torch.nn.Linear(16, n))
    opt = torch.optim.Adam(ae.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(0)
    for epoch in range(40):
        perm = torch.randperm(z.shape[0], generator=g)
        for i in range(0, z.shape[0], 256):
            b = z[perm[i:i + 256]]
            loss = ((ae(b) - b) ** 2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()

    class Scored(torch.nn.Module):
        def __init__(self, threshold):
            super().__init__()
            self.ae = ae
            self.register_buffer("mean", torch.from_numpy(mean))
            self.register_buffer("std", torch.from_numpy(std.astype(np.float32)))
            self.register_buffer("inv_threshold", torch.tensor([1.0 / threshold], dtype=torch.float32))

        def forward(self, x):
            z = (x - self.mean) / self.std
            return ((self.ae(z) - z) ** 2).mean(dim=1, keepdim=True) * self.inv_threshold

    with torch.no_grad():
        raw = Scored(1.0).eval()
        train_err = raw(torch.from_numpy(x)).numpy().ravel()
        hold_err = raw(torch.from_numpy(holdout)).numpy().ravel()
    worst = max(sustained(train_err, k).max(), sustained(hold_err, k).max())
    threshold = 1.25 * float(worst)
    print(f"train_anomaly: {x.shape[0]} training rows, {holdout.shape[0]} held-out rows; held-out error "
          f"p99 {np.percentile(hold_err, 99):.4f}, max {hold_err.max():.4f}; worst {k}-cycle run {worst:.4f}; "
          f"threshold {threshold:.4f}")
    return Scored(threshold).eval(), n


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--kiln", required=True)
    ap.add_argument("--cell", required=True)
    ap.add_argument("--out", required=True, help="folder for spindle_anomaly.onnx")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    onnx_path = os.path.join(a.out, "spindle_anomaly.onnx")
    stamp_path = onnx_path + ".sha256"

    x = healthy_features(a.kiln, a.cell, TRAIN_SEED, a.out)
    holdout = healthy_features(a.kiln, a.cell, HOLDOUT_SEED, a.out)
    h = hashlib.sha256()
    h.update(x.tobytes())
    h.update(holdout.tobytes())
    h.update(str(interlock_cycles(a.cell)).encode())
    with open(__file__, "rb") as f:
        h.update(f.read())
    digest = h.hexdigest()
    if os.path.exists(onnx_path) and os.path.exists(stamp_path) and open(stamp_path).read().strip() == digest:
        os.utime(onnx_path)
        print("train_anomaly: features unchanged, model up to date")
        return

    import torch
    model, n = train(x, holdout, interlock_cycles(a.cell))
    tmp = onnx_path + ".tmp"
    torch.onnx.export(model, torch.zeros(1, n), tmp, input_names=["features"], output_names=["score"], opset_version=13)
    os.replace(tmp, onnx_path)
    with open(stamp_path, "w") as f:
        f.write(digest + "\n")
    print(f"train_anomaly: wrote {onnx_path}")


if __name__ == "__main__":
    main()
