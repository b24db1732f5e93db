#!/usr/bin/python3
"""The kiln command-line contract, driven from outside like a user or another tool would.

    /usr/bin/python3 tests/cli/test_cli.py KILN_BINARY EXAMPLE_MODELS_DIR

Checks exit codes (0 ok, 2 bad input), that every bad input gives one clear message on stderr
and never a crash, that `kiln run` reproduces expected outputs of ONNX backend test cases and of
Kiln's regression models, and the JSON contracts of `kiln info` and `kiln bench`.
"""
import glob
import json
import os
import subprocess
import sys
import tempfile
import unittest

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

KILN = None
MODELS = None
ONNX_NODE = "/usr/share/libonnx-testdata/data/node"


def kiln(*args, timeout=120):
    p = subprocess.run([KILN, *args], capture_output=True, text=True, timeout=timeout)
    # A negative return code is a signal: a crash is never acceptable.
    assert p.returncode >= 0, "kiln %s crashed with signal %d\n%s" % (args, -p.returncode, p.stderr)
    return p


def load_pb(path):
    t = onnx.TensorProto()
    with open(path, "rb") as f:
        t.ParseFromString(f.read())
    return numpy_helper.to_array(t), t.name


class BadInput(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.dir = self.tmp.name

    def tearDown(self):
        self.tmp.cleanup()

    def write(self, name, data):
        path = os.path.join(self.dir, name)
        with open(path, "wb") as f:
            f.write(data)
        return path

    def assertBadInput(self, p, *fragments):
        self.assertEqual(p.returncode, 2, "expected exit code 2, got %d; stderr: %s" % (p.returncode, p.stderr))
        self.assertEqual(p.stdout, "", "bad input must not print results")
        lines = [l for l in p.stderr.splitlines() if l.strip()]
        self.assertEqual(len(lines), 1, "expected one message line, got: %r" % p.stderr)
        for f in fragments:
            self.assertIn(f, p.stderr)

    def simple_model(self, op="Relu", domain="", opset=13):
        g = helper.make_graph([helper.make_node(op, ["x"], ["y"], domain=domain)], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])])
        imports = [helper.make_opsetid("", opset)] + ([helper.make_opsetid(domain, 1)] if domain else [])
        m = helper.make_model(g, opset_imports=imports)
        m.ir_version = 8
        return self.write("m.onnx", m.SerializeToString())

    def test_missing_path(self):
        for verb in (["info"], ["bench"], ["run", "--output-dir", self.dir]):
            self.assertBadInput(kiln(verb[0], "/no/such/model.onnx", *verb[1:]), "/no/such/model.onnx")

    def test_truncated_model(self):
        path = os.path.join(MODELS, "kws_dscnn.onnx")
        with open(path, "rb") as f:
            data = f.read()
        bad = self.write("trunc.onnx", data[: len(data) // 3])
        self.assertBadInput(kiln("info", bad), "not a valid ONNX model")

    def test_not_a_model(self):
        self.assertBadInput(kiln("info", self.write("text.onnx", b"hello, I am not protobuf\n" * 10)))

    def test_folder_instead_of_model(self):
        self.assertBadInput(kiln("info", self.dir), "directory")

    def test_unsupported_operator_names_op_domain_opset_node(self):
        p = kiln("info", self.simple_model(op="FancyOp", domain="com.example"))
        self.assertBadInput(p, "FancyOp", "com.example", "FancyOp")

    def test_wrong_input_shape(self):
        m = self.simple_model()
        x = os.path.join(self.dir, "x.npy")
        np.save(x, np.zeros((3, 3), np.float32))
        self.assertBadInput(kiln("run", m, "--input", "x=" + x, "--output-dir", self.dir), "'x'", "[2, 3]")

    def test_wrong_input_dtype(self):
        m = self.simple_model()
        x = os.path.join(self.dir, "x.npy")
        np.save(x, np.zeros((2, 3), np.int32))
        self.assertBadInput(kiln("run", m, "--input", "x=" + x, "--output-dir", self.dir), "'x'", "float32")

    def test_missing_input(self):
        self.assertBadInput(kiln("run", self.simple_model(), "--output-dir", self.dir), "missing input 'x'")

    def test_unknown_input_name(self):
        x = os.path.join(self.dir, "x.npy")
        np.save(x, np.zeros((2, 3), np.float32))
        self.assertBadInput(kiln("run", self.simple_model(), "--input", "nope=" + x, "--output-dir", self.dir), "'nope'")

    def test_corrupt_npy(self):
        x = self.write("x.npy", b"\x93NUMPY\x01\x00garbage")
        self.assertBadInput(kiln("run", self.simple_model(), "--input", "x=" + x, "--output-dir", self.dir), "x.npy")

    def test_bad_arguments(self):
        p = kiln("bench", self.simple_model(), "--runs", "-3")
        self.assertEqual(p.returncode, 2)
        p = kiln("frobnicate")
        self.assertEqual(p.returncode, 2)


class RunReproducesExpectedOutputs(unittest.TestCase):
    def run_case(self, case):
        data = os.path.join(case, "test_data_set_0")
        model = onnx.load(os.path.join(case, "model.onnx"))
        inits = {i.name for i in model.graph.initializer}
        names = [i.name for i in model.graph.input if i.name not in inits]
        args = []
        for i, path in enumerate(sorted(glob.glob(os.path.join(data, "input_*.pb")),
                                        key=lambda p: int(p.rsplit("_", 1)[1][:-3]))):
            args += ["--input", "%s=%s" % (names[i], path)]
        with tempfile.TemporaryDirectory() as out:
            p = kiln("run", os.path.join(case, "model.onnx"), *args, "--output-dir", out)
            if p.returncode == 2 and "unsupported" in p.stderr.lower():
                return "unsupported"
            self.assertEqual(p.returncode, 0, p.stderr)
            outputs = [o.name for o in model.graph.output]
            for i, name in enumerate(outputs):
                want, _ = load_pb(os.path.join(data, "output_%d.pb" % i))
                safe = "".join(c if (c.isalnum() or c in "._-") else "_" for c in name)
                got = np.load(os.path.join(out, safe + ".npy"))
                self.assertEqual(got.shape, want.shape, case)
                self.assertEqual(got.dtype, want.dtype, case)
                if want.dtype.kind == "f":
                    np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-7, err_msg=case)
                else:
                    np.testing.assert_array_equal(got, want, err_msg=case)
        return "pass"

    def test_regression_models(self):
        for name in ("kws_dscnn", "ad_autoencoder", "ic_resnet8"):
            self.assertEqual(self.run_case(os.path.join(MODELS, name)), "pass", name)

    def test_onnx_node_cases(self):
        cases = ["test_conv_with_strides_padding", "test_gemm_default_single_elem_vector_bias", "test_add_bcast",
                 "test_reshape_negative_dim", "test_softmax_axis_1", "test_maxpool_2d_pads", "test_lstm_defaults",
                 "test_gather_1", "test_slice", "test_argmax_keepdims_example", "test_equal", "test_where_example"]
        passed = 0
        for c in cases:
            if self.run_case(os.path.join(ONNX_NODE, c)) == "pass":
                passed += 1
        self.assertGreater(passed, 0)


class JsonContracts(unittest.TestCase):
    def test_bench_json(self):
        p = kiln("bench", os.path.join(MODELS, "kws_dscnn.onnx"), "--runs", "20", "--warmup", "2", "--json")
        self.assertEqual(p.returncode, 0, p.stderr)
        j = json.loads(p.stdout)
        for key in ("p50_us", "p99_us", "max_us", "arena_bytes", "allocs_per_run"):
            self.assertIn(key, j)
        self.assertEqual(j["allocs_per_run"], 0)
        self.assertGreater(j["arena_bytes"], 0)
        self.assertLessEqual(j["p50_us"], j["p99_us"])

    def test_bench_min_seconds_times_past_the_runs(self):
        # --runs is a floor; --min-seconds keeps timing (ORT's benchmark rule), capped by --max-runs,
        # and the longer loop still allocates nothing.
        p = kiln("bench", os.path.join(MODELS, "kws_dscnn.onnx"), "--runs", "10", "--warmup", "2",
                 "--min-seconds", "0.2", "--max-runs", "100000", "--json")
        self.assertEqual(p.returncode, 0, p.stderr)
        j = json.loads(p.stdout)
        self.assertGreater(j["runs"], 10)
        self.assertEqual(j["allocs_per_run"], 0)
        p = kiln("bench", os.path.join(MODELS, "kws_dscnn.onnx"), "--runs", "10", "--warmup", "2",
                 "--min-seconds", "30", "--max-runs", "15", "--json")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(json.loads(p.stdout)["runs"], 15)

    def test_info_json(self):
        p = kiln("info", os.path.join(MODELS, "kws_dscnn.onnx"), "--json")
        self.assertEqual(p.returncode, 0, p.stderr)
        j = json.loads(p.stdout)
        self.assertEqual(j["inputs"][0]["shape"], [1, 1, 49, 10])
        self.assertEqual(j["outputs"][0]["shape"], [1, 12])
        self.assertEqual(j["operators"]["Conv"], 9)
        # MACs of the DS-CNN: first conv 25x5 outputs x 64 x 40, then 4 x (25x5x64x9 + 25x5x64x64).
        self.assertEqual(j["macs"], 125 * 64 * 40 + 4 * (125 * 64 * 9 + 125 * 64 * 64) + 64 * 12)
        self.assertGreater(j["parameters"], 20000)


if __name__ == "__main__":
    KILN, MODELS = sys.argv[1], sys.argv[2]
    unittest.main(argv=[sys.argv[0], "-v"])
