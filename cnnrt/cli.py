"""The `cnnrt` command line."""
from __future__ import annotations

import argparse
import json
import os
import sys
from typing import List, Optional

import numpy as np


def _floats(s):
    return [float(v) for v in s.split(",") if v.strip()]


def _size(s):
    parts = [int(v) for v in s.lower().replace("x", ",").split(",") if v.strip()]
    if len(parts) == 1:
        parts = parts * 2
    if len(parts) != 2 or min(parts) <= 0:
        raise argparse.ArgumentTypeError(f"bad size {s!r}: use H,W or HxW")
    return parts


IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")


def _tune_arg(p):
    p.add_argument("--tune", choices=["off", "cached", "on"], default=None,
                   help="load-time timing of convolution algorithms where the rules are unsure: off, cached (use "
                        "earlier timings on this CPU, the default; CNNRT_TUNE) or on (time and cache)")


def build_parser():
    p = argparse.ArgumentParser(prog="cnnrt", description="cnnrt: CNN inference on the CPU")
    sub = p.add_subparsers(dest="cmd")
    r = sub.add_parser("run", help="classify images (files, folders, globs) with an ONNX model")
    r.add_argument("model", help="ONNX model file")
    r.add_argument("images", nargs="+", help="image files, folders or glob patterns")
    r.add_argument("--top-k", type=int, default=5, help="how many classes to print (default 5)")
    r.add_argument("--json", action="store_true", help="print one JSON object per image")
    r.add_argument("--threads", type=int, default=None, help="threads for inference (default: all CPUs)")
    r.add_argument("--batch", type=int, default=1, help="images per inference (default 1)")
    r.add_argument("--output", default=None, help="write results to a .csv or .jsonl file")
    r.add_argument("--no-progress", action="store_true", help="no progress bar")
    r.add_argument("--size", type=_size, default=None, help="resize to H,W (default: from the model)")
    r.add_argument("--mean", type=_floats, default=None, help="per-channel mean, e.g. 0.485,0.456,0.406")
    r.add_argument("--std", type=_floats, default=None, help="per-channel std")
    r.add_argument("--scale", type=float, default=None, help="pixel scale before mean/std (default 1/255)")
    r.add_argument("--color", choices=["RGB", "BGR", "L"], default=None, help="color mode fed to the model")
    _tune_arg(r)
    b = sub.add_parser("bench", help="latency and throughput (optionally against onnxruntime)")
    b.add_argument("model")
    b.add_argument("--batch", type=int, default=1)
    b.add_argument("--threads", type=int, default=None)
    b.add_argument("--runs", type=int, default=50)
    b.add_argument("--size", type=_size, default=None, help="H,W for models with symbolic image size")
    b.add_argument("--compare", choices=["onnxruntime"], default=None)
    b.add_argument("--json", action="store_true")
    _tune_arg(b)
    pr = sub.add_parser("profile", help="per-layer time, algorithm and GFLOP/s")
    pr.add_argument("model")
    pr.add_argument("--batch", type=int, default=1)
    pr.add_argument("--threads", type=int, default=None)
    pr.add_argument("--runs", type=int, default=20)
    pr.add_argument("--size", type=_size, default=None)
    pr.add_argument("--trace", default=None, help="write a Chrome/Perfetto trace (JSON)")
    pr.add_argument("--plot", default=None, help="write per-layer times and a roofline (PNG, needs matplotlib)")
    pr.add_argument("--top", type=int, default=0, help="show only the N slowest layers")
    _tune_arg(pr)
    ins = sub.add_parser("inspect", help="inputs, outputs, ops, FLOPs, memory and metadata of a model")
    ins.add_argument("model")
    ins.add_argument("--batch", type=int, default=1)
    ins.add_argument("--size", type=_size, default=None)
    ins.add_argument("--json", action="store_true")
    sub.add_parser("info", help="show the CPU features and the kernel path cnnrt uses")
    return p


