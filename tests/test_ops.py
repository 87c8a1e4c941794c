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


def onnx_reference_run(m, feeds):
    from onnx.reference import ReferenceEvaluator

    return [np.asarray(v) for v in ReferenceEvaluator(m).run(None, feeds)]


def check(m, feeds, tol=TOL, threads=2, sess=None, oracle=ort_run, **kw):
    """Run cnnrt and onnxruntime (or `oracle`) on the same feeds; compare every output. Returns the cnnrt Session."""
    if not isinstance(feeds, dict):
        feeds = {m.graph.input[0].name: feeds}
    s = sess or cnnrt.Session(m.SerializeToString(), num_threads=threads, **kw)
    got = s.run(feeds)
    ref = oracle(m, feeds)
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
    # onnxruntime refuses dilations with SAME padding: onnx's reference implementation is the oracle there
    same_dil = attrs.get("auto_pad", "").startswith("SAME") and max(attrs.get("dilations", [1])) > 1
    check(m, rand(*xs, seed=3), oracle=onnx_reference_run if same_dil else ort_run)


@pytest.mark.parametrize("act", [None, "Sigmoid", "Relu"])
@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("residual", [False, True])
def test_pointwise_conv_of_1x1_images_runs_as_fc(act, batch, residual):
    """Squeeze-and-excitation: a 1x1 conv of a 1x1 image is lowered to the FC path (GEMV at batch 1)."""
    nodes = [helper.make_node("GlobalAveragePool", ["x"], ["g"]),
             helper.make_node("Conv", ["g", "w", "b"], ["c"], kernel_shape=[1, 1])]
    y = "c"
    if residual:
        nodes.append(helper.make_node("Add", ["c", "r"], ["cr"]))
        y = "cr"
    if act:
        nodes.append(helper.make_node(act, [y], ["y"]))
    else:
        nodes.append(helper.make_node("Identity", [y], ["y"]))
    ins = {"x": ["N", 24, 5, 6]}
    if residual:
        ins["r"] = ["N", 10, 1, 1]
    m = model(nodes, ins, {"y": None}, {"w": rand(10, 24, 1, 1, seed=1), "b": rand(10, seed=2)}, opset=13)
    feeds = {"x": rand(batch, 24, 5, 6, seed=3)}
    if residual:
        feeds["r"] = rand(batch, 10, 1, 1, seed=4)
    s = check(m, feeds)
    kinds = [(n.op, n.kind) for n in s.plan_info({k: v.shape for k, v in feeds.items()}).nodes]
    assert ("Conv", "fc") in kinds, kinds


@pytest.mark.parametrize("isa", ["scalar", None])
def test_conv_isas_and_threads(isa):
    m = model([helper.make_node("Conv", ["x", "w", "b"], ["y"], auto_pad="SAME_LOWER", strides=[2, 2])],
              {"x": ["N", 5, 13, 11]}, {"y": None}, {"w": rand(7, 5, 4, 4, seed=1), "b": rand(7, seed=2)})
    for threads in (1, 3):
        check(m, rand(3, 5, 13, 11, seed=3), threads=threads, isa=isa)


# ---- Conv -> MaxPool(2x2, stride 2) fused into the Winograd output transform ------------------------------------
def _conv_pool_model(xs, cout, act=None, pool_attrs=None, extra_reader=False):
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1])]
    y = "c"
    if act == "Relu":
        nodes.append(helper.make_node("Relu", ["c"], ["a"]))
        y = "a"
    elif act == "Clip":
        nodes.append(helper.make_node("Clip", ["c", "lo", "hi"], ["a"]))
        y = "a"
    elif act == "Sigmoid":
        nodes.append(helper.make_node("Sigmoid", ["c"], ["a"]))
        y = "a"
    attrs = dict(kernel_shape=[2, 2], strides=[2, 2])
    attrs.update(pool_attrs or {})
    nodes.append(helper.make_node("MaxPool", [y], ["y"], **attrs))
    outs = {"y": None}
    if extra_reader:
        nodes.append(helper.make_node("Sigmoid", [y], ["z"]))
        outs["z"] = None
    inits = {"w": rand(cout, xs[1], 3, 3, seed=1) * 0.2, "b": rand(cout, seed=2),
             "lo": np.array(-0.25, np.float32), "hi": np.array(0.5, np.float32)}
    return model(nodes, {"x": list(xs)}, outs, inits)


def _pool_fused(s, shape):
    return [i for i in s.plan_info({"x": shape}).nodes if any(f.startswith("MaxPool(") for f in i.fused)]


@pytest.mark.parametrize("xs", [(1, 16, 16, 16), (2, 24, 13, 11), (1, 17, 13, 20), (3, 16, 6, 7)])
@pytest.mark.parametrize("act", [None, "Relu", "Clip"])
@pytest.mark.parametrize("threads", [1, 2])
def test_conv_maxpool_fused(xs, act, threads):
    m = _conv_pool_model(xs, 20, act)
    s = check(m, rand(*xs, seed=3), threads=threads)
    fused = _pool_fused(s, xs)
    algo = s.conv_algorithms({"x": xs})[0]["algo"]
    # fused exactly when this shape's plan runs Winograd (enough tiles); the pool node then disappears
    assert bool(fused) == algo.startswith("winograd"), (algo, fused)
    if xs[0] * -(-xs[2] // 4) * -(-xs[3] // 4) >= 16:  # >= 16 F(4,3) tiles: Winograd, so fused
        assert fused, algo


@pytest.mark.parametrize("hw", [(7, 7), (8, 8), (6, 11)])
def test_small_output_conv_uses_f23(hw):
    """Outputs with < 16 F(4,3) tiles but >= 16 F(2,3) tiles (7x7, 8x8 at batch 1) run F(2,3), not GEMM."""
    xs = (1, 32, *hw)
    m = model([helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1]),
               helper.make_node("Relu", ["c"], ["y"])], {"x": ["N", 32, *hw]}, {"y": None},
              {"w": rand(24, 32, 3, 3, seed=1) * 0.2, "b": rand(24, seed=2)})
    s = check(m, rand(*xs, seed=3))
    a = s.conv_algorithms({"x": xs})[0]
    assert a["algo"] == "winograd-f2" and a["winograd_tile"] == 2, a
    check(m, rand(2, 32, *hw, seed=4), sess=s)  # still small (< 16 F(4,3) tiles): the same F(2,3) weights
    assert len(s._prep.conv) == 1
    big = (8, 32, *hw)  # enough F(4,3) tiles: F(4,3), packed once more
    check(m, rand(*big, seed=5), sess=s)
    assert s.conv_algorithms({"x": big})[0]["algo"] == "winograd-f4"
    assert len(s._prep.conv) == 2
    off = check(m, rand(*xs, seed=3), winograd=False)
    assert off.conv_algorithms({"x": xs})[0]["algo"] == "gemm"


@pytest.mark.parametrize("case", ["sigmoid", "pads", "stride1", "ceil_odd", "second_reader", "winograd_off"])
def test_conv_maxpool_not_fused(case):
    xs = (1, 16, 13, 13)
    kw = {}
    if case == "sigmoid":
        m = _conv_pool_model(xs, 16, "Sigmoid")  # not a clamp: does not commute with max
    elif case == "pads":
        m = _conv_pool_model(xs, 16, "Relu", dict(pads=[1, 1, 1, 1]))
    elif case == "stride1":
        m = _conv_pool_model(xs, 16, "Relu", dict(strides=[1, 1]))
    elif case == "ceil_odd":
        m = _conv_pool_model(xs, 16, "Relu", dict(ceil_mode=1))  # 13x13: ceil adds a partial window
    elif case == "second_reader":
        m = _conv_pool_model(xs, 16, "Relu", extra_reader=True)
    else:
        m = _conv_pool_model(xs, 16, "Relu")
        kw = dict(winograd=False)
    s = check(m, rand(*xs, seed=3), **kw)
    assert not _pool_fused(s, xs)
    assert "MaxPool" in [i.op for i in s.plan_info({"x": xs}).nodes]


def _expand_dw_model(cin, c, k=3, stride=2, expand_act="Clip", dw_act="Clip", pads=None, residual=False,
                     extra_reader=False):
    """MobileNetV2's inverted-residual front: 1x1 expansion, activation, depthwise k x k, activation."""
    p = (k - 1) // 2
    nodes = [helper.make_node("Conv", ["x", "we", "be"], ["e"])]
    e = "e"
    if expand_act == "Clip":
        nodes.append(helper.make_node("Clip", ["e", "lo", "hi"], ["ea"]))
        e = "ea"
    elif expand_act == "SiLU":
        nodes += [helper.make_node("Sigmoid", ["e"], ["es"]), helper.make_node("Mul", ["e", "es"], ["ea"])]
        e = "ea"
    nodes.append(helper.make_node("Conv", [e, "wd", "bd"], ["d"], group=c, strides=[stride, stride],
                                  pads=pads or [p, p, p, p]))
    y = "d"
    if dw_act == "Clip":
        nodes.append(helper.make_node("Clip", ["d", "lo", "hi"], ["da"]))
        y = "da"
    outs = {"y": None}
    if residual:  # the depthwise output plus a tensor of its shape: the Add fuses into the depthwise conv
        nodes.append(helper.make_node("Add", [y, "r"], ["y"]))
    else:
        nodes.append(helper.make_node("Identity", [y], ["y"]))
    if extra_reader:
        nodes.append(helper.make_node("Relu", [e], ["z"]))
        outs["z"] = None
    inits = {"we": rand(c, cin, 1, 1, seed=1) * 0.5, "be": rand(c, seed=2), "wd": rand(c, 1, k, k, seed=3),
             "bd": rand(c, seed=4), "lo": np.array(0.0, np.float32), "hi": np.array(6.0, np.float32)}
    ins = {"x": ["N", cin, None, None]}
    if residual:
        ins["r"] = ["N", c, None, None]
    return model(nodes, ins, outs, inits)


