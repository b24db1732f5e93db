#!/usr/bin/python3
"""fp32 vs int8 top-1 agreement and output SQNR of the MLPerf Tiny models of ../shared/data/models,
run by Kiln, on the inputs this machine can offer.

    /usr/bin/python3 bench/int8/mlperf_agreement.py KILN_BINARY [--data ../shared/data/models]
        [--out build/mlperf-agreement] [--methods minmax,percentile,entropy] [--kws-clips 400]
        [--kws-spoken 400] [--ort] [--json]

No labelled samples of these models are on the machine, so this measures agreement between the fp32
model and its int8 version, not accuracy:

- VWW (MobileNetV1-0.25 person detection, vww_96_float.onnx, quantised here by
  `kiln quantize --per-channel --method M`; minmax also with its worst layer left in float and with
  7-bit weights, `--reduce-range`): real pictures shipped by Debian packages, cut to
  96x96 RGB in [0, 1] (pixel / 255: the scale of vww_96_int8.tflite's input, 1/255, and of the
  MLPerf training pipeline). Calibration (200): random crops of sklearn's flower.jpg and of scipy's
  raccoon face (`scipy.misc.face`), and 40 sklearn digits. Evaluation (600, disjoint from the
  calibration by source picture): crops of sklearn's china.jpg, of scipy's `ascent` (people on a
  staircase, grey replicated to RGB) and 200 other sklearn digits (8x8 upsampled to 96x96).
  Crops: square, side uniform between 96 px and the picture's short side, random position,
  half of them mirrored, resized with PIL's bilinear filter (antialiased).
- KWS (DS-CNN, the tf2onnx int8 QDQ kws_ref_model.onnx against its fp32 twin
  kws_ref_model_float32.onnx; also the fp32 twin quantised here by `kiln quantize`): there is no
  speech on the machine, so 1 s clips are synthesised at 16 kHz (seeded): 80 % word-like
  utterances of one to three syllables (a glottal pulse train at 85-255 Hz with jitter and falling
  pitch, through three formant resonators of a random vowel, gliding to a second vowel; fricative
  or plosive noise onsets and codas; attack/decay envelopes; peak level 0.03-0.9) in background
  noise at 5-40 dB SNR, and 20 % noise only (white, pink or brown, level 1e-4-0.05); 30 % of the
  word clips end in 0.05-0.4 s of digital silence (Speech Commands pads short recordings). Features are
  computed the way the MLPerf Tiny KWS pipeline does: |STFT| of 30 ms periodic-Hann frames every
  20 ms (512-point FFT, 49 frames), 40 HTK-mel triangles over 20-4000 Hz, log(mel + 1e-6),
  DCT-II scaled by 1/sqrt(2*40), first 10 coefficients. (The int8 model's input range,
  scale 0.5847 zero point 83, i.e. [-123.4, 25.7], matches: -123.6 is the first coefficient of
  digital silence.) The int8 model gets the features quantised with its own input parameters.
  kiln quantize's calibration clips are a separate seeded set.
  KWS "spoken": the ten keywords spoken by Debian's espeak-ng text-to-speech (synthetic speech, but
  the real words; skipped with a message when espeak-ng is not installed: `scripts/install-deps
  --bench`). --kws-spoken clips (default 400, seeded): 80 % keywords, 10 % other words of the
  Speech Commands set (its "unknown" class), 10 % background noise only; English voices and
  variants of espeak-ng, 120-200 words per minute, pitch 25-75, resampled to 16 kHz, placed at a
  random offset in 1 s, peak level 0.05-0.9, in white/pink/brown noise at 10-40 dB SNR. Besides
  agreement, the fp32 and int8 top-1 accuracy against the spoken word (the MLPerf label order:
  down, go, left, no, off, on, right, stop, up, yes, silence, unknown). kiln quantize (each
  --methods method; percentile with the input quantised to int16, --input-bits 16, also with 7-bit
  weights, --reduce-range; percentile with the first convolution left in float) calibrates on 200 other spoken clips (another seed) for
  these rows.
- AD (FC autoencoder, ad01_int8.onnx vs ad01_fp32.onnx): the one sample input of the reference
  submission (40 vectors of 640 log-mel features): output SQNR, and the anomaly score (mean
  squared reconstruction error) fp32 vs int8. No top-1 (not a classifier).

Reported per model: top-1 agreement (argmax equal; with the int8 softmax outputs' ties counted),
SQNR in dB of the int8 model's (dequantised) output against fp32's over all evaluation samples,
and for kiln quantize the lowest per-layer SQNR from its report (the layer that hurts most).
--ort also runs the VWW minmax int8 file in ONNX Runtime (bench/ort_bench.js) on the same inputs.
The kiln binary is copied into the --out folder first and the copy is run.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import warnings

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


def kiln(binary, *args):
    p = subprocess.run([binary, *args], capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit("kiln %s failed (%d): %s" % (" ".join(args), p.returncode, p.stderr))
    return p.stdout


def kiln_run(binary, model, inputs, work, extra=()):
    """Run once; inputs {name: array}; returns {output file stem: array}."""
    out = os.path.join(work, "out")
    if os.path.isdir(out):
        for f in os.listdir(out):
            os.remove(os.path.join(out, f))
    args = []
    for name, x in inputs.items():
        f = os.path.join(work, "in_%s.npy" % name.replace("/", "_"))
        np.save(f, x)
        args += ["--input", "%s=%s" % (name, f)]
    kiln(binary, "run", model, *args, "--output-dir", out, *extra)
    return {f[:-4]: np.load(os.path.join(out, f)) for f in os.listdir(out) if f.endswith(".npy")}


def ort_run(model, inputs, work):
    """ONNX Runtime (onnxruntime-node) once on the same inputs, or None when it is not installed."""
    out = os.path.join(work, "ort_out")
    cmd = ["node", os.path.join(HERE, "..", "ort_bench.js"), model, "--warmup", "0", "--min-runs", "1",
           "--min-seconds", "0", "--output-dir", out]
    for name, x in inputs.items():
        f = os.path.join(work, "ort_in_%s.npy" % name.replace("/", "_"))
        np.save(f, x)
        cmd += ["--input", "%s=%s" % (name, f)]
    try:
        p = subprocess.run(cmd, capture_output=True, text=True)
    except FileNotFoundError:
        return None
    if p.returncode != 0:
        print("ort_bench.js failed: %s" % p.stderr.strip()[:300], file=sys.stderr)
        return None
    return {f[:-4]: np.load(os.path.join(out, f)) for f in os.listdir(out) if f.endswith(".npy")}


def short(node):
    """The layer of a tf2onnx node name ('model/a/Relu;...;model/depthwise_conv2d_5/BiasAdd/...1' -> depthwise_conv2d_5)."""
    last = node.split(";")[-1].split("/")
    return last[1] if len(last) > 1 else last[0]


def sqnr_db(ref, test):
    ref, test = np.asarray(ref, np.float64), np.asarray(test, np.float64)
    noise = ((ref - test) ** 2).sum()
    return float("inf") if noise == 0 else float(10 * np.log10((ref ** 2).sum() / noise))


def agreement(p32, p8):
    """Top-1 agreement; ties of the int8 output's maximum (a quantised softmax) count as agreeing only
    when fp32's class is among the tied ones, and are counted."""
    top32 = p32.argmax(axis=1)
    mx = p8.max(axis=1, keepdims=True)
    tied = (p8 == mx).sum(axis=1) > 1
    agree = (p8.argmax(axis=1) == top32)
    agree_tie_ok = p8[np.arange(len(p8)), top32] == mx[:, 0]
    srt = np.sort(p32, axis=1)
    margin = srt[:, -1] - srt[:, -2]            # fp32's top-1 minus its runner-up
    sure = margin >= 0.2
    return {"samples": int(len(p32)), "agreement": float(agree.mean()),
            "agreement_ties_ok": float(agree_tie_ok.mean()), "int8_ties": int(tied.sum()),
            "disagreement_fp32_margins": sorted(round(float(m), 3) for m in margin[~agree]),
            "fp32_margin_ge_0.2": int(sure.sum()), "agreement_margin_ge_0.2": float(agree[sure].mean()) if sure.any() else None}


