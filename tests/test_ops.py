"""Operators, fusions and memory planning on small models built with onnx.helper, compared with onnxruntime.

Tolerance (`assert_close`): max |cnnrt - onnxruntime| <= TOL * max(1, max |onnxruntime|), TOL = 5e-5, i.e. relative to
the output's scale. Both runtimes compute in float32 with different summation orders (GEMM blocking, SIMD lanes,
Winograd/direct/implicit-GEMM convolutions) and different exp/tanh approximations; on these sizes (dot products of
at most a few hundred terms) that gives differences of ~1e-6 of the output scale. A wrong index, padding, window or
broadcast gives errors of the output's own size, 4 orders of magnitude above TOL.
"""
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import cnnrt
from cnnrt import _core

ort = pytest.importorskip("onnxruntime")

TOL = 5e-5
F = TensorProto.FLOAT
I64 = TensorProto.INT64
INT_MAX = 2 ** 63 - 1


# ---- helpers -----------------------------------------------------------------------------------------------------
def rand(*shape, seed=0, lo=-1.0, hi=1.0):
    return np.random.default_rng(seed).uniform(lo, hi, shape).astype(np.float32)


def model(nodes, inputs, outputs, inits=None, opset=17):
    """inputs/outputs: {name: shape or None}; inits: {name: array}."""
    ins = [helper.make_tensor_value_info(n, F, s) for n, s in inputs.items()]
    outs = []
    for n, s in outputs.items():
        if isinstance(s, dict):  # {"dtype": onnx type, "shape": ...}
            outs.append(helper.make_tensor_value_info(n, s["dtype"], s.get("shape")))
        else:
            outs.append(helper.make_tensor_value_info(n, F, s))
    init = [numpy_helper.from_array(np.asarray(v), k) for k, v in (inits or {}).items()]
    g = helper.make_graph(nodes, "t", ins, outs, init)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = min(m.ir_version, 10)
    if any(not o.type.tensor_type.HasField("shape") for o in m.graph.output):
        m = onnx.shape_inference.infer_shapes(m)  # outputs declared without a shape: onnx infers it
        for o in m.graph.output:
            if not o.type.tensor_type.HasField("shape"):  # still unknown: declare the rank from onnxruntime
                pass
    onnx.checker.check_model(m)
    return m


def ort_run(m, feeds):
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    s = ort.InferenceSession(m.SerializeToString(), so, providers=["CPUExecutionProvider"])
    return s.run(None, feeds)


def assert_close(got, ref, tol=TOL, what=""):
    assert got.shape == ref.shape, f"{what}: shape {got.shape} != onnxruntime's {ref.shape}"
    assert got.dtype == ref.dtype, f"{what}: dtype {got.dtype} != onnxruntime's {ref.dtype}"
    if got.size == 0:
        return
    if ref.dtype.kind != "f":
        np.testing.assert_array_equal(got, ref)
        return
    fin = np.isfinite(ref)
    assert np.array_equal(np.isnan(got), np.isnan(ref)), f"{what}: NaN positions differ"
    assert np.array_equal(got[~fin & ~np.isnan(ref)], ref[~fin & ~np.isnan(ref)]), f"{what}: infinities differ"
    scale = max(1.0, float(np.abs(ref[fin]).max()) if fin.any() else 1.0)
    err = float(np.abs(got[fin].astype(np.float64) - ref[fin]).max()) if fin.any() else 0.0
    assert err <= tol * scale, f"{what}: max error {err:.3g} > {tol} * scale {scale:.3g}"


def check(m, feeds, tol=TOL, threads=2, sess=None, **kw):
    """Run cnnrt and onnxruntime on the same feeds; compare every output. Returns the cnnrt Session."""
    if not isinstance(feeds, dict):
        feeds = {m.graph.input[0].name: feeds}
    s = sess or cnnrt.Session(m.SerializeToString(), num_threads=threads, **kw)
    got = s.run(feeds)
    ref = ort_run(m, feeds)
    assert len(got) == len(ref)
    for k, (g, r) in enumerate(zip(got, ref)):
        assert_close(g, r, tol, what=f"output {m.graph.output[k].name}")
    return s


def ops_after(s):
    return [n["op"] for n in s.optimized_graph_summary()]


def fused_of(s, op):
    return [f for n in s.optimized_graph_summary() if n["op"] == op for f in n["fused"]]


def const(name, value, dtype=None):
    return helper.make_node("Constant", [], [name], value=numpy_helper.from_array(np.asarray(value, dtype)))


def ints(*v):
    return np.array(v, np.int64)


