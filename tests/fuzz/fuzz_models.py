"""Model fuzzer: mutates a model's bytes and its graph (attributes, shapes, initializers, wiring), loads and runs
each case, and tells crashes (the process died on a signal) apart from clean errors.

    python3 tests/fuzz/fuzz_models.py --cases 20000 --seed 1          # a longer run
    python3 tests/fuzz/fuzz_models.py --cases 2000 --model models/convnet.onnx

The parent process runs a worker subprocess over a range of case numbers; the worker prints each case number before
trying it, so when it dies the parent knows which case killed it, records it, and restarts the worker after it.
Every case is reproducible from (seed, case number): `--replay N` runs one case in-process."""
from __future__ import annotations

import argparse
import copy
import json
import os
import random
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
CLEAN = ("CnnrtError", "ModelError", "UnsupportedModelError", "ValueError", "TypeError", "MemoryError",
         "FileNotFoundError", "ImageError")


def small_model_bytes() -> bytes:
    """A small ConvNet with the shipped model's ops (and a few more): fast enough for thousands of cases."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)

    def init(name, *shape):
        return numpy_helper.from_array(rng.standard_normal(shape).astype(np.float32) * 0.3, name)

    nodes = [
        helper.make_node("Conv", ["input", "w1", "b1"], ["c1"], name="conv1", pads=[1, 1, 1, 1], kernel_shape=[3, 3]),
        helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
        helper.make_node("MaxPool", ["r1"], ["p1"], name="pool1", kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Conv", ["p1", "w2"], ["c2"], name="conv2", pads=[1, 1, 1, 1], group=2),
        helper.make_node("BatchNormalization", ["c2", "g", "be", "m", "v"], ["bn"], name="bn"),
        helper.make_node("Add", ["bn", "p1"], ["a"], name="add"),
        helper.make_node("AveragePool", ["a"], ["p2"], name="pool2", kernel_shape=[3, 3], strides=[2, 2],
                         pads=[1, 1, 1, 1], count_include_pad=1),
        helper.make_node("GlobalAveragePool", ["p2"], ["gp"], name="gap"),
        helper.make_node("Flatten", ["gp"], ["f"], name="flat", axis=1),
        helper.make_node("Gemm", ["f", "wf", "bf"], ["logits"], name="fc", transB=1),
        helper.make_node("Softmax", ["logits"], ["prob"], name="softmax", axis=1),
    ]
    inits = [init("w1", 4, 1, 3, 3), init("b1", 4), init("w2", 4, 2, 3, 3), init("g", 4), init("be", 4),
             init("m", 4), numpy_helper.from_array(np.abs(rng.standard_normal(4)).astype(np.float32) + 0.5, "v"),
             init("wf", 10, 4), init("bf", 10)]
    g = helper.make_graph(nodes, "fuzz", [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 1, 16, 16])],
                          [helper.make_tensor_value_info("prob", TensorProto.FLOAT, ["N", 10])], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(m)
    return m.SerializeToString()


INTERESTING_INTS = [0, 1, -1, 2, 3, -2, 7, 64, 1000, 2 ** 31 - 1, -2 ** 31, 2 ** 40, -(2 ** 62)]


def _mutate_graph(proto, rnd: random.Random):
    import onnx
    from onnx import helper

    g = proto.graph
    kind = rnd.choice([0, 0, 0, 0, 1, 2, 3, 3, 4, 5, 6, 6, 7, 8])
    if kind == 0 and len(g.node):  # attribute value
        n = rnd.choice(list(g.node))
        if len(n.attribute):
            a = rnd.choice(list(n.attribute))
            if a.type == onnx.AttributeProto.INT:
                a.i = rnd.choice(INTERESTING_INTS)
            elif a.type == onnx.AttributeProto.INTS:
                vals = [rnd.choice(INTERESTING_INTS) for _ in range(rnd.choice([0, 1, 2, 3, 4, 5, 8]))]
                del a.ints[:]
                a.ints.extend(vals)
            elif a.type == onnx.AttributeProto.FLOAT:
                a.f = rnd.choice([0.0, -1.0, 1e30, float("nan"), float("inf"), 1e-30])
            elif a.type == onnx.AttributeProto.STRING:
                a.s = rnd.choice([b"SAME_UPPER", b"VALID", b"bogus", b""])
        else:
            n.attribute.append(helper.make_attribute(rnd.choice(["pads", "strides", "dilations", "group", "axis",
                                                                 "kernel_shape", "ceil_mode"]),
                                                     rnd.choice([[rnd.choice(INTERESTING_INTS)] * 4,
                                                                 rnd.choice(INTERESTING_INTS)])))
    elif kind == 1 and len(g.initializer):  # initializer dims vs data
        t = rnd.choice(list(g.initializer))
        dims = list(t.dims)
        if dims and rnd.random() < 0.7:
            dims[rnd.randrange(len(dims))] = rnd.choice(INTERESTING_INTS)
        else:
            dims = dims + [rnd.choice([1, 2, 3])] if rnd.random() < 0.5 else dims[:-1]
        del t.dims[:]
        t.dims.extend(dims)
    elif kind == 2 and len(g.initializer):  # initializer data length
        t = rnd.choice(list(g.initializer))
        raw = t.raw_data if t.raw_data else np.asarray(t.float_data, np.float32).tobytes()
        cut = rnd.choice([0, 1, 3, 4, len(raw) // 2, len(raw) + 4])
        t.ClearField("float_data")
        t.raw_data = (raw + raw)[:cut]
    elif kind == 3:  # input shape
        vi = g.input[0]
        dims = vi.type.tensor_type.shape.dim
        if len(dims):
            d = dims[rnd.randrange(len(dims))]
            v = rnd.choice([0, 1, 2, 3, 5, 100, -1, 2 ** 31])
            if v >= 0:
                d.dim_value = v
    elif kind == 4 and len(g.node):  # rewire an input
        n = rnd.choice(list(g.node))
        if len(n.input):
            names = [i.name for i in g.initializer] + [o for m in g.node for o in m.output] + ["input", "nope", ""]
            n.input[rnd.randrange(len(n.input))] = rnd.choice(names)
    elif kind == 5 and len(g.node) > 1:  # drop or duplicate a node
        i = rnd.randrange(len(g.node))
        if rnd.random() < 0.5:
            del g.node[i]
        else:
            g.node.append(copy.deepcopy(g.node[i]))
    elif kind == 6 and len(g.node):  # change the op
        n = rnd.choice(list(g.node))
        n.op_type = rnd.choice(["Conv", "MaxPool", "AveragePool", "Gemm", "Relu", "Add", "Concat", "Reshape", "Slice",
                                "Transpose", "Softmax", "Split", "Pad", "Gather", "Flatten", "MatMul", "LRN", "Bogus"])
    elif kind == 7:  # cycle: make an early node read a late output
        if len(g.node) > 2:
            g.node[0].input[0] = g.node[-1].output[0]
    else:  # opset
        proto.opset_import[0].version = rnd.choice([1, 7, 9, 11, 13, 17, 21, 99])
    return proto


def make_case(base: bytes, seed: int, case: int) -> bytes:
    import onnx

    rnd = random.Random(seed * 1_000_003 + case)
    if rnd.random() < 0.15:  # byte-level
        data = bytearray(base)
        for _ in range(rnd.choice([1, 2, 4, 16])):
            op = rnd.randrange(3)
            pos = rnd.randrange(len(data))
            if op == 0:
                data[pos] = rnd.randrange(256)
            elif op == 1:
                data = data[:pos]
                if not data:
                    break
            else:
                data[pos:pos] = bytes(rnd.randrange(256) for _ in range(rnd.choice([1, 4, 9])))
        return bytes(data)
    proto = onnx.ModelProto()
    proto.ParseFromString(base)
    for _ in range(rnd.choice([1, 1, 2, 3])):
        proto = _mutate_graph(proto, rnd)
    return proto.SerializeToString()


def run_case(data: bytes, seed: int, case: int):
    """Load and run one case. Returns ('ok' | 'error:<Type>', message)."""
    import cnnrt

    try:
        sess = cnnrt.Session(data, num_threads=1 + case % 2, memory_limit=256 << 20)
        feed = {}
        for vi in sess.inputs:
            shape = [d if isinstance(d, int) and d > 0 else 2 for d in vi.shape]
            if int(np.prod(shape)) > 1 << 20:
                return "error:TooLarge", "input too large to feed"
            feed[vi.name] = np.random.default_rng(case).standard_normal(shape).astype(np.float32)
        outs = sess.run(feed)
        for o in outs:
            np.asarray(o).sum()
        return "ok", ""
    except Exception as e:  # noqa: BLE001 - we classify below
        return f"error:{type(e).__name__}", str(e).splitlines()[0][:200] if str(e) else ""


def worker(model_path: str | None, seed: int, start: int, stop: int):
    base = open(model_path, "rb").read() if model_path else small_model_bytes()
    for case in range(start, stop):
        print(f"CASE {case}", flush=True)
        data = make_case(base, seed, case)
        status, msg = run_case(data, seed, case)
        print(f"DONE {case} {status} {json.dumps(msg)}", flush=True)


def fuzz(cases: int, seed: int = 0, model: str | None = None, timeout: float = 600.0):
    """Run `cases` cases; returns a dict: counts per status, crashes [(case, returncode)], internal errors."""
    results = {}
    crashes = []
    internal = []
    start = 0
    t0 = time.time()
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    while start < cases and time.time() - t0 < timeout:
        cmd = [sys.executable, os.path.abspath(__file__), "--worker", "--seed", str(seed), "--start", str(start),
               "--stop", str(cases)] + (["--model", model] if model else [])
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
        current = None
        for line in p.stdout:
            if line.startswith("CASE "):
                current = int(line.split()[1])
            elif line.startswith("DONE "):
                _, c, status, msg = line.rstrip("\n").split(" ", 3)
                results[status] = results.get(status, 0) + 1
                if status.startswith("error:") and status[6:] not in CLEAN and status != "error:TooLarge":
                    internal.append((int(c), status, json.loads(msg)))
                current = None
                start = int(c) + 1
        rc = p.wait()
        if current is not None:  # died inside a case
            crashes.append((current, rc))
            results["crash"] = results.get("crash", 0) + 1
            start = current + 1
        elif rc != 0:
            break
    return {"cases": sum(results.values()), "counts": results, "crashes": crashes, "internal_errors": internal,
            "seconds": round(time.time() - t0, 1)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cases", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--model", default=None, help="fuzz this model file (default: a small built-in ConvNet)")
    ap.add_argument("--worker", action="store_true")
    ap.add_argument("--start", type=int, default=0)
    ap.add_argument("--stop", type=int, default=0)
    ap.add_argument("--replay", type=int, default=None)
    a = ap.parse_args()
    if a.worker:
        sys.path.insert(0, ROOT)
        worker(a.model, a.seed, a.start, a.stop)
        return
    if a.replay is not None:
        sys.path.insert(0, ROOT)
        base = open(a.model, "rb").read() if a.model else small_model_bytes()
        print(run_case(make_case(base, a.seed, a.replay), a.seed, a.replay))
        return
    r = fuzz(a.cases, a.seed, a.model, timeout=1e9)
    print(json.dumps(r, indent=1))
    sys.exit(1 if r["crashes"] else 0)


if __name__ == "__main__":
    main()
