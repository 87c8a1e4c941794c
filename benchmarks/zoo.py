"""The model zoo check shared by tests/test_zoo.py and benchmarks/zoo_report.py: load each exported model
(benchmarks/models/<name>-op<opset>.onnx, made by benchmarks/export_models.py) in cnnrt and in onnxruntime, run both
on a fixed random input, compare.

Tolerance: max|cnnrt - ort| <= RTOL * max|ort| (over the whole output), RTOL = 1e-3, and the same top-1 class.
Why relative to the output's scale, and why 1e-3: both runtimes compute in float32 but sum in different orders
(GEMM blocking, FMA contraction, Winograd/direct choices, BN folded into weights before vs after rounding), so each
layer's output carries a few ulp (~1e-7 relative) of reordering error, and a deep network (~50-100 layers, with
residual additions and normalisation re-amplifying small differences) accumulates that layer by layer to ~1e-5..1e-4
of the output scale. 1e-3 leaves an order of magnitude of headroom above that; a wrong kernel (a wrong tap,
a missing bias, a mis-folded BN, a wrong padding) changes the output by a sizeable fraction of its scale, i.e.
orders of magnitude more. The scale is the output's max (not each element) because logits near 0 have no
meaningful relative error. Top-1 must be identical unless onnxruntime's own top-1/top-2 margin is below the
tolerance (a tie that float32 reordering may legitimately flip; recorded as "tie").
"""
from __future__ import annotations

import gc
import json
import os
import re
import time
import traceback

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
MODELS_DIR = os.environ.get("CNNRT_ZOO_DIR") or os.path.join(HERE, "models")  # env: point the test elsewhere
RTOL = 1e-3
CHECK_SEED = 1234  # the same seed as export_models.check_input: the torch logits in the metadata are for this input
THREADS = 2
_NAME = re.compile(r"^(?P<name>.+)-op(?P<opset>\d+)\.onnx$")


def zoo_files(models_dir=MODELS_DIR):
    """[(name, opset, path)] of the exported models present, sorted by name then opset."""
    if not os.path.isdir(models_dir):
        return []
    out = []
    for f in os.listdir(models_dir):
        m = _NAME.match(f)
        if m:
            out.append((m["name"], int(m["opset"]), os.path.join(models_dir, f)))
    return sorted(out, key=lambda t: (t[0], t[1]))


def batches_for(name):
    return (1, 2) if name == "resnet18" else (1,)


def check_input(shape):
    """The fixed random input: standard normal, like an image normalised with mean/std."""
    return np.random.default_rng(CHECK_SEED).standard_normal(shape, dtype=np.float32)


def compare(got, want, rtol=RTOL):
    """Stats of got (cnnrt) vs want (reference), both [batch, classes]."""
    got = np.asarray(got, np.float32).reshape(want.shape[0], -1)
    want = np.asarray(want, np.float32).reshape(want.shape[0], -1)
    scale = float(np.abs(want).max())
    max_abs = float(np.abs(got.astype(np.float64) - want).max())
    rel = max_abs / scale if scale > 0 else float("inf")
    top_got, top_want = got.argmax(1), want.argmax(1)
    srt = np.sort(want, axis=1)
    margin = srt[:, -1] - srt[:, -2] if want.shape[1] > 1 else np.full(want.shape[0], np.inf)
    top1 = "yes" if np.array_equal(top_got, top_want) else (
        "tie" if np.all((top_got == top_want) | (margin <= rtol * scale)) else "NO")
    finite = bool(np.isfinite(got).all())
    return {"max_abs": max_abs, "scale": scale, "rel": rel, "top1": top1, "finite": finite,
            "ok": finite and rel <= rtol and top1 != "NO"}


def _node_desc(path, node_name, op):
    """A minimal description (op, attributes, input shapes of initializers) of the named node, for error reports."""
    try:
        import onnx

        m = onnx.load(path, load_external_data=False)
        inits = {t.name: list(t.dims) for t in m.graph.initializer}
        for n in m.graph.node:
            if n.name == node_name or (not node_name and n.op_type == op):
                attrs = {a.name: onnx.helper.get_attribute_value(a) for a in n.attribute}
                attrs = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in attrs.items()
                         if not hasattr(v, "dims")}
                consts = {i: inits[i] for i in n.input if i in inits}
                return f"{n.op_type} {n.name!r} attrs={attrs} initializer dims={consts}"
    except Exception:
        pass
    return None