# ------------------------------------------------------------------------------------------------
# VWW: pictures from Debian's python3-sklearn and python3-scipy
# ------------------------------------------------------------------------------------------------
def pictures():
    from sklearn.datasets import load_sample_images
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import scipy.misc
        face, ascent = scipy.misc.face(), scipy.misc.ascent()
    s = load_sample_images()
    named = dict(zip([os.path.basename(f) for f in s.filenames], s.images))
    grey = np.clip(ascent, 0, 255).astype(np.uint8)
    return {"flower.jpg": named["flower.jpg"], "face": face, "china.jpg": named["china.jpg"],
            "ascent": np.stack([grey] * 3, axis=-1)}


def crops(img, count, rng):
    from PIL import Image
    h, w = img.shape[:2]
    out = []
    for _ in range(count):
        side = int(rng.integers(96, min(h, w) + 1))
        y, x = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
        c = img[y:y + side, x:x + side]
        if rng.random() < 0.5:
            c = c[:, ::-1]
        c = np.asarray(Image.fromarray(np.ascontiguousarray(c)).resize((96, 96), Image.BILINEAR))
        out.append(c.astype(np.float32) / 255.0)
    return np.stack(out)


def digit_pictures(idx):
    from PIL import Image
    from sklearn.datasets import load_digits
    d = load_digits().images[idx] / 16.0
    out = [np.asarray(Image.fromarray((255 * x).astype(np.uint8)).resize((96, 96), Image.BILINEAR)) for x in d]
    return np.stack([np.stack([o] * 3, axis=-1) for o in out]).astype(np.float32) / 255.0


