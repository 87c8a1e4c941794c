"""Planner: for one set of concrete input shapes, fold what is constant, infer every shape, lower each node to C
nodes (cnnrt._core.Plan), and give every intermediate tensor an offset in one arena from its lifetime.

Packed weights are shape-independent and live in `Prepared` (created once per session, shared by every plan)."""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

import numpy as np

from . import _core
from .errors import ModelError, node_error
from .ir import Graph, Node, evaluate_node

ALIGN = 64
BIN_OPS = {"Add": 0, "Sub": 1, "Mul": 2, "Div": 3, "Max": 4, "Min": 5, "Pow": 6}
INT64_MAX = 2 ** 63 - 1


def _prod(xs) -> int:
    p = 1
    for x in xs:
        p *= int(x)
    return p


def _strides(shape) -> List[int]:
    s, acc = [], 1
    for d in reversed(shape):
        s.append(acc)
        acc *= int(d)
    return list(reversed(s))


def _norm_axis(node, axis, rank):
    a = int(axis)
    if a < 0:
        a += rank
    if not 0 <= a < max(rank, 1):
        raise node_error(node, f"axis {axis} out of range for rank {rank}")
    return a


@dataclass
class Prepared:
    """Shape-independent state shared by all plans of a session: packed weights, cached by node and padding."""
    isa: int
    conv: Dict[tuple, object] = field(default_factory=dict)
    fc: Dict[tuple, object] = field(default_factory=dict)
    winograd: bool = True  # False: 3x3 stride-1 layers use GEMM (the only alternative for them)
    tuner: object = None   # cnnrt.tune.Tuner: times the candidates where the rules are unsure (None: rules only)

    def conv_weights(self, node: Node, w: np.ndarray, b, strides, pads, dils, groups, act, algo="auto", made=None):
        if (not self.winograd and algo in ("auto", "auto-small") and groups == 1 and w.shape[2:] == (3, 3)
                and tuple(strides) == (1, 1) and tuple(dils) == (1, 1)):
            algo = "gemm"
        # "auto" and "auto-small" (Winograd from F(2,3), for small outputs) are separate packings: a layer planned for
        # both small (batch 1) and large (batch 32) outputs keeps both; every shape of a class reuses its packing
        key = (node.name, tuple(pads), act, algo)
        cw = self.conv.get(key)
        if cw is None and made is not None:  # packed by the tuner while timing it
            cw = self.conv[key] = made
        if cw is None:
            try:
                cw = _core.ConvWeights(w, b, tuple(strides), tuple(pads), tuple(dils), groups, act, algo, self.isa)
            except ValueError as e:
                raise node_error(node, str(e)) from None
            self.conv[key] = cw
        return cw

    def fc_weights(self, node: Node, key, make):
        k = (node.name, key)
        fw = self.fc.get(k)
        if fw is None:
            w_kn, bias = make()
            fw = _core.FCWeights(w_kn, bias, self.isa)
            self.fc[k] = fw
        return fw

    @property
    def weight_bytes(self):
        return sum(w.nbytes for w in self.conv.values()) + sum(w.nbytes for w in self.fc.values())


@dataclass
class NodeInfo:
    name: str
    op: str
    kind: str
    fused: List[str]
    out_shape: tuple
    flops: int
    algo: str = ""
    tune: str = ""  # conv: how the load-time tuner chose (cnnrt/tune.py), "" where the rules decided alone
    weights: object = field(default=None, repr=False)  # conv: the packed weights this plan's node runs


@dataclass
class PlanInfo:
    plan: object
    input_order: List[str]
    output_order: List[str]
    output_shapes: List[tuple]
    const_outputs: Dict[int, np.ndarray]
    arena_bytes: int           # tensors
    workspace_bytes: int
    nodes: List[NodeInfo]
    flops: int
    layout: Dict = field(default_factory=dict, repr=False)  # see Lowering.layout (introspection for tests)

    @property
    def peak_bytes(self):
        return _round(self.arena_bytes) + self.workspace_bytes

    def arena_tensors(self):
        """The arena-planned storages: dicts with offset, nbytes (as reserved), the values (name -> shape) that live
        in it, and the first/last C node (execution index) that touches it, recomputed from the node list."""
        st = self.layout.get("storages", [])
        first, last = {}, {}
        for idx, (out, ins) in enumerate(self.layout.get("steps", [])):
            for sid in list(ins) + [out]:
                first.setdefault(sid, idx)
                last[sid] = idx
        # a slice of a Concat output (written in place by its producer) must survive until the Concat output's last
        # reader, and the Concat output is live from its first slice's producer on
        for sid, s in enumerate(st):
            p = s.get("parent")
            if p is not None and sid in first:
                first[p] = min(first.get(p, first[sid]), first[sid])
                last[p] = max(last.get(p, last[sid]), last[sid])
        for sid, s in enumerate(st):
            p = s.get("parent")
            if p is not None and sid in first:
                last[sid] = max(last[sid], last[p])
        res = []
        for sid, s in enumerate(st):
            if s["kind"] == _core.ST_ARENA and sid in first:
                res.append(dict(s, sid=sid, first=first[sid], last=last[sid]))
        return res


def _round(x):
    return (int(x) + ALIGN - 1) // ALIGN * ALIGN


class _Storage:
    __slots__ = ("kind", "arg", "nbytes", "first", "last", "parent", "sub")

    def __init__(self, kind, arg, nbytes):
        self.kind, self.arg, self.nbytes = kind, arg, nbytes
        self.first, self.last = None, None
        self.parent, self.sub = None, 0  # a slice of another arena storage (a Concat input written in place)


