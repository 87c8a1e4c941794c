"""Session / InferenceSession API, input checking and model errors."""
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import cnnrt


def tiny_model(op_nodes=None, opset=17):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 8, 8])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4, 8, 8])
    w = numpy_helper.from_array(np.random.default_rng(0).standard_normal((4, 3, 3, 3)).astype(np.float32), "w")
    nodes = op_nodes or [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1], name="conv"),
                         helper.make_node("Relu", ["c"], ["y"], name="relu")]
    g = helper.make_graph(nodes, "tiny", [x], [y], [w])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    return m.SerializeToString()


def test_session_info_and_run():
    s = cnnrt.Session(tiny_model(), num_threads=1)
    assert [i.name for i in s.inputs] == ["x"]
    assert s.inputs[0].shape == ("N", 3, 8, 8)
    assert s.inputs[0].dtype == np.float32
    assert [o.name for o in s.outputs] == ["y"]
    x = np.random.default_rng(1).standard_normal((2, 3, 8, 8)).astype(np.float32)
    (y,) = s.run(x)
    assert y.shape == (2, 4, 8, 8)
    assert (y >= 0).all()
    y2 = s.run({"x": x}, ["y"])[0]
    assert np.array_equal(y, y2)


def test_wrong_inputs_are_named():
    s = cnnrt.Session(tiny_model(), num_threads=1)
    good = np.zeros((1, 3, 8, 8), np.float32)
    with pytest.raises(TypeError, match=r"input 'x'.*float32.*float64"):
        s.run(good.astype(np.float64))
    with pytest.raises(ValueError, match=r"input 'x'.*\(N, 3, 8, 8\).*\(1, 4, 8, 8\)"):
        s.run(np.zeros((1, 4, 8, 8), np.float32))
    with pytest.raises(ValueError, match=r"rank 4.*rank 3"):
        s.run(np.zeros((3, 8, 8), np.float32))
    with pytest.raises(ValueError, match=r"unknown input 'z'"):
        s.run({"z": good})
    with pytest.raises(ValueError, match=r"missing input 'x'"):
        s.run({})
    with pytest.raises(ValueError, match=r"unknown output 'q'"):
        s.run(good, ["q"])


def test_fast_path_matches_general_path_and_rejects_what_it_cannot_run():
    """After one run, Session.run takes a compiled fast path for the same input shape (cnnrt._core.FastRun). It must
    give the general path's bits, new arrays every run, and hand every other feed to the general path, which checks
    and explains it as before."""
    s = cnnrt.Session(tiny_model(), num_threads=2)
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 3, 8, 8)).astype(np.float32)
    (y0,) = s.run(x, profile=True)  # general path (profiling), installs the fast path for (2, 3, 8, 8)
    assert s._fast is not None
    y1 = s.run(x)[0]
    y2 = s.run({"x": x})[0]
    assert s.last_profile is None
    assert s._fast.last_exec_ns > 0  # the executor's time of that run, measured in C (cnnrt profile's overhead)
    assert np.array_equal(y0, y1) and np.array_equal(y0, y2)
    assert y1 is not y2 and not np.shares_memory(y1, y2)
    y1[...] = -1.0  # a caller's edit of one result does not reach the next
    assert np.array_equal(s.run(x)[0], y0)
    # feeds the fast path does not take: the general path runs them (or rejects them with its message)
    xt = np.ascontiguousarray(x.transpose(0, 1, 3, 2)).transpose(0, 1, 3, 2)  # same values, not C-contiguous
    assert not xt.flags.c_contiguous
    assert np.array_equal(s.run(xt)[0], y0)
    with pytest.raises(TypeError, match=r"input 'x'.*float32.*>f4"):  # big-endian: not read as native floats
        s.run(x.astype(">f4"))
    raw = np.zeros(x.nbytes + 4, np.uint8)
    xu = raw[1:1 + x.nbytes].view(np.float32).reshape(x.shape)  # unaligned
    xu[...] = x
    assert not xu.flags.aligned
    assert np.array_equal(s.run(xu)[0], y0)
    with pytest.raises(TypeError, match=r"input 'x'.*float32.*float64"):
        s.run(x.astype(np.float64))
    with pytest.raises(ValueError, match=r"input 'x'.*\(N, 3, 8, 8\).*\(2, 4, 8, 8\)"):
        s.run(np.zeros((2, 4, 8, 8), np.float32))
    with pytest.raises(ValueError, match=r"unknown input 'z'"):
        s.run({"z": x})
    # another batch: the general path plans and runs it, then the fast path serves that shape
    x3 = rng.standard_normal((3, 3, 8, 8)).astype(np.float32)
    r3 = s.run(x3, ["y"])[0]
    assert np.array_equal(s.run(x3)[0], r3) and np.array_equal(s.run(x)[0], y0)