def _dw_fused(s, shapes):
    return [i for i in s.plan_info(shapes).nodes if i.algo.endswith("+depthwise")]


@pytest.mark.parametrize("shape,k,stride", [((1, 16, 112, 112), 3, 2), ((2, 8, 90, 75), 5, 1), ((1, 12, 96, 90), 3, 1)])
@pytest.mark.parametrize("threads", [1, 2])
def test_expand_depthwise_fused(shape, k, stride, threads):
    """The expansion's output (96 x H x W floats, >= 2 MiB) is never materialized: one node, same results."""
    m = _expand_dw_model(shape[1], 96, k, stride)
    x = rand(*shape, seed=5, lo=-2, hi=2)
    s = check(m, x, threads=threads)
    fused = _dw_fused(s, {"x": shape})
    assert len(fused) == 1 and any(f.startswith("Conv(") for f in fused[0].fused), fused
    assert [i.op for i in s.plan_info({"x": shape}).nodes].count("Conv") == 1


def test_expand_depthwise_fused_switch_off(monkeypatch):
    shape = (1, 16, 112, 112)
    m = _expand_dw_model(16, 96)
    x = rand(*shape, seed=6)
    on = cnnrt.Session(m.SerializeToString(), num_threads=1)
    a = on.run(x)[0]  # planned now: the switch is read when a plan is made
    monkeypatch.setenv("CNNRT_EXPAND_DW", "0")
    off = cnnrt.Session(m.SerializeToString(), num_threads=1)
    b = off.run(x)[0]
    assert _dw_fused(on, {"x": shape}) and not _dw_fused(off, {"x": shape})
    assert_close(a, b, what="fused vs separate")


@pytest.mark.parametrize("case", ["small", "silu", "residual", "second_reader", "pads"])
def test_expand_depthwise_not_fused(case):
    shape = (1, 16, 112, 112)
    kw = {}
    if case == "small":  # 96 x 56 x 56 floats: 1.2 MB, stays in cache between the layers
        shape = (1, 16, 56, 56)
    elif case == "silu":
        kw = dict(expand_act="SiLU")
    elif case == "residual":  # the Add right after the depthwise conv fuses into it as its residual
        kw = dict(residual=True, dw_act=None)
    elif case == "second_reader":
        kw = dict(extra_reader=True)
    elif case == "pads":  # more padding than (k-1)/2: output rows of pure padding
        kw = dict(pads=[2, 2, 2, 2])
    m = _expand_dw_model(16, 96, **kw)
    feeds = {"x": rand(*shape, seed=7)}
    if case == "residual":
        oh = (shape[2] + 2 - 3) // 2 + 1
        feeds["r"] = rand(1, 96, oh, oh, seed=8)
    s = check(m, feeds)
    nodes = s.plan_info({k: v.shape for k, v in feeds.items()}).nodes
    assert not _dw_fused(s, {k: v.shape for k, v in feeds.items()})
    if case == "residual":
        assert any(f.startswith("Add(") for i in nodes for f in i.fused), nodes


def test_conv_maxpool_ceil_mode_even_is_fused():
    xs = (2, 16, 12, 14)
    m = _conv_pool_model(xs, 16, "Relu", dict(ceil_mode=1))
    s = check(m, rand(*xs, seed=3))
    assert _pool_fused(s, xs)


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


# ---- pooling ---------------------------------------------------------------------------------------------------
POOLS = [
    dict(kernel_shape=[3, 3], strides=[2, 2]),
    dict(kernel_shape=[3, 3], strides=[2, 2], ceil_mode=1),
    dict(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1], ceil_mode=1),
    dict(kernel_shape=[2, 2], strides=[2, 2], pads=[1, 1, 1, 1], ceil_mode=1),   # last window starts in the padding
    dict(kernel_shape=[3, 3], strides=[3, 3], pads=[1, 1, 1, 1], ceil_mode=1),
    dict(kernel_shape=[3, 2], strides=[2, 3], pads=[0, 1, 2, 0], ceil_mode=1),
    dict(kernel_shape=[3, 3], strides=[1, 1], pads=[1, 0, 2, 1]),                # asymmetric pads
    dict(kernel_shape=[2, 3], auto_pad="SAME_UPPER", strides=[2, 2]),
    dict(kernel_shape=[2, 3], auto_pad="SAME_LOWER", strides=[2, 2]),
    dict(kernel_shape=[3, 3], auto_pad="SAME_UPPER"),
    dict(kernel_shape=[3, 3], auto_pad="VALID", strides=[2, 2], ceil_mode=1),
    dict(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1], dilations=[2, 2]),
    dict(kernel_shape=[2, 2], strides=[1, 1], dilations=[2, 3], ceil_mode=1),
    dict(kernel_shape=[5, 5], strides=[1, 1], pads=[2, 2, 2, 2]),
    dict(kernel_shape=[1, 1], strides=[2, 2]),
]


@pytest.mark.parametrize("op,extra", [("MaxPool", {}), ("AveragePool", {"count_include_pad": 0}),
                                      ("AveragePool", {"count_include_pad": 1})])
@pytest.mark.parametrize("attrs", POOLS)
@pytest.mark.parametrize("hw", [(9, 10), (8, 7)])
def test_pool(op, extra, attrs, hw):
    if op == "AveragePool" and "dilations" in attrs:
        opset = 19
    else:
        opset = 12 if op == "MaxPool" else 11
    m = model([helper.make_node(op, ["x"], ["y"], **attrs, **extra)], {"x": [2, 3, *hw]}, {"y": None}, opset=opset)
    x = rand(2, 3, *hw, seed=4, lo=-5, hi=-1)  # all negative: a max over padding would show up as 0
    check(m, x)


@pytest.mark.parametrize("op,attrs", [("MaxPool", dict(kernel_shape=[3], strides=[2], pads=[1, 1], ceil_mode=1)),
                                      ("AveragePool", dict(kernel_shape=[4], strides=[3], pads=[2, 1],
                                                           count_include_pad=1)),
                                      ("AveragePool", dict(kernel_shape=[3], auto_pad="SAME_UPPER", strides=[2]))])
def test_pool_1d(op, attrs):
    m = model([helper.make_node(op, ["x"], ["y"], **attrs)], {"x": [2, 3, 11]}, {"y": None}, opset=12)
    check(m, rand(2, 3, 11, seed=1))


@pytest.mark.parametrize("op", ["GlobalAveragePool", "GlobalMaxPool"])
@pytest.mark.parametrize("xs", [(2, 3, 5, 7), (2, 3, 9), (1, 4, 1, 1)])
def test_global_pool(op, xs):
    m = model([helper.make_node(op, ["x"], ["y"])], {"x": list(xs)}, {"y": None})
    check(m, rand(*xs, seed=1))


# ---- reductions ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("op", ["ReduceMean", "ReduceMax", "ReduceSum"])
@pytest.mark.parametrize("axes,keepdims", [([2, 3], 1), ([2, 3], 0), ([1], 0), ([-1], 1), ([0, 2], 0), (None, 1),
                                           (None, 0), ([-3, -1], 1)])
@pytest.mark.parametrize("form", ["attribute", "input"])
def test_reduce(op, axes, keepdims, form):
    attrs = {"keepdims": keepdims}
    inits = {}
    ins = ["x"]
    if form == "attribute":
        opset = 13 if op != "ReduceSum" else 11
        if axes is not None:
            attrs["axes"] = axes
    else:
        opset = 18
        if axes is not None:
            inits["axes"] = np.array(axes, np.int64)
            ins.append("axes")
    m = model([helper.make_node(op, ins, ["y"], **attrs)], {"x": [2, 3, 4, 5]}, {"y": None}, inits, opset=opset)
    check(m, rand(2, 3, 4, 5, seed=1))


@pytest.mark.parametrize("axes", [None, []])
def test_reduce_noop_with_empty_axes(axes):
    inits, ins = {}, ["x"]
    if axes is not None:
        inits["axes"] = np.array(axes, np.int64)
        ins.append("axes")
    m = model([helper.make_node("ReduceMean", ins, ["y"], noop_with_empty_axes=1)], {"x": [2, 3, 4]}, {"y": None},
              inits, opset=18)
    x = rand(2, 3, 4, seed=1)
    s = check(m, x, oracle=onnx_reference_run)
    assert np.array_equal(s.run(x)[0], x)  # the spec: no reduction when axes are absent or empty


# ---- data movement ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("axis", [0, 1, 2, 3, 4, -1, -4])
def test_flatten(axis):
    m = model([helper.make_node("Flatten", ["x"], ["y"], axis=axis)], {"x": [2, 3, 4, 5]}, {"y": None}, opset=13)
    check(m, rand(2, 3, 4, 5, seed=1))


@pytest.mark.parametrize("shape,allowzero", [([0, -1], 0), ([0, 0, -1], 0), ([-1, 5], 0), ([2, 0, 20], 0),
                                             ([6, -1, 1, 1], 0), ([2, 3, 20], 1), ([-1], 0), ([0, 3, 4, 5], 0)])
def test_reshape(shape, allowzero):
    attrs = {"allowzero": allowzero} if allowzero else {}
    m = model([helper.make_node("Reshape", ["x", "s"], ["y"], **attrs)], {"x": [2, 3, 4, 5]}, {"y": None},
              {"s": np.array(shape, np.int64)}, opset=14)
    check(m, rand(2, 3, 4, 5, seed=1))


