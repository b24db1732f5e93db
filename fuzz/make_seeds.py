#!/usr/bin/python3
"""Writes the seed corpora of the fuzz targets (fuzz/corpus/<target>/).

Run with Debian's interpreter: /usr/bin/python3 fuzz/make_seeds.py
Seeds are small valid inputs plus a few broken ones; the fuzzer mutates from there. Files the
fuzzer finds crashing are added next to them by hand (named crash-*) and stay forever.
"""
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

here = os.path.dirname(os.path.abspath(__file__))
rng = np.random.default_rng(1)


def out(target, name, data):
    d = os.path.join(here, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def init(name, arr):
    return numpy_helper.from_array(np.asarray(arr), name)


def model(nodes, inputs, outputs, inits=(), opset=13):
    g = helper.make_graph(nodes, "seed", inputs, outputs, list(inits))
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 8
    return m.SerializeToString()


def vi(name, dtype, shape):
    return helper.make_tensor_value_info(name, dtype, shape)


F = TensorProto.FLOAT
I64 = TensorProto.INT64
seeds = {}
seeds["add_broadcast"] = model([helper.make_node("Add", ["x", "b"], ["y"])], [vi("x", F, [2, 3])], [vi("y", F, None)],
                               [init("b", rng.standard_normal(3).astype(np.float32))])
seeds["conv_relu"] = model(
    [helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1], strides=[1, 1]),
     helper.make_node("Relu", ["c"], ["y"])],
    [vi("x", F, [1, 2, 5, 5])], [vi("y", F, None)],
    [init("w", rng.standard_normal((3, 2, 3, 3)).astype(np.float32)), init("b", np.zeros(3, np.float32))])
seeds["depthwise"] = model(
    [helper.make_node("Conv", ["x", "w"], ["y"], group=4, pads=[0, 1, 1, 0])],
    [vi("x", F, [1, 4, 6, 6])], [vi("y", F, None)], [init("w", rng.standard_normal((4, 1, 3, 3)).astype(np.float32))])
seeds["gemm_softmax"] = model(
    [helper.make_node("Gemm", ["x", "w", "b"], ["g"], transB=1), helper.make_node("Softmax", ["g"], ["y"], axis=-1)],
    [vi("x", F, ["N", 4])], [vi("y", F, None)],
    [init("w", rng.standard_normal((5, 4)).astype(np.float32)), init("b", np.zeros(5, np.float32))])
seeds["shape_glue"] = model(
    [helper.make_node("Shape", ["x"], ["s"]),
     helper.make_node("Gather", ["s", "i0"], ["n"], axis=0),
     helper.make_node("Unsqueeze", ["n", "ax"], ["n1"]),
     helper.make_node("Concat", ["n1", "m1"], ["shape"], axis=0),
     helper.make_node("Reshape", ["x", "shape"], ["y"])],
    [vi("x", F, ["N", 2, 3])], [vi("y", F, None)],
    [init("i0", np.array(0, np.int64)), init("ax", np.array([0], np.int64)), init("m1", np.array([-1], np.int64))])
seeds["reshape_input"] = model([helper.make_node("Reshape", ["x", "shape"], ["y"])],
                               [vi("x", F, [2, 3]), vi("shape", I64, [2])], [vi("y", F, None)])
seeds["gather_runtime"] = model([helper.make_node("Gather", ["x", "i"], ["y"], axis=0)],
                                [vi("x", F, [4, 3]), vi("i", I64, [2])], [vi("y", F, None)])
seeds["pool_pad"] = model(
    [helper.make_node("MaxPool", ["x"], ["p"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]),
     helper.make_node("AveragePool", ["p"], ["y"], kernel_shape=[2, 2], ceil_mode=1)],
    [vi("x", F, [1, 1, 7, 7])], [vi("y", F, None)])
seeds["lstm"] = model(
    [helper.make_node("LSTM", ["x", "w", "r"], ["y", "yh"], hidden_size=3)],
    [vi("x", F, [2, 1, 4])], [vi("y", F, None), vi("yh", F, None)],
    [init("w", rng.standard_normal((1, 12, 4)).astype(np.float32)), init("r", rng.standard_normal((1, 12, 3)).astype(np.float32))])
seeds["layernorm"] = model(
    [helper.make_node("LayerNormalization", ["x", "s", "b"], ["y"], axis=-1)],
    [vi("x", F, [2, 4])], [vi("y", F, None)],
    [init("s", np.ones(4, np.float32)), init("b", np.zeros(4, np.float32))], opset=17)