def vww_sets():
    rng = np.random.default_rng(1)
    p = pictures()
    calib = np.concatenate([crops(p["flower.jpg"], 80, rng), crops(p["face"], 80, rng), digit_pictures(np.arange(40))])
    parts = [("china.jpg crops", crops(p["china.jpg"], 200, rng)), ("ascent crops", crops(p["ascent"], 200, rng)),
             ("digits", digit_pictures(np.arange(1000, 1200)))]
    return calib, parts


def run_vww(a, work, rows):
    src = os.path.join(a.data, "mlperf_tiny_onnx", "vww_96_float.onnx")
    if not os.path.exists(src):
        print("skipped VWW: %s absent" % src, file=sys.stderr)
        return
    calib, parts = vww_sets()
    cdir = os.path.join(work, "vww_calibration")
    os.makedirs(cdir, exist_ok=True)
    np.save(os.path.join(cdir, "calibration.npy"), calib)
    x = np.concatenate([p for _, p in parts])
    names = [n for n, p in parts for _ in range(len(p))]
    y32 = next(iter(kiln_run(a.kiln, src, {"input_1": x}, work).values())).astype(np.float64)
    worst = None
    # Every method, then minmax with its lowest-SQNR layer left in float, then minmax with 7-bit
    # weights (--reduce-range: the faster kernel of AVX2 CPUs without VNNI).
    for method, exclude, w7 in [(m, False, False) for m in a.methods] + [("minmax", True, False), ("minmax", False, True)]:
        if exclude and worst is None:
            continue
        out = os.path.join(work, "vww_96.int8.%s%s%s.onnx" % (method, ".exclude-worst" if exclude else "", ".w7" if w7 else ""))
        report = json.loads(kiln(a.kiln, "quantize", src, "--calibration", cdir, "--output", out, "--per-channel",
                                 "--method", method, "--json", *(["--exclude", worst] if exclude else []),
                                 *(["--reduce-range"] if w7 else [])))
        if method == "minmax" and not exclude and report.get("layers"):
            worst = min(report["layers"], key=lambda l: l["sqnr_db"])["node"]
        y8 = next(iter(kiln_run(a.kiln, out, {"input_1": x}, work).values())).astype(np.float64)
        r = {"model": "VWW", "int8": "kiln quantize --per-channel --method %s%s%s" % (
                 method, " --exclude %s" % short(worst) if exclude else "", " --reduce-range" if w7 else ""),
             "inputs": "600 crops at 96x96 (200 of sklearn's china.jpg, 200 of scipy's ascent, 200 sklearn digits "
                       "1000-1199); calibration 200 others (80 of flower.jpg, 80 of scipy's face, digits 0-39)",
             **agreement(y32, y8), "output_sqnr_db": sqnr_db(y32, y8),
             "fp32_person_fraction": float((y32.argmax(axis=1) == 1).mean()),
             "near_boundary": int((np.abs(y32[:, 1] - 0.5) < 0.05).sum()),
             "fp32_person": int((y32.argmax(axis=1) == 1).sum()),
             "person_agreement": int(((y32.argmax(axis=1) == 1) & (y8.argmax(axis=1) == 1)).sum()),
             "int8_person": int((y8.argmax(axis=1) == 1).sum()),
             "per_source": {n: float((y32.argmax(axis=1) == y8.argmax(axis=1))[[m == n for m in names]].mean())
                            for n, _ in parts}}
        r["layers"] = [{k: l.get(k) for k in ("node", "op_type", "sqnr_db")} for l in report.get("layers", [])]
        r["worst_layers"] = sorted(r["layers"], key=lambda l: l["sqnr_db"])[:3]
        r["calibration_output_sqnr_db"] = report["outputs"][0]["sqnr_db"] if report.get("outputs") else None
        if a.ort and method == "minmax" and not exclude:
            o = ort_run(out, {"input_1": x}, work)
            if o:
                yo = next(iter(o.values())).astype(np.float64)
                r["ort"] = {**agreement(y32, yo), "output_sqnr_db": sqnr_db(y32, yo)}
        rows.append(r)
        print(json.dumps(r), file=sys.stderr)


# ------------------------------------------------------------------------------------------------
# KWS: synthetic speech-like clips through the MLPerf Tiny KWS feature pipeline
# ------------------------------------------------------------------------------------------------
SR = 16000
# (F1, F2, F3) in Hz of a few vowels (adult averages).
VOWELS = [(730, 1090, 2440), (270, 2290, 3010), (300, 870, 2240), (530, 1840, 2480), (570, 840, 2410),
          (660, 1720, 2410), (440, 1020, 2240), (490, 1350, 1690)]