def test_reshape_chain_to_graph_output_is_a_copy():
    # a view chain (Reshape of Flatten) that ends at a graph output and also feeds another node
    m = model([helper.make_node("Flatten", ["x"], ["f"]),
               helper.make_node("Reshape", ["f", "s"], ["y"]),
               helper.make_node("Relu", ["y"], ["z"])],
              {"x": [2, 3, 4]}, {"y": None, "z": None}, {"s": ints(3, 8)}, opset=13)
    check(m, rand(2, 3, 4, seed=1))


@pytest.mark.parametrize("perm", [None, [0, 2, 3, 1], [3, 2, 1, 0], [1, 0, 2, 3], [0, 1, 2, 3]])
def test_transpose(perm):
    attrs = {"perm": perm} if perm is not None else {}
    m = model([helper.make_node("Transpose", ["x"], ["y"], **attrs)], {"x": [2, 3, 4, 5]}, {"y": None})
    check(m, rand(2, 3, 4, 5, seed=1))


@pytest.mark.parametrize("opset", [11, 13])
@pytest.mark.parametrize("axes", [[1], [-3, 3], None])
def test_squeeze(opset, axes):
    ins, inits, attrs = ["x"], {}, {}
    if axes is not None:
        if opset >= 13:
            ins.append("axes")
            inits["axes"] = np.array(axes, np.int64)
        else:
            attrs["axes"] = axes
    m = model([helper.make_node("Squeeze", ins, ["y"], **attrs)], {"x": [2, 1, 4, 1]}, {"y": None}, inits,
              opset=opset)
    check(m, rand(2, 1, 4, 1, seed=1))


@pytest.mark.parametrize("opset", [11, 13])
@pytest.mark.parametrize("axes", [[0], [1, -1], [-1], [0, 3, 5]])
def test_unsqueeze(opset, axes):
    ins, inits, attrs = ["x"], {}, {}
    if opset >= 13:
        ins.append("axes")
        inits["axes"] = np.array(axes, np.int64)
    else:
        attrs["axes"] = axes
    m = model([helper.make_node("Unsqueeze", ins, ["y"], **attrs)], {"x": [2, 3, 4]}, {"y": None}, inits,
              opset=opset)
    check(m, rand(2, 3, 4, seed=1))


@pytest.mark.parametrize("axis", [0, 1, 3, -1, -3])
def test_concat(axis):
    shapes = []
    for k in range(3):
        s = [2, 3, 4, 5]
        s[axis] = k + 1
        shapes.append(s)
    inits = {"c": rand(*shapes[1], seed=9)}  # one constant operand
    m = model([helper.make_node("Concat", ["a", "c", "b"], ["y"], axis=axis)], {"a": shapes[0], "b": shapes[2]},
              {"y": None}, inits, opset=13)
    check(m, {"a": rand(*shapes[0], seed=1), "b": rand(*shapes[2], seed=2)})


@pytest.mark.parametrize("opset,attrs,split,n", [
    (11, dict(axis=1), None, 3),                  # equal parts
    (11, dict(axis=1, split=[1, 4, 1]), None, 3),  # attribute
    (13, dict(axis=-1), [2, 5], 2),               # input
    (13, dict(axis=1), None, 2),
    (18, dict(axis=1, num_outputs=4), None, 4),   # uneven: 2, 2, 2, 0? no: 6 -> 2,2,2? see below
    (18, dict(axis=3, num_outputs=3), None, 3),   # 7 -> 3, 3, 1
    (18, dict(axis=1), [3, 3], 2),
])
def test_split(opset, attrs, split, n):
    xs = [2, 6, 3, 7]
    if opset == 18 and attrs.get("num_outputs") == 4:
        xs = [2, 7, 3, 7]  # 7 into 4 -> 2, 2, 2, 1
    ins, inits = ["x"], {}
    if split is not None:
        ins.append("split")
        inits["split"] = np.array(split, np.int64)
    outs = [f"y{k}" for k in range(n)]
    m = model([helper.make_node("Split", ins, outs, **attrs)], {"x": xs}, {o: None for o in outs}, inits,
              opset=opset)
    check(m, rand(*xs, seed=1))


SLICES = [
    # starts, ends, axes, steps
    ([1], [3], [1], None),
    ([0, 1], [INT_MAX, -1], [2, 3], None),
    ([-1], [-INT_MAX], [3], [-1]),              # full reverse
    ([5], [0], [3], [-2]),
    ([3, 4], [0, -100], [1, 2], [-1, -3]),
    ([-3], [INT_MAX], [-1], [2]),
    ([1, 0, 0], [2, 3, 4], [0, 1, 2], [1, 2, 3]),
    ([0], [10], None, None),                    # axes omitted
    ([2], [1], [2], None),                      # empty
    ([100], [-100], [3], [-1]),                 # clamped, negative step
]


@pytest.mark.parametrize("starts,ends,axes,steps", SLICES)
def test_slice(starts, ends, axes, steps):
    ins = ["x", "st", "en"]
    inits = {"st": np.array(starts, np.int64), "en": np.array(ends, np.int64)}
    if axes is not None or steps is not None:
        ins.append("ax" if axes is not None else "")
        if axes is not None:
            inits["ax"] = np.array(axes, np.int64)
    if steps is not None:
        ins.append("sp")
        inits["sp"] = np.array(steps, np.int64)
    m = model([helper.make_node("Slice", ins, ["y"])], {"x": [3, 4, 5, 6]}, {"y": None}, inits, opset=13)
    check(m, rand(3, 4, 5, 6, seed=1))


def test_slice_opset9_attributes():
    m = model([helper.make_node("Slice", ["x"], ["y"], starts=[1, -3], ends=[1000, -1], axes=[1, 3])],
              {"x": [3, 4, 5, 6]}, {"y": None}, opset=9)
    check(m, rand(3, 4, 5, 6, seed=1))


@pytest.mark.parametrize("pads,value,axes", [
    ([0, 0, 1, 2, 0, 0, 3, 1], 0.0, None),
    ([0, 1, 1, 2, 1, 0, 3, 1], 1.5, None),           # non-zero value, channel and batch pads
    ([0, 0, -1, 1, 0, 0, 2, -2], -2.0, None),        # negative pads crop
    ([1, 2, 3, 0], 0.25, [2, -1]),                   # opset 18 axes
])
def test_pad_constant(pads, value, axes):
    ins = ["x", "p", "v"]
    inits = {"p": np.array(pads, np.int64), "v": np.array(value, np.float32)}
    opset = 13
    if axes is not None:
        ins.append("a")
        inits["a"] = np.array(axes, np.int64)
        opset = 18
    m = model([helper.make_node("Pad", ins, ["y"], mode="constant")], {"x": [2, 3, 4, 5]}, {"y": None}, inits,
              opset=opset)
    check(m, rand(2, 3, 4, 5, seed=1))


def test_pad_opset2_attributes():
    m = model([helper.make_node("Pad", ["x"], ["y"], pads=[0, 0, 2, 1, 0, 0, 0, 3], value=-1.0)],
              {"x": [2, 3, 4, 5]}, {"y": None}, opset=9)
    check(m, rand(2, 3, 4, 5, seed=1))


@pytest.mark.parametrize("axis,idx", [(0, [1, -1]), (1, [[0, 2], [-1, -3]]), (2, -1), (-1, [4, 0, -5]), (3, 2)])
def test_gather(axis, idx):
    m = model([helper.make_node("Gather", ["x", "i"], ["y"], axis=axis)], {"x": [2, 3, 4, 5]}, {"y": None},
              {"i": np.array(idx, np.int64)}, opset=13)
    check(m, rand(2, 3, 4, 5, seed=1))


# ---- Gemm and MatMul ----------------------------------------------------------------------------------------------
GEMM_C = {"none": None, "N": (6,), "1N": (1, 6), "MN": (4, 6), "scalar": (), "M1": (4, 1), "one": (1,)}


@pytest.mark.parametrize("alpha,beta", [(1.0, 1.0), (0.5, 1.0), (1.0, 2.0), (-1.5, 0.25), (2.0, 0.0)])
@pytest.mark.parametrize("ta", [0, 1])
@pytest.mark.parametrize("tb", [0, 1])
@pytest.mark.parametrize("c", list(GEMM_C))
@pytest.mark.parametrize("b_form", ["constant", "runtime"])
def test_gemm(alpha, beta, ta, tb, c, b_form):
    M, K, N = 4, 5, 6
    a_shape = [K, M] if ta else [M, K]
    b_shape = [N, K] if tb else [K, N]
    inputs, inits, feeds = {"a": a_shape}, {}, {"a": rand(*a_shape, seed=1)}
    b = rand(*b_shape, seed=2)
    if b_form == "constant":
        inits["b"] = b
    else:
        inputs["b"] = b_shape
        feeds["b"] = b
    ins = ["a", "b"]
    if GEMM_C[c] is not None:
        inits["c"] = rand(*GEMM_C[c], seed=3)
        ins.append("c")
    m = model([helper.make_node("Gemm", ins, ["y"], alpha=alpha, beta=beta, transA=ta, transB=tb)], inputs,
              {"y": None}, inits, opset=13)
    check(m, feeds)


@pytest.mark.parametrize("beta", [1.0, 0.5])
def test_gemm_runtime_c(beta):
    m = model([helper.make_node("Gemm", ["a", "b", "c"], ["y"], beta=beta, alpha=2.0, transB=1)],
              {"a": [4, 5], "c": [1, 6]}, {"y": None}, {"b": rand(6, 5, seed=2)}, opset=13)
    check(m, {"a": rand(4, 5, seed=1), "c": rand(1, 6, seed=3)})


