"""Measurement helpers behind `cnnrt bench`, `cnnrt profile` and `cnnrt inspect`."""
from __future__ import annotations

import json
import time
from typing import Callable, Dict, List, Optional

import numpy as np

from . import _core


def time_alternating(fns: Dict[str, Callable[[], object]], runs: int = 50, block_seconds: float = 0.25,
                     pause: float = 0.05, max_seconds: float = 30.0) -> Dict[str, np.ndarray]:
    """Time several callables in alternating blocks (each block ~block_seconds of back-to-back runs of one
    callable, a short pause between blocks so a spinning thread pool of the previous one goes idle).
    Returns per-callable arrays of per-run seconds (at least `runs` each, unless max_seconds runs out)."""
    times = {k: [] for k in fns}
    for f in fns.values():  # warm-up
        f()
        f()
    t_start = time.perf_counter()
    while min(len(v) for v in times.values()) < runs and time.perf_counter() - t_start < max_seconds:
        for name, f in fns.items():
            t_block = time.perf_counter()
            while True:
                t0 = time.perf_counter()
                f()
                times[name].append(time.perf_counter() - t0)
                if time.perf_counter() - t_block >= block_seconds:
                    break
            time.sleep(pause)
    return {k: np.asarray(v) for k, v in times.items()}


def summarize(ts: np.ndarray) -> Dict[str, float]:
    return {"median_ms": float(np.median(ts) * 1e3), "p90_ms": float(np.percentile(ts, 90) * 1e3),
            "p99_ms": float(np.percentile(ts, 99) * 1e3), "runs": int(len(ts))}


def peak_gflops(threads: int) -> float:
    p = _core.fma_peak_gflops()
    return p * max(1, min(threads, _core.num_cpus()))


def input_for(sess, batch: int, size: Optional[List[int]] = None) -> Dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    feed = {}
    for vi in sess.inputs:
        shape = []
        for k, d in enumerate(vi.shape):
            if k == 0:
                shape.append(batch)
            elif isinstance(d, int) and d > 0:
                shape.append(d)
            elif size is not None and k >= len(vi.shape) - 2:
                shape.append(size[k - (len(vi.shape) - 2)])
            else:
                raise ValueError(f"input {vi.name!r} has a symbolic dimension {d!r}: give --size")
        feed[vi.name] = rng.standard_normal(shape).astype(np.float32)
    return feed


def _why(sess, nd, cw_by_name, node_by_name):
    """Why this algorithm was chosen for this layer (a short phrase)."""
    if nd.kind == "fc":
        m = nd.out_shape[0] if nd.out_shape else 0
        return "packed W, GEMV kernel (batch 1)" if m == 1 else "packed W, 6x16 GEMM"
    if nd.kind == "matmul":
        return "both operands at run time: packed per run"
    if nd.kind != "conv":
        return ""
    node = node_by_name.get(nd.name)
    cw = nd.weights if getattr(nd, "weights", None) is not None else cw_by_name.get(nd.name)
    if getattr(nd, "tune", ""):  # the load-time tuner decided (cnnrt/tune.py): its timings, or "from cache"
        e = cw.probe_error if cw is not None and nd.algo.startswith("winograd") else None
        return nd.tune + (f"; probe error {e:.1e} <= 1e-3" if e is not None else "")
    w = sess._graph.consts.get(node.inputs[1]) if node is not None else None
    if w is None:
        return ""
    k = tuple(w.shape[2:])
    groups = int(node.attr("group", 1))
    strides = tuple(node.attr("strides", [1] * len(k)))
    cin = w.shape[1] * groups
    if nd.algo == "depthwise":
        return "groups == input channels: direct depthwise kernel"
    if nd.algo == "direct":
        # the pool runs in registers after a clamp activation (or none); other activations go through a scratch
        pooled = any(f.startswith("MaxPool(") for f in nd.fused) and all(
            f.split("(")[0] in ("MaxPool", "Relu", "Clip", "BatchNormalization", "Add") for f in nd.fused)
        tile = "6 output channels x 16 pixels of two rows, pooled in registers" if pooled else \
            "4 output channels x 24 pixels in registers"
        return f"{cin} input channels: direct kernel ({tile})"
    if nd.algo.startswith("winograd"):
        e = cw.probe_error if cw is not None else None
        small = " (small output: 2x2 tiles)" if cw is not None and cw.tile == 2 else ""
        return f"3x3 stride 1, >= 16 channels: F({cw.tile},3){small}, probe error {e:.1e} <= 1e-3" \
            if e is not None else "3x3 stride 1: Winograd"
    if k == (3, 3) and all(s_ == 1 for s_ in strides) and groups == 1:
        if cw is not None and cw.tile:
            return "Winograd-capable, but too few output tiles at this size: GEMM is faster"
        if cin < 16 or w.shape[0] < 16:
            return "3x3 stride 1 with < 16 channels: Winograd does not pay, GEMM"
        return "Winograd off or over the error budget: GEMM"
    if all(d == 1 for d in k) and all(s_ == 1 for s_ in strides):
        return "1x1 stride 1: GEMM on the input as a matrix (no im2col)"
    return f"{'x'.join(map(str, k))} stride {'x'.join(map(str, strides))}: im2col inside GEMM packing"