def _expand_images(items):
    import glob
    import os

    out = []
    for it in items:
        if os.path.isdir(it):
            for root, _, files in sorted(os.walk(it)):
                out += [os.path.join(root, f) for f in sorted(files) if f.lower().endswith(IMAGE_EXTS)]
        elif any(c in it for c in "*?["):
            matches = sorted(glob.glob(it, recursive=True))
            if not matches:
                raise FileNotFoundError(f"no file matches {it!r}")
            out += [m for m in matches if os.path.isfile(m)]
        else:
            out.append(it)
    if not out:
        raise FileNotFoundError("no images found")
    return out


def _cmd_run(args) -> int:
    import os
    import time

    from .image import ImageError, Preprocess, labels_for, load_image, to_probabilities
    from .session import Session

    if args.top_k <= 0:
        raise ValueError("--top-k must be positive")
    if args.threads is not None and args.threads <= 0:
        raise ValueError("--threads must be positive")
    if args.batch <= 0:
        raise ValueError("--batch must be positive")
    if args.output and not args.output.endswith((".csv", ".jsonl", ".json")):
        raise ValueError("--output must end in .csv or .jsonl")
    images = _expand_images(args.images)
    sess = Session(args.model, num_threads=args.threads, tune=args.tune)
    if len(sess.inputs) != 1:
        raise ValueError(f"the model has {len(sess.inputs)} inputs; `cnnrt run` feeds one image input")
    shape = sess.inputs[0].shape
    if len(shape) != 4:
        raise ValueError(f"the model's input {sess.inputs[0].name!r} has shape {shape}, not an image batch (N,C,H,W)")
    batch = args.batch if not (isinstance(shape[0], int) and shape[0] > 0) else shape[0]
    if isinstance(shape[0], int) and shape[0] > 0 and args.batch not in (1, shape[0]):
        raise ValueError(f"the model's batch size is fixed at {shape[0]}")
    pre = Preprocess.for_session(sess).override(args.size, args.mean, args.std, args.scale, args.color)
    labels = labels_for(sess)
    progress = None
    if not args.no_progress and sys.stderr.isatty() and len(images) > 1:
        try:
            from tqdm import tqdm

            progress = tqdm(total=len(images), unit="img", file=sys.stderr)
        except ImportError:
            progress = None
    out_f = open(args.output, "w", newline="") if args.output else None
    writer = None
    if out_f is not None and args.output.endswith(".csv"):
        import csv

        writer = csv.writer(out_f)
        writer.writerow(["image", "rank", "index", "label", "probability"])
    status, done, t0, t_infer = 0, 0, time.perf_counter(), 0.0
    try:
        for start in range(0, len(images), batch):
            paths, xs = [], []
            for path in images[start:start + batch]:
                try:
                    xs.append(load_image(path, pre))
                    paths.append(path)
                except ImageError as e:
                    print(f"cnnrt: error: {e}", file=sys.stderr)
                    status = 1
            if not xs:
                continue
            x = np.stack(xs)
            if isinstance(shape[0], int) and shape[0] > 0 and len(xs) < shape[0]:
                x = np.concatenate([x, np.zeros((shape[0] - len(xs),) + x.shape[1:], np.float32)])
            t1 = time.perf_counter()
            out = sess.run(x)[0]
            t_infer += time.perf_counter() - t1
            probs_all = to_probabilities(out.reshape(out.shape[0], -1))
            for i, path in enumerate(paths):
                probs = probs_all[i]
                k = min(args.top_k, probs.size)
                top = np.argsort(-probs, kind="stable")[:k]
                rows = [{"index": int(c), "label": labels[c] if labels and c < len(labels) else str(int(c)),
                         "probability": float(probs[c])} for c in top]
                if writer is not None:
                    for rank, row in enumerate(rows, 1):
                        writer.writerow([path, rank, row["index"], row["label"], f"{row['probability']:.6f}"])
                elif out_f is not None:
                    out_f.write(json.dumps({"image": path, "top": rows}) + "\n")
                if args.json:
                    print(json.dumps({"image": path, "top": rows}))
                elif out_f is None:
                    print(f"{path}: {rows[0]['label']} ({rows[0]['probability'] * 100:.2f}%)")
                    for rank, row in enumerate(rows, 1):
                        print(f"  {rank}. {row['label']:<20s} {row['probability']:.4f}")
                done += 1
            if progress is not None:
                progress.update(len(images[start:start + batch]))
    finally:
        if progress is not None:
            progress.close()
        if out_f is not None:
            out_f.close()
    if len(images) > 1 or out_f is not None:
        wall = time.perf_counter() - t0
        print(f"cnnrt: {done} image(s) in {wall:.2f} s ({done / wall:.1f} images/s; inference alone "
              f"{done / max(t_infer, 1e-9):.1f} images/s)", file=sys.stderr)
    return status