@pytest.mark.parametrize("sa,sb", [((2, 3, 4, 5), (2, 3, 5, 6)),     # batched
                                   ((3, 4, 5), (5, 6)),              # 2-D right operand at run time
                                   ((5,), (5, 6)), ((3, 4, 5), (5,)), ((5,), (5,)),
                                   ((2, 1, 4, 5), (3, 5, 6)),        # partial batch broadcast
                                   ((1, 4, 5), (3, 5, 6)), ((2, 3, 4, 5), (1, 3, 5, 2))])
def test_matmul_runtime(sa, sb):
    m = model([helper.make_node("MatMul", ["a", "b"], ["y"])], {"a": list(sa), "b": list(sb)}, {"y": None},
              opset=13)
    check(m, {"a": rand(*sa, seed=1), "b": rand(*sb, seed=2)})


@pytest.mark.parametrize("sa,sb", [((2, 3, 5), (5, 6)), ((5,), (5, 6)), ((4, 5), (5, 1)), ((3, 4, 5), (5,)),
                                   ((2, 4, 5), (2, 5, 6))])
def test_matmul_constant_b(sa, sb):
    m = model([helper.make_node("MatMul", ["a", "b"], ["y"])], {"a": list(sa)}, {"y": None},
              {"b": rand(*sb, seed=2)}, opset=13)
    check(m, rand(*sa, seed=1))


def test_matmul_constant_a():
    m = model([helper.make_node("MatMul", ["a", "x"], ["y"])], {"x": [2, 5, 3]}, {"y": None},
              {"a": rand(4, 5, seed=2)}, opset=13)
    check(m, rand(2, 5, 3, seed=1))


# ---- Softmax, LogSoftmax, LRN ------------------------------------------------------------------------------------
@pytest.mark.parametrize("op", ["Softmax", "LogSoftmax"])
@pytest.mark.parametrize("opset", [11, 13])
@pytest.mark.parametrize("axis", [None, 0, 1, 2, -1, -3])
def test_softmax_axis_semantics(op, opset, axis):
    # opset < 13 flattens [axis:] into one row; opset 13 normalizes along `axis` only
    attrs = {"axis": axis} if axis is not None else {}
    m = model([helper.make_node(op, ["x"], ["y"], **attrs)], {"x": [2, 3, 4, 5]}, {"y": None}, opset=opset)
    check(m, rand(2, 3, 4, 5, seed=1, lo=-6, hi=6))


def test_softmax_opset11_vs_13_differ():
    x = rand(2, 3, 4, seed=1, lo=-4, hi=4)
    y11 = cnnrt.Session(model([helper.make_node("Softmax", ["x"], ["y"], axis=1)], {"x": [2, 3, 4]}, {"y": None},
                              opset=11)).run(x)[0]
    y13 = cnnrt.Session(model([helper.make_node("Softmax", ["x"], ["y"], axis=1)], {"x": [2, 3, 4]}, {"y": None},
                              opset=13)).run(x)[0]
    assert np.allclose(y11.reshape(2, 12).sum(1), 1, atol=1e-5) and np.allclose(y13.sum(1), 1, atol=1e-5)
    assert not np.allclose(y11, y13)


@pytest.mark.parametrize("attrs", [dict(size=3), dict(size=5, alpha=1e-2, beta=0.5, bias=2.0), dict(size=2),
                                   dict(size=4, alpha=0.1, beta=1.0)])