def check_model(name, opset, path, threads=THREADS):
    """Load the model in cnnrt and onnxruntime and compare; returns a record (dict). Never raises."""
    import onnxruntime as ort

    import cnnrt

    rec = {"model": name, "opset": opset, "path": path, "size_mb": os.path.getsize(path) / 1e6, "loads": False,
           "error": None, "nodes_before": None, "nodes_after": None, "peak_bytes": None, "results": {},
           "ort_vs_torch": None, "ok": False}
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    ref = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    shape = tuple(d if isinstance(d, int) else 1 for d in ref.get_inputs()[0].shape)
    meta = ref.get_modelmeta().custom_metadata_map
    inputs = {b: check_input((b,) + shape[1:]) for b in batches_for(name)}
    wants = {b: ref.run(None, {"input": x})[0] for b, x in inputs.items()}
    if "torch_logits" in meta:  # export sanity: onnxruntime vs PyTorch on the same input
        rec["ort_vs_torch"] = compare(wants[1], np.array(json.loads(meta["torch_logits"]), np.float32)[None])["rel"]
    del ref
    t0 = time.perf_counter()
    try:
        sess = cnnrt.Session(path, num_threads=threads)
    except Exception as e:
        rec["error"] = f"{type(e).__name__}: {e}"
        rec["node"] = [_node_desc(path, nm, op) for nm, op in re.findall(r"node '([^']*)' \((\w+)\)", str(e))[:3]]
        return rec
    rec["load_s"] = time.perf_counter() - t0
    rec["loads"] = True
    rec["nodes_before"] = sess.nodes_before
    rec["nodes_after"] = len(sess.optimized_graph_summary())
    rec["peak_bytes"] = sess.peak_memory_bytes  # planned at load time for batch 1
    ok = True
    for b, x in inputs.items():
        want = wants[b]
        try:
            got = sess.run(x)[0]
        except Exception as e:
            rec["error"] = f"run batch {b}: {type(e).__name__}: {e}"
            rec["node"] = [_node_desc(path, nm, op) for nm, op in re.findall(r"node '([^']*)' \((\w+)\)", str(e))[:3]]
            rec["traceback"] = traceback.format_exc()
            ok = False
            continue
        if got.shape != want.shape:
            rec["error"] = f"batch {b}: output shape {got.shape} != onnxruntime's {want.shape}"
            ok = False
            continue
        r = compare(got, want)
        r["peak_bytes"] = sess.plan_info({"input": x.shape}).peak_bytes
        rec["results"][b] = r
        ok = ok and r["ok"]
    rec["ok"] = ok
    del sess
    gc.collect()
    return rec


def short_error(err, max_lines=2):
    """The first lines of a (possibly very long, one line per node) error, for tables."""
    if not err:
        return ""
    lines = [l.strip() for l in str(err).splitlines() if l.strip()]
    more = f" (+{len(lines) - max_lines} more lines)" if len(lines) > max_lines else ""
    return " ".join(lines[:max_lines]).replace("|", "\\|") + more


def _fmt_bytes(n):
    if n is None:
        return "-"
    return f"{n / 2**20:.1f} MiB"


def markdown_table(records):
    lines = ["| model | opset | loads | batch | max abs diff | max diff / max\\|ort\\| | top-1 | ort vs torch "
             "| nodes before | nodes after | planned peak |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in records:
        ovt = "-" if r["ort_vs_torch"] is None else f"{r['ort_vs_torch']:.1e}"
        if not r["loads"]:
            lines.append(f"| {r['model']} | {r['opset']} | **no**: {short_error(r['error'])} | | | | | {ovt} | | | |")
            continue
        batches = sorted(r["results"]) or [None]
        for b in batches:
            res = r["results"].get(b)
            if res is None:
                cells = f"| - | **{short_error(r['error'])}** | | "
            else:
                flag = "" if res["ok"] else " **FAIL**"
                cells = f"| {res['max_abs']:.2e} | {res['rel']:.2e}{flag} | {res['top1']} "
            peak = res["peak_bytes"] if res else r["peak_bytes"]
            lines.append(f"| {r['model']} | {r['opset']} | yes | {b if b else '-'} {cells}| {ovt if b in (1, None) else '-'} "
                         f"| {r['nodes_before']} | {r['nodes_after']} | {_fmt_bytes(peak)} |")
    return "\n".join(lines)
