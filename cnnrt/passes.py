"""Graph optimization passes. Each rewrites one pattern; `optimize` runs them to a fixpoint and checks the graph
after every pass that changed something. Shape-independent: everything here holds for any batch or image size."""
from __future__ import annotations

from typing import Callable, Dict, List

import numpy as np

from .errors import node_error
from .ir import Graph, Node, evaluate_node

MAX_FOLD_ELEMENTS = 1 << 26


def _is_const(g: Graph, name: str) -> bool:
    return name in g.consts


def _replace_uses(g: Graph, old: str, new: str):
    for n in g.nodes:
        n.inputs = [new if i == old else i for i in n.inputs]


def _rename_value(g: Graph, old: str, new: str):
    """Rename a node-produced value everywhere (producer output and consumers)."""
    for n in g.nodes:
        n.outputs = [new if o == old else o for o in n.outputs]
        n.inputs = [new if i == old else i for i in n.inputs]


def _bypass(g: Graph, node: Node, src: str, dst: str) -> bool:
    """Make `node` (dst = f(src) == src) disappear. Returns False if it must stay (graph I/O constraints)."""
    outs = set(g.output_names())
    ins = {i.name for i in g.inputs}
    if dst not in outs:
        _replace_uses(g, dst, src)
    elif src not in outs and src not in ins and src not in g.consts:
        g.nodes.remove(node)
        _rename_value(g, src, dst)
        return True
    else:
        return False
    g.nodes.remove(node)
    return True


def _dropout_is_identity(g: Graph, n: Node) -> bool:
    """Dropout computes its input unchanged: inference (training_mode absent or constant false) or ratio 0."""
    if g.opset >= 12 and len(n.inputs) > 2 and n.inputs[2]:
        tm = g.consts.get(n.inputs[2])
        if tm is None:
            return False
        if bool(np.asarray(tm).reshape(-1)[0]):
            ratio = g.consts.get(n.inputs[1]) if len(n.inputs) > 1 and n.inputs[1] else np.array(0.5)
            return ratio is not None and float(np.asarray(ratio).reshape(-1)[0]) == 0.0
    return True


def remove_identity(g: Graph) -> bool:
    """Identity, inference-mode Dropout (whose mask nobody reads) and float->float Cast of run-time data vanish."""
    changed = False
    cons = g.consumers()
    outs = set(g.output_names())
    rt = g.runtime_values()
    for n in list(g.nodes):
        if n.op == "Identity" or (n.op == "Dropout" and _dropout_is_identity(g, n) and all(
                (not m) or (m not in cons and m not in outs) for m in n.outputs[1:])):
            if _bypass(g, n, n.inputs[0], n.outputs[0]):
                changed = True
        elif n.op == "Cast" and n.attr("to") == 1 and n.inputs[0] in rt:
            # float -> float cast of a run-time tensor (run-time tensors are all float32; a Cast of a constant or of
            # a shape computation converts int64 and must stay, to be folded)
            if _bypass(g, n, n.inputs[0], n.outputs[0]):
                changed = True
    return changed


def fold_constants(g: Graph) -> bool:
    """Evaluate every node whose inputs are all constants (onnx.reference runs the node once at load)."""
    changed = False
    for n in list(g.nodes):
        if not n.evaluable or not all((not i) or i in g.consts for i in n.inputs):
            continue
        if n.op == "Dropout" and not _dropout_is_identity(g, n):
            continue  # random: never folded (import refuses it anyway)
        feeds = [g.consts[i] for i in n.inputs if i]
        if sum(v.size for v in feeds) > MAX_FOLD_ELEMENTS:
            continue
        try:
            vals = evaluate_node(n, g.consts, g.opset)
        except Exception as e:
            raise node_error(n, f"constant folding failed: {e}") from None
        if any(v is not None and v.size > MAX_FOLD_ELEMENTS for v in vals):
            continue
        for name, v in zip(n.outputs, vals):
            if name:
                g.consts[name] = v
        g.nodes.remove(n)
        changed = True
    return changed