def test_lrn(attrs):
    m = model([helper.make_node("LRN", ["x"], ["y"], **attrs)], {"x": [2, 7, 3, 4]}, {"y": None}, opset=13)

    def spec(m, feeds):
        # the ONNX formula; onnxruntime refuses even sizes and onnx.reference's LRN loops over the batch axis
        x = feeds["x"].astype(np.float64)
        size, alpha, beta, bias = attrs["size"], attrs.get("alpha", 1e-4), attrs.get("beta", 0.75), \
            attrs.get("bias", 1.0)
        sq = np.zeros_like(x)
        for c in range(x.shape[1]):
            lo, hi = max(0, c - (size - 1) // 2), min(x.shape[1] - 1, c + -(-(size - 1) // 2))
            sq[:, c] = (x[:, lo:hi + 1] ** 2).sum(1)
        return [(x / (bias + alpha / size * sq) ** beta).astype(np.float32)]

    x = rand(2, 7, 3, 4, seed=1, lo=-3, hi=3)
    check(m, x, oracle=spec)
    if attrs["size"] % 2:
        check(m, x)


# ---- Dropout, Identity, Constant*, Shape, Cast -------------------------------------------------------------------
@pytest.mark.parametrize("opset,ins,inits,attrs", [
    (10, ["x"], {}, dict(ratio=0.3)),
    (13, ["x"], {}, {}),
    (13, ["x", "r"], {"r": np.array(0.4, np.float32)}, {}),
    (13, ["x", "r", "t"], {"r": np.array(0.4, np.float32), "t": np.array(False)}, {}),
    (13, ["x", "r", "t"], {"r": np.array(0.0, np.float32), "t": np.array(True)}, {}),  # training, ratio 0
])
@pytest.mark.parametrize("mask", [False, True])
def test_dropout_inference(opset, ins, inits, attrs, mask):
    outs = ["d", "mask"] if mask else ["d"]
    nodes = [helper.make_node("Dropout", ins, outs, **attrs), helper.make_node("Relu", ["d"], ["y"])]
    oi = {"y": None}
    if mask:
        oi["mask"] = {"dtype": TensorProto.BOOL, "shape": [2, 3, 4]}
    m = model(nodes, {"x": [2, 3, 4]}, oi, inits, opset=opset)
    # the mask at inference is all true (onnx's reference, every opset); onnxruntime writes false before opset 12
    s = check(m, rand(2, 3, 4, seed=1), oracle=onnx_reference_run if mask and opset < 12 else ort_run)
    assert "Dropout" not in ops_after(s) or mask


def test_dropout_training_is_refused_at_load():
    m = model([helper.make_node("Dropout", ["x", "r", "t"], ["y"], name="drop")], {"x": [2, 3]}, {"y": None},
              {"r": np.array(0.5, np.float32), "t": np.array(True)}, opset=13)
    with pytest.raises(cnnrt.UnsupportedModelError, match="'drop' \\(Dropout\\): training mode"):
        cnnrt.Session(m.SerializeToString())


def test_identity_constant_constantofshape_shape_cast():
    nodes = [helper.make_node("Identity", ["x"], ["i"]),
             const("k", rand(3, 1, seed=5)),
             helper.make_node("Shape", ["x"], ["sh"]),
             helper.make_node("ConstantOfShape", ["sh"], ["ones"], value=numpy_helper.from_array(np.array([2.0],
                                                                                                     np.float32))),
             helper.make_node("Cast", ["sh"], ["shf"], to=F),
             helper.make_node("Mul", ["i", "k"], ["a"]),
             helper.make_node("Add", ["a", "ones"], ["b"]),
             helper.make_node("Cast", ["b"], ["c"], to=F),
             helper.make_node("ReduceSum", ["shf"], ["n"], keepdims=0),   # a constant output (float)
             helper.make_node("Add", ["c", "n"], ["y"])]
    m = model(nodes, {"x": ["N", 3, 4]}, {"y": None, "sh": {"dtype": I64, "shape": [3]}}, opset=13)
    for n in (1, 3):
        check(m, rand(n, 3, 4, seed=n))


def test_shape_start_end():
    nodes = [helper.make_node("Shape", ["x"], ["s1"], start=1),
             helper.make_node("Shape", ["x"], ["s2"], start=-3, end=-1),
             helper.make_node("Shape", ["x"], ["s3"], end=10),
             helper.make_node("Relu", ["x"], ["y"])]
    m = model(nodes, {"x": [2, 3, 4, 5]}, {"y": None, "s1": {"dtype": I64, "shape": [3]},
                                           "s2": {"dtype": I64, "shape": [2]}, "s3": {"dtype": I64, "shape": [4]}},
              opset=15)
    check(m, rand(2, 3, 4, 5, seed=1))


def test_constant_graph_output_also_read_at_run_time():
    # an initializer that is a graph output and an operand of a run-time node
    m = model([helper.make_node("Add", ["x", "c"], ["y"]), helper.make_node("Identity", ["c"], ["c_out"])],
              {"x": [2, 3]}, {"y": None, "c_out": None}, {"c": rand(2, 3, seed=4)}, opset=13)
    check(m, rand(2, 3, seed=1))


def test_gather_of_constant_by_shape_and_float_cast_of_shape():
    # Shape -> Cast(float) -> Div -> Cast(int64) -> Concat -> Reshape: the float Cast of a shape value must stay
    nodes = [helper.make_node("Shape", ["x"], ["s"]),
             const("i23", ints(2, 3)),
             helper.make_node("Gather", ["s", "i23"], ["hw"], axis=0),
             helper.make_node("Cast", ["hw"], ["hwf"], to=F),
             const("two", np.array([2.0, 1.0], np.float32)),
             helper.make_node("Div", ["hwf", "two"], ["half"]),
             helper.make_node("Cast", ["half"], ["halfi"], to=I64),
             const("lead", ints(0, -1)),
             helper.make_node("Concat", ["lead", "halfi"], ["shape"], axis=0),
             helper.make_node("Reshape", ["x", "shape"], ["y"])]
    m = model(nodes, {"x": ["N", 2, 4, 6]}, {"y": ["N", "A", "B", "C"]}, opset=13)
    s = check(m, rand(3, 2, 4, 6, seed=1))
    assert s.run(rand(3, 2, 4, 6, seed=1))[0].shape == (3, 4, 2, 6)
    assert ops_after(s)[-1] == "Reshape" and "Cast" in ops_after(s)


# ---- fusions: same result as onnxruntime, and the optimized graph shows the fusion --------------------------------
def conv_node(x, y, name="conv", w="w", b="b", **attrs):
    attrs.setdefault("pads", [1, 1, 1, 1])
    return helper.make_node("Conv", [x, w, b] if b else [x, w], [y], name=name, **attrs)


CONV_INITS = {"w": rand(4, 3, 3, 3, seed=11), "b": rand(4, seed=12)}
BN_INITS = {"g": rand(4, seed=13, lo=0.5, hi=2), "be": rand(4, seed=14), "mu": rand(4, seed=15),
            "var": rand(4, seed=16, lo=0.2, hi=2)}


def bn_node(x, y, name="bn", **attrs):
    return helper.make_node("BatchNormalization", [x, "g", "be", "mu", "var"], [y], name=name, **attrs)


def test_fuse_batchnorm_into_conv():
    m = model([conv_node("x", "c"), bn_node("c", "y", epsilon=1e-3)], {"x": [2, 3, 6, 6]}, {"y": None},
              {**CONV_INITS, **BN_INITS}, opset=13)
    s = check(m, rand(2, 3, 6, 6, seed=1))
    assert ops_after(s) == ["Conv"] and fused_of(s, "Conv") == ["BatchNormalization(bn)"]


def test_fuse_batchnorm_into_conv_without_bias():
    m = model([conv_node("x", "c", b=None), bn_node("c", "y")], {"x": [2, 3, 6, 6]}, {"y": None},
              {"w": CONV_INITS["w"], **BN_INITS}, opset=9)
    s = check(m, rand(2, 3, 6, 6, seed=1))
    assert ops_after(s) == ["Conv"]


def test_batchnorm_not_folded_when_conv_output_is_shared():
    m = model([conv_node("x", "c"), bn_node("c", "y"), helper.make_node("Relu", ["c"], ["z"])],
              {"x": [2, 3, 6, 6]}, {"y": None, "z": None}, {**CONV_INITS, **BN_INITS}, opset=13)
    s = check(m, rand(2, 3, 6, 6, seed=1))
    assert "BatchNormalization" in ops_after(s)


def test_batchnorm_after_residual_add_is_not_folded_into_the_conv():
    # Conv -> Add(residual) -> BN: fusing the Add first must not let BN fold into the weights (the residual would
    # escape the scaling)
    m = model([conv_node("x", "c"), helper.make_node("Add", ["c", "r"], ["a"], name="add"), bn_node("a", "y")],
              {"x": [2, 3, 6, 6], "r": [2, 4, 6, 6]}, {"y": None}, {**CONV_INITS, **BN_INITS}, opset=13)
    s = check(m, {"x": rand(2, 3, 6, 6, seed=1), "r": rand(2, 4, 6, 6, seed=2)})
    assert "BatchNormalization" in ops_after(s) and fused_of(s, "Conv") == ["Add(add)"]


def test_batchnorm_training_mode_is_refused():
    m = model([bn_node("x", "y", training_mode=1)], {"x": [2, 4, 3, 3]}, {"y": [2, 4, 3, 3]}, BN_INITS, opset=15)
    with pytest.raises(cnnrt.UnsupportedModelError, match="'bn' \\(BatchNormalization\\): training mode"):
        cnnrt.Session(m.SerializeToString())


FUSABLE_ACTS = [
    ("Relu", [], {}, {}, "Relu"),
    ("Clip", ["lo", "hi"], {}, {"lo": np.float32(0), "hi": np.float32(6)}, "Clip"),   # ReLU6
    ("Clip", ["lo"], {}, {"lo": np.float32(-0.2)}, "Clip"),                           # one bound
    ("Clip", ["", "hi"], {}, {"hi": np.float32(0.3)}, "Clip"),
    ("LeakyRelu", [], {"alpha": 0.1}, {}, "LeakyRelu"),
    ("HardSwish", [], {}, {}, "HardSwish"),
    ("HardSigmoid", [], {"alpha": 0.25, "beta": 0.45}, {}, "HardSigmoid"),
    ("Sigmoid", [], {}, {}, "Sigmoid"),
    ("Tanh", [], {}, {}, "Tanh"),
]


@pytest.mark.parametrize("op,extra,attrs,inits,tag", FUSABLE_ACTS)
def test_fuse_activation_into_conv(op, extra, attrs, inits, tag):
    m = model([conv_node("x", "c"), helper.make_node(op, ["c"] + extra, ["y"], name="act", **attrs)],
              {"x": [2, 3, 7, 7]}, {"y": None}, {**CONV_INITS, **inits}, opset=14)
    s = check(m, rand(2, 3, 7, 7, seed=1, lo=-2, hi=2))
    assert ops_after(s) == ["Conv"] and fused_of(s, "Conv") == [f"{tag}(act)"]


def test_fuse_clip_opset6_into_conv():
    m = model([conv_node("x", "c"), helper.make_node("Clip", ["c"], ["y"], name="act", min=0.0, max=6.0)],
              {"x": [2, 3, 7, 7]}, {"y": None}, CONV_INITS, opset=6)
    s = check(m, rand(2, 3, 7, 7, seed=1, lo=-5, hi=5))
    assert fused_of(s, "Conv") == ["Clip(act)"]


@pytest.mark.parametrize("order", [("c", "s"), ("s", "c")])
def test_fuse_silu_into_conv(order):
    m = model([conv_node("x", "c"), helper.make_node("Sigmoid", ["c"], ["s"], name="sig"),
               helper.make_node("Mul", list(order), ["y"], name="mul")],
              {"x": [2, 3, 7, 7]}, {"y": None}, CONV_INITS, opset=13)
    s = check(m, rand(2, 3, 7, 7, seed=1, lo=-2, hi=2))
    assert ops_after(s) == ["Conv"] and fused_of(s, "Conv") == ["SiLU(sig,mul)"]


def test_silu_not_fused_when_sigmoid_output_is_a_graph_output():
    m = model([conv_node("x", "c"), helper.make_node("Sigmoid", ["c"], ["s"], name="sig"),
               helper.make_node("Mul", ["c", "s"], ["y"], name="mul")],
              {"x": [2, 3, 7, 7]}, {"y": None, "s": None}, CONV_INITS, opset=13)
    s = check(m, rand(2, 3, 7, 7, seed=1))
    assert ops_after(s) == ["Conv", "Sigmoid", "Mul"]


def test_activation_not_fused_when_conv_output_is_shared_or_an_output():
    m = model([conv_node("x", "c"), helper.make_node("Relu", ["c"], ["y"]), helper.make_node("Sigmoid", ["c"], ["z"])],
              {"x": [2, 3, 7, 7]}, {"y": None, "z": None}, CONV_INITS, opset=13)
    s = check(m, rand(2, 3, 7, 7, seed=1))
    assert ops_after(s) == ["Conv", "Relu", "Sigmoid"]
    m = model([conv_node("x", "c"), helper.make_node("Relu", ["c"], ["y"])],
              {"x": [2, 3, 7, 7]}, {"y": None, "c": None}, CONV_INITS, opset=13)
    s = check(m, rand(2, 3, 7, 7, seed=1))
    assert ops_after(s) == ["Conv", "Relu"]


@pytest.mark.parametrize("c", [None, (6,), (3, 6)])
@pytest.mark.parametrize("b_form", ["constant", "runtime"])
@pytest.mark.parametrize("alpha,beta", [(1.0, 1.0), (0.5, 2.0)])
@pytest.mark.parametrize("act", ["Relu", "LeakyRelu", "Sigmoid", "HardSwish"])
def test_fuse_activation_into_gemm(c, b_form, alpha, beta, act):
    inputs, inits, feeds = {"a": [3, 5]}, {}, {"a": rand(3, 5, seed=1, lo=-2, hi=2)}
    b = rand(6, 5, seed=2)
    if b_form == "constant":
        inits["b"] = b
    else:
        inputs["b"] = [6, 5]
        feeds["b"] = b
    ins = ["a", "b"]
    if c is not None:
        inits["c"] = rand(*c, seed=3)
        ins.append("c")
    m = model([helper.make_node("Gemm", ins, ["g"], name="gemm", alpha=alpha, beta=beta, transB=1),
               helper.make_node(act, ["g"], ["y"], name="act")], inputs, {"y": None}, inits, opset=14)
    s = check(m, feeds)
    assert ops_after(s) == ["Gemm"] and fused_of(s, "Gemm") == [f"{act}(act)"]


@pytest.mark.parametrize("sa,sb,b_const", [((3, 5), (5, 6), True), ((2, 3, 5), (5, 6), True),
                                           ((2, 3, 5), (2, 5, 6), False), ((3, 5), (5, 6), False)])
def test_fuse_activation_into_matmul(sa, sb, b_const):
    inputs, inits, feeds = {"a": list(sa)}, {}, {"a": rand(*sa, seed=1)}
    if b_const:
        inits["b"] = rand(*sb, seed=2)
    else:
        inputs["b"] = list(sb)
        feeds["b"] = rand(*sb, seed=2)
    m = model([helper.make_node("MatMul", ["a", "b"], ["g"]),
               helper.make_node("Clip", ["g", "lo", "hi"], ["y"], name="act")], inputs, {"y": None},
              {**inits, "lo": np.float32(-0.1), "hi": np.float32(0.2)}, opset=13)
    s = check(m, feeds)
    assert fused_of(s, "MatMul") == ["Clip(act)"]


@pytest.mark.parametrize("with_relu", [False, True])
@pytest.mark.parametrize("conv_first", [True, False])
def test_fuse_residual_add(with_relu, conv_first):
    ins = ["c", "x2"] if conv_first else ["x2", "c"]
    nodes = [helper.make_node("Relu", ["x"], ["x2"]), conv_node("x", "c", w="w44", b="b4"),
             helper.make_node("Add", ins, ["a" if with_relu else "y"], name="add")]
    if with_relu:
        nodes.append(helper.make_node("Relu", ["a"], ["y"], name="relu"))
    m = model(nodes, {"x": [2, 4, 6, 6]}, {"y": None}, {"w44": rand(4, 4, 3, 3, seed=1), "b4": rand(4, seed=2)},
              opset=13)
    s = check(m, rand(2, 4, 6, 6, seed=3))
    assert fused_of(s, "Conv") == (["Add(add)", "Relu(relu)"] if with_relu else ["Add(add)"])


@pytest.mark.parametrize("other_shape", [(2, 4, 1, 1), (1, 4, 6, 6), (6,), (2, 4, 6, 6)])
def test_residual_add_that_broadcasts(other_shape):
    # the other operand broadcasts to the conv output: the planner keeps a separate broadcasting Add
    nodes = [conv_node("x", "c", w="w44", b="b4"), helper.make_node("Add", ["c", "r"], ["a"], name="add"),
             helper.make_node("Relu", ["a"], ["y"], name="relu")]
    m = model(nodes, {"x": [2, 4, 6, 6], "r": list(other_shape)}, {"y": None},
              {"w44": rand(4, 4, 3, 3, seed=1), "b4": rand(4, seed=2)}, opset=13)
    check(m, {"x": rand(2, 4, 6, 6, seed=3), "r": rand(*other_shape, seed=4)})


def test_residual_add_where_the_conv_output_broadcasts():
    # conv output [2, 4, 1, 1] + r [2, 4, 5, 5]: the Add's result is larger than the conv's
    nodes = [helper.make_node("Conv", ["x", "w44", "b4"], ["c"], name="conv"),
             helper.make_node("Add", ["c", "r"], ["y"], name="add")]
    m = model(nodes, {"x": [2, 4, 3, 3], "r": [2, 4, 5, 5]}, {"y": None},
              {"w44": rand(4, 4, 3, 3, seed=1), "b4": rand(4, seed=2)}, opset=13)
    check(m, {"x": rand(2, 4, 3, 3, seed=3), "r": rand(2, 4, 5, 5, seed=4)})


def test_residual_not_fused_after_an_activation():
    # Conv -> Relu -> Add: relu(conv) + r is not relu(conv + r)
    nodes = [conv_node("x", "c", w="w44", b="b4"), helper.make_node("Relu", ["c"], ["rc"], name="relu"),
             helper.make_node("Add", ["rc", "x"], ["y"], name="add")]
    m = model(nodes, {"x": [2, 4, 6, 6]}, {"y": None}, {"w44": rand(4, 4, 3, 3, seed=1), "b4": rand(4, seed=2)},
              opset=13)
    s = check(m, rand(2, 4, 6, 6, seed=3))
    assert fused_of(s, "Conv") == ["Relu(relu)"] and "Add" in ops_after(s)


def test_residual_from_a_later_branch():
    # the other operand is computed after the conv in the model's node order: the conv moves after it
    nodes = [conv_node("x", "c", w="w44", b="b4"),
             helper.make_node("MaxPool", ["x"], ["p"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
             helper.make_node("Add", ["c", "p"], ["y"], name="add")]
    m = model(nodes, {"x": [2, 4, 6, 6]}, {"y": None}, {"w44": rand(4, 4, 3, 3, seed=1), "b4": rand(4, seed=2)},
              opset=13)
    s = check(m, rand(2, 4, 6, 6, seed=3))
    assert fused_of(s, "Conv") == ["Add(add)"]


@pytest.mark.parametrize("opset", [9, 13])
@pytest.mark.parametrize("auto_pad", [None, "VALID"])
def test_fold_pad_into_conv(opset, auto_pad):
    pads = [0, 0, 1, 2, 0, 0, 2, 0]
    if opset < 11:
        pad = helper.make_node("Pad", ["x"], ["p"], name="pad", pads=pads)
        inits = {}
    else:
        pad = helper.make_node("Pad", ["x", "pp"], ["p"], name="pad")
        inits = {"pp": np.array(pads, np.int64)}
    attrs = {"auto_pad": auto_pad} if auto_pad else {"pads": [1, 0, 0, 1]}
    m = model([pad, helper.make_node("Conv", ["p", "w", "b"], ["y"], name="conv", **attrs)], {"x": [2, 3, 7, 7]},
              {"y": None}, {**CONV_INITS, **inits}, opset=opset)
    s = check(m, rand(2, 3, 7, 7, seed=1))
    assert ops_after(s) == ["Conv"] and fused_of(s, "Conv") == ["Pad(pad)"]


@pytest.mark.parametrize("pads,value", [([0, 0, 1, 1, 0, 0, 1, 1], 1.0),    # non-zero value
                                        ([0, 1, 1, 1, 0, 0, 1, 1], 0.0),    # channel padding
                                        ([0, 0, -1, 1, 0, 0, 1, 1], 0.0)])  # negative (crop)
def test_pad_not_folded_into_conv(pads, value):
    m = model([helper.make_node("Pad", ["x", "pp", "v"], ["p"], name="pad"),
               helper.make_node("Conv", ["p", "w4", "b"], ["y"], name="conv")], {"x": [2, 3, 7, 7]}, {"y": None},
              {"w4": rand(4, 4 if pads[1] else 3, 3, 3, seed=1), "b": CONV_INITS["b"],
               "pp": np.array(pads, np.int64), "v": np.array(value, np.float32)}, opset=13)
    s = check(m, rand(2, 3, 7, 7, seed=1))
    assert ops_after(s) == ["Pad", "Conv"]


def test_identity_dropout_and_dead_nodes_removed():
    nodes = [helper.make_node("Identity", ["x"], ["i"]),
             helper.make_node("Dropout", ["i"], ["d"], ratio=0.5),
             conv_node("d", "c"),
             helper.make_node("Relu", ["c"], ["y"]),
             helper.make_node("Sigmoid", ["c"], ["unused"]),  # dead
             helper.make_node("Identity", ["y"], ["out"])]
    m = model(nodes, {"x": [1, 3, 5, 5]}, {"out": None}, CONV_INITS, opset=10)
    s = check(m, rand(1, 3, 5, 5, seed=1))
    assert ops_after(s) == ["Conv"]


def test_fusion_chain_conv_bn_add_relu():
    # a ResNet basic-block tail: conv -> BN -> (+ identity) -> ReLU is one fused Conv
    nodes = [helper.make_node("Relu", ["x"], ["x2"]),
             conv_node("x2", "c", w="w44", b=None), bn_node("c", "n"),
             helper.make_node("Add", ["n", "x2"], ["a"], name="add"),
             helper.make_node("Relu", ["a"], ["y"], name="relu")]
    m = model(nodes, {"x": ["N", 4, 6, 6]}, {"y": None}, {"w44": rand(4, 4, 3, 3, seed=1), **BN_INITS}, opset=13)
    s = check(m, rand(2, 4, 6, 6, seed=3))
    assert ops_after(s) == ["Relu", "Conv"]
    assert fused_of(s, "Conv") == ["BatchNormalization(bn)", "Add(add)", "Relu(relu)"]


@pytest.mark.parametrize("opset", [9, 11, 13])
def test_constant_folding_uses_the_model_opset(opset):
    # Unsqueeze/Squeeze/ReduceSum/Split of initializers, folded at load with their opset's semantics (attributes
    # before 13, inputs from 13)
    c = rand(2, 3, seed=7)
    if opset < 13:
        nodes = [helper.make_node("Unsqueeze", ["c"], ["u"], axes=[0]),
                 helper.make_node("Split", ["u"], ["s1", "s2"], axis=2, split=[1, 2]),
                 helper.make_node("Squeeze", ["s1"], ["q"], axes=[0, 2]),
                 helper.make_node("ReduceSum", ["s2"], ["r"], axes=[2], keepdims=0)]
    else:
        nodes = [helper.make_node("Unsqueeze", ["c", "a0"], ["u"]),
                 helper.make_node("Split", ["u", "sp"], ["s1", "s2"], axis=2),
                 helper.make_node("Squeeze", ["s1", "a02"], ["q"]),
                 helper.make_node("ReduceSum", ["s2", "a2"], ["r"], keepdims=0)]
    nodes += [helper.make_node("Unsqueeze", ["q"], ["q1"], axes=[1]) if opset < 13 else
              helper.make_node("Unsqueeze", ["q", "a1"], ["q1"]),
              helper.make_node("Add", ["x", "q1"], ["xa"]), helper.make_node("Mul", ["xa", "r"], ["y"])]
    inits = {"c": c, "a0": ints(0), "sp": ints(1, 2), "a02": ints(0, 2), "a2": ints(2), "a1": ints(1)} \
        if opset >= 13 else {"c": c}
    m = model(nodes, {"x": [2, 2]}, {"y": None}, inits, opset=opset)
    s = check(m, rand(2, 2, seed=1))
    assert ops_after(s) == ["Add", "Mul"]


def test_fused_gemm_whose_inputs_become_constant_at_plan_time():
    # A is computed from the input's *shape* (constant once shapes are known): the Gemm, with its fused Relu, must
    # still apply the Relu (it is not evaluated from its original, unfused node)
    nodes = [helper.make_node("Shape", ["x"], ["s"]),
             helper.make_node("Cast", ["s"], ["sf"], to=F),
             helper.make_node("Unsqueeze", ["sf", "ax0"], ["a"]),
             helper.make_node("Gemm", ["a", "b"], ["g"], name="gemm"),
             helper.make_node("Relu", ["g"], ["r"], name="relu"),
             helper.make_node("Add", ["x", "r"], ["y"])]
    m = model(nodes, {"x": ["N", 4]}, {"y": None}, {"ax0": ints(0), "b": np.array([[1, -1, 2, -2], [-1, 1, 1, -3]],
                                                                                    np.float32)}, opset=13)
    s = check(m, rand(3, 4, seed=1))
    assert fused_of(s, "Gemm") == ["Relu(relu)"]
    check(m, rand(5, 4, seed=2), sess=s)


# ---- shape subgraphs, dynamic shapes --------------------------------------------------------------------------------
def shape_subgraph_model(opset=13):
    """x [N, C, H, W] -> Conv -> Reshape to [N, -1] where the target comes from Shape->Gather->Unsqueeze->Concat
    (as torch.onnx writes x.view(x.size(0), -1)) -> Gemm."""
    unsq = helper.make_node("Unsqueeze", ["n", "ax0"], ["n1"]) if opset >= 13 else \
        helper.make_node("Unsqueeze", ["n"], ["n1"], axes=[0])
    nodes = [conv_node("x", "c", name="conv"),
             helper.make_node("Relu", ["c"], ["r"], name="relu"),
             helper.make_node("GlobalAveragePool", ["r"], ["p"]),
             helper.make_node("Shape", ["p"], ["s"]),
             const("zero", np.array(0, np.int64)),
             helper.make_node("Gather", ["s", "zero"], ["n"], axis=0),
             unsq,
             const("minus1", ints(-1)),
             helper.make_node("Concat", ["n1", "minus1"], ["shape"], axis=0),
             helper.make_node("Reshape", ["p", "shape"], ["f"]),
             helper.make_node("Gemm", ["f", "fw", "fb"], ["y"], transB=1)]
    inits = {**CONV_INITS, "fw": rand(5, 4, seed=21), "fb": rand(5, seed=22)}
    if opset >= 13:
        inits["ax0"] = ints(0)
    return model(nodes, {"x": ["N", 3, "H", "W"]}, {"y": ["N", 5]}, inits, opset=opset)


@pytest.mark.parametrize("opset", [11, 13])  # Unsqueeze with the axes attribute (11) or input (13)
def test_shape_subgraph_is_computed_at_plan_time_for_each_batch(opset):
    m = shape_subgraph_model(opset)
    s = cnnrt.Session(m.SerializeToString(), num_threads=2)
    # the shape arithmetic stays in the graph (it depends on the batch) but is never lowered to a run-time node
    assert ops_after(s) == ["Conv", "GlobalAveragePool", "Shape", "Gather", "Unsqueeze", "Concat", "Reshape", "Gemm"]
    for n in (2, 5, 2):
        check(m, rand(n, 3, 8, 8, seed=n), sess=s)
        info = s.plan_info({"x": (n, 3, 8, 8)})
        assert [i.kind for i in info.nodes] == ["conv", "global_pool", "fc"]  # Reshape is a view; no shape nodes


def test_batch_and_image_size_change_between_calls():
    m = shape_subgraph_model()
    s = cnnrt.Session(m.SerializeToString(), num_threads=2)
    packed = None
    for shape in [(1, 3, 8, 8), (4, 3, 8, 8), (2, 3, 13, 9), (1, 3, 5, 17), (4, 3, 8, 8), (3, 3, 32, 32)]:
        check(m, rand(*shape, seed=sum(shape)), sess=s)
        if packed is None:
            packed = len(s._prep.conv)
        assert len(s._prep.conv) == packed == 1, "convolution weights are packed once, for every shape"
        assert len(s._prep.fc) == 1
    assert len(s._plans) == 5  # one plan per distinct input shape


def test_dynamic_shapes_with_same_padding_and_pooling():
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], auto_pad="SAME_UPPER", strides=[2, 2]),
             helper.make_node("MaxPool", ["c"], ["p"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1],
                              ceil_mode=1),
             helper.make_node("Flatten", ["p"], ["y"])]
    m = model(nodes, {"x": ["N", 3, "H", "W"]}, {"y": ["N", "F"]}, CONV_INITS, opset=12)
    s = cnnrt.Session(m.SerializeToString())
    for shape in [(1, 3, 9, 9), (2, 3, 16, 15), (3, 3, 7, 20)]:
        check(m, rand(*shape, seed=1), sess=s)


