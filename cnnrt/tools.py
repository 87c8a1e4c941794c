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


def profile(sess, feed, runs: int = 20):
    """Per C node: median time over `runs` runs, with the plan's op/kind/flops/algorithm."""
    info = sess.plan_info({k: v.shape for k, v in feed.items()})
    sess.run(feed)
    per = []
    totals = []
    for _ in range(runs):
        t0 = time.perf_counter()
        sess.run(feed, profile=True)
        totals.append(time.perf_counter() - t0)
        per.append(np.asarray(sess.last_profile, np.float64))
    med = np.median(np.stack(per), axis=0) * 1e-9
    rows = []
    for nd, t in zip(info.nodes, med):
        rows.append({"name": nd.name, "op": nd.op, "kind": nd.kind, "fused": nd.fused, "shape": list(nd.out_shape),
                     "algo": nd.algo, "flops": nd.flops, "seconds": float(t)})
    return rows, float(np.median(totals)), info


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