def _cmd_bench(args) -> int:
    from .session import Session
    from .tools import input_for, peak_gflops, summarize, time_alternating

    if args.batch <= 0 or args.runs <= 0 or (args.threads is not None and args.threads <= 0):
        raise ValueError("--batch, --runs and --threads must be positive")
    sess = Session(args.model, num_threads=args.threads, tune=args.tune)
    feed = input_for(sess, args.batch, args.size)
    info = sess.plan_info({k: v.shape for k, v in feed.items()})
    fns = {"cnnrt": lambda: sess.run(feed)}
    if args.compare == "onnxruntime":
        try:
            import onnxruntime as ort
        except ImportError:
            raise ValueError("--compare onnxruntime needs onnxruntime installed (pip install onnxruntime)") from None
        so = ort.SessionOptions()
        so.intra_op_num_threads = sess.num_threads
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        o = ort.InferenceSession(args.model, so, providers=["CPUExecutionProvider"])
        fns["onnxruntime"] = lambda: o.run(None, feed)
    times = time_alternating(fns, runs=args.runs)
    peak = peak_gflops(sess.num_threads)
    res = {"model": args.model, "batch": args.batch, "threads": sess.num_threads, "isa": sess.isa,
           "gflop": info.flops / 1e9, "peak_gflops": peak, "planned_memory_bytes": sess.peak_memory_bytes,
           "weight_bytes": sess.weight_bytes, "results": {}}
    for k, ts in times.items():
        s = summarize(ts)
        s["throughput_per_s"] = args.batch / (s["median_ms"] / 1e3)
        s["gflops"] = info.flops / 1e9 / (s["median_ms"] / 1e3)
        s["pct_peak"] = 100 * s["gflops"] / peak if peak else None
        res["results"][k] = s
    if "onnxruntime" in times:
        res["ratio_cnnrt_over_onnxruntime"] = res["results"]["cnnrt"]["median_ms"] / \
            res["results"]["onnxruntime"]["median_ms"]
    if args.json:
        print(json.dumps(res, indent=1))
        return 0
    print(f"model {args.model}  batch {args.batch}  threads {sess.num_threads}  isa {sess.isa}  tune {sess.tune}  "
          f"{info.flops / 1e9:.3f} GFLOP/run  peak {peak:.0f} GFLOP/s (measured FMA loop)")
    print(f"planned memory {sess.peak_memory_bytes / 2**20:.2f} MiB (arena + workspace), packed weights "
          f"{sess.weight_bytes / 2**20:.2f} MiB")
    print(f"{'runtime':<12} {'median ms':>10} {'p90 ms':>9} {'p99 ms':>9} {'runs':>6} {'items/s':>9} {'GFLOP/s':>8} "
          f"{'% peak':>7}")
    for k, s in res["results"].items():
        pct = f"{s['pct_peak']:.1f}" if s["pct_peak"] is not None else "-"
        print(f"{k:<12} {s['median_ms']:>10.3f} {s['p90_ms']:>9.3f} {s['p99_ms']:>9.3f} {s['runs']:>6d} "
              f"{s['throughput_per_s']:>9.1f} {s['gflops']:>8.1f} {pct:>7}")
    if "ratio_cnnrt_over_onnxruntime" in res:
        print(f"ratio cnnrt/onnxruntime (median latency): {res['ratio_cnnrt_over_onnxruntime']:.3f}")
    return 0