# ---- Conv --------------------------------------------------------------------------------------------------------
CONV_CASES = [
    # (input NCHW, weight OIHW, attrs)
    ((2, 3, 9, 8), (4, 3, 3, 3), dict(auto_pad="SAME_UPPER")),
    ((1, 3, 9, 8), (4, 3, 4, 4), dict(auto_pad="SAME_UPPER")),                  # even kernel: asymmetric pads
    ((1, 3, 9, 8), (4, 3, 4, 4), dict(auto_pad="SAME_LOWER")),
    ((1, 3, 10, 7), (4, 3, 3, 3), dict(auto_pad="SAME_UPPER", strides=[2, 2])),  # stride 2: asymmetric pads
    ((1, 3, 10, 7), (4, 3, 3, 3), dict(auto_pad="SAME_LOWER", strides=[2, 2])),
    ((1, 3, 11, 9), (5, 3, 3, 2), dict(auto_pad="SAME_LOWER", strides=[2, 3], dilations=[2, 1])),
    ((1, 3, 9, 8), (4, 3, 3, 3), dict(auto_pad="VALID")),
    ((1, 3, 9, 8), (4, 3, 3, 3), dict(auto_pad="VALID", strides=[2, 2])),
    ((1, 3, 9, 8), (4, 3, 3, 3), dict(pads=[0, 1, 2, 0])),                      # asymmetric explicit pads
    ((1, 3, 9, 8), (4, 3, 3, 3), dict(pads=[2, 0, 0, 3], strides=[2, 1])),
    ((1, 3, 12, 12), (4, 3, 3, 3), dict(pads=[2, 2, 2, 2], dilations=[2, 2])),
    ((1, 3, 12, 12), (4, 3, 3, 2), dict(pads=[1, 3, 0, 1], dilations=[1, 3], strides=[1, 2])),
    ((2, 4, 8, 8), (6, 2, 3, 3), dict(pads=[1, 1, 1, 1], group=2)),
    ((2, 6, 8, 8), (6, 1, 3, 3), dict(pads=[1, 1, 1, 1], group=6)),             # depthwise
    ((1, 6, 9, 9), (12, 1, 3, 3), dict(pads=[1, 1, 1, 1], group=6, strides=[2, 2])),  # depthwise, multiplier 2
    ((1, 8, 10, 10), (8, 1, 5, 5), dict(auto_pad="SAME_UPPER", group=8)),
    ((1, 8, 10, 10), (8, 1, 3, 3), dict(pads=[0, 1, 2, 1], group=8, dilations=[2, 2])),
    ((1, 16, 7, 7), (8, 16, 1, 1), dict()),
    ((1, 16, 7, 7), (8, 16, 1, 1), dict(strides=[2, 2])),
    ((1, 3, 7, 7), (4, 3, 3, 3), dict(kernel_shape=[3, 3], pads=[1, 1, 1, 1])),
    ((2, 3, 20), (4, 3, 5), dict(pads=[2, 1], strides=[2])),                     # 1-D
    ((2, 4, 17), (4, 2, 3), dict(auto_pad="SAME_UPPER", group=2, dilations=[2])),
]


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("xs,ws,attrs", CONV_CASES)
def test_conv(xs, ws, attrs, bias):
    inits = {"w": rand(*ws, seed=1)}
    ins = ["x", "w"]
    if bias:
        inits["b"] = rand(ws[0], seed=2)
        ins.append("b")
    m = model([helper.make_node("Conv", ins, ["y"], **attrs)], {"x": list(xs)}, {"y": None}, inits, opset=11)
    check(m, rand(*xs, seed=3))


@pytest.mark.parametrize("isa", ["scalar", None])
def test_conv_isas_and_threads(isa):
    m = model([helper.make_node("Conv", ["x", "w", "b"], ["y"], auto_pad="SAME_LOWER", strides=[2, 2])],
              {"x": ["N", 5, 13, 11]}, {"y": None}, {"w": rand(7, 5, 4, 4, seed=1), "b": rand(7, seed=2)})
    for threads in (1, 3):
        check(m, rand(3, 5, 13, 11, seed=3), threads=threads, isa=isa)


# ---- BatchNormalization and activations ---------------------------------------------------------------------------
@pytest.mark.parametrize("xs", [(2, 3, 5, 4), (4, 3), (2, 3, 7)])
@pytest.mark.parametrize("opset", [9, 15])
def test_batchnorm_alone(xs, opset):
    c = xs[1]
    inits = {"s": rand(c, seed=1, lo=0.5, hi=2), "bb": rand(c, seed=2), "m": rand(c, seed=3),
             "v": rand(c, seed=4, lo=0.1, hi=2)}
    m = model([helper.make_node("BatchNormalization", ["x", "s", "bb", "m", "v"], ["y"], epsilon=1e-3)],
              {"x": list(xs)}, {"y": None}, inits, opset=opset)
    s = check(m, rand(*xs, seed=5, lo=-3, hi=3))
    assert ops_after(s) == ["BatchNormalization"]


ACTS = [
    ("Relu", {}, [], {}),
    ("LeakyRelu", {"alpha": 0.2}, [], {}),
    ("LeakyRelu", {}, [], {}),
    ("Sigmoid", {}, [], {}),
    ("HardSigmoid", {"alpha": 0.3, "beta": 0.4}, [], {}),
    ("HardSigmoid", {}, [], {}),
    ("HardSwish", {}, [], {}),
    ("Tanh", {}, [], {}),
    ("Clip", {}, ["lo", "hi"], {"lo": np.float32(-0.5), "hi": np.float32(1.5)}),
    ("Clip", {}, ["lo"], {"lo": np.float32(-0.5)}),          # min only
    ("Clip", {}, ["", "hi"], {"hi": np.float32(0.7)}),        # max only
    ("Clip", {}, [], {}),                                     # no bounds: identity
    ("Clip", {}, ["lo", "hi"], {"lo": np.float32(0), "hi": np.float32(6)}),   # ReLU6
]