def resonator(x, f, bw):
    """Two-pole resonator (a formant) at f Hz with bandwidth bw Hz, unit gain at f."""
    from scipy.signal import lfilter
    r = np.exp(-np.pi * bw / SR)
    a1, a2 = -2 * r * np.cos(2 * np.pi * f / SR), r * r
    return lfilter([1 - r], [1, a1, a2], x)


def coloured_noise(n, kind, rng):
    w = rng.standard_normal(n)
    if kind == "white":
        return w
    spec = np.fft.rfft(w)
    f = np.arange(len(spec)) + 1.0
    spec /= np.sqrt(f) if kind == "pink" else f
    y = np.fft.irfft(spec, n)
    return y / (y.std() + 1e-12)


def syllable(rng):
    from scipy.signal import lfilter
    dur = rng.uniform(0.12, 0.3)
    n = int(dur * SR)
    f0 = rng.uniform(85, 255) * np.linspace(1.0, rng.uniform(0.75, 1.05), n) * (1 + 0.01 * rng.standard_normal(n))
    phase = np.cumsum(f0 / SR)
    pulses = np.diff(np.floor(phase), prepend=0.0)
    glottal = lfilter([1.0], [1, -0.95], pulses)          # spectral tilt of the glottal source
    v1, v2 = VOWELS[rng.integers(len(VOWELS))], VOWELS[rng.integers(len(VOWELS))]
    t = np.linspace(0, 1, n)
    # The formants glide from the first vowel to the second: a cross-fade of the two filtered sources.
    voiced = sum((1 - t) * resonator(glottal, v1[k], 60 + 40 * k) / (k + 1) + t * resonator(glottal, v2[k], 60 + 40 * k) / (k + 1)
                 for k in range(3))
    env = np.minimum(1, np.minimum(t / 0.15, (1 - t) / 0.3))
    voiced *= np.clip(env, 0, 1)
    parts = []
    if rng.random() < 0.7:    # onset: fricative (high band noise) or plosive burst
        m = int(rng.uniform(0.02, 0.09) * SR)
        z = rng.standard_normal(m)
        z = z if rng.random() < 0.5 else resonator(z, rng.uniform(1500, 6000), 800)
        parts.append(z * np.hanning(m) * rng.uniform(0.1, 0.6))
    parts.append(voiced / (np.abs(voiced).max() + 1e-12))
    if rng.random() < 0.4:    # coda
        m = int(rng.uniform(0.02, 0.08) * SR)
        parts.append(rng.standard_normal(m) * np.hanning(m) * rng.uniform(0.05, 0.4))
    return np.concatenate(parts)


def clip(rng):
    n = SR
    kind = ["white", "pink", "brown"][rng.integers(3)]
    noise = coloured_noise(n, kind, rng)
    if rng.random() < 0.2:                                 # background only
        return noise * 10 ** rng.uniform(-4, np.log10(0.05))
    word = np.concatenate([syllable(rng) for _ in range(rng.integers(1, 4))])[:int(0.9 * n)]
    x = np.zeros(n)
    start = rng.integers(0, n - len(word) + 1)
    x[start:start + len(word)] = word
    x *= rng.uniform(0.03, 0.9) / (np.abs(x).max() + 1e-12)
    speech_rms = np.sqrt((word ** 2).mean()) * rng.uniform(0.03, 0.9) / (np.abs(word).max() + 1e-12)
    x += noise * speech_rms / 10 ** (rng.uniform(5, 40) / 20)
    if rng.random() < 0.3:    # a recording shorter than 1 s, padded with digital silence
        x[n - int(rng.uniform(0.05, 0.4) * n):] = 0
    return np.clip(x, -1, 1)


def mel_matrix(num_bins=257, mel_bins=40, lo=20.0, hi=4000.0):
    """Triangles on the HTK mel scale, zero at DC, peaks of height 1 (the TensorFlow convention)."""
    def mel(f):
        return 1127.0 * np.log1p(np.asarray(f) / 700.0)
    freqs = np.linspace(0, SR / 2, num_bins)[1:]
    m = mel(freqs)[:, None]
    edges = np.linspace(mel(lo), mel(hi), mel_bins + 2)
    left, centre, right = edges[:-2], edges[1:-1], edges[2:]
    w = np.maximum(0, np.minimum((m - left) / (centre - left), (right - m) / (right - centre)))
    return np.vstack([np.zeros((1, mel_bins)), w])


