#!/usr/bin/python3
"""Generates Kiln's example and regression models: three MLPerf-Tiny-style networks.

    /usr/bin/python3 examples/models/make_models.py OUT_DIR

For each model it writes OUT_DIR/<name>/model.onnx and OUT_DIR/<name>/test_data_set_0/
{input_0.pb, output_0.pb} in the layout of the ONNX backend tests, plus OUT_DIR/<name>.onnx
(a copy, for `kiln info`/`kiln bench`). The weights are random (seeded) and the architectures
follow the MLPerf Tiny reference models:

  kws_dscnn       keyword spotting DS-CNN, input 1x1x49x10 MFCC, 12 classes
  ad_autoencoder  anomaly detection FC autoencoder, input 1x640, BatchNorm after each Gemm
  ic_resnet8      image classification ResNet-8, input 1x3x32x32, 10 classes

The expected outputs are computed by the plain numpy implementation below, written from the
ONNX operator definitions and independent of Kiln, so the regression test can catch a wrong
answer. Exports keep BatchNormalization as separate nodes, as PyTorch exports do.
"""
import os
import shutil
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

# ---------------------------------------------------------------- numpy reference operators


def conv2d(x, w, b, stride=(1, 1), pads=(0, 0, 0, 0), group=1):
    n, c, h, wd = x.shape
    m, cg, kh, kw = w.shape
    pt, pl, pb, pr = pads
    xp = np.pad(x, ((0, 0), (0, 0), (pt, pb), (pl, pr)))
    oh = (h + pt + pb - kh) // stride[0] + 1
    ow = (wd + pl + pr - kw) // stride[1] + 1
    y = np.zeros((n, m, oh, ow), np.float64)
    mg = m // group
    for g in range(group):
        xs = xp[:, g * cg:(g + 1) * cg]
        ws = w[g * mg:(g + 1) * mg]
        for i in range(kh):
            for j in range(kw):
                patch = xs[:, :, i:i + stride[0] * oh:stride[0], j:j + stride[1] * ow:stride[1]]
                y[:, g * mg:(g + 1) * mg] += np.einsum("nchw,mc->nmhw", patch, ws[:, :, i, j])
    if b is not None:
        y += b.reshape(1, -1, 1, 1)
    return y


def batchnorm(x, scale, bias, mean, var, eps=1e-5):
    shape = (1, -1) + (1,) * (x.ndim - 2)
    return (x - mean.reshape(shape)) / np.sqrt(var.reshape(shape) + eps) * scale.reshape(shape) + bias.reshape(shape)


def relu(x):
    return np.maximum(x, 0)


def softmax(x):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


# ---------------------------------------------------------------- graph building