# ---- unsupported models --------------------------------------------------------------------------------------------
def test_every_unsupported_op_and_form_is_listed_at_load():
    nodes = [helper.make_node("Erf", ["x"], ["e"], name="my_erf"),
             helper.make_node("MaxPool", ["e"], ["p", "idx"], name="pool_idx", kernel_shape=[2, 2]),
             helper.make_node("Conv", ["p", "x"], ["c"], name="conv_rt_w"),            # weights at run time
             helper.make_node("Exp", ["c"], ["ex"], name="exp_of_data"),              # constant-only op on data
             helper.make_node("Resize", ["ex", "", "sc"], ["r"], name="resize", mode="nearest"),
             helper.make_node("Pad", ["r", "pp"], ["y"], name="reflect", mode="reflect"),
             helper.make_node("Cast", ["y"], ["yi"], name="to_int", to=TensorProto.INT32),
             helper.make_node("Foo", ["yi"], ["z"], name="custom", domain="my.domain")]
    g = helper.make_graph(nodes, "bad", [helper.make_tensor_value_info("x", F, [1, 1, 4, 4])],
                          [helper.make_tensor_value_info("z", F, [1, 1, 8, 8])],
                          [numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "sc"),
                           numpy_helper.from_array(ints(0, 0, 1, 1, 0, 0, 1, 1), "pp")])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13), helper.make_opsetid("my.domain", 1)])
    with pytest.raises(cnnrt.UnsupportedModelError) as ei:
        cnnrt.Session(m.SerializeToString())
    listed = {(n, op) for n, op, _ in ei.value.unsupported}
    assert listed == {("my_erf", "Erf"), ("pool_idx", "MaxPool"), ("conv_rt_w", "Conv"), ("exp_of_data", "Exp"),
                      ("resize", "Resize"), ("reflect", "Pad"), ("to_int", "Cast"), ("custom", "my.domain.Foo")}
    msg = str(ei.value)
    for name in ("my_erf", "pool_idx", "conv_rt_w", "exp_of_data", "resize", "reflect", "to_int", "custom"):
        assert f"'{name}'" in msg
    assert "8 unsupported node(s)" in msg