def _fmt_outside(outside, total):
    if outside is None:
        return "not measured"
    return f"{outside * 1e6:.1f} us, {100 * max(0.0, outside) / total:.1f}%"


def _cmd_profile(args) -> int:
    from .session import Session
    from .tools import chrome_trace, input_for, peak_gflops, profile

    sess = Session(args.model, num_threads=args.threads, tune=args.tune)
    feed = input_for(sess, args.batch, args.size)
    rows, total, info, outside = profile(sess, feed, runs=args.runs, with_overhead=True)
    peak = peak_gflops(sess.num_threads)
    busy = sum(r["seconds"] for r in rows) or 1e-12
    order = sorted(range(len(rows)), key=lambda i: -rows[i]["seconds"]) if args.top else range(len(rows))
    if args.top:
        order = order[:args.top]
    print(f"model {args.model}  batch {args.batch}  threads {sess.num_threads}  isa {sess.isa}  tune {sess.tune}  "
          f"run {total * 1e3:.3f} ms (nodes {busy * 1e3:.3f} ms; outside the executor "
          f"{_fmt_outside(outside, total)})  peak {peak:.0f} GFLOP/s")
    hdr = f"{'#':>3} {'layer':<28} {'op':<18} {'algo':<12} {'output shape':<20} {'ms':>8} {'%':>5} {'GFLOP/s':>8} " \
          f"{'%peak':>6}  fused / why"
    print(hdr)
    for i in order:
        r = rows[i]
        gf = r["flops"] / r["seconds"] / 1e9 if r["seconds"] > 0 and r["flops"] else 0.0
        pk = f"{100 * gf / peak:.0f}" if peak and r["kind"] in ("conv", "fc", "matmul") else ""
        print(f"{i:>3} {r['name'][:28]:<28} {r['op'][:18]:<18} {(r['algo'] or r['kind'])[:12]:<12} "
              f"{str(tuple(r['shape']))[:20]:<20} {r['seconds'] * 1e3:>8.3f} {100 * r['seconds'] / busy:>5.1f} "
              f"{gf:>8.1f} {pk:>6}  {'; '.join(x for x in (', '.join(r['fused']), r['why']) if x)}")
    if args.trace:
        chrome_trace(rows, args.trace)
        print(f"trace written to {args.trace}")
    if args.plot:
        _plot(rows, peak, args.plot)
        print(f"plot written to {args.plot}")
    return 0


def _plot(rows, peak, path):
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ValueError("--plot needs matplotlib (pip install matplotlib)") from None
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(14, 5))
    a1.bar(range(len(rows)), [r["seconds"] * 1e3 for r in rows])
    a1.set_xlabel("layer")
    a1.set_ylabel("ms")
    a1.set_title("time per layer")
    pts = [(r["flops"] / max(1, _bytes_moved(r)), r["flops"] / r["seconds"] / 1e9) for r in rows
           if r["flops"] and r["seconds"] > 0]
    if pts:
        a2.scatter([p[0] for p in pts], [p[1] for p in pts])
    if peak:
        a2.axhline(peak, color="r", linestyle="--", label=f"FMA peak {peak:.0f} GFLOP/s")
        a2.legend()
    a2.set_xscale("log")
    a2.set_yscale("log")
    a2.set_xlabel("arithmetic intensity (FLOP / output byte)")
    a2.set_ylabel("GFLOP/s")
    a2.set_title("roofline (compute roof)")
    fig.tight_layout()
    fig.savefig(path)


def _bytes_moved(r):
    n = 1
    for d in r["shape"]:
        n *= int(d)
    return 4 * n


