"""Squeeze-and-excitation Mul folded into the 1x1 Conv that reads it (planner: _defer_se_scale / lower_conv; C:
cnn_conv2d_plan_fuse_input_scale). Compared with onnxruntime with test_ops' tolerance (5e-5 of the output scale: the
folded products w*s*x round differently from w*(s*x), a last-bit difference); a wrong channel or image of the scales
gives errors of the output's own size. Cases where the Mul must stay a node are checked to keep it and stay correct.
"""
import numpy as np
import pytest
from onnx import helper

import cnnrt
from test_ops import assert_arena_plan_is_sound, check, model, rand


def se_model(c=24, o=16, residual=False, act=None, extra_reader=False, reader="pw", scale_batch=None, mul_act=False):
    """x -> conv3x3 (c) -> SE (GAP, 1x1 c->c/4, Relu, 1x1 ->c, Sigmoid) -> Mul -> reader conv (-> + residual)."""
    r = max(1, c // 4)
    nodes = [helper.make_node("Conv", ["x", "w0", "b0"], ["h"], pads=[1, 1, 1, 1], name="c0"),
             helper.make_node("GlobalAveragePool", ["h"], ["g"], name="gap"),
             helper.make_node("Conv", ["g", "w1", "b1"], ["g1"], name="fc1"),
             helper.make_node("Relu", ["g1"], ["g2"], name="relu"),
             helper.make_node("Conv", ["g2", "w2", "b2"], ["g3"], name="fc2"),
             helper.make_node("Sigmoid", ["g3"], ["s"], name="sig")]
    sname = "s"
    if scale_batch is not None:  # a scale without the batch dimension: [1, C, 1, 1] broadcast over the images
        nodes.append(helper.make_node("ReduceMean", ["s"], ["s1"], axes=[0], keepdims=1, name="rm"))
        sname = "s1"
    nodes.append(helper.make_node("Mul", ["h", sname], ["m"], name="se_mul"))
    mout = "m"
    if mul_act:
        nodes.append(helper.make_node("Relu", ["m"], ["mr"], name="mul_relu"))
        mout = "mr"
    inits = {"w0": rand(c, 3, 3, 3, seed=1) * 0.3, "b0": rand(c, seed=2), "w1": rand(r, c, 1, 1, seed=3),
             "b1": rand(r, seed=4), "w2": rand(c, r, 1, 1, seed=5), "b2": rand(c, seed=6)}
    if reader == "pw":
        nodes.append(helper.make_node("Conv", [mout, "w3", "b3"], ["p"], name="proj"))
        inits["w3"], inits["b3"] = rand(o, c, 1, 1, seed=7) * 0.3, rand(o, seed=8)
    elif reader == "3x3":
        nodes.append(helper.make_node("Conv", [mout, "w3", "b3"], ["p"], pads=[1, 1, 1, 1], name="proj"))
        inits["w3"], inits["b3"] = rand(o, c, 3, 3, seed=7) * 0.1, rand(o, seed=8)
    elif reader == "s2":
        nodes.append(helper.make_node("Conv", [mout, "w3", "b3"], ["p"], strides=[2, 2], name="proj"))
        inits["w3"], inits["b3"] = rand(o, c, 1, 1, seed=7) * 0.3, rand(o, seed=8)
    last = "p"
    if act == "relu":
        nodes.append(helper.make_node("Relu", ["p"], ["pa"], name="proj_relu"))
        last = "pa"
    if residual:
        nodes.append(helper.make_node("Conv", ["x", "wr"], ["xr"], name="skip"))
        inits["wr"] = rand(o, 3, 1, 1, seed=9)
        nodes.append(helper.make_node("Add", [last, "xr"], ["y"], name="add"))
        last = "y"
    outs = {last: None}
    if extra_reader:
        outs["m"] = None
    return model(nodes, {"x": ["N", 3, 15, 13]}, outs, inits)


def mul_is_folded(s, shapes):
    info = s.plan_info(shapes)
    folded = [f for n in info.nodes if n.kind == "conv" for f in n.fused if f.startswith("Mul(")]
    muls = [n for n in info.nodes if n.op == "Mul"]
    return folded, muls, info


@pytest.mark.parametrize("batch,threads", [(1, 1), (1, 2), (3, 2)])
@pytest.mark.parametrize("residual,act", [(False, None), (True, None), (False, "relu")])
def test_se_mul_folded_into_the_1x1_conv(batch, threads, residual, act):
    m = se_model(residual=residual, act=act)
    s = cnnrt.Session(m.SerializeToString(), num_threads=threads)
    folded, muls, info = mul_is_folded(s, {"x": (batch, 3, 15, 13)})
    assert folded == ["Mul(se_mul)"] and not muls
    assert_arena_plan_is_sound(info)
    check(m, rand(batch, 3, 15, 13, seed=batch), sess=s)


@pytest.mark.parametrize("c,o", [(96, 24), (144, 40), (200, 70)])
def test_se_fold_on_the_in_place_and_packed_gemm_paths(c, o):
    # 15x13 = 195 outputs; with 96..200 input channels: both the packed-B and the in-place-B 1x1 paths, K blocks
    m = se_model(c=c, o=o, residual=True)
    for n in (1, 2):
        s = check(m, rand(n, 3, 15, 13, seed=c + n), threads=2)
        assert mul_is_folded(s, {"x": (n, 3, 15, 13)})[0] == ["Mul(se_mul)"]


@pytest.mark.parametrize("kw", [dict(extra_reader=True), dict(reader="3x3"), dict(reader="s2"),
                                dict(scale_batch=1), dict(mul_act=True)])
def test_se_mul_kept_where_it_cannot_fold(kw):
    m = se_model(**kw)
    s = cnnrt.Session(m.SerializeToString(), num_threads=2)
    folded, muls, _ = mul_is_folded(s, {"x": (2, 3, 15, 13)})
    assert not folded and len(muls) == 1
    check(m, rand(2, 3, 15, 13, seed=5), sess=s)


def test_fold_differs_from_the_unfolded_plan_only_in_the_last_bits():
    # the same computation with the Mul kept (its output is also a graph output): the folded scales change only
    # the rounding of w*s*x
    x = rand(2, 3, 15, 13, seed=11)
    sa = cnnrt.Session(se_model(c=48, o=20, residual=True).SerializeToString())
    sb = cnnrt.Session(se_model(c=48, o=20, residual=True, extra_reader=True).SerializeToString())
    assert mul_is_folded(sa, {"x": x.shape})[0] and not mul_is_folded(sb, {"x": x.shape})[0]
    a, b = sa.run(x)[0], sb.run(x)[0]
    assert a.shape == b.shape
    assert 0 < np.abs(a - b).max() <= 1e-5 * max(1.0, np.abs(b).max()) or np.array_equal(a, b)
