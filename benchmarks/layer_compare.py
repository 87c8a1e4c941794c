"""Per-Conv-layer time of cnnrt next to onnxruntime's on the same model (both profiled, same thread count).

    PYTHONPATH=. python3 benchmarks/layer_compare.py benchmarks/models/resnet50-op17.onnx --threads 1 --runs 20

onnxruntime runs with SessionOptions.enable_profiling; its per-node "kernel_time" events (median over the runs) are
matched to cnnrt's per-node profile by node name (cnnrt's nodes keep the name of the Conv that absorbed
BN/Add/activations). onnxruntime's NCHWc-fused Conv nodes are named after the output they produce ("<output>_nchwc"),
which is the output of the Conv or of the last BatchNormalization / activation / Add it absorbed: each Conv is matched
to the first onnxruntime node named after its own name or one of those outputs. Rows are the Conv nodes of the model in order; "ratio" is
cnnrt/onnxruntime, so > 1 is where cnnrt loses. Times are medians per layer; the totals cover the matched layers.
"""
import argparse
import json
import os
import statistics
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def ort_profile(model, feed, threads, runs):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.enable_profiling = True
    tmpdir = tempfile.mkdtemp(prefix="ortprof")
    so.profile_file_prefix = os.path.join(tmpdir, "ort")
    sess = ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])
    for _ in range(3):
        sess.run(None, feed)
    # the warm-up runs are in the trace too: keep only the last `runs` occurrences of each node
    for _ in range(runs):
        sess.run(None, feed)
    path = sess.end_profiling()
    with open(path) as f:
        events = json.load(f)
    os.remove(path)
    per = {}
    op_of = {}
    for e in events:
        if e.get("cat") != "Node" or not e.get("name", "").endswith("_kernel_time"):
            continue
        name = e["name"][: -len("_kernel_time")]
        per.setdefault(name, []).append(e["dur"] * 1e-3)  # us -> ms
        op_of[name] = e.get("args", {}).get("op_name", "")
    return {k: statistics.median(v[-runs:]) for k, v in per.items()}, op_of


def cnnrt_profile(model, feed, threads, runs):
    from cnnrt.session import Session
    from cnnrt.tools import profile

    sess = Session(model, num_threads=threads)
    rows, total, _ = profile(sess, feed, runs=runs)
    return {r["name"]: r for r in rows}, total


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--sort", action="store_true", help="sort by the time lost (cnnrt - onnxruntime)")
    args = ap.parse_args(argv)

    import onnx

    from cnnrt.session import Session
    from cnnrt.tools import input_for

    feed = input_for(Session(args.model, num_threads=1), args.batch)
    proto = onnx.load(args.model, load_external_data=False)
    convs = [n for n in proto.graph.node if n.op_type == "Conv"]
    inits = {i.name: i for i in proto.graph.initializer}

    ort_ms, ort_op = ort_profile(args.model, feed, args.threads, args.runs)
    ours, total = cnnrt_profile(args.model, feed, args.threads, args.runs)

    consumers = {}
    for nd in proto.graph.node:
        for i in nd.input:
            consumers.setdefault(i, []).append(nd)
    fusable = {"BatchNormalization", "Relu", "Clip", "LeakyRelu", "Sigmoid", "HardSigmoid", "HardSwish", "Add", "Sum"}
    ort_by = {}
    for k, v in ort_ms.items():
        ort_by.setdefault(k[: -len("_nchwc")] if k.endswith("_nchwc") else k, (k, v))

    def ort_time(n):
        names = [n.name, n.output[0]]
        out = n.output[0]
        for _ in range(4):  # follow the chain of single consumers onnxruntime may fuse
            c = consumers.get(out, [])
            if len(c) != 1 or c[0].op_type not in fusable:
                break
            names += [c[0].name, c[0].output[0]]
            out = c[0].output[0]
        for nm in names:
            if nm in ort_by:
                return ort_by.pop(nm)
        return None, None

    rows = []
    for n in convs:
        r = ours.get(n.name)
        okey, o = ort_time(n)
        w = inits.get(n.input[1])
        wshape = tuple(w.dims) if w is not None else ()
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in n.attribute}
        rows.append({
            "name": n.name,
            "w": "x".join(str(d) for d in wshape),
            "s": max(attrs.get("strides", [1])),
            "g": attrs.get("group", 1),
            "shape": "x".join(str(d) for d in r["shape"][1:]) if r else "",
            "algo": (r["algo"] or r["kind"]) if r else "",
            "ours": r["seconds"] * 1e3 if r else None,
            "gf": r["flops"] / r["seconds"] / 1e9 if r and r["seconds"] > 0 and r["flops"] else 0.0,
            "ort": o,
            "ort_op": ort_op.get(okey, "") if okey else "",
        })
    if args.sort:
        rows.sort(key=lambda x: -((x["ours"] or 0) - (x["ort"] or 0)))
    print(f"model {args.model}  batch {args.batch}  threads {args.threads}  runs {args.runs}")
    print(f"{'layer':<34} {'weight':<14} {'s':>1} {'g':>4} {'out CxHxW':<13} {'algo':<10} {'cnnrt ms':>8} "
          f"{'GF/s':>6} {'ort ms':>8} {'ratio':>6}  ort op")
    tot_ours = tot_ort = 0.0
    for x in rows:
        ours_s = f"{x['ours']:8.3f}" if x["ours"] is not None else f"{'-':>8}"
        ort_s = f"{x['ort']:8.3f}" if x["ort"] is not None else f"{'-':>8}"
        ratio = f"{x['ours'] / x['ort']:6.2f}" if x["ours"] is not None and x["ort"] else f"{'-':>6}"
        if x["ours"] is not None and x["ort"] is not None:
            tot_ours += x["ours"]
            tot_ort += x["ort"]
        print(f"{x['name'][-34:]:<34} {x['w']:<14} {x['s']:>1} {x['g']:>4} {x['shape']:<13} {x['algo'][:10]:<10} "
              f"{ours_s} {x['gf']:6.1f} {ort_s} {ratio}  {x['ort_op']}")
    matched = sum(1 for x in rows if x["ours"] is not None and x["ort"] is not None)
    print(f"matched {matched}/{len(rows)} Conv nodes: cnnrt {tot_ours:.2f} ms, onnxruntime {tot_ort:.2f} ms, "
          f"ratio {tot_ours / tot_ort if tot_ort else float('nan'):.3f}; cnnrt whole run {total * 1e3:.2f} ms, "
          f"onnxruntime all nodes {sum(ort_ms.values()):.2f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