def profile(sess, feed, runs: int = 20, with_overhead: bool = False):
    """Per C node: median time over `runs` profiled runs, with the plan's op/kind/flops/algorithm; the median wall
    time of as many plain runs, alternated with them; and the median time a plain run spends outside the C executor
    (its wall time minus the executor's own, timed in C: the Python call, checks, output arrays). A plain run takes
    Session.run's fast path, a profiled one the general path, whose Python work costs tens of us more right after a
    run, so the profiled runs' wall time would overstate the overhead. Each plain run follows a profiled one, whose
    Python code evicts some of the fast path's: back-to-back plain runs pay less (ConvNet batch 1: ~5 us against
    ~7-16 us here), so the figure is an upper bound. Returns rows, wall seconds, plan info, and with
    with_overhead=True also the seconds outside the executor (None when the fast path did not run)."""
    info = sess.plan_info({k: v.shape for k, v in feed.items()})
    sess.run(feed)
    per = []
    totals = []
    outside = []
    for _ in range(runs):
        t0 = time.perf_counter()
        sess.run(feed)
        totals.append(time.perf_counter() - t0)
        fast = sess._fast
        if fast is not None and fast.last_exec_ns:
            outside.append(totals[-1] - fast.last_exec_ns * 1e-9)
        sess.run(feed, profile=True)
        per.append(np.asarray(sess.last_profile, np.float64))
    med = np.median(np.stack(per), axis=0) * 1e-9
    cw_by_name = {key[0]: cw for key, cw in sess._prep.conv.items()}
    node_by_name = {n.name: n for n in sess._graph.nodes}
    rows = []
    for nd, t in zip(info.nodes, med):
        rows.append({"name": nd.name, "op": nd.op, "kind": nd.kind, "fused": nd.fused, "shape": list(nd.out_shape),
                     "algo": nd.algo, "flops": nd.flops, "seconds": float(t),
                     "why": _why(sess, nd, cw_by_name, node_by_name)})
    if not with_overhead:
        return rows, float(np.median(totals)), info
    return rows, float(np.median(totals)), info, (float(np.median(outside)) if len(outside) == runs else None)


def chrome_trace(rows, path):
    events, t = [], 0.0
    for r in rows:
        dur = r["seconds"] * 1e6
        events.append({"name": r["name"], "cat": r["kind"], "ph": "X", "ts": t, "dur": dur, "pid": 1, "tid": 1,
                       "args": {"op": r["op"], "algo": r["algo"], "fused": r["fused"], "shape": r["shape"],
                                "flops": r["flops"]}})
        t += dur
    with open(path, "w") as f:
        json.dump({"traceEvents": events, "displayTimeUnit": "ms"}, f)


def model_flops_params(sess, feed):
    info = sess.plan_info({k: v.shape for k, v in feed.items()})
    params = sum(int(np.asarray(v).size) for v in sess._graph.consts.values())
    return info.flops, params