def mfcc(x, mel_w):
    frames = np.stack([x[i:i + 480] for i in range(0, len(x) - 480 + 1, 320)])        # 49 x 480
    win = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(480) / 480)                          # periodic Hann
    spec = np.abs(np.fft.rfft(frames * win, 512))
    logmel = np.log(spec @ mel_w + 1e-6)
    n = logmel.shape[-1]
    k = np.arange(n)
    dct = 2 * np.cos(np.pi * k[None, :] * (2 * k[:, None] + 1) / (2 * n))              # DCT-II, unnormalised
    return (logmel @ dct / np.sqrt(2 * n))[:, :10].astype(np.float32)


def kws_features(count, seed):
    rng = np.random.default_rng(seed)
    w = mel_matrix()
    return np.stack([mfcc(clip(rng), w) for _ in range(count)]).reshape(count, 1, 49, 10, 1)


KEYWORDS = ["down", "go", "left", "no", "off", "on", "right", "stop", "up", "yes"]   # MLPerf KWS classes 0-9
OTHER_WORDS = ["bed", "bird", "cat", "dog", "happy", "house", "marvin", "sheila", "tree", "wow"]
VOICES = ["en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp", "en-gb-x-gbclan", "en-gb-x-gbcwmd", "en-029"]
VARIANTS = ["", "+m1", "+m2", "+m3", "+m4", "+m7", "+f1", "+f2", "+f3", "+f4"]


def spoken_word(word, rng, work):
    """One word from espeak-ng at 16 kHz, leading and trailing silence cut."""
    import wave
    from scipy.signal import resample_poly
    path = os.path.join(work, "espeak.wav")
    voice = VOICES[rng.integers(len(VOICES))] + VARIANTS[rng.integers(len(VARIANTS))]
    subprocess.run(["espeak-ng", "-v", voice, "-s", str(int(rng.uniform(120, 200))), "-p", str(int(rng.uniform(25, 75))),
                    "-w", path, word], check=True, capture_output=True)
    with wave.open(path) as f:
        sr = f.getframerate()
        x = np.frombuffer(f.readframes(f.getnframes()), np.int16).astype(np.float64) / 32768
    x = resample_poly(x, SR, sr)
    loud = np.nonzero(np.abs(x) > 1e-3 * np.abs(x).max())[0]
    return x[loud[0]:loud[-1] + 1][:SR]


def spoken_features(count, seed, work):
    """MFCCs of `count` spoken 1 s clips and their MLPerf labels (10: silence / noise only, 11: other word)."""
    rng = np.random.default_rng(seed)
    w = mel_matrix()
    feats, labels = [], []
    for _ in range(count):
        kind = ["white", "pink", "brown"][rng.integers(3)]
        noise = coloured_noise(SR, kind, rng)
        u = rng.random()
        if u < 0.1:
            x, label = noise * 10 ** rng.uniform(-4, np.log10(0.05)), 10
        else:
            label = int(rng.integers(10)) if u < 0.9 else 11
            word = spoken_word(KEYWORDS[label] if label < 10 else OTHER_WORDS[rng.integers(len(OTHER_WORDS))], rng, work)
            x = np.zeros(SR)
            start = rng.integers(0, SR - len(word) + 1)
            x[start:start + len(word)] = word * rng.uniform(0.05, 0.9) / (np.abs(word).max() + 1e-12)
            rms = np.sqrt((x[start:start + len(word)] ** 2).mean())
            x += noise * rms / 10 ** (rng.uniform(10, 40) / 20)
        feats.append(mfcc(np.clip(x, -1, 1), w))
        labels.append(label)
    return np.stack(feats).reshape(count, 1, 49, 10, 1), np.array(labels)


def kws_quantized(a, work, f32, cdir, prefix, variant_method, feats):
    """The KWS fp32 model through `kiln quantize --per-channel` with each method, then with
    `variant_method` and the input quantised to int16 (`--input-bits 16`, the first convolution on
    the int16 kernels), the same with 7-bit weights (`--reduce-range`), then with `variant_method` and the first convolution left in float (so the
    input is not rounded at all; `kiln bench` the .input16 and .exclude-first files for their speed):
    yields (row label, outputs on feats, report)."""
    first = None
    variants = [(m, "", []) for m in a.methods] + [(variant_method, ".input16", ["--input-bits", "16"]),
                                                   (variant_method, ".input16-w7", ["--input-bits", "16", "--reduce-range"]),
                                                   (variant_method, ".exclude-first", None)]
    for method, suffix, extra in variants:
        if extra is None:  # the first convolution's name comes from the first report
            if first is None:
                continue
            extra = ["--exclude", first]
        out = os.path.join(work, "%s%s%s.onnx" % (prefix, method, suffix))
        report = json.loads(kiln(a.kiln, "quantize", f32, "--calibration", cdir, "--output", out, "--per-channel",
                                 "--method", method, "--json", *extra))
        if first is None and report.get("layers"):
            first = report["layers"][0]["node"]
        yk = np.array([next(iter(kiln_run(a.kiln, out, {"input_1": f}, work).values()))[0] for f in feats], np.float64)
        label = " ".join(["kiln quantize --per-channel --method %s" % method] +
                         [short(x) if x == first else x for x in extra])
        yield label, yk, report