class Lowering:
    def __init__(self, graph: Graph, prep: Prepared, input_shapes: Dict[str, tuple], nthreads: int):
        self.g = graph
        self.prep = prep
        self.nthreads = nthreads
        self.isa = prep.isa
        self.shapes: Dict[str, tuple] = {}
        self.consts: Dict[str, np.ndarray] = dict(graph.consts)
        self.storage_of: Dict[str, int] = {}
        self.storages: List[_Storage] = []
        self.ops: List[tuple] = []  # (method, out_name, in_names, args, kwargs)
        self.infos: List[NodeInfo] = []
        self.graph_outputs = graph.output_names()
        for i, vi in enumerate(graph.inputs):
            self.shapes[vi.name] = tuple(input_shapes[vi.name])
            self.storage_of[vi.name] = self._new_storage(_core.ST_INPUT, i, 0)

    # ---- storage -------------------------------------------------------------------------------------------
    def _new_storage(self, kind, arg, nbytes):
        self.storages.append(_Storage(kind, arg, nbytes))
        return len(self.storages) - 1

    def is_const(self, name):
        return name in self.consts

    def runtime_input(self, node, name) -> str:
        if name not in self.storage_of:
            if name in self.consts:
                arr = self.consts[name]
                if arr.dtype.kind not in "fiub":
                    raise node_error(node, f"input {name!r} has unsupported dtype {arr.dtype}")
                self.storage_of[name] = self._new_storage(_core.ST_CONST, np.ascontiguousarray(arr, np.float32), 0)
                self.shapes[name] = arr.shape
            else:
                raise node_error(node, f"input {name!r} is not available")
        return name

    def define(self, name, shape):
        """A new runtime tensor produced by a node."""
        shape = tuple(int(d) for d in shape)
        if any(d < 0 for d in shape):
            raise ModelError(f"value {name!r}: negative dimension in {shape}")
        self.shapes[name] = shape
        if name in self.storage_of:
            return
        if name in self.graph_outputs:
            self.storage_of[name] = self._new_storage(_core.ST_OUTPUT, self.graph_outputs.index(name), 0)
        else:
            self.storage_of[name] = self._new_storage(_core.ST_ARENA, 0, _prod(shape) * 4)

    def alias(self, node, out, src, shape):
        """out is src with another shape (Reshape, Flatten, ...): share the buffer when that is safe."""
        shape = tuple(int(d) for d in shape)
        if _prod(shape) != _prod(self.shapes[src]):
            raise node_error(node, f"cannot view {self.shapes[src]} as {shape}")
        st = self.storages[self.storage_of[src]]
        if out in self.graph_outputs or st.kind in (_core.ST_INPUT, _core.ST_CONST, _core.ST_OUTPUT):
            self.define(out, shape)
            n = _prod(shape)
            if n:
                self.emit(node, "copy", "add_copy", out, [src], ([n], [1], [1], 0, 0), flops=0)
            return
        self.shapes[out] = shape
        self.storage_of[out] = self.storage_of[src]

    def emit(self, node, kind, method, out, ins, args, flops=0, algo=""):
        self.ops.append((method, out, list(ins), tuple(args)))
        self.infos.append(NodeInfo(node.name, node.op, kind, list(node.fused), self.shapes.get(out, ()), int(flops),
                                   algo))

    # ---- the walk ------------------------------------------------------------------------------------------
    def run(self):
        # remaining[v]: graph nodes not yet lowered that read v (in-place reuse needs v's last reader)
        self.remaining: Dict[str, int] = {}
        self.readers: Dict[str, list] = {}
        self.absorbed = set()  # names of nodes lowered as part of an earlier node (a MaxPool fused into its Conv)
        for n in self.g.nodes:
            for i in n.inputs:
                if i:
                    self.remaining[i] = self.remaining.get(i, 0) + 1
                    self.readers.setdefault(i, []).append(n)
        for node in self.g.nodes:
            if node.name not in self.absorbed:
                self._visit(node)
            for i in node.inputs:
                if i:
                    self.remaining[i] -= 1

    def define_inplace(self, node, out, x, shape) -> bool:
        """Give `out` the buffer of `x` when this node is x's last reader and nothing else lives in that buffer
        (element-wise ops write each element after reading it). Otherwise a new buffer. Returns True if reused."""
        shape = tuple(int(d) for d in shape)
        if not self.can_reuse(node, out, x, shape):
            self.define(out, shape)
            return False
        self.shapes[out] = shape
        self.storage_of[out] = self.storage_of[x]
        return True

    def can_reuse(self, node, out, x, shape) -> bool:
        sid = self.storage_of.get(x)
        ok = (sid is not None and out not in self.graph_outputs and out not in self.storage_of
              and self.storages[sid].kind == _core.ST_ARENA and _prod(shape) == _prod(self.shapes[x])
              and self.remaining.get(x, 0) == sum(1 for i in node.inputs if i == x))
        if ok:
            for name, s2 in self.storage_of.items():
                if s2 == sid and name != x and (self.remaining.get(name, 0) > 0 or name in self.graph_outputs):
                    ok = False
                    break
        return bool(ok)

    def _visit(self, node):
        if True:
            ins = [i for i in node.inputs if i]
            if node.op == "Shape":
                x = node.inputs[0]
                shp = self.shapes.get(x)
                if shp is None:
                    shp = self.consts[x].shape
                start = int(node.attr("start", 0))
                end = node.attr("end", None)
                self.consts[node.outputs[0]] = np.array(shp, np.int64)[start:end]
                return
            if node.op == "Size" and node.inputs[0] in self.shapes:
                self.consts[node.outputs[0]] = np.array(_prod(self.shapes[node.inputs[0]]), np.int64)
                return
            if all(i in self.consts for i in ins) and node.evaluable:
                # a node of constants (shape arithmetic once input shapes are known): computed once, here
                try:
                    vals = evaluate_node(node, self.consts, self.g.opset)
                except Exception as e:
                    raise node_error(node, f"could not evaluate constant node: {e}") from None
                for o, v in zip(node.outputs, vals):
                    if o:
                        self.consts[o] = v
                return
            fn = LOWER.get(node.op)
            if fn is None:
                raise node_error(node, "this operator only works on constant inputs here (its input is computed "
                                       "at run time)")
            fn(self, node)

    def build(self) -> PlanInfo:
        self.run()
        outs = self.graph_outputs
        const_outputs = {}
        for k, o in enumerate(outs):
            if o in self.consts:
                # a constant (possibly also read by run-time nodes through a constant storage)
                const_outputs[k] = np.asarray(self.consts[o])
            elif o in self.storage_of and self.storages[self.storage_of[o]].kind == _core.ST_INPUT:
                # graph output that is a graph input: copy
                src = o
                n = _prod(self.shapes[src])
                sid = self._new_storage(_core.ST_OUTPUT, k, 0)
                fake = Node(f"output_copy_{k}", "Identity", [src], [o])
                self.ops.append(("add_copy", ("__sid__", sid), [src], ([n], [1], [1], 0, 0)))
                self.infos.append(NodeInfo(fake.name, "Identity", "copy", [], self.shapes[src], 0))
        # lifetimes over C nodes
        def sid_of(name):
            if name is None:
                return None
            return name[1] if isinstance(name, tuple) else self.storage_of[name]

        for idx, (method, out, ins, args) in enumerate(self.ops):
            for nm in [i for i in ins if i is not None] + [out]:
                st = self.storages[sid_of(nm)]
                if st.first is None:
                    st.first = idx
                st.last = idx
        # graph outputs that alias an arena buffer cannot happen (alias() copies), so arena = intermediates
        arena_bytes = self._assign_offsets()
        plan = _core.Plan(max(1, len(self.storages)))
        for sid, st in enumerate(self.storages):
            plan.set_storage(sid, st.kind, st.arg)
        for k, (method, out, ins, args) in enumerate(self.ops):
            r = getattr(plan, method)(sid_of(out), *[sid_of(i) for i in ins], *args)
            if method == "add_conv" and isinstance(r, str):
                self.infos[k].algo = r  # the algorithm this shape's plan really runs (Winograd needs enough tiles)
        plan.set_arena_bytes(arena_bytes)
        out_shapes = []
        for k, o in enumerate(outs):
            if k in const_outputs:
                out_shapes.append(tuple(const_outputs[k].shape))
            else:
                out_shapes.append(self.shapes[o])
        return PlanInfo(plan, [vi.name for vi in self.g.inputs], outs, out_shapes, const_outputs, arena_bytes,
                        plan.workspace_bytes, self.infos, sum(i.flops for i in self.infos), self.layout(sid_of))

    def layout(self, sid_of):
        """Storages (kind, arena offset, reserved bytes, values name -> shape) and the C nodes' (out, [ins]) storage
        ids in execution order: enough to re-check the arena plan independently."""
        values: Dict[int, Dict[str, tuple]] = {}
        for name, sid in self.storage_of.items():
            values.setdefault(sid, {})[name] = tuple(self.shapes.get(name, ()))
        storages = [{"kind": st.kind, "offset": st.arg if st.kind == _core.ST_ARENA else None,
                     "nbytes": (st.nbytes if st.parent is not None else _round(max(st.nbytes, 4)))
                     if st.kind == _core.ST_ARENA else st.nbytes,
                     "values": values.get(sid, {}), "parent": st.parent} for sid, st in enumerate(self.storages)]
        steps = [(sid_of(out), [sid_of(i) for i in ins if i is not None]) for _, out, ins, _ in self.ops]
        return {"storages": storages, "steps": steps}

    def _assign_offsets(self) -> int:
        """Greedy by size (largest first): lowest offset that overlaps no placed tensor alive at the same time.
        Slices (Concat inputs written in place) are not placed: they live inside their parent, whose lifetime is
        widened to cover theirs, and get the parent's offset plus their own."""
        for st in self.storages:
            if st.parent is not None and st.first is not None:
                p = self.storages[st.parent]
                p.first = st.first if p.first is None else min(p.first, st.first)
                p.last = st.last if p.last is None else max(p.last, st.last)
        items = [(st.nbytes, i) for i, st in enumerate(self.storages)
                 if st.kind == _core.ST_ARENA and st.first is not None and st.parent is None]
        items.sort(key=lambda t: (-t[0], t[1]))
        placed: List[Tuple[int, int, int, int]] = []  # (offset, end, first, last)
        top = 0
        for nbytes, i in items:
            st = self.storages[i]
            size = _round(max(nbytes, 4))
            conflicts = sorted((o, e) for o, e, f, l in placed if not (l < st.first or f > st.last))
            off = 0
            for o, e in conflicts:
                if off + size <= o:
                    break
                off = max(off, e)
            st.arg = off
            placed.append((off, off + size, st.first, st.last))
            top = max(top, off + size)
        for st in self.storages:
            if st.parent is not None:
                st.arg = self.storages[st.parent].arg + st.sub
        return top