@pytest.mark.parametrize("op,attrs,extra,inits", ACTS)
def test_activation(op, attrs, extra, inits):
    m = model([helper.make_node(op, ["x"] + extra, ["y"], **attrs)], {"x": [2, 3, 4, 5]}, {"y": None}, inits,
              opset=14)
    check(m, rand(2, 3, 4, 5, seed=1, lo=-8, hi=8))


@pytest.mark.parametrize("attrs", [dict(min=-0.5, max=1.5), dict(min=0.0), dict(max=0.5), dict()])
def test_clip_opset6_attributes(attrs):
    m = model([helper.make_node("Clip", ["x"], ["y"], **attrs)], {"x": [2, 3, 4]}, {"y": None}, opset=6)
    check(m, rand(2, 3, 4, seed=1, lo=-3, hi=3))


@pytest.mark.parametrize("slope_shape", [(3, 1, 1), (1,), (1, 3, 1, 1), (5,), (4, 5)])
def test_prelu(slope_shape):
    m = model([helper.make_node("PRelu", ["x", "s"], ["y"])], {"x": [2, 3, 4, 5]}, {"y": None},
              {"s": rand(*slope_shape, seed=1)}, opset=9)
    check(m, rand(2, 3, 4, 5, seed=2))


def test_prelu_per_channel_slope_of_old_exporters():
    # a [C] slope on [N, C, H, W] (C != W): cnnrt applies it per channel, as the exporters that wrote it meant
    x = rand(2, 3, 4, 5, seed=2)
    slope = rand(3, seed=1)
    m = model([helper.make_node("PRelu", ["x", "s"], ["y"])], {"x": [2, 3, 4, 5]}, {"y": None}, {"s": slope}, opset=9)
    (y,) = cnnrt.Session(m.SerializeToString()).run(x)
    ref = np.where(x >= 0, x, x * slope.reshape(3, 1, 1))
    assert np.allclose(y, ref, atol=1e-6)


# ---- binary ops and broadcasting -----------------------------------------------------------------------------------
BCAST = [
    ((2, 3, 4, 5), (5,)),            # rank-1 operand on the last axis
    ((2, 3, 4, 5), (3, 1, 1)),
    ((2, 3, 4, 5), (1, 3, 1, 1)),    # rank-4, per channel
    ((2, 3, 4, 5), (2, 1, 4, 1)),
    ((2, 1, 4, 1), (1, 3, 1, 5)),    # both sides broadcast
    ((5,), (2, 3, 4, 5)),            # the small operand first
    ((1, 3, 1, 1), (2, 3, 4, 5)),
    ((2, 3, 4, 5), ()),              # scalar
    ((), (2, 3)),
    ((2, 3, 4, 5), (2, 3, 4, 5)),
]


@pytest.mark.parametrize("op", ["Add", "Sub", "Mul", "Div", "Max", "Min"])
@pytest.mark.parametrize("sa,sb", BCAST)
def test_binary_broadcast(op, sa, sb):
    m = model([helper.make_node(op, ["a", "b"], ["y"])], {"a": list(sa), "b": list(sb)}, {"y": None}, opset=13)
    b = rand(*sb, seed=2, lo=0.5, hi=2) if op == "Div" else rand(*sb, seed=2)
    check(m, {"a": rand(*sa, seed=1), "b": b})


@pytest.mark.parametrize("sb", [(5,), (1, 3, 1, 1), ()])
@pytest.mark.parametrize("first", [True, False])
def test_binary_with_constant_operand(sb, first):
    ins = ["x", "c"] if first else ["c", "x"]
    m = model([helper.make_node("Sub", ins, ["y"])], {"x": [2, 3, 4, 5]}, {"y": None}, {"c": rand(*sb, seed=3)})
    check(m, rand(2, 3, 4, 5, seed=1))


def test_pow():
    m = model([helper.make_node("Pow", ["a", "b"], ["y"])], {"a": [2, 3, 4], "b": [4]}, {"y": None}, opset=13)
    check(m, {"a": rand(2, 3, 4, seed=1, lo=0.1, hi=3), "b": rand(4, seed=2, lo=-2, hi=3)})


@pytest.mark.parametrize("shapes", [[(2, 3, 4)] * 3, [(2, 3, 4), (4,), (3, 1)], [(2, 3, 4)], [(1, 3, 1), (2, 1, 4)]])
@pytest.mark.parametrize("op", ["Sum", "Max", "Min"])
def test_variadic(op, shapes):
    names = [f"x{k}" for k in range(len(shapes))]
    m = model([helper.make_node(op, names, ["y"])], {n: list(s) for n, s in zip(names, shapes)}, {"y": None},
              opset=13)
    check(m, {n: rand(*s, seed=k) for k, (n, s) in enumerate(zip(names, shapes))})