def run_kws_spoken(a, work, rows, f32, i8):
    if shutil.which("espeak-ng") is None:
        print("skipped KWS spoken keywords: espeak-ng is not installed (scripts/install-deps --bench)", file=sys.stderr)
        return
    xs, xz, ys, yz = 0.5847029, 83, 0.00390625, -128       # input_1 / Identity parameters of kws_ref_model.onnx
    feats, labels = spoken_features(a.kws_spoken, seed=4, work=work)
    y32 = np.array([next(iter(kiln_run(a.kiln, f32, {"input_1": f}, work).values()))[0] for f in feats], np.float64)
    y8 = np.array([(next(iter(kiln_run(a.kiln, i8, {"input_1": np.clip(np.rint(f / xs) + xz, -128, 127).astype(np.int8)},
                                        work).values()))[0].astype(np.float64) - yz) * ys for f in feats])
    base = {"model": "KWS spoken",
            "inputs": "%d clips of espeak-ng speech (%d keywords, %d other words, %d noise only), MLPerf KWS MFCC "
                      "pipeline" % (len(labels), (labels < 10).sum(), (labels == 11).sum(), (labels == 10).sum()),
            "fp32_accuracy": float((y32.argmax(axis=1) == labels).mean()),
            "fp32_keyword_accuracy": float((y32.argmax(axis=1) == labels)[labels < 10].mean())}
    r = {**base, "int8": "kws_ref_model.onnx (MLPerf Tiny int8)", **agreement(y32, y8), "output_sqnr_db": sqnr_db(y32, y8),
         "int8_accuracy": float((y8.argmax(axis=1) == labels).mean())}
    rows.append(r)
    print(json.dumps(r), file=sys.stderr)
    cdir = os.path.join(work, "kws_spoken_calibration")
    os.makedirs(cdir, exist_ok=True)
    np.save(os.path.join(cdir, "calibration.npy"), spoken_features(200, seed=5, work=work)[0])
    for label, yk, _ in kws_quantized(a, work, f32, cdir, "kws.int8.spoken-", "percentile", feats):
        r = {**base, "int8": label + " (spoken calibration)", **agreement(y32, yk),
             "output_sqnr_db": sqnr_db(y32, yk), "int8_accuracy": float((yk.argmax(axis=1) == labels).mean())}
        rows.append(r)
        print(json.dumps(r), file=sys.stderr)


def run_kws(a, work, rows):
    tiny = os.path.join(a.data, "mlperf_tiny_onnx")
    f32, i8 = os.path.join(tiny, "kws_ref_model_float32.onnx"), os.path.join(tiny, "kws_ref_model.onnx")
    if not (os.path.exists(f32) and os.path.exists(i8)):
        print("skipped KWS: %s or %s absent" % (f32, i8), file=sys.stderr)
        return
    xs, xz, ys, yz = 0.5847029, 83, 0.00390625, -128       # input_1 / Identity parameters of kws_ref_model.onnx
    feats = kws_features(a.kws_clips, seed=2)
    lo, hi = xs * (-128 - xz), xs * (127 - xz)
    clipped = float(((feats < lo) | (feats > hi)).mean())
    y32, y8, yin = [], [], []
    for f in feats:
        y32.append(next(iter(kiln_run(a.kiln, f32, {"input_1": f}, work).values()))[0])
        q = np.clip(np.rint(f / xs) + xz, -128, 127).astype(np.int8)
        y8.append((next(iter(kiln_run(a.kiln, i8, {"input_1": q}, work).values()))[0].astype(np.float64) - yz) * ys)
        # The fp32 model on the int8 input grid: how much the input quantisation alone costs.
        xq = ((q.astype(np.float32) - xz) * xs).astype(np.float32)
        yin.append(next(iter(kiln_run(a.kiln, f32, {"input_1": xq}, work).values()))[0])
    y32, y8, yin = np.array(y32, np.float64), np.array(y8), np.array(yin, np.float64)
    fp32_classes = np.bincount(y32.argmax(axis=1), minlength=12)
    base = {"model": "KWS",
            "inputs": "%d synthetic 1 s clips, MLPerf KWS MFCC pipeline (range %.1f..%.1f; %.2f%% of values outside "
                      "the int8 input range)" % (a.kws_clips, feats.min(), feats.max(), 100 * clipped),
            "fp32_class_histogram": fp32_classes.tolist()}
    r = {**base, "int8": "kws_ref_model.onnx (MLPerf Tiny int8)", **agreement(y32, y8),
         "output_sqnr_db": sqnr_db(y32, y8),
         "input_quantisation_only": {**agreement(y32, yin), "output_sqnr_db": sqnr_db(y32, yin),
                                     "input_sqnr_db_per_coefficient": [round(sqnr_db(feats[..., k, 0], ((np.clip(
                                         np.rint(feats[..., k, 0] / xs) + xz, -128, 127) - xz) * xs)), 1)
                                         for k in range(10)]}}
    rows.append(r)
    print(json.dumps(r), file=sys.stderr)
    # The fp32 twin quantised by kiln quantize on another seeded set of clips (per-layer SQNR report).
    cdir = os.path.join(work, "kws_calibration")
    os.makedirs(cdir, exist_ok=True)
    np.save(os.path.join(cdir, "calibration.npy"), kws_features(200, seed=3).reshape(200, 1, 49, 10, 1))
    for label, yk, report in kws_quantized(a, work, f32, cdir, "kws.int8.", "minmax", feats):
        r = {**base, "int8": label, **agreement(y32, yk), "output_sqnr_db": sqnr_db(y32, yk),
             "layers": [{k: l.get(k) for k in ("node", "op_type", "sqnr_db")} for l in report.get("layers", [])]}
        r["worst_layers"] = sorted(r["layers"], key=lambda l: l["sqnr_db"])[:3]
        rows.append(r)
        print(json.dumps(r), file=sys.stderr)
    if a.kws_spoken > 0:
        run_kws_spoken(a, work, rows, f32, i8)