def fold_batchnorm(g: Graph) -> bool:
    """BatchNormalization after a Conv (only consumer) folds into the Conv's weights and bias."""
    changed = False
    cons = g.consumers()
    prod = g.producers()
    outs = set(g.output_names())
    for bn in list(g.nodes):
        if bn.op != "BatchNormalization" or len([o for o in bn.outputs if o]) != 1:
            continue
        x = bn.inputs[0]
        conv = prod.get(x)
        if conv is None or conv.op != "Conv" or len(cons.get(x, [])) != 1 or x in outs or conv.attr("_act"):
            continue
        if conv.attr("_residual") or len(conv.inputs) > 3:
            continue  # BN(conv + residual): the residual would have to be scaled too
        if int(bn.attr("training_mode", 0)) or (g.opset < 9 and int(bn.attr("spatial", 1)) == 0):
            continue
        if not all(_is_const(g, i) for i in bn.inputs[1:5]) or not _is_const(g, conv.inputs[1]):
            continue
        if len(conv.inputs) > 2 and conv.inputs[2] and not _is_const(g, conv.inputs[2]):
            continue
        w = g.consts[conv.inputs[1]].astype(np.float64)
        co = w.shape[0]
        if any(g.consts[i].size != co for i in bn.inputs[1:5]):
            continue
        gamma, beta, mean, var = (g.consts[i].astype(np.float64).reshape(-1) for i in bn.inputs[1:5])
        eps = float(bn.attr("epsilon", 1e-5))
        scale = gamma / np.sqrt(var + eps)
        b = g.consts[conv.inputs[2]].astype(np.float64).reshape(-1) if len(conv.inputs) > 2 and conv.inputs[2] \
            else 0.0
        w2 = (w * scale.reshape((-1,) + (1,) * (w.ndim - 1))).astype(np.float32)
        b2 = ((b - mean) * scale + beta).astype(np.float32)
        wn, bname = conv.name + "::W_bn", conv.name + "::B_bn"
        g.consts[wn], g.consts[bname] = w2, b2
        conv.inputs = [conv.inputs[0], wn, bname]
        conv.outputs = [bn.outputs[0]]
        conv.fused.append(f"BatchNormalization({bn.name})")
        g.nodes.remove(bn)
        changed = True
        cons = g.consumers()
        prod = g.producers()
    return changed


FUSABLE_PRODUCERS = ("Conv", "Gemm", "MatMul")


def _act_of(g: Graph, n: Node):
    """The (type, a, b) activation a node computes, or None."""
    if n.op == "Relu":
        return ("relu", 0.0, 0.0)
    if n.op == "LeakyRelu":
        return ("leaky", float(n.attr("alpha", 0.01)), 0.0)
    if n.op == "Sigmoid":
        return ("sigmoid", 0.0, 0.0)
    if n.op == "Tanh":
        return ("tanh", 0.0, 0.0)
    if n.op == "HardSwish":
        return ("hardswish", 0.0, 0.0)
    if n.op == "HardSigmoid":
        return ("hardsigmoid", float(n.attr("alpha", 0.2)), float(n.attr("beta", 0.5)))
    if n.op == "Clip":
        if g.opset < 11:
            lo, hi = n.attr("min", -3.4028234663852886e38), n.attr("max", 3.4028234663852886e38)
        else:
            lo = hi = None
            if len(n.inputs) > 1 and n.inputs[1]:
                if n.inputs[1] not in g.consts:
                    return None
                lo = float(np.asarray(g.consts[n.inputs[1]]).reshape(-1)[0])
            if len(n.inputs) > 2 and n.inputs[2]:
                if n.inputs[2] not in g.consts:
                    return None
                hi = float(np.asarray(g.consts[n.inputs[2]]).reshape(-1)[0])
            lo = -np.inf if lo is None else lo
            hi = np.inf if hi is None else hi
        if lo == 0.0 and hi == np.inf:
            return ("relu", 0.0, 0.0)
        return ("clip", float(lo), float(hi))
    return None


def fuse_activation(g: Graph) -> bool:
    """An activation that is the only consumer of a Conv/Gemm/MatMul output moves into that node's epilogue;
    x*sigmoid(x) after a Conv becomes a fused SiLU."""
    changed = False
    cons = g.consumers()
    prod = g.producers()
    outs = set(g.output_names())
    for n in list(g.nodes):
        if n not in g.nodes:
            continue
        act = _act_of(g, n)
        if act is not None:
            src = prod.get(n.inputs[0])
            if (src is not None and src.op in FUSABLE_PRODUCERS and not src.attr("_act")
                    and len(cons.get(n.inputs[0], [])) == 1 and n.inputs[0] not in outs):
                src.attrs["_act"] = act
                src.outputs = [n.outputs[0]]
                src.fused.append(f"{n.op}({n.name})")
                g.nodes.remove(n)
                changed = True
                cons, prod = g.consumers(), g.producers()
            continue
        if n.op == "Mul" and len(n.inputs) == 2:
            # SiLU: Mul(x, Sigmoid(x)) with x from a Conv consumed only by these two nodes
            for xi, si in ((0, 1), (1, 0)):
                x, s = n.inputs[xi], n.inputs[si]
                sig = prod.get(s)
                src = prod.get(x)
                if (sig is not None and sig.op == "Sigmoid" and sig.inputs[0] == x and src is not None
                        and src.op == "Conv" and not src.attr("_act") and x not in outs and s not in outs
                        and len(cons.get(x, [])) == 2 and len(cons.get(s, [])) == 1):
                    src.attrs["_act"] = ("silu", 0.0, 0.0)
                    src.outputs = [n.outputs[0]]
                    src.fused.append(f"SiLU({sig.name},{n.name})")
                    g.nodes.remove(sig)
                    g.nodes.remove(n)
                    changed = True
                    cons, prod = g.consumers(), g.producers()
                    break
    return changed


