#!/usr/bin/python3
"""`kiln quantize` from outside: a small fp32 CNN built here with the onnx helper is quantised on
generated calibration data; the QDQ model must be valid ONNX, run on Kiln's integer kernels and
stay close to fp32; bad inputs must exit with code 2, one message, and no output file.

    /usr/bin/python3 tests/cli/test_quantize_cli.py KILN_BINARY
"""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

KILN = None


def kiln(*args):
    p = subprocess.run([KILN, *args], capture_output=True, text=True, timeout=300)
    assert p.returncode >= 0, "kiln %s crashed with signal %d\n%s" % (args, -p.returncode, p.stderr)
    return p


def cnn_model(path, opset=13):
    """Conv-Relu-MaxPool-Conv-Relu-GlobalAveragePool-Flatten-Gemm, input [1, 1, 8, 8]."""
    rng = np.random.default_rng(3)
    init = [
        numpy_helper.from_array(rng.normal(0, 0.5, (8, 1, 3, 3)).astype(np.float32), "w1"),
        numpy_helper.from_array(rng.normal(0, 0.1, (8,)).astype(np.float32), "b1"),
        numpy_helper.from_array(rng.normal(0, 0.2, (16, 8, 3, 3)).astype(np.float32), "w2"),
        numpy_helper.from_array(rng.normal(0, 0.1, (16,)).astype(np.float32), "b2"),
        numpy_helper.from_array(rng.normal(0, 0.3, (10, 16)).astype(np.float32), "w3"),
        numpy_helper.from_array(rng.normal(0, 0.1, (10,)).astype(np.float32), "b3"),
    ]
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], name="conv1", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
        helper.make_node("MaxPool", ["r1"], ["p1"], name="pool1", kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Conv", ["p1", "w2", "b2"], ["c2"], name="conv2", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c2"], ["r2"], name="relu2"),
        helper.make_node("GlobalAveragePool", ["r2"], ["g"], name="gap"),
        helper.make_node("Flatten", ["g"], ["f"], name="flatten"),
        helper.make_node("Gemm", ["f", "w3", "b3"], ["y"], name="fc", transB=1),
    ]
    graph = helper.make_graph(nodes, "cnn", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 10])], init)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    onnx.save(model, path)