# ---- memory planning -------------------------------------------------------------------------------------------------
def assert_arena_plan_is_sound(info):
    """No two arena tensors that are alive at the same time overlap; each fits the values it holds, inside the arena.
    Lifetimes are recomputed from the C node list (PlanInfo.arena_tensors)."""
    ts = info.arena_tensors()
    by_sid = {t["sid"]: t for t in ts}
    for t in ts:
        assert t["offset"] + t["nbytes"] <= info.arena_bytes
        for name, shape in t["values"].items():
            assert int(np.prod(shape, dtype=np.int64)) * 4 <= t["nbytes"], f"{name} {shape} does not fit"
        if t["parent"] is None:
            assert t["offset"] % 64 == 0
        else:  # a Concat input produced in place: inside its parent, alive (for the check) until the parent's end
            p = by_sid[t["parent"]]
            assert p["offset"] <= t["offset"] and t["offset"] + t["nbytes"] <= p["offset"] + p["nbytes"]
            assert p["first"] <= t["first"] and t["last"] == p["last"]
    for i, a in enumerate(ts):
        for b in ts[i + 1:]:
            if a["sid"] == b["parent"] or b["sid"] == a["parent"]:
                continue
            live_together = not (a["last"] < b["first"] or b["last"] < a["first"])
            disjoint = a["offset"] + a["nbytes"] <= b["offset"] or b["offset"] + b["nbytes"] <= a["offset"]
            assert disjoint or not live_together, f"{a['values']} and {b['values']} overlap while both alive"
    return ts


def chain_model(n=8):
    nodes, inits = [], {}
    cur = "x"
    for k in range(n):
        inits[f"w{k}"] = rand(4, 4, 3, 3, seed=k) * 0.3
        nodes.append(helper.make_node("Conv", [cur, f"w{k}"], [f"c{k}"], pads=[1, 1, 1, 1]))
        nodes.append(helper.make_node("Sigmoid" if k % 2 else "Tanh", [f"c{k}"], [f"a{k}"]))
        cur = f"a{k}"
    nodes.append(helper.make_node("Identity", [cur], ["y"]))
    return model(nodes, {"x": ["N", 4, 16, 16]}, {"y": None}, inits, opset=13)


def test_arena_reuses_memory_on_a_chain():
    m = chain_model()
    s = cnnrt.Session(m.SerializeToString(), optimize_graph=False)  # unfused: 16 intermediates
    info = s.plan_info({"x": (2, 4, 16, 16)})
    ts = assert_arena_plan_is_sound(info)
    one = 2 * 4 * 16 * 16 * 4
    values = [v for t in ts for v in t["values"]]
    assert len(values) >= 15  # 15+ intermediates ...
    assert len(ts) < len(values)  # ... some computed in place (element-wise ops reuse their input's buffer)
    assert info.arena_bytes <= 2 * one  # a chain needs two live buffers at a time
    check(m, rand(2, 4, 16, 16, seed=1), sess=s)


