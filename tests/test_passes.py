"""Graph passes on the IR: each runs to a fixpoint, leaves a consistent graph, and keeps the node's meaning."""
import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from cnnrt import passes
from cnnrt.errors import ModelError
from cnnrt.onnx_import import import_model, load_model

F = TensorProto.FLOAT


def graph(nodes, inputs, outputs, inits=None, opset=13):
    ins = [helper.make_tensor_value_info(n, F, s) for n, s in inputs.items()]
    outs = [helper.make_tensor_value_info(n, F, s) for n, s in outputs.items()]
    init = [numpy_helper.from_array(np.asarray(v), k) for k, v in (inits or {}).items()]
    m = helper.make_model(helper.make_graph(nodes, "g", ins, outs, init),
                          opset_imports=[helper.make_opsetid("", opset)])
    return import_model(load_model(m))


def test_folding_after_a_rename_uses_the_current_input_names():
    # Identity(const) is bypassed first (its consumer now reads the constant under another name); folding the
    # consumer must evaluate it with the renamed input, not its original NodeProto's
    nodes = [helper.make_node("Identity", ["start"], ["start2"]),
             helper.make_node("Range", ["start2", "limit", "delta"], ["r"]),
             helper.make_node("Cast", ["r"], ["rf"], to=F),
             helper.make_node("Add", ["x", "rf"], ["y"])]
    g = graph(nodes, {"x": [4]}, {"y": [4]}, {"start": np.array(1, np.int64), "limit": np.array(9, np.int64),
                                              "delta": np.array(2, np.int64)})
    passes.optimize(g)
    assert [n.op for n in g.nodes] == ["Add"]
    assert np.array_equal(g.consts[g.nodes[0].inputs[1]], [1, 3, 5, 7])


def test_optimize_reaches_a_fixpoint():
    w = np.random.default_rng(0).standard_normal((4, 3, 3, 3)).astype(np.float32)
    nodes = [helper.make_node("Identity", ["x"], ["i"]),
             helper.make_node("Conv", ["i", "w"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("BatchNormalization", ["c", "s", "b", "m", "v"], ["n"]),
             helper.make_node("Relu", ["n"], ["y"])]
    g = graph(nodes, {"x": [1, 3, 5, 5]}, {"y": [1, 4, 5, 5]},
              {"w": w, "s": np.ones(4, np.float32), "b": np.zeros(4, np.float32), "m": np.zeros(4, np.float32),
               "v": np.ones(4, np.float32)})
    passes.optimize(g)
    assert [n.op for n in g.nodes] == ["Conv"]
    for p in passes.PASSES:
        assert not p(g), f"{p.__name__} still changes the optimized graph"
    g.check()


def test_graph_check_finds_dangling_references_and_duplicates():
    g = graph([helper.make_node("Relu", ["x"], ["y"])], {"x": [2]}, {"y": [2]})
    g.nodes[0].inputs = ["nowhere"]
    with pytest.raises(ModelError, match="not defined before it"):
        g.check()
    g = graph([helper.make_node("Relu", ["x"], ["a"]), helper.make_node("Relu", ["a"], ["y"])], {"x": [2]},
              {"y": [2]})
    g.nodes[1].outputs = ["a"]
    with pytest.raises(ModelError, match="defined twice"):
        g.check()


def test_runtime_values_stop_at_shapes():
    nodes = [helper.make_node("Shape", ["x"], ["s"]),
             helper.make_node("Cast", ["s"], ["sf"], to=F),
             helper.make_node("Relu", ["x"], ["r"]),
             helper.make_node("Dropout", ["r"], ["d", "mask"]),
             helper.make_node("Add", ["d", "sf"], ["y"])]
    g = graph(nodes, {"x": [2, 2]}, {"y": [2, 2]})
    assert g.runtime_values() == {"x", "r", "d", "y"}
    passes.optimize(g)
    assert "Cast" in [n.op for n in g.nodes]  # a Cast of a shape (int64 -> float) is not a no-op
