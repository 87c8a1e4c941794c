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
