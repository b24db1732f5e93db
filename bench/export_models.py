#!/usr/bin/python3
"""Export the benchmark models of bench/compare to ONNX, with random seeded weights.

    /usr/bin/python3 bench/export_models.py [OUT]        (default OUT: build/bench-models)
    /usr/bin/python3 bench/export_models.py OUT --only resnet18_224,dscnn_kws_49x10

Needs Debian's python3-torch / python3-torchvision / python3-onnx (`scripts/install-deps --bench`).
Nothing is downloaded: torchvision's pretrained weights cannot be fetched here, so every model is
built with `weights=None` and initialised from a fixed seed. BatchNorm statistics and affine
parameters are randomised too (otherwise eval-mode BN is the identity). The models are for latency,
memory and agreement checks only, never for accuracy.

For each model NAME it writes into OUT:
    NAME.onnx   batch 1, static shapes, opset 13 (17 for the transformer), constant folding on
    NAME.pt     the state_dict, so bench/torch_bench.py runs exactly the exported weights
and OUT/manifest.json, which lists every model with its input name/shape and opset. It also writes
relu16_floor.onnx (one Relu on float[1,16]), the per-call overhead probe.

The MLPerf-Tiny-style models follow ../shared/data/models/generated/README.md (same architectures
and MAC counts as the MLPerf Tiny references); the torchvision ones are torchvision 0.14's own
definitions.
"""
import argparse
import json
import os
import sys
import zlib

import torch
import torch.nn as nn
import torchvision

BN_TYPES = (nn.BatchNorm1d, nn.BatchNorm2d)


# --------------------------------------------------------------------------------------------
# MLPerf-Tiny-style architectures
# --------------------------------------------------------------------------------------------
class ResNet8(nn.Module):
    """MLPerf Tiny image classification ResNet-8 (CIFAR-10, 32x32): 9 convs, 12.50 M MACs."""

    def __init__(self, num_classes=10):
        super().__init__()

        def cbr(cin, cout, stride, relu=True):
            layers = [nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout)]
            if relu:
                layers.append(nn.ReLU())
            return nn.Sequential(*layers)

        self.stem = cbr(3, 16, 1)
        self.b1 = nn.Sequential(cbr(16, 16, 1), cbr(16, 16, 1, relu=False))
        self.b2 = nn.Sequential(cbr(16, 32, 2), cbr(32, 32, 1, relu=False))
        self.s2 = nn.Conv2d(16, 32, 1, 2)
        self.b3 = nn.Sequential(cbr(32, 64, 2), cbr(64, 64, 1, relu=False))
        self.s3 = nn.Conv2d(32, 64, 1, 2)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(64, num_classes)

    def forward(self, x):
        x = self.stem(x)
        x = torch.relu(self.b1(x) + x)
        x = torch.relu(self.b2(x) + self.s2(x))
        x = torch.relu(self.b3(x) + self.s3(x))
        x = torch.flatten(self.pool(x), 1)
        return torch.softmax(self.fc(x), dim=1)


class DSCNN(nn.Module):
    """MLPerf Tiny keyword spotting DS-CNN (49x10 MFCC, 12 classes): 2,656,768 MACs.
    The stem uses symmetric padding (5,1) instead of Keras 'same' (same 25x5 output)."""

    def __init__(self, num_classes=12, width=64):
        super().__init__()
        layers = [nn.Conv2d(1, width, (10, 4), (2, 2), (5, 1)), nn.BatchNorm2d(width), nn.ReLU()]
        for _ in range(4):
            layers += [nn.Conv2d(width, width, 3, 1, 1, groups=width), nn.BatchNorm2d(width), nn.ReLU(),
                       nn.Conv2d(width, width, 1), nn.BatchNorm2d(width), nn.ReLU()]
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(width, num_classes)

    def forward(self, x):
        x = torch.flatten(self.pool(self.features(x)), 1)
        return torch.softmax(self.fc(x), dim=1)


class FCAutoencoder(nn.Module):
    """MLPerf Tiny anomaly detection autoencoder 640-128x4-8-128x4-640 (BN kept after Gemm)."""

    def __init__(self, dim=640, hidden=128, bottleneck=8):
        super().__init__()
        sizes = [dim, hidden, hidden, hidden, hidden, bottleneck, hidden, hidden, hidden, hidden]
        layers = []
        for a, b in zip(sizes[:-1], sizes[1:]):
            layers += [nn.Linear(a, b), nn.BatchNorm1d(b), nn.ReLU()]
        layers.append(nn.Linear(hidden, dim))
        self.net = nn.Sequential(*layers)

    def forward(self, x):
        return self.net(x)


class LSTMClassifier(nn.Module):
    """2-layer LSTM, hidden 64, over 50 steps of 40 features; logits of the last step (12 classes)."""

    def __init__(self, features=40, hidden=64, layers=2, num_classes=12):
        super().__init__()
        self.lstm = nn.LSTM(features, hidden, num_layers=layers, batch_first=True)
        self.fc = nn.Linear(hidden, num_classes)

    def forward(self, x):
        y, _ = self.lstm(x)
        return self.fc(y[:, -1])


class TinyTransformer(nn.Module):
    """2 post-norm encoder layers, d_model 64, 4 heads, FFN 256, learned positions, seq 32, mean-pooled, 10 classes."""

    def __init__(self, seq=32, d=64, heads=4, ff=256, layers=2, num_classes=10):
        super().__init__()
        self.pos = nn.Parameter(torch.randn(1, seq, d) * 0.02)
        layer = nn.TransformerEncoderLayer(d, heads, ff, dropout=0.0, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers)
        # nn.TransformerEncoder deep-copies the layer: give every layer its own weights.
        for m in self.encoder.layers:
            for p in m.parameters():
                if p.dim() > 1:
                    nn.init.xavier_uniform_(p)
                else:
                    nn.init.normal_(p, 0.0, 0.02)
        self.fc = nn.Linear(d, num_classes)

    def forward(self, x):
        y = self.encoder(x + self.pos)
        return self.fc(y.mean(dim=1))