def _cmd_inspect(args) -> int:
    import collections

    import onnx

    from .onnx_import import SUPPORTED_OPS
    from .session import Session
    from .tools import input_for

    proto = onnx.load(args.model, load_external_data=False)
    ops = collections.Counter(n.op_type for n in proto.graph.node)
    unsupported = sorted(o for o in ops if o not in SUPPORTED_OPS)
    res = {"model": args.model, "producer": f"{proto.producer_name} {proto.producer_version}".strip(),
           "opsets": {i.domain or "ai.onnx": i.version for i in proto.opset_import}, "ops": dict(ops),
           "unsupported_ops": unsupported, "metadata": {p.key: p.value for p in proto.metadata_props}}
    if not unsupported:
        sess = Session(args.model, num_threads=1)
        res["inputs"] = [{"name": i.name, "shape": list(i.shape), "dtype": str(i.dtype)} for i in sess.inputs]
        res["outputs"] = [{"name": o.name, "shape": list(o.shape), "dtype": str(o.dtype)} for o in sess.outputs]
        res["nodes_before"] = sess.nodes_before
        summ = sess.optimized_graph_summary()
        res["nodes_after"] = len(summ)
        res["fusions"] = sum(len(n["fused"]) for n in summ)
        res["parameters"] = int(sum(np.asarray(v).size for v in sess._graph.consts.values()))
        try:
            feed = input_for(sess, args.batch, args.size)
            info = sess.plan_info({k: v.shape for k, v in feed.items()})
            res["batch"] = args.batch
            res["gflop"] = info.flops / 1e9
            res["planned_peak_bytes"] = info.peak_bytes
            res["packed_weight_bytes"] = sess.weight_bytes
            algos = collections.Counter(n.algo for n in info.nodes if n.kind == "conv")
            res["conv_algorithms"] = dict(algos)
        except ValueError as e:
            res["plan_error"] = str(e)
    if args.json:
        print(json.dumps(res, indent=1))
        return 0
    print(f"model:     {args.model}")
    print(f"producer:  {res['producer']}   opsets: {res['opsets']}")
    for i in res.get("inputs", []):
        print(f"input:     {i['name']} {tuple(i['shape'])} {i['dtype']}")
    for o in res.get("outputs", []):
        print(f"output:    {o['name']} {tuple(o['shape'])} {o['dtype']}")
    print(f"ops:       {', '.join(f'{k} x{v}' for k, v in sorted(res['ops'].items()))}")
    if unsupported:
        print(f"UNSUPPORTED ops: {', '.join(unsupported)}")
        return 1
    print(f"nodes:     {res['nodes_before']} in the model, {res['nodes_after']} after optimization "
          f"({res['fusions']} fused)")
    print(f"params:    {res['parameters']:,}")
    if "gflop" in res:
        print(f"compute:   {res['gflop']:.3f} GFLOP per run at batch {res['batch']}")
        print(f"memory:    planned peak {res['planned_peak_bytes'] / 2**20:.2f} MiB (arena + workspace), packed "
              f"weights {res['packed_weight_bytes'] / 2**20:.2f} MiB")
        print(f"conv algorithms: {res['conv_algorithms']}")
    for k, v in res["metadata"].items():
        print(f"metadata:  {k} = {v if len(v) < 200 else v[:200] + '...'}")
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.cmd is None:
        parser.print_help()
        return 2
    try:
        if args.cmd == "run":
            return _cmd_run(args)
        if args.cmd == "bench":
            return _cmd_bench(args)
        if args.cmd == "profile":
            return _cmd_profile(args)
        if args.cmd == "inspect":
            return _cmd_inspect(args)
        if args.cmd == "info":
            from . import cpu_info

            for k, v in cpu_info().items():
                print(f"{k}: {v}")
            return 0
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # the reader went away (`cnnrt profile m.onnx | head`): stop quietly, like a tool killed by SIGPIPE, and point
        # stdout at /dev/null so that the interpreter's final flush does not raise again
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        except (AttributeError, OSError, ValueError):
            pass
        return 141
    except (OSError, ValueError, TypeError, MemoryError) as e:
        msg = str(e).strip().splitlines()
        print(f"cnnrt: error: {' / '.join(m.strip() for m in msg) if msg else type(e).__name__}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