class Quantize(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.dir = self.tmp.name
        self.model = os.path.join(self.dir, "cnn.onnx")
        cnn_model(self.model)
        self.calib = os.path.join(self.dir, "calib")
        os.mkdir(self.calib)
        rng = np.random.default_rng(5)
        # One stacked file of 40 samples and 10 single samples (with and without the batch dimension).
        np.save(os.path.join(self.calib, "stack.npy"), rng.uniform(0, 1, (40, 1, 8, 8)).astype(np.float32))
        for i in range(5):
            np.save(os.path.join(self.calib, "s%d.npy" % i), rng.uniform(0, 1, (1, 1, 8, 8)).astype(np.float32))
            np.save(os.path.join(self.calib, "t%d.npy" % i), rng.uniform(0, 1, (1, 8, 8)).astype(np.float32))
        self.out = os.path.join(self.dir, "cnn.int8.onnx")

    def tearDown(self):
        self.tmp.cleanup()

    def run_model(self, model, x, *extra):
        np.save(os.path.join(self.dir, "x.npy"), x)
        od = os.path.join(self.dir, "o")
        p = kiln("run", model, "--input", "x=" + os.path.join(self.dir, "x.npy"), "--output-dir", od, *extra)
        self.assertEqual(p.returncode, 0, p.stderr)
        return np.load(os.path.join(od, "y.npy"))

    def test_writes_a_qdq_model_that_runs_on_integer_kernels(self):
        for method in ("minmax", "percentile", "entropy"):
            for per_channel in ([], ["--per-channel"]):
                p = kiln("quantize", self.model, "--calibration", self.calib, "--output", self.out, "--method", method,
                         "--json", *per_channel)
                self.assertEqual(p.returncode, 0, p.stderr)
                report = json.loads(p.stdout)
                self.assertEqual(report["samples"], 50)
                self.assertEqual(sorted(report["quantized_nodes"]), ["conv1", "conv2", "fc"])
                self.assertEqual([l["node"] for l in report["layers"]], ["conv1", "conv2"])
                for l in report["layers"]:
                    self.assertGreater(l["sqnr_db"], 20, (method, per_channel, l))
                self.assertGreater(report["outputs"][0]["sqnr_db"], 20, (method, per_channel))
                m = onnx.load(self.out)
                onnx.checker.check_model(m)
                ops = [n.op_type for n in m.graph.node]
                self.assertGreaterEqual(ops.count("QuantizeLinear"), 5)
                weights = {t.name: numpy_helper.to_array(t) for t in m.graph.initializer}
                self.assertNotIn("w1", weights, "the float weights must be replaced")
                self.assertEqual(weights["w1_quantized"].dtype, np.int8)
                self.assertEqual(weights["fc_bias_quantized"].dtype, np.int32)
                self.assertLessEqual(np.abs(weights["w1_quantized"].astype(int)).max(), 127)
                info = json.loads(kiln("info", self.out, "--json").stdout)
                self.assertEqual([n.split(" ")[0] for n in info["integer_nodes"]], ["conv1", "pool1", "conv2", "gap", "fc"])
                self.assertFalse(any("Flatten" in n for n in info["notes"]), info["notes"])
        x = np.random.default_rng(9).uniform(0, 1, (1, 1, 8, 8)).astype(np.float32)
        y32 = self.run_model(self.model, x)
        y8 = self.run_model(self.out, x)
        y8_ref = self.run_model(self.out, x, "--no-optimize")
        scale = np.abs(y32).max()
        self.assertLess(np.abs(y8 - y32).max(), 0.1 * scale)
        # The integer kernels agree with the reference QDQ arithmetic within one output step.
        self.assertLess(np.abs(y8 - y8_ref).max(), 0.02 * scale + 1e-6)

    def test_the_classifier_output_stays_float(self):
        # Nothing quantised reads the Gemm's output: the integer kernel writes float logits instead of
        # rounding them to 256 levels (which tied the top two classes of the KWS model).
        p = kiln("quantize", self.model, "--calibration", self.calib, "--output", self.out, "--json")
        self.assertEqual(p.returncode, 0, p.stderr)
        m = onnx.load(self.out)
        self.assertEqual([n.input[0] for n in m.graph.node if n.op_type == "QuantizeLinear" and n.input[0] == "y"], [])
        self.assertEqual([n.op_type for n in m.graph.node if "y" in n.output], ["Gemm"])
        info = json.loads(kiln("info", self.out, "--json").stdout)
        self.assertIn("fc", [n.split(" ")[0] for n in info["integer_nodes"]])
        x = np.random.default_rng(9).uniform(0, 1, (1, 1, 8, 8)).astype(np.float32)
        y8, y8_ref = self.run_model(self.out, x), self.run_model(self.out, x, "--no-optimize")
        self.assertLess(np.abs(y8 - y8_ref).max(), 1e-4 * np.abs(y8_ref).max())

    def test_the_input_range_is_chosen_by_its_effect_on_the_output(self):
        # Feature 0 spans [-100, 0] but barely matters (weight 0.01); the other nine span [-1, 1]. One
        # input scale for all rounds them in steps of 0.4 unless feature 0's rare extremes are clipped.
        rng = np.random.default_rng(4)
        w = np.vstack([np.full((1, 4), 0.01), rng.normal(0, 1, (9, 4))]).astype(np.float32)
        graph = helper.make_graph([helper.make_node("Gemm", ["x", "w"], ["y"], name="fc")], "g",
                                  [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 10])],
                                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
                                  [numpy_helper.from_array(w, "w")])
        model = os.path.join(self.dir, "wide.onnx")
        onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), model)
        def features(n):
            x = rng.uniform(-1, 1, (n, 1, 10)).astype(np.float32)
            x[:, 0, 0] = -100 * rng.uniform(0, 1, n) ** 4
            return x
        calib = os.path.join(self.dir, "wide_calib")
        os.mkdir(calib)
        np.save(os.path.join(calib, "x.npy"), features(200))
        test = features(100)
        errors = {}
        for search in (True, False):
            out = os.path.join(self.dir, "wide%d.int8.onnx" % search)
            p = kiln("quantize", model, "--calibration", calib, "--output", out, "--json",
                     *([] if search else ["--no-input-search"]))
            self.assertEqual(p.returncode, 0, p.stderr)
            report = json.loads(p.stdout)
            self.assertEqual(report["input_search"], search)
            notes = [n for n in report["notes"] if n.startswith("input 'x': range")]
            self.assertEqual(len(notes), 1 if search else 0, report["notes"])
            m = onnx.load(out)
            q = [n for n in m.graph.node if n.op_type == "QuantizeLinear" and n.input[0] == "x"]
            self.assertEqual(len(q), 1)
            init = {t.name: numpy_helper.to_array(t) for t in m.graph.initializer}
            lo = float(init[q[0].input[1]]) * (-128 - int(init[q[0].input[2]]))
            if search:
                self.assertGreater(lo, -90, "the low end is clipped")
            else:
                self.assertLess(lo, -95, "minmax keeps the extremes")
            errors[search] = sum(float(((self.run_model(out, x[None]) - x[None] @ w) ** 2).sum()) for x in test[:, 0])
        self.assertLess(errors[True], 0.5 * errors[False], errors)
        # Where every feature matters alike, clipping only hurts: the calibrated range stays.
        p = kiln("quantize", self.model, "--calibration", self.calib, "--output", self.out, "--json")
        self.assertFalse([n for n in json.loads(p.stdout)["notes"] if "chosen by the outputs" in n])

    def test_a_model_with_two_inputs(self):
        # Sensor fusion shape: two inputs, a Gemm each, summed, a classifier. Calibration: one folder
        # per input (named after it; ':' becomes '_'), samples paired by order.
        rng = np.random.default_rng(6)
        init = [numpy_helper.from_array(rng.normal(0, 0.5, (6, 8)).astype(np.float32), "wa"),
                numpy_helper.from_array(rng.normal(0, 0.5, (4, 8)).astype(np.float32), "wb"),
                numpy_helper.from_array(rng.normal(0, 0.5, (8, 3)).astype(np.float32), "wc")]
        nodes = [helper.make_node("Gemm", ["a:0", "wa"], ["ha"], name="fa"),
                 helper.make_node("Gemm", ["b", "wb"], ["hb"], name="fb"),
                 helper.make_node("Add", ["ha", "hb"], ["h"], name="sum"),
                 helper.make_node("Relu", ["h"], ["r"], name="relu"),
                 helper.make_node("Gemm", ["r", "wc"], ["y"], name="fc")]
        graph = helper.make_graph(nodes, "two", [helper.make_tensor_value_info("a:0", TensorProto.FLOAT, [1, 6]),
                                                 helper.make_tensor_value_info("b", TensorProto.FLOAT, [1, 4])],
                                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])], init)
        model = os.path.join(self.dir, "two.onnx")
        onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), model)
        calib = os.path.join(self.dir, "two_calib")
        for name, width, count in (("a_0", 6, 40), ("b", 4, 40)):
            os.makedirs(os.path.join(calib, name))
            np.save(os.path.join(calib, name, "x.npy"), rng.uniform(-1, 1, (count, 1, width)).astype(np.float32))
        p = kiln("quantize", model, "--calibration", calib, "--output", self.out, "--json")
        self.assertEqual(p.returncode, 0, p.stderr)
        report = json.loads(p.stdout)
        self.assertEqual(report["samples"], 40)
        self.assertEqual(sorted(report["quantized_nodes"]), ["fa", "fb", "fc"])
        m = onnx.load(self.out)
        onnx.checker.check_model(m)
        quantised = {n.input[0] for n in m.graph.node if n.op_type == "QuantizeLinear"}
        self.assertIn("a:0", quantised)
        self.assertIn("b", quantised)
        info = json.loads(kiln("info", self.out, "--json").stdout)
        self.assertEqual(sorted(n.split(" ")[0] for n in info["integer_nodes"]), ["fa", "fb", "fc", "sum"])
        xa, xb = rng.uniform(-1, 1, (1, 6)).astype(np.float32), rng.uniform(-1, 1, (1, 4)).astype(np.float32)
        np.save(os.path.join(self.dir, "xa.npy"), xa)
        np.save(os.path.join(self.dir, "xb.npy"), xb)
        outs = {}
        for path in (model, self.out):
            od = os.path.join(self.dir, "o2" + os.path.basename(path))
            r = kiln("run", path, "--input", "a:0=" + os.path.join(self.dir, "xa.npy"), "--input",
                     "b=" + os.path.join(self.dir, "xb.npy"), "--output-dir", od)
            self.assertEqual(r.returncode, 0, r.stderr)
            outs[path] = np.load(os.path.join(od, "y.npy"))
        self.assertLess(np.abs(outs[self.out] - outs[model]).max(), 0.05 * np.abs(outs[model]).max())
        # A missing input folder and unequal counts are bad input.
        os.remove(self.out)
        np.save(os.path.join(calib, "b", "x.npy"), np.zeros((39, 1, 4), np.float32))
        self.assertBadInput(kiln("quantize", model, "--calibration", calib, "--output", self.out), "39", "40",
                            "same count")
        shutil.rmtree(os.path.join(calib, "b"))
        self.assertBadInput(kiln("quantize", model, "--calibration", calib, "--output", self.out), "input 'b'",
                            "one folder per input")

    def test_progress_on_a_terminal_only(self):
        # stderr a pseudo-terminal: a bar per stage, each ending at its total; a pipe (every other
        # test) or --quiet: none.
        import pty
        for quiet in (False, True):
            master, slave = pty.openpty()
            p = subprocess.run([KILN, "quantize", self.model, "--calibration", self.calib, "--output", self.out,
                                "--method", "percentile", "--json", *(["--quiet"] if quiet else [])],
                               stdout=subprocess.PIPE, stderr=slave, timeout=300)
            os.close(slave)
            text = b""
            while True:
                try:
                    chunk = os.read(master, 65536)
                except OSError:
                    break
                if not chunk:
                    break
                text += chunk
            os.close(master)
            self.assertEqual(p.returncode, 0, text)
            self.assertEqual(json.loads(p.stdout)["samples"], 50)
            text = text.decode()
            if quiet:
                self.assertEqual(text, "")
                continue
            for stage, total in (("calibrating", 100), ("input range of 'x'", 14), ("measuring", 50)):
                self.assertIn(stage, text)
                self.assertRegex(text, r"%s\s+\[#{30}\] %d/%d" % (re.escape(stage), total, total))

    def test_reduce_range_writes_7_bit_weights_for_the_avx2_kernel(self):
        p = kiln("quantize", self.model, "--calibration", self.calib, "--output", self.out, "--per-channel",
                 "--reduce-range", "--json")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertTrue(json.loads(p.stdout)["reduce_range"])
        weights = {t.name: numpy_helper.to_array(t) for t in onnx.load(self.out).graph.initializer}
        for name in ("w1_quantized", "w2_quantized", "w3_quantized"):
            w = weights[name].astype(int)
            self.assertLessEqual(np.abs(w).max(), 63, name)
            self.assertEqual(np.abs(w).max(), 63, name + ": per-channel scales use the whole 7-bit range")
        # On an AVX2 CPU without VNNI (forced here) the convolutions and the classifier take the
        # vpmaddubsw kernel, and their results stay those of the reference QDQ arithmetic.
        env = dict(os.environ, KILN_ISA="avx2-novnni")
        info = subprocess.run([KILN, "info", self.out, "--json"], capture_output=True, text=True, env=env)
        self.assertEqual(info.returncode, 0, info.stderr)
        nodes = json.loads(info.stdout)["integer_nodes"]
        self.assertTrue(any("qs8_" in n for n in nodes), nodes)
        if not any("qs8_gemm_portable" in n for n in nodes):  # the CPU has AVX2 (else: the portable set)
            self.assertEqual(sorted(n.split(" ")[0] for n in nodes if "qs8_gemm_avx2_w7" in n),
                             ["conv1", "conv2", "fc"], nodes)
            # `kiln info` points at --reduce-range for 8-bit weights on such a CPU, and only then.
            hint = [n for n in json.loads(info.stdout)["notes"] if "--reduce-range" in n]
            self.assertEqual(hint, [])
            full = os.path.join(self.dir, "w8.onnx")
            p = kiln("quantize", self.model, "--calibration", self.calib, "--output", full, "--per-channel", "--quiet")
            self.assertEqual(p.returncode, 0, p.stderr)
            info8 = subprocess.run([KILN, "info", full], capture_output=True, text=True, env=env)
            self.assertEqual(info8.returncode, 0, info8.stderr)
            self.assertRegex(info8.stdout, r"note +int8: this CPU has no VNNI, so 3 layers with 8-bit weights .*"
                                           r"--reduce-range")
        x = np.random.default_rng(9).uniform(0, 1, (1, 1, 8, 8)).astype(np.float32)
        np.save(os.path.join(self.dir, "x.npy"), x)
        outs = []
        for extra in ([], ["--no-optimize"]):
            od = os.path.join(self.dir, "o%d" % len(outs))
            r = subprocess.run([KILN, "run", self.out, "--input", "x=" + os.path.join(self.dir, "x.npy"), "--output-dir",
                                od, *extra], capture_output=True, text=True, env=env)
            self.assertEqual(r.returncode, 0, r.stderr)
            outs.append(np.load(os.path.join(od, "y.npy")))
        scale = np.abs(outs[1]).max()
        self.assertLess(np.abs(outs[0] - outs[1]).max(), 0.02 * scale + 1e-6)
        self.assertLess(np.abs(outs[0] - self.run_model(self.model, x)).max(), 0.1 * scale)

    def test_exclude_leaves_a_node_in_float(self):
        p = kiln("quantize", self.model, "--calibration", self.calib, "--output", self.out, "--exclude", "fc", "--json")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(sorted(json.loads(p.stdout)["quantized_nodes"]), ["conv1", "conv2"])
        weights = {t.name for t in onnx.load(self.out).graph.initializer}
        self.assertIn("w3", weights)

    def test_weights_already_stored_as_int8_are_kept(self):
        # tf2onnx stores some weights as int8 behind a DequantizeLinear: they stay, the layer is quantised.
        m = onnx.load(self.model)
        w1 = [t for t in m.graph.initializer if t.name == "w1"][0]
        w = numpy_helper.to_array(w1)
        scale = (np.abs(w).reshape(8, -1).max(axis=1) / 127).astype(np.float32)
        q = np.clip(np.rint(w / scale[:, None, None, None]), -127, 127).astype(np.int8)
        m.graph.initializer.remove(w1)
        m.graph.initializer.extend([numpy_helper.from_array(q, "w1_q"), numpy_helper.from_array(scale, "w1_s"),
                                    numpy_helper.from_array(np.zeros(8, np.int8), "w1_z")])
        m.graph.node.insert(0, helper.make_node("DequantizeLinear", ["w1_q", "w1_s", "w1_z"], ["w1"], axis=0))
        pre = os.path.join(self.dir, "pre.onnx")
        onnx.save(m, pre)
        p = kiln("quantize", pre, "--calibration", self.calib, "--output", self.out, "--json")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(sorted(json.loads(p.stdout)["quantized_nodes"]), ["conv1", "conv2", "fc"])
        out = {t.name: numpy_helper.to_array(t) for t in onnx.load(self.out).graph.initializer}
        np.testing.assert_array_equal(out["w1_q"], q)
        info = json.loads(kiln("info", self.out, "--json").stdout)
        self.assertIn("conv1", [n.split(" ")[0] for n in info["integer_nodes"]])

    def fine_input_model(self):
        """Conv (3x3 filters taking differences of pixels) - Relu - GlobalAveragePool - Flatten - Gemm on
        an input that is a large per-sample offset (0..50) plus small detail (sigma 0.05): the filters
        cancel the offset, so the output depends only on the detail, which an int8 input step
        (50 / 255 = 0.2) drowns."""
        rng = np.random.default_rng(11)
        w1 = np.zeros((4, 1, 3, 3), np.float32)  # differences of two pixels: they stay exactly zero-sum in int8
        for k, (s, (i, j)) in enumerate(zip((4, -3, 2, -5), ((1, 2), (2, 1), (2, 2), (0, 2)))):
            w1[k, 0, 1, 1], w1[k, 0, i, j] = s, -s
        init = [numpy_helper.from_array(w1, "w1"),
                numpy_helper.from_array(np.array([0.01, 0.02, -0.01, 0.0], np.float32), "b1"),
                numpy_helper.from_array(rng.normal(0, 1, (3, 4)).astype(np.float32), "w2"),
                numpy_helper.from_array(rng.normal(0, 0.1, (3,)).astype(np.float32), "b2")]
        nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], name="conv1"),  # no padding: no offset edges
                 helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
                 helper.make_node("GlobalAveragePool", ["r1"], ["g"], name="gap"),
                 helper.make_node("Flatten", ["g"], ["f"], name="flatten"),
                 helper.make_node("Gemm", ["f", "w2", "b2"], ["y"], name="fc", transB=1)]
        graph = helper.make_graph(nodes, "fine", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 8, 8])],
                                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])], init)
        model = os.path.join(self.dir, "fine.onnx")
        onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), model)

        def inputs(n):
            return (rng.uniform(0, 50, (n, 1, 1, 1)) + rng.normal(0, 0.05, (n, 1, 8, 8))).astype(np.float32)
        calib = os.path.join(self.dir, "fine_calib")
        os.mkdir(calib)
        np.save(os.path.join(calib, "x.npy"), inputs(100)[:, None])
        return model, calib, inputs(12)[:, None]

    def test_input_bits_16_quantises_the_model_input_to_int16(self):
        model, calib, test = self.fine_input_model()
        errors = {}
        for bits in (8, 16):
            out = os.path.join(self.dir, "fine%d.onnx" % bits)
            p = kiln("quantize", model, "--calibration", calib, "--output", out, "--json",
                     *(["--input-bits", "16"] if bits == 16 else []))
            self.assertEqual(p.returncode, 0, p.stderr)
            report = json.loads(p.stdout)
            self.assertEqual(report["input_bits"], bits)
            self.assertEqual(sorted(report["quantized_nodes"]), ["conv1", "fc"])
            m = onnx.load(out)
            opset = [o.version for o in m.opset_import if o.domain in ("", "ai.onnx")][0]
            init = {t.name: numpy_helper.to_array(t) for t in m.graph.initializer}
            qdq = [n for n in m.graph.node if n.op_type in ("QuantizeLinear", "DequantizeLinear")]
            # activation pairs: zero point dtype by the tensor quantised ('x' -> its Q and the DQ reading it)
            q_of = {n.output[0]: n.input[0] for n in qdq if n.op_type == "QuantizeLinear"}
            acts = {}
            for n in qdq:
                v = n.input[0] if n.op_type == "QuantizeLinear" else q_of.get(n.input[0])
                if v is not None:
                    acts.setdefault(v, set()).add(init[n.input[2]].dtype)
            self.assertEqual(sorted(acts), ["f", "g", "r1", "x"], acts)
            notes = [n for n in report["notes"] if "int16" in n and n.startswith("input 'x'")]
            if bits == 16:
                self.assertGreaterEqual(opset, 21)
                self.assertGreaterEqual(m.ir_version, 10)
                self.assertEqual(acts["x"], {np.dtype(np.int16)})
                self.assertEqual(len(notes), 1, report["notes"])
                # asymmetric int16 over the calibrated (minmax) range widened to 0: scale = (hi - lo) / 65535
                c = np.load(os.path.join(calib, "x.npy"))
                lo, hi = np.float32(min(c.min(), 0)), np.float32(max(c.max(), 0))
                scale = np.float32((hi - lo) / np.float32(65535))
                x_scale, x_zero = init["x_scale"], int(init["x_zero_point"])
                self.assertEqual(x_scale, scale)
                self.assertEqual(x_zero, int(np.clip(np.rint(np.float32(-32768) - lo / scale), -32768, 32767)))
                # the first layer's bias takes x_scale16 * w_scale
                np.testing.assert_allclose(init["conv1_bias_scale"], x_scale * init["w1_scale"], rtol=1e-6)
            else:
                self.assertEqual(opset, 13)
                self.assertEqual(acts["x"], {np.dtype(np.int8)})
                self.assertEqual(notes, [])
            for v in ("r1", "g", "f"):
                self.assertEqual(acts[v], {np.dtype(np.int8)}, (bits, v))
            self.assertEqual(init["w1_quantized"].dtype, np.int8)
            # kiln run: optimised and reference arithmetic agree; the error against fp32 over the test inputs
            err, signal = 0.0, 0.0
            for x in test:
                y32 = self.run_model(model, x)
                y = self.run_model(out, x)
                y_ref = self.run_model(out, x, "--no-optimize")
                self.assertLess(np.abs(y - y_ref).max(), 0.02 * np.abs(y32).max() + 1e-6)
                err += float(((y - y32) ** 2).sum())
                signal += float((y32 ** 2).sum())
            errors[bits] = 10 * np.log10(signal / max(err, 1e-30))  # output SQNR in dB
        print("\nfine-input model, output SQNR against fp32 over %d inputs: int8 input %.1f dB, int16 input %.1f dB"
              % (len(test), errors[8], errors[16]), file=sys.stderr)
        self.assertGreater(errors[16], errors[8] + 20, errors)

    def test_input_bits_16_raises_an_old_opset_and_restates_nodes(self):
        # Opset 10: Clip bounds, ReduceMean / Unsqueeze / Squeeze axes are attributes, and Softmax
        # normalises over every axis from `axis` on. At 21 they are inputs, and Softmax works on one axis.
        rng = np.random.default_rng(12)
        init = [numpy_helper.from_array(rng.normal(0, 0.5, (4, 1, 3, 3)).astype(np.float32), "w1"),
                numpy_helper.from_array(rng.normal(0, 0.5, (8, 3)).astype(np.float32), "w2")]
        nodes = [helper.make_node("Conv", ["x", "w1"], ["c1"], name="conv1", pads=[1, 1, 1, 1]),
                 helper.make_node("Clip", ["c1"], ["r1"], name="clip", min=0.0, max=1.5),
                 helper.make_node("ReduceMean", ["r1"], ["m"], name="mean", axes=[3], keepdims=0),  # [1, 4, 8]
                 helper.make_node("Unsqueeze", ["m"], ["u"], name="unsq", axes=[3]),               # [1, 4, 8, 1]
                 helper.make_node("Squeeze", ["u"], ["s"], name="sq", axes=[3]),                   # [1, 4, 8]
                 helper.make_node("Softmax", ["s"], ["y1"], name="softmax_all", axis=1),           # over 4 x 8
                 helper.make_node("Gemm", ["s_row", "w2"], ["z"], name="fc"),
                 helper.make_node("Softmax", ["z"], ["y2"], name="softmax_last", axis=1)]          # [1, 3]: the last
        nodes.insert(5, helper.make_node("Reshape", ["s", "row_shape"], ["s_row"], name="row"))
        init.append(numpy_helper.from_array(np.array([4, 8], np.int64), "row_shape"))
        graph = helper.make_graph(nodes, "old", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 8, 8])],
                                  [helper.make_tensor_value_info("y1", TensorProto.FLOAT, [1, 4, 8]),
                                   helper.make_tensor_value_info("y2", TensorProto.FLOAT, [4, 3])], init)
        model = os.path.join(self.dir, "old.onnx")
        m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 10)])
        m.ir_version = 5
        onnx.save(m, model)
        p = kiln("quantize", model, "--calibration", self.calib, "--output", self.out, "--input-bits", "16", "--json")
        self.assertEqual(p.returncode, 0, p.stderr)
        report = json.loads(p.stdout)
        self.assertTrue([n for n in report["notes"] if "opset 10 raised to 21" in n], report["notes"])
        q = onnx.load(self.out)
        self.assertEqual([o.version for o in q.opset_import if o.domain in ("", "ai.onnx")], [21])
        by_name = {n.name: n for n in q.graph.node}
        attrs = {name: [a.name for a in by_name[name].attribute] for name in ("clip", "mean", "unsq", "sq")}
        self.assertEqual(attrs, {"clip": [], "mean": ["keepdims"], "unsq": [], "sq": []})
        for name, count in (("clip", 3), ("mean", 2), ("unsq", 2), ("sq", 2)):
            self.assertEqual(len(by_name[name].input), count, name)
        self.assertIn("Flatten", [n.op_type for n in q.graph.node])
        self.assertEqual([(a.name, a.i) for a in by_name["softmax_last"].attribute], [("axis", 1)])
        x = np.random.default_rng(9).uniform(0, 1, (1, 1, 8, 8)).astype(np.float32)
        outs = {}
        for path in (model, self.out):
            np.save(os.path.join(self.dir, "x.npy"), x)
            od = os.path.join(self.dir, "o_" + os.path.basename(path))
            r = kiln("run", path, "--input", "x=" + os.path.join(self.dir, "x.npy"), "--output-dir", od)
            self.assertEqual(r.returncode, 0, r.stderr)
            outs[path] = [np.load(os.path.join(od, y + ".npy")) for y in ("y1", "y2")]
        for a, b in zip(outs[model], outs[self.out]):
            self.assertEqual(a.shape, b.shape)
            self.assertLess(np.abs(a - b).max(), 0.05 * np.abs(a).max())
        self.assertAlmostEqual(float(outs[self.out][0].sum()), 1.0, places=4)  # one softmax over all 32 values

    def test_input_bits_16_with_a_bias_that_does_not_fit_int32(self):
        # x_scale16 * w_scale = (1 / 65535) * (1e-4 / 127): a bias of 1000 is 8e13 steps. The file stays
        # valid (clamped, with a note) and runs.
        init = [numpy_helper.from_array(np.full((4, 2), 1e-4, np.float32), "w"),
                numpy_helper.from_array(np.array([1000.0, 0.01], np.float32), "b")]
        graph = helper.make_graph([helper.make_node("Gemm", ["x", "w", "b"], ["y"], name="fc")], "g",
                                  [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])], init)
        model = os.path.join(self.dir, "bias.onnx")
        onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), model)
        calib = os.path.join(self.dir, "bias_calib")
        os.mkdir(calib)
        np.save(os.path.join(calib, "x.npy"), np.random.default_rng(2).uniform(0, 1, (20, 1, 4)).astype(np.float32))
        p = kiln("quantize", model, "--calibration", calib, "--output", self.out, "--input-bits", "16", "--json")
        self.assertEqual(p.returncode, 0, p.stderr)
        notes = [n for n in json.loads(p.stdout)["notes"] if "does not fit int32" in n]
        self.assertEqual(len(notes), 1, p.stdout)
        self.assertIn("1 of 2 channels", notes[0])
        bias = {t.name: numpy_helper.to_array(t) for t in onnx.load(self.out).graph.initializer}["fc_bias_quantized"]
        self.assertEqual(int(bias[0]), 2147483647)
        np.save(os.path.join(self.dir, "x.npy"), np.full((1, 4), 0.5, np.float32))
        r = kiln("run", self.out, "--input", "x=" + os.path.join(self.dir, "x.npy"), "--output-dir",
                 os.path.join(self.dir, "o"))
        self.assertEqual(r.returncode, 0, r.stderr)
        y = np.load(os.path.join(self.dir, "o", "y.npy"))
        self.assertLess(abs(float(y[0, 1]) - (0.01 + 2e-4)), 1e-5)  # the channel whose bias fits is right

    def test_input_bits_16_refuses_a_node_it_cannot_restate(self):
        # Resize-10's nearest rounding has no equivalent at opset 21: exit 2, nothing written; 8 bits work.
        init = [numpy_helper.from_array(np.random.default_rng(1).normal(0, 0.5, (4, 1, 3, 3)).astype(np.float32), "w1"),
                numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "scales")]
        nodes = [helper.make_node("Conv", ["x", "w1"], ["c1"], name="conv1", pads=[1, 1, 1, 1]),
                 helper.make_node("Resize", ["c1", "scales"], ["y"], name="up", mode="nearest")]
        graph = helper.make_graph(nodes, "r10", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 8, 8])],
                                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 16, 16])], init)
        model = os.path.join(self.dir, "resize10.onnx")
        onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 10)]), model)
        self.assertBadInput(kiln("quantize", model, "--calibration", self.calib, "--output", self.out, "--input-bits",
                                 "16"), "Resize 'up'", "opset 21")
        p = kiln("quantize", model, "--calibration", self.calib, "--output", self.out)
        self.assertEqual(p.returncode, 0, p.stderr)

    def assertBadInput(self, p, *fragments):
        self.assertEqual(p.returncode, 2, "expected exit code 2, got %d; stderr: %s" % (p.returncode, p.stderr))
        self.assertFalse(os.path.exists(self.out), "no output file may be written on bad input")
        self.assertEqual(len([l for l in p.stderr.splitlines() if l.strip()]), 1, p.stderr)
        for f in fragments:
            self.assertIn(f, p.stderr)

    def test_bad_calibration_data(self):
        empty = os.path.join(self.dir, "empty")
        os.mkdir(empty)
        self.assertBadInput(kiln("quantize", self.model, "--calibration", empty, "--output", self.out), "no .npy")
        self.assertBadInput(kiln("quantize", self.model, "--calibration", os.path.join(self.dir, "nope"), "--output",
                                 self.out), "does not exist")
        wrong_dtype = os.path.join(self.dir, "f64")
        os.mkdir(wrong_dtype)
        np.save(os.path.join(wrong_dtype, "a.npy"), np.zeros((1, 1, 8, 8)))
        self.assertBadInput(kiln("quantize", self.model, "--calibration", wrong_dtype, "--output", self.out),
                            "a.npy", "float64")
        wrong_shape = os.path.join(self.dir, "shape")
        os.mkdir(wrong_shape)
        np.save(os.path.join(wrong_shape, "b.npy"), np.zeros((1, 1, 7, 8), np.float32))
        self.assertBadInput(kiln("quantize", self.model, "--calibration", wrong_shape, "--output", self.out),
                            "b.npy", "[1, 1, 7, 8]")
        garbage = os.path.join(self.dir, "garbage")
        os.mkdir(garbage)
        with open(os.path.join(garbage, "c.npy"), "wb") as f:
            f.write(b"\x93NUMPY garbage")
        self.assertBadInput(kiln("quantize", self.model, "--calibration", garbage, "--output", self.out), "c.npy")

    def test_bad_models_and_arguments(self):
        # No quantisable node.
        graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g",
                                  [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 8, 8])],
                                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1, 8, 8])])
        relu = os.path.join(self.dir, "relu.onnx")
        onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), relu)
        self.assertBadInput(kiln("quantize", relu, "--calibration", self.calib, "--output", self.out),
                            "no quantisable node")
        self.assertBadInput(kiln("quantize", self.model, "--calibration", self.calib, "--output", self.out,
                                 "--method", "magic"), "--method")
        self.assertBadInput(kiln("quantize", self.model, "--calibration", self.calib, "--output", self.out,
                                 "--exclude", "conv9"), "conv9")
        self.assertBadInput(kiln("quantize", self.model, "--calibration", self.calib, "--output", self.out,
                                 "--input-bits", "12"), "--input-bits", "8 or 16", "12")
        old = os.path.join(self.dir, "old.onnx")
        cnn_model(old, opset=11)
        self.assertBadInput(kiln("quantize", old, "--calibration", self.calib, "--output", self.out, "--per-channel"),
                            "opset")
        broken = os.path.join(self.dir, "broken.onnx")
        with open(broken, "wb") as f:
            f.write(b"not a model")
        self.assertBadInput(kiln("quantize", broken, "--calibration", self.calib, "--output", self.out))

    def test_zero_or_nan_scale_in_a_quantised_model(self):
        for bad in (0.0, float("nan")):
            nodes = [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q"]),
                     helper.make_node("DequantizeLinear", ["q", "s", "z"], ["y"])]
            init = [numpy_helper.from_array(np.array(bad, np.float32), "s"),
                    numpy_helper.from_array(np.array(0, np.int8), "z")]
            graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                                      [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])], init)
            path = os.path.join(self.dir, "badscale.onnx")
            onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)
            np.save(os.path.join(self.dir, "x.npy"), np.zeros((1, 4), np.float32))
            p = kiln("run", path, "--input", "x=" + os.path.join(self.dir, "x.npy"), "--output-dir",
                     os.path.join(self.dir, "o"))
            self.assertEqual(p.returncode, 2, p.stderr)
            self.assertIn("scale", p.stderr)


if __name__ == "__main__":
    KILN = sys.argv.pop(1)
    unittest.main()