def fuse_residual(g: Graph) -> bool:
    """Add(conv_out, other) where conv_out feeds only the Add: the Conv adds `other` in its epilogue (the planner
    falls back to a separate Add if the shapes turn out to differ)."""
    changed = False
    cons = g.consumers()
    prod = g.producers()
    outs = set(g.output_names())
    for n in list(g.nodes):
        if n.op != "Add" or len(n.inputs) != 2:
            continue
        for ci, oi in ((0, 1), (1, 0)):
            c, o = n.inputs[ci], n.inputs[oi]
            src = prod.get(c)
            if (src is None or src.op != "Conv" or src.attr("_act") or src.attr("_residual") or c in outs
                    or len(cons.get(c, [])) != 1 or o in g.consts or o == c):
                continue
            # `o` must be computed before the conv runs: it is, if its producer precedes the conv
            order = {id(x): k for k, x in enumerate(g.nodes)}
            po = prod.get(o)
            if po is not None and order[id(po)] > order[id(src)]:
                # move the conv after o's producer (safe: the conv only feeds this Add, which follows both)
                g.nodes.remove(src)
                g.nodes.insert(g.nodes.index(po) + 1, src)
            src.attrs["_residual"] = o
            src.inputs = src.inputs[:3] + [""] * (3 - len(src.inputs)) + [o]
            src.outputs = [n.outputs[0]]
            src.fused.append(f"Add({n.name})")
            g.nodes.remove(n)
            changed = True
            cons, prod = g.consumers(), g.producers()
            break
    return changed


def fold_pad_into_conv(g: Graph) -> bool:
    """Pad (constant 0, spatial dims only) before a Conv becomes the Conv's own padding."""
    changed = False
    cons = g.consumers()
    prod = g.producers()
    outs = set(g.output_names())
    for n in list(g.nodes):
        if n.op != "Conv" or n.attr("auto_pad", "NOTSET") not in ("NOTSET", "", "VALID"):
            continue
        p = prod.get(n.inputs[0])
        if p is None or p.op != "Pad" or len(cons.get(n.inputs[0], [])) != 1 or n.inputs[0] in outs:
            continue
        if p.attr("mode", "constant") != "constant":
            continue
        if g.opset < 11:
            pads = list(p.attr("pads", []))
            value = float(p.attr("value", 0.0))
        else:
            if len(p.inputs) < 2 or p.inputs[1] not in g.consts:
                continue
            pads = [int(v) for v in g.consts[p.inputs[1]].reshape(-1)]
            value = 0.0
            if len(p.inputs) > 2 and p.inputs[2]:
                if p.inputs[2] not in g.consts:
                    continue
                value = float(g.consts[p.inputs[2]].reshape(-1)[0]) if g.consts[p.inputs[2]].size else 0.0
            if len(p.inputs) > 3 and p.inputs[3]:
                continue  # axes input: keep it simple
        if value != 0.0 or len(pads) != 8 or any(v < 0 for v in pads):
            continue
        if pads[0] or pads[1] or pads[4] or pads[5]:
            continue
        w = g.consts.get(n.inputs[1])
        if w is None or w.ndim != 4:
            continue
        cp = list(n.attr("pads", [0, 0, 0, 0])) if n.attr("auto_pad", "NOTSET") != "VALID" else [0, 0, 0, 0]
        n.attrs["auto_pad"] = "NOTSET"
        n.attrs["pads"] = [cp[0] + pads[2], cp[1] + pads[3], cp[2] + pads[6], cp[3] + pads[7]]
        n.inputs = [p.inputs[0]] + n.inputs[1:]
        n.fused.append(f"Pad({p.name})")
        g.nodes.remove(p)
        changed = True
        cons, prod = g.consumers(), g.producers()
    return changed


def eliminate_dead(g: Graph) -> bool:
    changed = False
    while True:
        used = {i for n in g.nodes for i in n.inputs if i} | set(g.output_names())
        dead = [n for n in g.nodes if not any(o in used for o in n.outputs if o)]
        if not dead:
            break
        for n in dead:
            g.nodes.remove(n)
        changed = True
    live = {i for n in g.nodes for i in n.inputs if i} | set(g.output_names())
    for k in [k for k in g.consts if k not in live]:
        del g.consts[k]
    return changed


PASSES: List[Callable[[Graph], bool]] = [
    remove_identity, fold_constants, eliminate_dead, fold_batchnorm, fold_pad_into_conv, fuse_residual,
    fuse_activation,
]


def optimize(g: Graph, passes=None, max_rounds: int = 20) -> Graph:
    passes = PASSES if passes is None else passes
    for _ in range(max_rounds):
        any_change = False
        for p in passes:
            if p(g):
                any_change = True
                g.check(f"after pass {p.__name__}")
        if not any_change:
            break
    return g