class Net:
    def __init__(self, name, seed):
        self.name = name
        self.rng = np.random.default_rng(seed)
        self.nodes, self.inits = [], []
        self.count = 0

    def tensor(self, prefix, arr):
        self.count += 1
        name = "%s_%d" % (prefix, self.count)
        self.inits.append(numpy_helper.from_array(np.asarray(arr, np.float32), name))
        return name

    def fresh(self, prefix):
        self.count += 1
        return "%s_%d" % (prefix, self.count)

    def conv(self, x, xv, cout, k, stride=(1, 1), pads=(0, 0, 0, 0), group=1, bias=True):
        cin = xv.shape[1]
        fan_in = cin // group * k[0] * k[1]
        w = self.rng.standard_normal((cout, cin // group, k[0], k[1])) * np.sqrt(2.0 / fan_in)
        b = self.rng.standard_normal(cout) * 0.1 if bias else None
        ins = [x, self.tensor("w", w)] + ([self.tensor("b", b)] if bias else [])
        y = self.fresh("conv")
        self.nodes.append(helper.make_node("Conv", ins, [y], kernel_shape=list(k), strides=list(stride),
                                           pads=list(pads), group=group))
        return y, conv2d(xv, w.astype(np.float32), None if b is None else b.astype(np.float32), stride, pads, group)

    def bn(self, x, xv):
        c = xv.shape[1]
        scale = 1 + 0.1 * self.rng.standard_normal(c)
        bias = 0.1 * self.rng.standard_normal(c)
        mean = 0.1 * self.rng.standard_normal(c)
        var = 0.5 + self.rng.random(c)
        y = self.fresh("bn")
        self.nodes.append(helper.make_node(
            "BatchNormalization",
            [x, self.tensor("scale", scale), self.tensor("bias", bias), self.tensor("mean", mean), self.tensor("var", var)],
            [y], epsilon=1e-5))
        f = lambda a: np.asarray(a, np.float32)
        return y, batchnorm(xv, f(scale), f(bias), f(mean), f(var))

    def relu(self, x, xv):
        y = self.fresh("relu")
        self.nodes.append(helper.make_node("Relu", [x], [y]))
        return y, relu(xv)

    def add(self, a, av, b, bv):
        y = self.fresh("add")
        self.nodes.append(helper.make_node("Add", [a, b], [y]))
        return y, av + bv

    def gemm(self, x, xv, nout):
        nin = xv.shape[1]
        w = self.rng.standard_normal((nout, nin)) * np.sqrt(2.0 / nin)
        b = self.rng.standard_normal(nout) * 0.1
        y = self.fresh("gemm")
        self.nodes.append(helper.make_node("Gemm", [x, self.tensor("w", w), self.tensor("b", b)], [y], transB=1))
        return y, xv @ w.astype(np.float32).T.astype(np.float64) + b.astype(np.float32)

    def save(self, out_dir, input_name, input_shape, x, y, yv, output_name):
        self.nodes.append(helper.make_node("Identity", [y], [output_name]))
        graph = helper.make_graph(
            self.nodes, self.name,
            [helper.make_tensor_value_info(input_name, TensorProto.FLOAT, list(input_shape))],
            [helper.make_tensor_value_info(output_name, TensorProto.FLOAT, list(yv.shape))], self.inits)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="kiln-examples")
        model.ir_version = 7
        onnx.checker.check_model(model)
        case = os.path.join(out_dir, self.name)
        data = os.path.join(case, "test_data_set_0")
        os.makedirs(data, exist_ok=True)
        onnx.save(model, os.path.join(case, "model.onnx"))
        shutil.copyfile(os.path.join(case, "model.onnx"), os.path.join(out_dir, self.name + ".onnx"))
        with open(os.path.join(data, "input_0.pb"), "wb") as f:
            f.write(numpy_helper.from_array(x.astype(np.float32), input_name).SerializeToString())
        with open(os.path.join(data, "output_0.pb"), "wb") as f:
            f.write(numpy_helper.from_array(yv.astype(np.float32), output_name).SerializeToString())


def kws_dscnn(out_dir):
    net = Net("kws_dscnn", 11)
    x = net.rng.standard_normal((1, 1, 49, 10)).astype(np.float32)
    h, hv = net.conv("input", x.astype(np.float64), 64, (10, 4), stride=(2, 2), pads=(5, 1, 4, 2), bias=False)
    h, hv = net.bn(h, hv)
    h, hv = net.relu(h, hv)
    for _ in range(4):
        h, hv = net.conv(h, hv, 64, (3, 3), pads=(1, 1, 1, 1), group=64, bias=False)
        h, hv = net.bn(h, hv)
        h, hv = net.relu(h, hv)
        h, hv = net.conv(h, hv, 64, (1, 1), bias=False)
        h, hv = net.bn(h, hv)
        h, hv = net.relu(h, hv)
    p = net.fresh("pool")
    net.nodes.append(helper.make_node("AveragePool", [h], [p], kernel_shape=list(hv.shape[2:])))
    pv = hv.mean(axis=(2, 3), keepdims=True)
    f = net.fresh("flat")
    net.nodes.append(helper.make_node("Flatten", [p], [f], axis=1))
    fv = pv.reshape(1, -1)
    g, gv = net.gemm(f, fv, 12)
    s = net.fresh("softmax")
    net.nodes.append(helper.make_node("Softmax", [g], [s], axis=-1))
    net.save(out_dir, "input", x.shape, x, s, softmax(gv), "probabilities")


def ad_autoencoder(out_dir):
    net = Net("ad_autoencoder", 12)
    x = net.rng.standard_normal((1, 640)).astype(np.float32)
    h, hv = "input", x.astype(np.float64)
    for width in [128, 128, 128, 128, 8, 128, 128, 128, 128]:
        h, hv = net.gemm(h, hv, width)
        h, hv = net.bn(h, hv)
        h, hv = net.relu(h, hv)
    h, hv = net.gemm(h, hv, 640)
    net.save(out_dir, "input", x.shape, x, h, hv, "reconstruction")


def ic_resnet8(out_dir):
    net = Net("ic_resnet8", 13)
    x = net.rng.standard_normal((1, 3, 32, 32)).astype(np.float32)
    h, hv = net.conv("input", x.astype(np.float64), 16, (3, 3), pads=(1, 1, 1, 1))
    h, hv = net.bn(h, hv)
    h, hv = net.relu(h, hv)
    for cout, stride in [(16, 1), (32, 2), (64, 2)]:
        a, av = net.conv(h, hv, cout, (3, 3), stride=(stride, stride), pads=(1, 1, 1, 1))
        a, av = net.bn(a, av)
        a, av = net.relu(a, av)
        a, av = net.conv(a, av, cout, (3, 3), pads=(1, 1, 1, 1))
        a, av = net.bn(a, av)
        if stride != 1 or cout != hv.shape[1]:
            s, sv = net.conv(h, hv, cout, (1, 1), stride=(stride, stride))
        else:
            s, sv = h, hv
        h, hv = net.add(a, av, s, sv)
        h, hv = net.relu(h, hv)
    p = net.fresh("gap")
    net.nodes.append(helper.make_node("GlobalAveragePool", [h], [p]))
    pv = hv.mean(axis=(2, 3), keepdims=True)
    f = net.fresh("flat")
    net.nodes.append(helper.make_node("Flatten", [p], [f]))
    g, gv = net.gemm(f, pv.reshape(1, -1), 10)
    s = net.fresh("softmax")
    net.nodes.append(helper.make_node("Softmax", [g], [s], axis=-1))
    net.save(out_dir, "input", x.shape, x, s, softmax(gv), "probabilities")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: make_models.py OUT_DIR")
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    for make in (kws_dscnn, ad_autoencoder, ic_resnet8):
        make(out)
        print("wrote", os.path.join(out, make.__name__))