# ------------------------------------------------------------------------------------------------
# AD: the reference submission's sample input
# ------------------------------------------------------------------------------------------------
def run_ad(a, work, rows):
    tiny = os.path.join(a.data, "mlperf_tiny_onnx")
    f32, i8 = os.path.join(tiny, "ad01_fp32.onnx"), os.path.join(tiny, "ad01_int8.onnx")
    sample = os.path.join(a.data, "mlperf_tiny", "ad", "normal_id_01_00000000_hist_librosa.bin")
    if not all(os.path.exists(p) for p in (f32, i8, sample)):
        print("skipped AD: model or sample input absent", file=sys.stderr)
        return
    frames = np.fromfile(sample, dtype=np.float32).reshape(-1, 1, 640)
    xs, xz, ys, yz = 0.39101523, 89, 0.36449847, 96        # input_1 / Identity parameters of ad01_int8.onnx
    y32, y8, same, total = [], [], 0, 0
    for f in frames:
        y32.append(next(iter(kiln_run(a.kiln, f32, {"input_1": f}, work).values()))[0])
        q = np.clip(np.rint(f / xs) + xz, -128, 127).astype(np.int8)
        o = next(iter(kiln_run(a.kiln, i8, {"input_1": q}, work).values()))
        ref = next(iter(kiln_run(a.kiln, i8, {"input_1": q}, work, ["--no-optimize"]).values()))
        same += int((o == ref).sum())
        total += o.size
        y8.append((o[0].astype(np.float64) - yz) * ys)
    y32, y8, x = np.array(y32, np.float64), np.array(y8), frames[:, 0].astype(np.float64)
    s32, s8 = ((x - y32) ** 2).mean(axis=1), ((x - y8) ** 2).mean(axis=1)
    r = {"model": "AD", "int8": "ad01_int8.onnx (MLPerf Tiny int8)",
         "inputs": "the reference submission's sample (%d vectors of 640)" % len(frames), "samples": int(len(frames)),
         "output_sqnr_db": sqnr_db(y32, y8), "anomaly_score_max_rel_diff": float(np.abs(s8 - s32).max() / s32.max()),
         "anomaly_score_fp32_mean": float(s32.mean()), "anomaly_score_int8_mean": float(s8.mean()),
         "int8_equal_to_reference": same / total}
    rows.append(r)
    print(json.dumps(r), file=sys.stderr)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("kiln")
    ap.add_argument("--data", default=os.path.join(os.path.dirname(ROOT), "shared", "data", "models"))
    ap.add_argument("--out", help="keep the models and data here (default: a temporary folder)")
    ap.add_argument("--methods", default="minmax,percentile,entropy")
    ap.add_argument("--kws-clips", type=int, default=400)
    ap.add_argument("--kws-spoken", type=int, default=400, help="spoken keyword clips (espeak-ng); 0 to skip")
    ap.add_argument("--only", default="vww,kws,ad")
    ap.add_argument("--ort", action="store_true", help="also run the VWW minmax int8 file in ONNX Runtime")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    a.methods = [m for m in a.methods.split(",") if m]
    work = a.out or tempfile.mkdtemp(prefix="kiln_mlperf_")
    os.makedirs(work, exist_ok=True)
    # Run a private copy of the binary: a rebuild during the run must not mix two builds.
    private = os.path.join(os.path.abspath(work), "kiln-under-test")
    shutil.copy2(a.kiln, private + ".tmp")
    os.replace(private + ".tmp", private)
    a.kiln = private
    rows = []
    only = a.only.split(",")
    if "vww" in only:
        run_vww(a, work, rows)
    if "kws" in only:
        run_kws(a, work, rows)
    if "ad" in only:
        run_ad(a, work, rows)
    if a.json:
        print(json.dumps(rows, indent=2))
        return
    print("| model | int8 model | top-1 agreement | output SQNR dB | lowest layer SQNR (kiln quantize) |")
    print("|---|---|---|---|---|")
    for r in rows:
        agree = "–" if "agreement" not in r else "%.2f%% (%d/%d)" % (100 * r["agreement"], round(r["agreement"] * r["samples"]),
                                                                     r["samples"])
        if r.get("int8_ties"):
            agree += "; %.2f%% counting %d int8 ties" % (100 * r["agreement_ties_ok"], r["int8_ties"])
        worst = "–"
        if r.get("worst_layers"):
            w = r["worst_layers"][0]
            worst = "%.1f dB, %s (layer %d of %d)" % (w["sqnr_db"], short(w["node"]), r["layers"].index(w) + 1, len(r["layers"]))
        print("| %s | %s | %s | %.1f | %s |" % (r["model"], r["int8"], agree, r["output_sqnr_db"], worst))
    print()
    for m in dict.fromkeys(r["model"] for r in rows):
        print("- %s inputs: %s" % (m, next(r["inputs"] for r in rows if r["model"] == m)))
    print("\nThe disagreements against fp32's confidence (margin = fp32's top-1 probability minus its runner-up's):\n")
    print("| model | int8 model | samples with margin >= 0.2 | agreement on them | largest margin among disagreements |")
    print("|---|---|---|---|---|")
    for r in rows:
        if r.get("agreement_margin_ge_0.2") is not None:
            m = r["disagreement_fp32_margins"]
            print("| %s | %s | %d | %.2f%% | %s |" % (r["model"], r["int8"], r["fp32_margin_ge_0.2"],
                                                    100 * r["agreement_margin_ge_0.2"], "%.3f" % max(m) if m else "–"))
    print()
    for r in rows:
        if "per_source" in r and "exclude" not in r["int8"]:
            print("- VWW, %s: fp32 says 'person' on %d of the %d crops (int8 on %d, both on %d), %d within 0.05 of 0.5; "
                  "agreement by source: %s." % (r["int8"], r["fp32_person"], r["samples"], r["int8_person"],
                                                r["person_agreement"], r["near_boundary"],
                                                ", ".join("%s %.1f%%" % (k, 100 * v) for k, v in r["per_source"].items())))
        if "ort" in r:
            print("- VWW, ONNX Runtime on the same %s file: agreement %.2f%%, output SQNR %.1f dB." %
                  (r["int8"], 100 * r["ort"]["agreement"], r["ort"]["output_sqnr_db"]))
        if "fp32_keyword_accuracy" in r:
            print("- KWS spoken, %s: top-1 accuracy against the spoken word fp32 %.2f%% (keywords only %.2f%%), int8 %.2f%%." %
                  (r["int8"], 100 * r["fp32_accuracy"], 100 * r["fp32_keyword_accuracy"], 100 * r["int8_accuracy"]))
        if "input_quantisation_only" in r:
            q = r["input_quantisation_only"]
            print("- KWS fp32 top-1 classes over the synthetic clips (outputs 0-11): %s." % r["fp32_class_histogram"])
            print("- KWS, the fp32 model on its input rounded to the int8 model's input grid (scale %.4f, zero point 83): "
                  "agreement %.2f%%, output SQNR %.1f dB; SQNR of that rounding per MFCC coefficient 0-9: %s dB." % (
                      0.5847029, 100 * q["agreement"], q["output_sqnr_db"], ", ".join(
                          "%.1f" % v for v in q["input_sqnr_db_per_coefficient"])))
        if "anomaly_score_max_rel_diff" in r:
            print("- AD: anomaly score (mean squared reconstruction error) fp32 mean %.3f, int8 mean %.3f, largest "
                  "difference %.1f%% of the largest score; Kiln's int8 outputs equal to its reference kernels on the QDQ "
                  "graph (--no-optimize): %.2f%%." %
                  (r["anomaly_score_fp32_mean"], r["anomaly_score_int8_mean"], 100 * r["anomaly_score_max_rel_diff"],
                   100 * r["int8_equal_to_reference"]))

if __name__ == "__main__":
    main()