def test_batch_size_changes_between_runs():
    s = cnnrt.Session(tiny_model(), num_threads=2)
    rng = np.random.default_rng(2)
    for n in (1, 5, 2, 5):
        x = rng.standard_normal((n, 3, 8, 8)).astype(np.float32)
        ref = cnnrt.Session(tiny_model(), num_threads=1, isa="scalar").run(x)[0]
        assert np.allclose(s.run(x)[0], ref, atol=1e-5)


def test_unsupported_ops_are_all_listed_at_load():
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="conv"),
             helper.make_node("Erf", ["c"], ["e"], name="my_erf"),
             helper.make_node("Resize", ["e", "", "", ""], ["r"], name="up", mode="nearest"),
             helper.make_node("Relu", ["r"], ["y"], name="relu")]
    with pytest.raises(cnnrt.UnsupportedModelError) as ei:
        cnnrt.Session(tiny_model(nodes))
    msg = str(ei.value)
    assert "'my_erf' (Erf)" in msg and "'up' (Resize)" in msg
    assert {(n, o) for n, o, _ in ei.value.unsupported} == {("my_erf", "Erf"), ("up", "Resize")}


def test_garbage_and_missing_model():
    with pytest.raises(cnnrt.ModelError, match="not a valid ONNX model"):
        cnnrt.Session(b"\x08\x01garbage" * 10)
    with pytest.raises(FileNotFoundError):
        cnnrt.Session("/nonexistent/model.onnx")


def test_inference_session_mirrors_onnxruntime(model_path):
    ort = pytest.importorskip("onnxruntime")
    so = cnnrt.SessionOptions()
    so.intra_op_num_threads = 1
    a = cnnrt.InferenceSession(model_path, sess_options=so, providers=["CPUExecutionProvider"])
    b = ort.InferenceSession(model_path, providers=["CPUExecutionProvider"])
    assert [(i.name, i.shape, i.type) for i in a.get_inputs()] == [(i.name, i.shape, i.type) for i in b.get_inputs()]
    assert [(o.name, o.shape, o.type) for o in a.get_outputs()] == [(o.name, o.shape, o.type)
                                                                    for o in b.get_outputs()]
    assert a.get_modelmeta().custom_metadata_map == b.get_modelmeta().custom_metadata_map
    x = np.random.default_rng(3).standard_normal((2, 1, 64, 64)).astype(np.float32)
    ya = a.run(None, {"input": x})
    yb = b.run(None, {"input": x})
    assert len(ya) == len(yb) == 1
    assert np.allclose(ya[0], yb[0], atol=1e-4 * (1 + np.abs(yb[0]).max()))
    assert np.array_equal(a.run(["logits"], {"input": x})[0], ya[0])
    with pytest.raises(ValueError, match="CPUExecutionProvider"):
        cnnrt.InferenceSession(model_path, providers=["CUDAExecutionProvider"])


def test_cpu_info_and_isa_override():
    info = cnnrt.cpu_info()
    assert info["isa"] in info["supported_isas"]
    assert "scalar" in info["supported_isas"]
    s = cnnrt.Session(tiny_model(), isa="scalar")
    assert s.isa == "scalar"


def test_unsupported_isa_is_a_clear_error():
    """An ISA the CPU (or this build) lacks is refused up front, naming it and the supported ones; an AVX-512 CPU also
    runs the AVX2 path."""
    info = cnnrt.cpu_info()
    missing = [i for i in ("avx2", "avx512", "neon") if i not in info["supported_isas"]]
    assert missing  # no CPU has both NEON and AVX2
    with pytest.raises(ValueError, match=f"isa='{missing[0]}' is not supported.*supported: scalar"):
        cnnrt.Session(tiny_model(), isa=missing[0])
    with pytest.raises(ValueError, match="unknown ISA"):
        cnnrt.Session(tiny_model(), isa="sse9")
    if "avx512" in info["supported_isas"]:
        assert "avx2" in info["supported_isas"]
        assert cnnrt.Session(tiny_model(), isa="avx2").isa == "avx2"