# --------------------------------------------------------------------------------------------
# The model list: name -> (builder, input shape, opset)
# --------------------------------------------------------------------------------------------
def _tv(fn):
    return lambda: fn(weights=None)


MODELS = {
    # torchvision, 224x224
    "resnet18_224": (_tv(torchvision.models.resnet18), (1, 3, 224, 224), 13),
    "mobilenet_v3_small_224": (_tv(torchvision.models.mobilenet_v3_small), (1, 3, 224, 224), 13),
    "squeezenet1_1_224": (_tv(torchvision.models.squeezenet1_1), (1, 3, 224, 224), 13),
    "efficientnet_b0_224": (_tv(torchvision.models.efficientnet_b0), (1, 3, 224, 224), 13),
    "mobilenet_v2_224": (_tv(torchvision.models.mobilenet_v2), (1, 3, 224, 224), 13),
    # MLPerf-Tiny-style (names as in ../shared/data/models/generated)
    "resnet8_cifar_32": (ResNet8, (1, 3, 32, 32), 13),
    "dscnn_kws_49x10": (DSCNN, (1, 1, 49, 10), 13),
    "fc_autoencoder_640": (FCAutoencoder, (1, 640), 13),
    "lstm2x64_50x40": (LSTMClassifier, (1, 50, 40), 13),
    "tiny_transformer_32x64": (TinyTransformer, (1, 32, 64), 17),
}


def model_seed(name):
    return zlib.crc32(name.encode()) & 0x7FFFFFFF


def randomize_bn(model, gen):
    """Eval-mode BN with default statistics is the identity; give it realistic random statistics."""
    for m in model.modules():
        if isinstance(m, BN_TYPES):
            c = m.num_features
            with torch.no_grad():
                m.running_mean.copy_(torch.randn(c, generator=gen) * 0.1)
                m.running_var.copy_(torch.rand(c, generator=gen) * 0.5 + 0.75)
                if m.affine:
                    m.weight.copy_(torch.rand(c, generator=gen) * 0.5 + 0.75)
                    m.bias.copy_(torch.randn(c, generator=gen) * 0.1)


def build(name):
    """The module NAME in eval mode with its seeded random weights (identical on every call)."""
    builder, shape, _ = MODELS[name]
    torch.manual_seed(model_seed(name))
    model = builder()
    gen = torch.Generator().manual_seed(model_seed(name) + 1)
    randomize_bn(model, gen)
    model.eval()
    return model


def load(name, folder):
    """The module NAME with the state_dict export_models.py saved in FOLDER (eval mode)."""
    builder, _, _ = MODELS[name]
    model = builder()
    model.load_state_dict(torch.load(os.path.join(folder, name + ".pt")))
    model.eval()
    return model


def write_relu_probe(path):
    import onnx
    from onnx import TensorProto, helper
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 16])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 16])
    g = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "relu16_floor", [x], [y])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)], producer_name="kiln-bench")
    m.ir_version = 7
    onnx.checker.check_model(m)
    onnx.save(m, path)


def export(name, out):
    _, shape, opset = MODELS[name]
    model = build(name)
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(1))
    path = os.path.join(out, name + ".onnx")
    tmp = path + ".tmp"
    # No torch.no_grad(): nn.TransformerEncoder takes a fused fast path under no_grad that the
    # exporter cannot trace (SETUP-NOTES). Parameters requiring grad keep every model on the
    # plain path; eval() fixes BatchNorm and Dropout.
    torch.onnx.export(model, x, tmp, opset_version=opset, input_names=["input"], output_names=["output"],
                      do_constant_folding=True)
    os.replace(tmp, path)
    torch.save(model.state_dict(), os.path.join(out, name + ".pt"))
    return {"name": name, "file": name + ".onnx", "state_dict": name + ".pt", "opset": opset,
            "inputs": [{"name": "input", "dtype": "float32", "shape": list(shape)}],
            "seed": model_seed(name), "torch": torch.__version__, "torchvision": torchvision.__version__}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", nargs="?", default="build/bench-models")
    ap.add_argument("--only", default="", help="comma-separated model names (default: all)")
    ap.add_argument("--list", action="store_true", help="print the model names and exit")
    a = ap.parse_args()
    if a.list:
        print("\n".join(MODELS))
        return
    names = [n for n in a.only.split(",") if n] or list(MODELS)
    unknown = [n for n in names if n not in MODELS]
    if unknown:
        sys.exit(f"export_models: unknown model(s) {unknown}; known: {', '.join(MODELS)}")
    os.makedirs(a.out, exist_ok=True)
    torch.set_num_threads(1)
    manifest_path = os.path.join(a.out, "manifest.json")
    manifest = {}
    if os.path.exists(manifest_path):
        with open(manifest_path) as f:
            manifest = {m["name"]: m for m in json.load(f)["models"]}
    for n in names:
        print(f"export_models: {n}", file=sys.stderr, flush=True)
        manifest[n] = export(n, a.out)
    write_relu_probe(os.path.join(a.out, "relu16_floor.onnx"))
    with open(manifest_path + ".tmp", "w") as f:
        json.dump({"models": [manifest[k] for k in MODELS if k in manifest],
                   "probe": "relu16_floor.onnx"}, f, indent=1)
    os.replace(manifest_path + ".tmp", manifest_path)
    print(f"export_models: wrote {len(names)} models to {a.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
