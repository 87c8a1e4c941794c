"""cnnrt's graph IR: plain Python data handed from the importer to the passes and the planner."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple, Union

import numpy as np

from .errors import ModelError

Dim = Union[int, str, None]


@dataclass
class ValueInfo:
    name: str
    shape: Optional[Tuple[Dim, ...]]  # None: unknown rank; str/None entries: symbolic dims
    dtype: np.dtype


@dataclass
class Node:
    name: str
    op: str
    inputs: List[str]  # "" for an absent optional input
    outputs: List[str]
    attrs: Dict[str, Any] = field(default_factory=dict)
    fused: List[str] = field(default_factory=list)  # what passes merged into this node, for the summary
    proto: Any = None  # the original onnx NodeProto (constant folding evaluates it with onnx.reference)

    def attr(self, key, default=None):
        return self.attrs.get(key, default)

    @property
    def evaluable(self) -> bool:
        """True if onnx.reference can compute this node from its proto: it still is the op it was imported as
        (nothing fused into it, no private attributes added by a pass)."""
        return self.proto is not None and not self.fused and not any(k.startswith("_") for k in self.attrs)

    def current_proto(self):
        """The original NodeProto with the node's *current* input and output names (passes rename values)."""
        import onnx

        p = onnx.NodeProto()
        p.CopyFrom(self.proto)
        del p.input[:]
        p.input.extend(self.inputs)
        del p.output[:]
        p.output.extend(self.outputs)
        return p


def evaluate_node(node: "Node", consts: Dict[str, np.ndarray], opset: int) -> List[np.ndarray]:
    """Run one node with onnx.reference on constant inputs; returns one array per output ("" outputs: None)."""
    import onnx
    from onnx import helper
    from onnx.reference import ReferenceEvaluator

    # a one-node model: a bare NodeProto would be evaluated with the *latest* opset's semantics (onnx.reference
    # ignores `opsets` for it), which breaks e.g. Unsqueeze/Squeeze/Split/Reduce* with their pre-13 attributes
    feeds = {i: np.asarray(consts[i]) for i in node.inputs if i}
    names = [o for o in node.outputs if o]
    ins = [helper.make_tensor_value_info(k, helper.np_dtype_to_tensor_dtype(v.dtype), v.shape)
           for k, v in feeds.items()]
    outs = [helper.make_value_info(o, onnx.TypeProto()) for o in names]
    g = helper.make_graph([node.current_proto()], "cnnrt_fold", ins, outs)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    vals = dict(zip(names, ReferenceEvaluator(m).run(names, feeds)))
    return [np.asarray(vals[o]) if o else None for o in node.outputs]


# Ops whose outputs depend only on the *shape* of their (first) input, never on its values.
SHAPE_ONLY_OPS = {"Shape", "Size"}


@dataclass
class Graph:
    nodes: List[Node]
    inputs: List[ValueInfo]
    outputs: List[ValueInfo]
    consts: Dict[str, np.ndarray]
    opset: int
    metadata: Dict[str, str] = field(default_factory=dict)
    name: str = ""

    def producers(self) -> Dict[str, Node]:
        return {o: n for n in self.nodes for o in n.outputs if o}

    def consumers(self) -> Dict[str, List[Node]]:
        cons: Dict[str, List[Node]] = {}
        for n in self.nodes:
            for i in n.inputs:
                if i:
                    cons.setdefault(i, []).append(n)
        return cons

    def output_names(self):
        return [o.name for o in self.outputs]

    def runtime_values(self) -> set:
        """Names of the values that depend on the *data* of the graph inputs (as opposed to constants and values
        computed only from constants and input shapes, which the planner folds once per input shape).
        Nodes must be in topological order."""
        rt = {i.name for i in self.inputs}
        for n in self.nodes:
            if n.op in SHAPE_ONLY_OPS:
                continue
            if any(i in rt for i in n.inputs if i):
                outs = n.outputs[:1] if n.op == "Dropout" else n.outputs  # Dropout's mask: all ones at inference
                rt.update(o for o in outs if o)
        return rt

    def check(self, where="graph"):
        """Consistency: every input defined before use, each value defined once, outputs defined."""
        defined = set(self.consts) | {i.name for i in self.inputs}
        seen_nodes = set()
        for n in self.nodes:
            for i in n.inputs:
                if i and i not in defined:
                    raise ModelError(f"{where}: node {n.name!r} ({n.op}) reads {i!r}, which is not defined before it "
                                     "(dangling reference or cycle)")
            for o in n.outputs:
                if not o:
                    continue
                if o in defined:
                    raise ModelError(f"{where}: value {o!r} is defined twice (node {n.name!r})")
                defined.add(o)
            if n.name in seen_nodes:
                raise ModelError(f"{where}: duplicate node name {n.name!r}")
            seen_nodes.add(n.name)
        for o in self.outputs:
            if o.name not in defined:
                raise ModelError(f"{where}: graph output {o.name!r} is never computed")

    def summary(self):
        """One line per node: name, op, fused ops."""
        return [{"name": n.name, "op": n.op, "fused": list(n.fused), "inputs": list(n.inputs),
                 "outputs": list(n.outputs)} for n in self.nodes]