seeds["transpose_matmul"] = model(
    [helper.make_node("Transpose", ["x"], ["t"], perm=[1, 0]), helper.make_node("MatMul", ["t", "x"], ["y"])],
    [vi("x", F, [3, 2])], [vi("y", F, None)])
seeds["where_cast"] = model(
    [helper.make_node("Greater", ["x", "z"], ["c"]), helper.make_node("Where", ["c", "x", "z"], ["w"]),
     helper.make_node("Cast", ["w"], ["y"], to=TensorProto.INT32)],
    [vi("x", F, [5])], [vi("y", TensorProto.INT32, None)], [init("z", np.zeros(1, np.float32))])
seeds["resize"] = model(
    [helper.make_node("Resize", ["x", "", "scales"], ["y"], mode="linear")],
    [vi("x", F, [1, 1, 2, 2])], [vi("y", F, None)], [init("scales", np.array([1, 1, 2, 2], np.float32))])

for name, data in seeds.items():
    out("onnx_model", name + ".onnx", data)
# Broken models: truncated, a flipped byte, an empty file.
out("onnx_model", "truncated.onnx", seeds["conv_relu"][: len(seeds["conv_relu"]) // 2])
flipped = bytearray(seeds["gemm_softmax"])
flipped[len(flipped) // 3] ^= 0xFF
out("onnx_model", "flipped.onnx", bytes(flipped))
out("onnx_model", "empty.onnx", b"")

# kiln quantize: a flags byte (bit 0 per-channel, 1 int16 input, 2 input search, 3 reduce range,
# bits 4+ the method) before the model. The opset-10 model has the attributes that opset 21 turned
# into inputs (restated for a 16-bit input).
old_ops = model(
    [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
     helper.make_node("Clip", ["c"], ["k"], min=0.0, max=6.0),
     helper.make_node("Pad", ["k"], ["p"], pads=[0, 0, 1, 1, 0, 0, 1, 1]),
     helper.make_node("ReduceMean", ["p"], ["r"], axes=[2, 3], keepdims=1),
     helper.make_node("Squeeze", ["r"], ["q"], axes=[2, 3]),
     helper.make_node("Softmax", ["q"], ["y"], axis=1)],
    [vi("x", F, [1, 2, 5, 5])], [vi("y", F, None)],
    [init("w", rng.standard_normal((3, 2, 3, 3)).astype(np.float32))], opset=10)
for name, flags, data in [("conv_relu_int16", 0x03, seeds["conv_relu"]), ("conv_relu_entropy", 0x25, seeds["conv_relu"]),
                          ("depthwise", 0x1B, seeds["depthwise"]), ("gemm_softmax_int16", 0x02, seeds["gemm_softmax"]),
                          ("opset10_int16", 0x07, old_ops), ("opset10_int8", 0x00, old_ops),
                          ("lstm", 0x02, seeds["lstm"]), ("truncated", 0x03, old_ops[: len(old_ops) // 2])]:
    out("quantize_model", name + ".bin", bytes([flags]) + data)

for i, arr in enumerate([np.arange(6, dtype=np.float32).reshape(2, 3), np.array([1, 2, 3], np.int64),
                         np.array(True), np.zeros((0, 4), np.float64), np.array([-1, 2], np.int8)]):
    t = numpy_helper.from_array(arr, "t%d" % i)
    out("tensor_pb", "t%d.pb" % i, t.SerializeToString())
t = helper.make_tensor("typed", F, [3], [1.0, 2.0, 3.0])
out("tensor_pb", "typed_floats.pb", t.SerializeToString())
t = helper.make_tensor("bad_count", F, [2], [1.0, 2.0])
t.dims[0] = 4  # claims more values than it holds
out("tensor_pb", "bad_count.pb", t.SerializeToString())
out("tensor_pb", "truncated.pb", numpy_helper.from_array(np.ones(16, np.float32)).SerializeToString()[:20])

import io
for i, arr in enumerate([np.arange(12, dtype=np.float32).reshape(3, 4), np.array(5, np.int64),
                         np.asfortranarray(np.arange(6, dtype=np.int32).reshape(2, 3)), np.array([True, False]),
                         np.arange(4, dtype=">f8")]):
    b = io.BytesIO()
    np.save(b, arr)
    out("npy", "a%d.npy" % i, b.getvalue())
b = io.BytesIO()
np.save(b, np.ones((10, 10), np.float32))
out("npy", "truncated.npy", b.getvalue()[:200])
out("npy", "garbage.npy", b"\x93NUMPY\x01\x00\x10\x00{'descr': '<f4'")
print("seeds written to", os.path.join(here, "corpus"), file=sys.stderr)