# ---------------------------------------------------------------------------------------------------------------
# per-op lowering


def _act_of_node(node):
    return node.attr("_act")


def _conv_pads(node, in_hw, k_hw, strides, dils):
    auto = node.attr("auto_pad", "NOTSET")
    nd = len(in_hw)
    if auto in ("NOTSET", "", None):
        pads = list(node.attr("pads", [0] * (2 * nd)))
        if len(pads) != 2 * nd:
            raise node_error(node, f"pads has {len(pads)} values, expected {2 * nd}")
        if any(p < 0 for p in pads):
            raise node_error(node, f"negative pads {pads}")
        return pads
    if auto == "VALID":
        return [0] * (2 * nd)
    if auto in ("SAME_UPPER", "SAME_LOWER"):
        begin, end = [], []
        for i in range(nd):
            out = -(-in_hw[i] // strides[i])
            total = max(0, (out - 1) * strides[i] + (k_hw[i] - 1) * dils[i] + 1 - in_hw[i])
            small, big = total // 2, total - total // 2
            if auto == "SAME_UPPER":
                begin.append(small), end.append(big)
            else:
                begin.append(big), end.append(small)
        return begin + end
    raise node_error(node, f"unknown auto_pad {auto!r}")


def _conv_out_hw(h, wd, pads, ks, strides, dils):
    """Output height and width of a 2-D convolution (pads: top, left, bottom, right); <= 0 when the kernel does not
    fit the padded input."""
    oh = (h + pads[0] + pads[2] - dils[0] * (ks[0] - 1) - 1) // strides[0] + 1
    ow = (wd + pads[1] + pads[3] - dils[1] * (ks[1] - 1) - 1) // strides[1] + 1
    return oh, ow


def lower_conv(L: Lowering, node: Node):
    x = L.runtime_input(node, node.inputs[0])
    if node.inputs[1] not in L.consts:
        raise node_error(node, "weights computed at run time are not supported (they must be constant)")
    w = np.asarray(L.consts[node.inputs[1]], np.float32)
    b = L.consts.get(node.inputs[2]) if len(node.inputs) > 2 and node.inputs[2] else None
    if len(node.inputs) > 2 and node.inputs[2] and b is None:
        raise node_error(node, "a bias computed at run time is not supported")
    xs = L.shapes[x]
    if w.ndim not in (3, 4) or len(xs) != w.ndim:
        raise node_error(node, f"only 1-D and 2-D convolutions are supported (input {xs}, weights {w.shape})")
    one_d = w.ndim == 3
    groups = int(node.attr("group", 1))
    if groups <= 0 or xs[1] != w.shape[1] * groups or w.shape[0] % groups:
        raise node_error(node, f"input has {xs[1]} channels, weights {w.shape} with group={groups} need "
                               f"{w.shape[1] * groups}")
    nd = w.ndim - 2
    ks = list(node.attr("kernel_shape", w.shape[2:]))
    if list(ks) != list(w.shape[2:]):
        raise node_error(node, f"kernel_shape {ks} differs from the weights' {list(w.shape[2:])}")
    strides = list(node.attr("strides", [1] * nd))
    dils = list(node.attr("dilations", [1] * nd))
    if len(strides) != nd or len(dils) != nd or min(strides) <= 0 or min(dils) <= 0:
        raise node_error(node, f"invalid strides {strides} or dilations {dils}")
    pads = _conv_pads(node, list(xs[2:]), ks, strides, dils)
    if one_d:
        w = w.reshape(w.shape[0], w.shape[1], 1, w.shape[2])
        strides, dils = [1] + strides, [1] + dils
        pads = [0, pads[0], 0, pads[1]]
        h, wd = 1, xs[2]
    else:
        h, wd = xs[2], xs[3]
    act = _act_of_node(node)
    res = node.inputs[3] if len(node.inputs) > 3 and node.inputs[3] else None
    oh, ow = _conv_out_hw(h, wd, pads, w.shape[2:], strides, dils)
    if oh <= 0 or ow <= 0:
        raise node_error(node, f"the kernel does not fit the input {xs} (pads {pads})")
    out_shape = (xs[0], w.shape[0], ow) if one_d else (xs[0], w.shape[0], oh, ow)
    flops = 2 * xs[0] * w.shape[0] * oh * ow * w.shape[1] * w.shape[2] * w.shape[3]
    fuse_res = res is not None and tuple(L.shapes.get(res, L.consts[res].shape if res in L.consts else ())) == out_shape
    conv_act = act if (res is None or fuse_res) else None
    if (not one_d and h == 1 and wd == 1 and groups == 1 and w.shape[2:] == (1, 1) and not any(pads)
            and (res is None or fuse_res)):
        # a 1x1 convolution of 1x1 images (squeeze-and-excitation blocks) is a fully connected layer: the FC path's
        # GEMV kernel at batch 1, instead of a GEMM whose 16-wide column panels hold one pixel
        cout, cin = w.shape[0], w.shape[1]

        def make():
            return np.ascontiguousarray(w.reshape(cout, cin).T), \
                (None if b is None else np.ascontiguousarray(np.asarray(b, np.float32).reshape(-1)))

        fw = L.prep.fc_weights(node, ("conv1x1",), make)
        out = node.outputs[0]
        L.define(out, out_shape)
        if xs[0]:
            L.emit(node, "fc", "add_fc", out, [x, L.runtime_input(node, res) if res else None],
                   (fw, xs[0], cin, 1, conv_act, L.nthreads), flops)
        return
    algo = "auto"
    if (groups == 1 and w.shape[2:] == (3, 3) and list(strides) == [1, 1] and list(dils) == [1, 1]
            and min(w.shape[0], w.shape[1]) >= 16):
        # small outputs (7x7, 8x8 at batch 1): too few F(4,3) tiles, enough F(2,3) tiles (see cnn_wino_auto_tile_small)
        tiles = lambda m: xs[0] * -(-oh // m) * -(-ow // m)
        if tiles(4) < 16 <= tiles(2):
            algo = "auto-small"
    out = node.outputs[0]
    pool = None if res is not None or one_d else _fusable_maxpool2(L, out, out_shape)
    tuned = None
    if L.prep.tuner is not None and xs[0]:
        from .tune import Layer

        def make(a):
            if a == algo:
                return L.prep.conv_weights(node, w, b, strides, pads, dils, groups, conv_act, algo)
            return _core.ConvWeights(w, b, tuple(strides), tuple(pads), tuple(dils), groups, conv_act, a, L.prep.isa)

        tuned = L.prep.tuner.choose(
            Layer(xs[1], w.shape[0], w.shape[2], w.shape[3], tuple(strides), tuple(pads), tuple(dils), groups, xs[0],
                  h, wd, oh, ow, conv_act, bool(res is not None and fuse_res), pool is not None, L.nthreads),
            algo, make)
        if tuned is not None:
            algo = tuned.algo
    cw = L.prep.conv_weights(node, w, b, strides, pads, dils, groups, conv_act, algo,
                             made=tuned.weights if tuned is not None else None)

    def note():
        L.infos[-1].weights = cw
        if tuned is not None:
            L.infos[-1].tune = tuned.why

    if res is not None and not fuse_res:
        tmp = out + "::conv"
        L.define(tmp, out_shape)
        L.emit(node, "conv", "add_conv", tmp, [x, None], (cw, xs[0], h, wd, L.nthreads), flops, cw.algo)
        note()
        _emit_binary(L, node, "Add", tmp, L.runtime_input(node, res), out, act)
        return
    if pool is not None and cw.can_fuse_maxpool2(xs[0], h, wd, L.nthreads):
        # Conv -> MaxPool(2x2, stride 2) as one C node: the pooled output is written from the tiles in cache, the
        # full-resolution output never exists
        L.absorbed.add(pool.name)
        pout = pool.outputs[0]
        L.define(pout, (xs[0], w.shape[0], oh // 2, ow // 2))
        L.emit(node, "conv", "add_conv", pout, [x, None], (cw, xs[0], h, wd, L.nthreads, True), flops, cw.algo)
        L.infos[-1].fused = L.infos[-1].fused + [f"MaxPool({pool.name})"]
        note()
        return
    if res is None and not one_d and xs[0]:
        fused = _fuse_depthwise(L, node, cw, out, out_shape, xs, h, wd, flops)
        if fused:
            note()
            return
    L.define(out, out_shape)
    ins = [x, L.runtime_input(node, res) if res else None]
    L.emit(node, "conv", "add_conv", out, ins, (cw, xs[0], h, wd, L.nthreads), flops, cw.algo)
    note()


# Expand 1x1 -> depthwise fused when the expanded tensor of one image is at least this large and the expansion's
# activation is a clamp (measured with benchmarks/ab_env.py, see benchmarks/RESULTS.md): MobileNetV2's 16->96 at
# 112x112 (4.8 MB) gains 0.3 ms; its 24->144 at 56x56 (1.8 MB) and 32->192 at 28x28 (0.6 MB) gain nothing (the tensor
# stays in cache between the two layers) and lose the band overlap; EfficientNet's SiLU expansions are bound by the
# SiLU, not by memory (16->96 at 112x112: +0.04 ms fused).
EXPAND_DW_MIN_BYTES = 2 << 20


def _fuse_depthwise(L: Lowering, node: Node, cw, out: str, out_shape, xs, h, wd, flops) -> bool:
    """A 1x1 convolution (stride 1, no padding) whose output's only reader is a depthwise convolution (multiplier 1,
    no residual): emit both as one C node (cnn_conv2d_plan_fuse_dw), the expanded tensor never materialized. Returns
    True when it did. CNNRT_EXPAND_DW=0 turns it off (A/B comparisons)."""
    if os.environ.get("CNNRT_EXPAND_DW", "1") == "0":
        return False
    if out in L.graph_outputs or len(out_shape) != 4 or out_shape[1] * h * wd * 4 < EXPAND_DW_MIN_BYTES:
        return False
    act = _act_of_node(node)
    if act is not None and act[0] not in ("relu", "clip"):
        return False
    rd = L.readers.get(out, [])
    if len(rd) != 1:
        return False
    r = rd[0]
    if r.op != "Conv" or r.inputs[0] != out or (len(r.inputs) > 3 and r.inputs[3]) or r.inputs[1] not in L.consts:
        return False
    if len(r.inputs) > 2 and r.inputs[2] and r.inputs[2] not in L.consts:
        return False
    wdw = np.asarray(L.consts[r.inputs[1]], np.float32)
    C = out_shape[1]
    if wdw.ndim != 4 or int(r.attr("group", 1)) != C or wdw.shape[0] != C or wdw.shape[1] != 1:
        return False
    ks = list(wdw.shape[2:])
    if list(r.attr("kernel_shape", ks)) != ks:
        return False
    strides = list(r.attr("strides", [1, 1]))
    dils = list(r.attr("dilations", [1, 1]))
    if len(strides) != 2 or len(dils) != 2 or min(strides) <= 0 or dils != [1, 1]:
        return False
    pads = _conv_pads(r, [h, wd], ks, strides, dils)
    bdw = L.consts.get(r.inputs[2]) if len(r.inputs) > 2 and r.inputs[2] else None
    oh, ow = _conv_out_hw(h, wd, pads, ks, strides, dils)
    if oh <= 0 or ow <= 0:
        return False
    dcw = L.prep.conv_weights(r, wdw, bdw, strides, pads, dils, C, _act_of_node(r), "auto")
    if not cw.can_fuse_dw(dcw, xs[0], h, wd, L.nthreads):
        return False
    L.absorbed.add(r.name)
    dout = r.outputs[0]
    L.define(dout, (xs[0], C, oh, ow))
    dflops = 2 * xs[0] * C * oh * ow * ks[0] * ks[1]
    L.emit(node, "conv", "add_conv", dout, [L.runtime_input(node, node.inputs[0]), None],
           (cw, xs[0], h, wd, L.nthreads, False, dcw), flops + dflops, cw.algo + "+depthwise")
    L.infos[-1].fused = L.infos[-1].fused + [f"Conv({r.name})"] + [f"{f} (of {r.name})" for f in r.fused]
    return True


def _fusable_maxpool2(L: Lowering, out: str, out_shape) -> Optional[Node]:
    """The MaxPool node that is the only reader of `out` when it is kernel 2x2, stride 2, no padding, dilation 1 (and
    ceil_mode only where the sizes are even, so it changes nothing), with no Indices output; else None."""
    rd = L.readers.get(out, [])
    if len(rd) != 1 or out in L.graph_outputs:
        return None
    p = rd[0]
    if p.op != "MaxPool" or p.inputs[0] != out or (len(p.outputs) > 1 and p.outputs[1]):
        return None
    if list(p.attr("kernel_shape", [])) != [2, 2] or list(p.attr("strides", [1, 1])) != [2, 2]:
        return None
    if list(p.attr("dilations", [1, 1])) != [1, 1] or any(int(v) for v in p.attr("pads", [0, 0, 0, 0])):
        return None
    if p.attr("auto_pad", "NOTSET") not in ("NOTSET", "VALID") or int(p.attr("storage_order", 0)) != 0:
        return None
    oh, ow = out_shape[2], out_shape[3]
    if int(p.attr("ceil_mode", 0)) and (oh % 2 or ow % 2):
        return None
    if oh < 2 or ow < 2:
        return None
    return p


def _bcast_strides(shape, out_shape):
    r = len(out_shape)
    shape = (1,) * (r - len(shape)) + tuple(shape)
    st = _strides(shape)
    return [0 if (shape[i] == 1 and out_shape[i] != 1) else st[i] for i in range(r)]


def _emit_binary(L, node, op, a, b, out, act=None):
    sa = L.shapes[a]
    sb = L.shapes[b]
    try:
        oshape = tuple(np.broadcast_shapes(tuple(sa), tuple(sb)))
    except ValueError:
        raise node_error(node, f"shapes {sa} and {sb} do not broadcast") from None
    # in place on an operand of the output's full shape (it is read at exactly the index it is written)
    if tuple(sa) == oshape and L.can_reuse(node, out, a, oshape):
        L.define_inplace(node, out, a, oshape)
    elif tuple(sb) == oshape and L.can_reuse(node, out, b, oshape):
        L.define_inplace(node, out, b, oshape)
    else:
        L.define(out, oshape)
    if _prod(oshape) == 0:
        return
    shape = list(oshape) if oshape else [1]
    ast = _bcast_strides(sa, oshape) if oshape else [0]
    bst = _bcast_strides(sb, oshape) if oshape else [0]
    if len(shape) > 8:
        raise node_error(node, "rank above 8")
    opcode = BIN_OPS[op] if op in BIN_OPS else 7  # PRelu
    L.emit(node, "binary", "add_binary", out, [a, b], (L.isa, opcode, shape, ast, bst, act), _prod(oshape))


def lower_binary(L, node):
    ins = [L.runtime_input(node, i) for i in node.inputs if i]
    op = node.op
    if op == "Sum":
        op = "Add"
    if len(ins) == 1:
        L.alias(node, node.outputs[0], ins[0], L.shapes[ins[0]])
        return
    acc = ins[0]
    for k, b in enumerate(ins[1:]):
        last = k == len(ins) - 2
        out = node.outputs[0] if last else f"{node.outputs[0]}::part{k}"
        _emit_binary(L, node, op, acc, b, out, _act_of_node(node) if last else None)
        acc = out


def lower_prelu(L, node):
    x = L.runtime_input(node, node.inputs[0])
    s = L.runtime_input(node, node.inputs[1])
    xs, ss = L.shapes[x], L.shapes[s]
    # ONNX PRelu slope is unidirectionally broadcastable to X; a [C] slope on [N,C,H,W] means per channel (older
    # exporters) -> reshape to [C,1,1]
    if len(ss) == 1 and len(xs) >= 3 and ss[0] == xs[1] and ss[0] != xs[-1]:
        s2 = node.outputs[0] + "::slope"
        L.consts[s2] = np.asarray(L.consts[node.inputs[1]], np.float32).reshape((-1,) + (1,) * (len(xs) - 2)) \
            if node.inputs[1] in L.consts else None
        if L.consts[s2] is None:
            raise node_error(node, "a per-channel slope computed at run time is not supported")
        s = L.runtime_input(node, s2)
    _emit_binary(L, node, "PRelu", x, s, node.outputs[0])


def lower_act(L, node):
    from .passes import _act_of

    x = L.runtime_input(node, node.inputs[0])
    act = _act_of(L_as_graph(L), node)
    if act is None:
        raise node_error(node, "Clip bounds computed at run time are not supported")
    L.define_inplace(node, node.outputs[0], x, L.shapes[x])
    n = _prod(L.shapes[x])
    if n:
        L.emit(node, "act", "add_act", node.outputs[0], [x], (L.isa, act, n), n)


class _GraphView:
    def __init__(self, L):
        self.consts = L.consts
        self.opset = L.g.opset


def L_as_graph(L):
    return _GraphView(L)


def lower_batchnorm(L, node):
    x = L.runtime_input(node, node.inputs[0])
    if not all(i in L.consts for i in node.inputs[1:5]):
        raise node_error(node, "BatchNormalization parameters must be constant")
    gamma, beta, mean, var = (np.asarray(L.consts[i], np.float64).reshape(-1) for i in node.inputs[1:5])
    eps = float(node.attr("epsilon", 1e-5))
    scale = gamma / np.sqrt(var + eps)
    shift = beta - mean * scale
    xs = L.shapes[x]
    if len(xs) < 2 or xs[1] != scale.size:
        raise node_error(node, f"input {xs} does not have {scale.size} channels")
    L.define_inplace(node, node.outputs[0], x, xs)
    n = _prod(xs)
    if n:
        L.emit(node, "affine", "add_affine", node.outputs[0], [x],
               (L.isa, xs[0], xs[1], _prod(xs[2:]), scale.astype(np.float32), shift.astype(np.float32),
                _act_of_node(node)), 2 * n)


def _pool_out(node, size, k, s, d, pb, pe, ceil):
    eff = (k - 1) * d + 1
    num = size + pb + pe - eff
    if num < 0:
        raise node_error(node, f"the pooling window ({eff}) is larger than the padded input ({size + pb + pe})")
    if ceil:
        out = -(-num // s) + 1
        if (out - 1) * s >= size + pb:  # the last window must start inside the input or the left padding
            out -= 1
    else:
        out = num // s + 1
    return out


def lower_pool(L, node):
    x = L.runtime_input(node, node.inputs[0])
    xs = L.shapes[x]
    if len(node.outputs) > 1 and node.outputs[1]:
        raise node_error(node, "the Indices output of MaxPool is not supported")
    ks = list(node.attr("kernel_shape", []))
    nd = len(ks)
    if nd not in (1, 2) or len(xs) != nd + 2:
        raise node_error(node, f"only 1-D and 2-D pooling is supported (input {xs}, kernel {ks})")
    strides = list(node.attr("strides", [1] * nd))
    dils = list(node.attr("dilations", [1] * nd))
    if len(strides) != nd or len(dils) != nd or min(strides) <= 0 or min(dils) <= 0 or min(ks) <= 0:
        raise node_error(node, f"invalid kernel {ks}, strides {strides} or dilations {dils}")
    ceil = int(node.attr("ceil_mode", 0))
    auto = node.attr("auto_pad", "NOTSET")
    if auto in ("SAME_UPPER", "SAME_LOWER"):
        pads = _conv_pads(node, list(xs[2:]), ks, strides, dils)
        outs = [-(-xs[2 + i] // strides[i]) for i in range(nd)]
    else:
        pads = _conv_pads(node, list(xs[2:]), ks, strides, dils)
        outs = [_pool_out(node, xs[2 + i], ks[i], strides[i], dils[i], pads[i], pads[i + nd], ceil) for i in range(nd)]
    if nd == 1:
        ks, strides, dils = [1] + ks, [1] + strides, [1] + dils
        pads = [0, pads[0], 0, pads[1]]
        h, w, oh, ow = 1, xs[2], 1, outs[0]
    else:
        h, w, oh, ow = xs[2], xs[3], outs[0], outs[1]
    if max(pads[0], pads[2]) >= ks[0] * dils[0] or max(pads[1], pads[3]) >= ks[1] * dils[1]:
        if node.op == "MaxPool":
            raise node_error(node, f"pads {pads} are not smaller than the kernel {ks}")
    out_shape = tuple(xs[:2]) + tuple(outs)
    L.define(node.outputs[0], out_shape)
    typ = 0 if node.op == "MaxPool" else 1
    cip = int(node.attr("count_include_pad", 0))
    if _prod(out_shape):
        L.emit(node, "pool2d", "add_pool", node.outputs[0], [x],
               (L.isa, typ, cip, tuple(ks), tuple(strides), tuple(dils), tuple(pads), xs[0] * xs[1], h, w, oh, ow),
               _prod(out_shape) * ks[0] * ks[1])


def lower_global_pool(L, node):
    x = L.runtime_input(node, node.inputs[0])
    xs = L.shapes[x]
    if len(xs) < 3:
        raise node_error(node, f"input rank {len(xs)} < 3")
    out_shape = tuple(xs[:2]) + (1,) * (len(xs) - 2)
    L.define(node.outputs[0], out_shape)
    if _prod(xs):
        L.emit(node, "global_pool", "add_global_pool", node.outputs[0], [x],
               (L.isa, 0 if node.op == "GlobalMaxPool" else 1, xs[0] * xs[1], _prod(xs[2:])), _prod(xs))


def _axes_from(L, node, default_all=True):
    axes = node.attr("axes", None)
    if axes is None and len(node.inputs) > 1 and node.inputs[1]:
        if node.inputs[1] not in L.consts:
            raise node_error(node, "axes computed at run time are not supported")
        axes = [int(a) for a in L.consts[node.inputs[1]].reshape(-1)]
    return axes


def lower_reduce(L, node):
    x = L.runtime_input(node, node.inputs[0])
    xs = L.shapes[x]
    r = len(xs)
    axes = _axes_from(L, node)
    keep = int(node.attr("keepdims", 1))
    if not axes:
        if int(node.attr("noop_with_empty_axes", 0)):  # axes absent or empty: identity
            L.alias(node, node.outputs[0], x, xs)
            return
        axes = list(range(r))
    axes = sorted({_norm_axis(node, a, r) for a in axes})
    typ = {"ReduceMax": 0, "ReduceMean": 1, "ReduceSum": 2}[node.op]
    if _prod(xs) == 0:
        raise node_error(node, "reduction of an empty tensor")
    # reduce one contiguous run of axes at a time, from the last
    runs = []
    for a in axes:
        if runs and runs[-1][1] == a:
            runs[-1][1] = a + 1
        else:
            runs.append([a, a + 1])
    cur, cur_shape = x, list(xs)
    for k, (a0, a1) in enumerate(reversed(runs)):
        last = k == len(runs) - 1
        outer, ax, inner = _prod(cur_shape[:a0]), _prod(cur_shape[a0:a1]), _prod(cur_shape[a1:])
        new_shape = cur_shape[:a0] + [1] * (a1 - a0) + cur_shape[a1:]
        out = f"{node.outputs[0]}::r{k}" if not last else node.outputs[0] + "::keep"
        L.define(out, new_shape)
        L.emit(node, "reduce", "add_reduce", out, [cur], (typ, outer, ax, inner), _prod(cur_shape))
        cur, cur_shape = out, new_shape
    final = [d for i, d in enumerate(cur_shape) if keep or i not in axes]
    L.alias(node, node.outputs[0], cur, final)


def lower_softmax(L, node):
    x = L.runtime_input(node, node.inputs[0])
    xs = L.shapes[x]
    r = len(xs)
    if L.g.opset < 13:
        a = _norm_axis(node, node.attr("axis", 1), r)
        outer, ax, inner = _prod(xs[:a]), _prod(xs[a:]), 1
    else:
        a = _norm_axis(node, node.attr("axis", -1), r)
        outer, ax, inner = _prod(xs[:a]), xs[a], _prod(xs[a + 1:])
    L.define(node.outputs[0], xs)
    if _prod(xs):
        L.emit(node, "softmax", "add_softmax", node.outputs[0], [x],
               (L.isa, 1 if node.op == "LogSoftmax" else 0, outer, ax, inner), 3 * _prod(xs))


def lower_lrn(L, node):
    x = L.runtime_input(node, node.inputs[0])
    xs = L.shapes[x]
    if len(xs) < 3:
        raise node_error(node, f"input rank {len(xs)} < 3")
    size = int(node.attr("size"))
    if size <= 0:
        raise node_error(node, f"size {size} must be positive")
    L.define(node.outputs[0], xs)
    L.emit(node, "lrn", "add_lrn", node.outputs[0], [x],
           (xs[0], xs[1], _prod(xs[2:]), size, float(node.attr("alpha", 1e-4)), float(node.attr("beta", 0.75)),
            float(node.attr("bias", 1.0))), _prod(xs) * (size + 4))


def lower_flatten(L, node):
    x = L.runtime_input(node, node.inputs[0])
    xs = L.shapes[x]
    a = int(node.attr("axis", 1))
    if a < 0:
        a += len(xs)
    if not 0 <= a <= len(xs):
        raise node_error(node, f"axis {node.attr('axis')} out of range for rank {len(xs)}")
    L.alias(node, node.outputs[0], x, (_prod(xs[:a]), _prod(xs[a:])))


def lower_reshape(L, node):
    x = L.runtime_input(node, node.inputs[0])
    xs = L.shapes[x]
    if L.g.opset < 5:
        target = list(node.attr("shape"))
    else:
        if node.inputs[1] not in L.consts:
            raise node_error(node, "the target shape is computed at run time (not supported)")
        target = [int(v) for v in L.consts[node.inputs[1]].reshape(-1)]
    allowzero = int(node.attr("allowzero", 0))
    out = []
    for i, d in enumerate(target):
        if d == 0 and not allowzero:
            if i >= len(xs):
                raise node_error(node, f"shape {target}: 0 at position {i} copies a dimension the input lacks")
            out.append(xs[i])
        else:
            out.append(d)
    if out.count(-1) > 1:
        raise node_error(node, f"shape {target} has more than one -1")
    if -1 in out:
        known = _prod([d for d in out if d != -1])
        total = _prod(xs)
        if known == 0 or total % known:
            raise node_error(node, f"cannot reshape {xs} to {target}")
        out[out.index(-1)] = total // known
    if any(d < 0 for d in out) or _prod(out) != _prod(xs):
        raise node_error(node, f"cannot reshape {xs} to {target}")
    L.alias(node, node.outputs[0], x, out)


def lower_squeeze(L, node):
    x = L.runtime_input(node, node.inputs[0])
    xs = L.shapes[x]
    axes = _axes_from(L, node)
    if axes is None:
        out = [d for d in xs if d != 1]
    else:
        ax = {_norm_axis(node, a, len(xs)) for a in axes}
        for a in ax:
            if xs[a] != 1:
                raise node_error(node, f"cannot squeeze axis {a} of size {xs[a]}")
        out = [d for i, d in enumerate(xs) if i not in ax]
    L.alias(node, node.outputs[0], x, out)


def lower_unsqueeze(L, node):
    x = L.runtime_input(node, node.inputs[0])
    xs = list(L.shapes[x])
    axes = _axes_from(L, node)
    if not axes:
        raise node_error(node, "no axes given")
    r = len(xs) + len(axes)
    ax = sorted(_norm_axis(node, a, r) for a in axes)
    if len(set(ax)) != len(ax):
        raise node_error(node, f"repeated axes {axes}")
    out = []
    it = iter(xs)
    for i in range(r):
        out.append(1 if i in ax else next(it))
    L.alias(node, node.outputs[0], x, out)


def lower_identity(L, node):
    x = L.runtime_input(node, node.inputs[0])
    if node.op == "Cast" and int(node.attr("to", 1)) != 1:
        raise node_error(node, "casting a run-time tensor to a non-float type is not supported")
    if node.op == "Dropout":
        from .passes import _dropout_is_identity

        if not _dropout_is_identity(L_as_graph(L), node):
            raise node_error(node, "Dropout in training mode (random) is not supported")
        if len(node.outputs) > 1 and node.outputs[1]:  # the mask: all true at inference
            L.consts[node.outputs[1]] = np.ones(L.shapes[x], np.bool_ if L.g.opset >= 10 else np.float32)
    L.alias(node, node.outputs[0], x, L.shapes[x])


def lower_transpose(L, node):
    x = L.runtime_input(node, node.inputs[0])
    xs = L.shapes[x]
    r = len(xs)
    perm = list(node.attr("perm", list(range(r))[::-1]))
    if sorted(perm) != list(range(r)):
        raise node_error(node, f"perm {perm} is not a permutation of {r} axes")
    out_shape = [xs[p] for p in perm]
    xst = _strides(xs)
    L.define(node.outputs[0], out_shape)
    if _prod(xs) == 0:
        return
    if r > 8:
        raise node_error(node, "rank above 8")
    L.emit(node, "copy", "add_copy", node.outputs[0], [x],
           (out_shape, [xst[p] for p in perm], _strides(out_shape), 0, 0), 0)


def lower_concat(L, node):
    ins = [L.runtime_input(node, i) for i in node.inputs if i]
    shapes = [L.shapes[i] for i in ins]
    r = len(shapes[0])
    a = _norm_axis(node, node.attr("axis"), r)
    for s in shapes:
        if len(s) != r or any(s[i] != shapes[0][i] for i in range(r) if i != a):
            raise node_error(node, f"inputs {shapes} do not match outside axis {a}")
    out_shape = list(shapes[0])
    out_shape[a] = sum(s[a] for s in shapes)
    out = node.outputs[0]
    L.define(out, out_shape)
    ost = _strides(out_shape)
    # where each input is one contiguous block of the output (nothing but 1s before the axis: channels at batch 1),
    # an input that only this Concat reads is produced straight into its block: no copy
    psid = L.storage_of[out]
    into = _prod(out_shape[:a]) == 1 and L.storages[psid].kind == _core.ST_ARENA
    off = 0
    for i, s in zip(ins, shapes):
        if _prod(s):
            if into and _can_place_into(L, node, i, psid):
                st = L.storages[L.storage_of[i]]
                st.parent, st.sub = psid, off * ost[a] * 4
            else:
                L.emit(node, "copy", "add_copy", out, [i], (list(s), _strides(s), ost, 0, off * ost[a]), 0)
        off += s[a]


def _can_place_into(L, node, name, psid) -> bool:
    """`name` can live inside storage psid: an arena tensor of its own (no view, no in-place sharing, not a slice or
    a parent itself), read by this node once and by no other node, not a graph output."""
    sid = L.storage_of.get(name)
    if sid is None or sid == psid or name in L.graph_outputs:
        return False
    st = L.storages[sid]
    if st.kind != _core.ST_ARENA or st.parent is not None or any(s.parent == sid for s in L.storages):
        return False
    if sum(1 for v in L.storage_of.values() if v == sid) != 1:
        return False
    rd = L.readers.get(name, [])
    return len(rd) == 1 and rd[0] is node and sum(1 for i in node.inputs if i == name) == 1


def lower_split(L, node):
    x = L.runtime_input(node, node.inputs[0])
    xs = L.shapes[x]
    a = _norm_axis(node, node.attr("axis", 0), len(xs))
    outs = [o for o in node.outputs]
    split = node.attr("split", None)
    if split is None and len(node.inputs) > 1 and node.inputs[1]:
        if node.inputs[1] not in L.consts:
            raise node_error(node, "split sizes computed at run time are not supported")
        split = [int(v) for v in L.consts[node.inputs[1]].reshape(-1)]
    if split is None:
        n = int(node.attr("num_outputs", len(outs)))
        chunk = -(-xs[a] // n)
        split = [min(chunk, xs[a] - k * chunk) for k in range(n)]
    if len(split) != len(outs) or sum(split) != xs[a] or any(s < 0 for s in split):
        raise node_error(node, f"split {split} does not divide axis {a} of size {xs[a]} into {len(outs)} outputs")
    xst = _strides(xs)
    off = 0
    for o, s in zip(outs, split):
        shp = list(xs)
        shp[a] = s
        if o:
            L.define(o, shp)
            if _prod(shp):
                L.emit(node, "copy", "add_copy", o, [x], (shp, xst, _strides(shp), off * xst[a], 0), 0)
        off += s


def lower_slice(L, node):
    x = L.runtime_input(node, node.inputs[0])
    xs = L.shapes[x]
    r = len(xs)
    if L.g.opset < 10:
        starts, ends = list(node.attr("starts")), list(node.attr("ends"))
        axes = list(node.attr("axes", list(range(len(starts)))))
        steps = [1] * len(starts)
    else:
        vals = []
        for k in range(1, 5):
            nm = node.inputs[k] if len(node.inputs) > k else ""
            if nm and nm not in L.consts:
                raise node_error(node, "slice bounds computed at run time are not supported")
            vals.append([int(v) for v in L.consts[nm].reshape(-1)] if nm else None)
        starts, ends, axes, steps = vals
        axes = axes if axes is not None else list(range(len(starts)))
        steps = steps if steps is not None else [1] * len(starts)
    if not (len(starts) == len(ends) == len(axes) == len(steps)):
        raise node_error(node, "starts, ends, axes and steps differ in length")
    begin = [0] * r
    step = [1] * r
    out_shape = list(xs)
    for s, e, ax, st in zip(starts, ends, axes, steps):
        ax = _norm_axis(node, ax, r)
        if st == 0:
            raise node_error(node, "slice step 0")
        s = max(min(s, INT64_MAX), -INT64_MAX)
        e = max(min(e, INT64_MAX), -INT64_MAX)
        b, _, _ = slice(s, e, st).indices(xs[ax])
        n = len(range(*slice(s, e, st).indices(xs[ax])))
        begin[ax], step[ax], out_shape[ax] = b, st, n
    xst = _strides(xs)
    L.define(node.outputs[0], out_shape)
    if _prod(out_shape):
        L.emit(node, "copy", "add_copy", node.outputs[0], [x],
               (out_shape, [xst[i] * step[i] for i in range(r)], _strides(out_shape),
                sum(begin[i] * xst[i] for i in range(r)), 0), 0)


def lower_pad(L, node):
    x = L.runtime_input(node, node.inputs[0])
    xs = L.shapes[x]
    r = len(xs)
    mode = node.attr("mode", "constant")
    if mode != "constant":
        raise node_error(node, f"pad mode {mode!r} is not supported (only 'constant')")
    if L.g.opset < 11:
        pads = list(node.attr("pads"))
        value = float(node.attr("value", 0.0))
        axes = list(range(r))
    else:
        if node.inputs[1] not in L.consts:
            raise node_error(node, "pads computed at run time are not supported")
        pads = [int(v) for v in L.consts[node.inputs[1]].reshape(-1)]
        value = 0.0
        if len(node.inputs) > 2 and node.inputs[2]:
            if node.inputs[2] not in L.consts:
                raise node_error(node, "a pad value computed at run time is not supported")
            cv = L.consts[node.inputs[2]].reshape(-1)
            value = float(cv[0]) if cv.size else 0.0
        axes = list(range(r))
        if len(node.inputs) > 3 and node.inputs[3]:
            axes = [_norm_axis(node, a, r) for a in L.consts[node.inputs[3]].reshape(-1)]
    if len(pads) != 2 * len(axes):
        raise node_error(node, f"{len(pads)} pads for {len(axes)} axes")
    pb, pe = [0] * r, [0] * r
    for k, a in enumerate(axes):
        pb[a], pe[a] = pads[k], pads[k + len(axes)]
    out_shape = [xs[i] + pb[i] + pe[i] for i in range(r)]
    if any(d < 0 for d in out_shape):
        raise node_error(node, f"pads {pads} crop more than the input {xs}")
    out = node.outputs[0]
    L.define(out, out_shape)
    n = _prod(out_shape)
    if n == 0:
        return
    L.emit(node, "fill", "add_fill", out, [], (n, value, 0), 0)
    src_begin = [max(0, -pb[i]) for i in range(r)]
    dst_begin = [max(0, pb[i]) for i in range(r)]
    cshape = [xs[i] - src_begin[i] - max(0, -pe[i]) for i in range(r)]
    if _prod(cshape) > 0 and min(cshape) > 0:
        xst, ost = _strides(xs), _strides(out_shape)
        L.emit(node, "copy", "add_copy", out, [x],
               (cshape, xst, ost, sum(src_begin[i] * xst[i] for i in range(r)),
                sum(dst_begin[i] * ost[i] for i in range(r))), 0)


def lower_gather(L, node):
    x = L.runtime_input(node, node.inputs[0])
    if node.inputs[1] not in L.consts:
        raise node_error(node, "indices computed at run time are not supported")
    xs = L.shapes[x]
    a = _norm_axis(node, node.attr("axis", 0), len(xs))
    idx = np.asarray(L.consts[node.inputs[1]]).astype(np.int64)
    flat = idx.reshape(-1)
    if ((flat < -xs[a]) | (flat >= xs[a])).any():
        raise node_error(node, f"indices out of range for axis {a} of size {xs[a]}")
    flat = np.where(flat < 0, flat + xs[a], flat)
    out_shape = list(xs[:a]) + list(idx.shape) + list(xs[a + 1:])
    L.define(node.outputs[0], out_shape)
    if _prod(out_shape):
        L.emit(node, "gather", "add_gather", node.outputs[0], [x],
               (_prod(xs[:a]), xs[a], _prod(xs[a + 1:]), flat), 0)


def _scaled(L, node, name, factor, tag):
    """`name` * factor: a new constant when `name` is constant, else a run-time Mul."""
    if factor == 1.0:
        return L.runtime_input(node, name)
    if name in L.consts:
        sc = f"{node.outputs[0]}::{tag}"
        L.consts[sc] = np.asarray(L.consts[name], np.float32) * np.float32(factor)
        return L.runtime_input(node, sc)
    f = f"{node.outputs[0]}::{tag}_factor"
    L.consts[f] = np.array(factor, np.float32)
    out = f"{node.outputs[0]}::{tag}"
    _emit_binary(L, node, "Mul", L.runtime_input(node, name), L.runtime_input(node, f), out)
    return out


def _gemm_epilogue(L, node, ab, alpha, cname, beta, out, act, M, N):
    """out = act(alpha * ab + beta * C) from the product `ab` (alpha not yet applied)."""
    if cname is None:
        if alpha != 1.0:
            f = f"{out}::alpha_factor"
            L.consts[f] = np.array(alpha, np.float32)
            _emit_binary(L, node, "Mul", ab, L.runtime_input(node, f), out, act)
        return
    if alpha != 1.0:
        ab2 = f"{out}::alpha_ab"
        f = f"{out}::alpha_factor"
        L.consts[f] = np.array(alpha, np.float32)
        _emit_binary(L, node, "Mul", ab, L.runtime_input(node, f), ab2)
        ab = ab2
    c = _scaled(L, node, cname, beta, "beta_c")
    try:
        if tuple(np.broadcast_shapes(tuple(L.shapes[c]), (M, N))) != (M, N):
            raise ValueError
    except ValueError:
        raise node_error(node, f"C {L.shapes[c]} does not broadcast to ({M}, {N})") from None
    _emit_binary(L, node, "Add", ab, c, out, act)


def lower_gemm(L, node):
    a = L.runtime_input(node, node.inputs[0])
    as_ = L.shapes[a]
    if len(as_) != 2:
        raise node_error(node, f"input A must be 2-D, got {as_}")
    ta, tb = int(node.attr("transA", 0)), int(node.attr("transB", 0))
    alpha, beta = float(node.attr("alpha", 1.0)), float(node.attr("beta", 1.0))
    M, K = (as_[1], as_[0]) if ta else (as_[0], as_[1])
    x_rs, x_cs = (1, as_[1]) if ta else (as_[1], 1)
    bname = node.inputs[1]
    cname = node.inputs[2] if len(node.inputs) > 2 and node.inputs[2] else None
    act = _act_of_node(node)
    out = node.outputs[0]
    if bname in L.consts:
        B = np.asarray(L.consts[bname], np.float32)
        if B.ndim != 2:
            raise node_error(node, f"B must be 2-D, got {B.shape}")
        kb, N = (B.shape[1], B.shape[0]) if tb else B.shape
        if kb != K:
            raise node_error(node, f"A {as_} and B {B.shape} do not multiply (transA={ta}, transB={tb})")
        bias, residual_c = None, None
        if cname is not None:
            cv = np.asarray(L.consts[cname]) if cname in L.consts else None
            if cv is not None and cv.ndim <= 2 and cv.size in (1, N) and (cv.ndim < 2 or cv.shape[0] == 1) and \
                    (cv.size == 1 or cv.shape[-1] == N):
                # C of shape [], [1], [N], [1, N], [1, 1]: a bias row
                bias = np.broadcast_to(cv.astype(np.float32).reshape(-1), (N,)) * np.float32(beta)
            else:
                residual_c = cname

        def make():
            w = (B.T if tb else B) * np.float32(alpha)
            return np.ascontiguousarray(w, np.float32), (None if bias is None else np.ascontiguousarray(bias))

        fw = L.prep.fc_weights(node, (alpha, beta, ta, tb), make)
        flops = 2 * M * N * K
        if residual_c is None:
            L.define(out, (M, N))
            if M * N:
                L.emit(node, "fc", "add_fc", out, [a, None], (fw, M, x_rs, x_cs, act, L.nthreads), flops)
        else:
            tmp = out + "::ab"
            L.define(tmp, (M, N))
            if M * N:
                L.emit(node, "fc", "add_fc", tmp, [a, None], (fw, M, x_rs, x_cs, None, L.nthreads), flops)
            _gemm_epilogue(L, node, tmp, 1.0, residual_c, beta, out, act, M, N)
        return
    # B at run time
    b = L.runtime_input(node, bname)
    bs = L.shapes[b]
    if len(bs) != 2:
        raise node_error(node, f"B must be 2-D, got {bs}")
    kb, N = (bs[1], bs[0]) if tb else bs
    if kb != K:
        raise node_error(node, f"A {as_} and B {bs} do not multiply")
    b_rs, b_cs = (1, bs[1]) if tb else (bs[1], 1)
    plain = cname is None and alpha == 1.0
    tmp = out if plain else out + "::ab"
    L.define(tmp, (M, N))
    if M * N:
        L.emit(node, "matmul", "add_matmul", tmp, [a, b],
               (L.isa, 1, M, N, K, 0, x_rs, x_cs, 0, b_rs, b_cs, act if plain else None, L.nthreads), 2 * M * N * K)
    if not plain:
        _gemm_epilogue(L, node, tmp, alpha, cname, beta, out, act, M, N)


def _expand_batch(L, node, name, mat_shape, batch):
    """Materialize operand `name` (shape [..., r, c], batch dims broadcastable to `batch`) as batch + [r, c]."""
    full = list(batch) + list(mat_shape[-2:])
    src = (1,) * (len(full) - len(mat_shape)) + tuple(mat_shape)
    st = _strides(src)
    xst = [0 if (src[i] == 1 and full[i] != 1) else st[i] for i in range(len(full))]
    out = f"{node.outputs[0]}::bcast_{name}"
    L.define(out, full)
    if len(full) > 8:
        raise node_error(node, "rank above 8")
    L.emit(node, "copy", "add_copy", out, [name], (full, xst, _strides(full), 0, 0), 0)
    return out


def lower_matmul(L, node):
    a = L.runtime_input(node, node.inputs[0])
    as_ = list(L.shapes[a])
    bname = node.inputs[1]
    act = _act_of_node(node)
    out = node.outputs[0]
    if len(as_) < 1:
        raise node_error(node, "scalar operand")
    if bname in L.consts and np.asarray(L.consts[bname]).ndim == 2:
        B = np.asarray(L.consts[bname], np.float32)
        a_shape = as_ if len(as_) >= 2 else [1] + as_
        K = a_shape[-1]
        if B.shape[0] != K:
            raise node_error(node, f"shapes {tuple(as_)} and {B.shape} do not multiply")
        N = B.shape[1]
        M = _prod(a_shape[:-1])
        fw = L.prep.fc_weights(node, "matmul", lambda: (np.ascontiguousarray(B), None))
        out_shape = as_[:-1] + [N]
        L.define(out, out_shape)
        if M:
            L.emit(node, "fc", "add_fc", out, [a, None], (fw, M, K, 1, act, L.nthreads), 2 * M * N * K)
        return
    b = L.runtime_input(node, bname)
    bs = list(L.shapes[b])
    a2 = as_ if len(as_) >= 2 else [1] + as_
    b2 = bs if len(bs) >= 2 else bs + [1]
    M, K = a2[-2], a2[-1]
    K2, N = b2[-2], b2[-1]
    if K != K2:
        raise node_error(node, f"shapes {tuple(as_)} and {tuple(bs)} do not multiply")
    try:
        batch = list(np.broadcast_shapes(tuple(a2[:-2]), tuple(b2[:-2])))
    except ValueError:
        raise node_error(node, f"batch dims of {tuple(as_)} and {tuple(bs)} do not broadcast") from None
    nb = _prod(batch)
    ab, bb = _prod(a2[:-2]), _prod(b2[:-2])
    out_shape = batch + ([M] if len(as_) >= 2 else []) + ([N] if len(bs) >= 2 else [])
    if nb * M * N and ab not in (1, nb):  # e.g. [2, 1, M, K] x [3, K, N]: broadcast a's batch dims first
        a, ab = _expand_batch(L, node, a, a2, batch), nb
    if nb * M * N and bb not in (1, nb):
        b, bb = _expand_batch(L, node, b, b2, batch), nb
    L.define(out, out_shape)
    if nb * M * N:
        L.emit(node, "matmul", "add_matmul", out, [a, b],
               (L.isa, nb, M, N, K, M * K if ab > 1 else 0, K, 1, K * N if bb > 1 else 0, N, 1, act, L.nthreads),
               2 * nb * M * N * K)


LOWER = {
    "Conv": lower_conv, "Add": lower_binary, "Sub": lower_binary, "Mul": lower_binary, "Div": lower_binary,
    "Max": lower_binary, "Min": lower_binary, "Pow": lower_binary, "Sum": lower_binary, "PRelu": lower_prelu,
    "Relu": lower_act, "LeakyRelu": lower_act, "Clip": lower_act, "Sigmoid": lower_act, "HardSigmoid": lower_act,
    "HardSwish": lower_act, "Tanh": lower_act, "BatchNormalization": lower_batchnorm, "MaxPool": lower_pool,
    "AveragePool": lower_pool, "GlobalAveragePool": lower_global_pool, "GlobalMaxPool": lower_global_pool,
    "ReduceMean": lower_reduce, "ReduceMax": lower_reduce, "ReduceSum": lower_reduce, "Softmax": lower_softmax,
    "LogSoftmax": lower_softmax, "LRN": lower_lrn, "Flatten": lower_flatten, "Reshape": lower_reshape,
    "Squeeze": lower_squeeze, "Unsqueeze": lower_unsqueeze, "Identity": lower_identity, "Dropout": lower_identity,
    "Cast": lower_identity, "Transpose": lower_transpose, "Concat": lower_concat, "Split": lower_split,
    "Slice": lower_slice, "Pad": lower_pad, "Gather": lower_gather, "Gemm": lower_gemm, "MatMul": lower_matmul,
}


def build_plan(graph: Graph, prep: Prepared, input_shapes: Dict[str, tuple], nthreads: int) -> PlanInfo:
    return Lowering(graph, prep, input_shapes, nthreads).build()