def test_elementwise_ops_run_in_place_only_when_safe():
    # x -> Conv -> c; Relu(c) may overwrite c (its last reader); Sigmoid(c2) may not, c2 is read again by the Add
    nodes = [conv_node("x", "c", name="conv", w="w44", b="b4"), helper.make_node("Relu", ["c"], ["r"], name="relu"),
             conv_node("r", "c2", name="conv2", w="w44", b="b4"), helper.make_node("Sigmoid", ["c2"], ["s"], name="sig"),
             helper.make_node("Add", ["s", "c2"], ["y"], name="add")]
    m = model(nodes, {"x": ["N", 4, 8, 8]}, {"y": None},
              {"w44": rand(4, 4, 3, 3, seed=21) * 0.3, "b4": rand(4, seed=22)})
    s = cnnrt.Session(m.SerializeToString(), optimize_graph=False)
    info = s.plan_info({"x": (2, 4, 8, 8)})
    ts = assert_arena_plan_is_sound(info)
    where = {v: k for k, t in enumerate(ts) for v in t["values"]}
    assert where["c"] == where["r"]  # Relu in place
    assert where["s"] != where["c2"]  # c2 is still needed by the Add
    check(m, rand(2, 4, 8, 8, seed=3), sess=s)


def test_peak_memory_is_known_before_the_first_run():
    m = chain_model()
    s = cnnrt.Session(m.SerializeToString())  # symbolic batch: batch 1 is planned at load
    info = s.plan_info()
    assert s.peak_memory_bytes >= info.peak_bytes > 0
    before = s.peak_memory_bytes
    s.run(rand(1, 4, 16, 16, seed=1))
    assert s.peak_memory_bytes == before
    s.run(rand(4, 4, 16, 16, seed=1))  # a larger batch needs larger tensors (the workspace may shrink: batch-1
    info4 = s.plan_info({"x": (4, 4, 16, 16)})  # convs share one packed input across threads)
    assert info4.arena_bytes > info.arena_bytes
    assert s.peak_memory_bytes >= max(info4.peak_bytes, info.peak_bytes)


def resnetish_model():
    """Branches, a residual, a Concat, Split, views and a graph output in the middle: many lifetimes that overlap."""
    nodes = [conv_node("x", "c1", name="c1", w="w44", b="b4"), helper.make_node("Relu", ["c1"], ["r1"]),
             conv_node("r1", "c2", name="c2", w="w44", b="b4"), helper.make_node("Add", ["c2", "x"], ["a"]),
             helper.make_node("Relu", ["a"], ["mid"]),
             helper.make_node("MaxPool", ["mid"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
             helper.make_node("AveragePool", ["mid"], ["q"], kernel_shape=[2, 2], strides=[2, 2]),
             helper.make_node("Concat", ["p", "q", "p"], ["cat"], axis=1),
             helper.make_node("Split", ["cat"], ["s1", "s2"], axis=1),
             helper.make_node("Mul", ["s1", "s2"], ["m"]),
             helper.make_node("Transpose", ["m"], ["t"], perm=[0, 2, 3, 1]),
             helper.make_node("Flatten", ["t"], ["f"]),
             helper.make_node("Softmax", ["f"], ["y"], axis=-1)]
    return model(nodes, {"x": ["N", 4, 8, 8]}, {"y": None, "mid": None},
                 {"w44": rand(4, 4, 3, 3, seed=1), "b4": rand(4, seed=2)}, opset=13)


@pytest.mark.parametrize("optimize", [True, False])
def test_no_live_tensors_overlap(optimize):
    m = resnetish_model()
    s = cnnrt.Session(m.SerializeToString(), optimize_graph=optimize)
    for n in (1, 3):
        info = s.plan_info({"x": (n, 4, 8, 8)})
        ts = assert_arena_plan_is_sound(info)
        assert len(ts) >= 5
        check(m, rand(n, 4, 8, 8, seed=n), sess=s)
    for mm in (chain_model(), shape_subgraph_model()):
        s = cnnrt.Session(mm.SerializeToString(), optimize_graph=optimize)
        assert_arena_plan_is_sound(s.plan_info({"x": (2, 4 if mm.graph.input[0].type.tensor_type.shape.dim[1]
                                                     .dim_value == 4 else 3, 16, 16)}))


def fire_model(extra_reader=False, cat_is_output=False):
    """SqueezeNet's fire module: squeeze 1x1, then expand 1x1 and expand 3x3 concatenated on channels."""
    nodes = [conv_node("x", "sq", name="squeeze", w="w_sq", b="b_sq", pads=[0, 0, 0, 0]),
             helper.make_node("Relu", ["sq"], ["sr"]),
             conv_node("sr", "e1", name="expand1", w="w_e1", b="b_e", pads=[0, 0, 0, 0]),
             helper.make_node("Relu", ["e1"], ["r1"]),
             conv_node("sr", "e3", name="expand3", w="w_e3", b="b_e"),
             helper.make_node("Relu", ["e3"], ["r3"]),
             helper.make_node("Concat", ["r1", "r3"], ["cat"], axis=1),
             helper.make_node("MaxPool", ["cat"], ["y"], kernel_shape=[3, 3], strides=[2, 2])]
    outs = {"y": None}
    if extra_reader:
        nodes.append(helper.make_node("Sigmoid", ["r3"], ["z"]))
        outs["z"] = None
    if cat_is_output:
        outs["cat"] = None
    inits = {"w_sq": rand(8, 16, 1, 1, seed=31), "b_sq": rand(8, seed=32), "w_e1": rand(16, 8, 1, 1, seed=33),
             "w_e3": rand(16, 8, 3, 3, seed=34) * 0.3, "b_e": rand(16, seed=35)}
    return model(nodes, {"x": ["N", 16, 13, 11]}, outs, inits, opset=13)


@pytest.mark.parametrize("case", ["plain", "extra_reader", "cat_is_output"])
@pytest.mark.parametrize("batch", [1, 2])
def test_concat_inputs_are_produced_in_place(case, batch):
    m = fire_model(extra_reader=case == "extra_reader", cat_is_output=case == "cat_is_output")
    s = check(m, rand(batch, 16, 13, 11, seed=batch))
    info = s.plan_info({"x": (batch, 16, 13, 11)})
    ts = assert_arena_plan_is_sound(info)
    copies = [n for n in info.nodes if n.op == "Concat"]
    slices = [t for t in ts if t["parent"] is not None]
    if batch == 1 and case == "plain":
        assert not copies and len(slices) == 2  # both expand convs write into the Concat output
    elif batch == 1 and case == "extra_reader":
        assert len(copies) == 1 and len(slices) == 1  # r3 is read again: copied; r1 in place
    else:  # batch 2: the blocks are strided; a graph output is the caller's array: copies
        assert len(copies) == 2 and not slices


def test_overlap_checker_catches_a_bad_plan():
    s = cnnrt.Session(chain_model().SerializeToString(), optimize_graph=False)
    info = s.plan_info({"x": (2, 4, 16, 16)})
    bad = dict(info.layout)
    bad["storages"] = [dict(st, offset=0) if st["kind"] == _core.ST_ARENA else st for st in info.layout["storages"]]
    info.layout = bad
    with pytest.raises(AssertionError, match="overlap while both alive"):
        assert_arena_plan_is_sound(info)


def test_initializer_that_is_a_graph_output_and_a_runtime_operand():
    m = model([helper.make_node("Add", ["x", "c"], ["y"])], {"x": [2, 3]}, {"y": None, "c": [2, 3]},
              {"c": rand(2, 3, seed=4)}, opset=13)
    check(m, rand(2, 3, seed=1))


def test_constant_attribute_forms_and_default_constantofshape():
    nodes = [helper.make_node("Constant", [], ["shape"], value_ints=[0, -1]),
             helper.make_node("Constant", [], ["k"], value_float=2.5),
             helper.make_node("Constant", [], ["v"], value_floats=[1.0, -1.0, 0.5, 2.0, 3.0, -2.0]),
             helper.make_node("Constant", [], ["one"], value_int=1),
             helper.make_node("Reshape", ["x", "shape"], ["f"]),
             helper.make_node("Mul", ["f", "k"], ["fk"]),
             helper.make_node("Add", ["fk", "v"], ["a"]),
             helper.make_node("Shape", ["a"], ["s"]),
             helper.make_node("ConstantOfShape", ["s"], ["zeros"]),   # no value: float32 zeros
             helper.make_node("Cast", ["one"], ["onef"], to=F),
             helper.make_node("Add", ["zeros", "onef"], ["ones"]),
             helper.make_node("Sub", ["a", "ones"], ["y"])]
    m = model(nodes, {"x": [2, 3, 2]}, {"y": None}, opset=13)
    check(m, rand(2, 3, 2, seed=1))


def test_sparse_constant_is_listed_with_the_other_unsupported_nodes():
    sp = helper.make_sparse_tensor(helper.make_tensor("v", F, [1], [1.0]),
                                   helper.make_tensor("i", I64, [1], [0]), [3])
    nodes = [helper.make_node("Constant", [], ["c"], sparse_value=sp, name="sp"),
             helper.make_node("Add", ["x", "c"], ["y"]), helper.make_node("Erf", ["y"], ["z"], name="erf")]
    m = model(nodes, {"x": [3]}, {"z": [3]}, opset=13)
    with pytest.raises(cnnrt.UnsupportedModelError) as ei:
        cnnrt.Session(m.SerializeToString())
    assert {(n, op) for n, op, _ in ei.value.unsupported} == {("sp", "Constant"), ("erf", "Erf")}


def test_dead_nodes_do_not_make_a_model_unsupported():
    # an exporter's leftover: a constant-only op on run-time data whose result nobody reads
    nodes = [helper.make_node("Exp", ["x"], ["unused"]), helper.make_node("Relu", ["x"], ["y"])]
    m = model(nodes, {"x": [2, 3]}, {"y": None}, opset=13)
    s = check(m, rand(2, 3, seed=1))
    assert ops_after(s) == ["Relu"]
