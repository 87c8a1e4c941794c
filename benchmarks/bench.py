#!/usr/bin/env python3
"""cnnrt vs onnxruntime, side by side in one process: same model, same input, same thread count.

  PYTHONPATH=. python3 benchmarks/bench.py [--models convnet,convnet3,resnet18,...] [--batch 1,8] [--threads 1,2]
                                           [--out benchmarks/RESULTS.md] [--aa] [--append]

Method (see benchmarks/README.md):
  * onnxruntime: ORT_ENABLE_ALL, intra_op_num_threads = threads, inter_op_num_threads = 1, ORT_SEQUENTIAL.
    cnnrt: Session(num_threads=threads).
  * both are warmed up, then timed in ALTERNATING blocks (each block ~--block-s seconds of back-to-back runs of
    one runtime; the order within a round alternates A,B / B,A), with a --pause-s sleep before every block:
    onnxruntime's pool threads spin for a while after a run and would steal cores from whatever runs next (measured
    at 2 threads, MobileNetV2: about one core busy for 60-70 ms after its last run; cnnrt's first run after an
    onnxruntime block with a 50 ms pause took 15-18 ms against 8 ms), so the default pause is 100 ms.
  * per runtime: median over blocks of the per-block median latency ("median"), and the 90th percentile of all
    runs ("p90"); ratio = cnnrt median / onnxruntime median (< 1: cnnrt faster).
  * GFLOP/s = 2 x MACs of Conv and Gemm/MatMul (from the ONNX graph's inferred shapes) / median latency, and % of the
    machine's peak MEASURED by benchmarks/peak/fma_peak.c (compiled here with gcc -O2 -mavx2 -mfma) for the same
    number of threads.
  * the machine may be shared: a round (one block of each runtime) during which other processes used more than
    --clean cores (from /proc/stat) is discarded and replaced (up to 3x the rounds); each row reports the load of
    others and the rounds kept. At 1 thread the ratio is also computed from the CPU time of each run, which time
    the OS gives to other processes does not inflate.
  * --aa: A/A check, cnnrt vs cnnrt and onnxruntime vs onnxruntime (two sessions each) through the exact same
    procedure: the ratios must come out 1.00 within a few %, which bounds the method's own noise.
Default set: the shipped ConvNet (models/convnet.onnx) at batch 1 and 32, the seed ConvNet at 3x64x64 (batch 1 and
32), resnet18 (batch 1 and 8), resnet50, vgg16, mobilenet_v2, squeezenet1_1, efficientnet_b0 (batch 1), each at 1
and 2 threads; the zoo models come from benchmarks/export_models.py (opset 17), missing ones are skipped.
"""
from __future__ import annotations

import argparse
import datetime
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

# name -> path; the default batches per model (the table)
MODEL_PATHS = {
    "convnet": os.path.join(ROOT, "models", "convnet.onnx"),
    "convnet3": os.path.join(HERE, "models", "convnet3-op17.onnx"),
}
ZOO = ["resnet18", "resnet50", "vgg16", "mobilenet_v2", "squeezenet1_1", "efficientnet_b0", "mobilenet_v3_large",
       "googlenet", "densenet121", "shufflenet_v2_x1_0"]
DEFAULT_SET = [("convnet", 1), ("convnet", 32), ("convnet3", 1), ("convnet3", 32), ("resnet18", 1), ("resnet18", 8),
               ("resnet50", 1), ("vgg16", 1), ("mobilenet_v2", 1), ("squeezenet1_1", 1), ("efficientnet_b0", 1)]
AA_DEFAULT_SET = [("convnet", 1), ("convnet", 32), ("resnet18", 1), ("mobilenet_v2", 1)]


def model_path(name):
    if name in MODEL_PATHS:
        return MODEL_PATHS[name]
    if os.path.exists(name):
        return name
    return os.path.join(HERE, "models", f"{name}-op17.onnx")


# ---- FLOPs ---------------------------------------------------------------------------------------------------------
def count_flops(path, input_shape):
    """2 x MACs of every Conv, Gemm and MatMul, from the ONNX graph with shapes inferred for this input shape."""
    import onnx
    from onnx import shape_inference

    m = onnx.load(path)
    inp = m.graph.input[0]
    for d, v in zip(inp.type.tensor_type.shape.dim, input_shape):
        d.ClearField("dim_param")
        d.dim_value = int(v)
    inits = {t.name: tuple(t.dims) for t in m.graph.initializer}
    # drop the big weights before inference: only their dims matter (keeps vgg16's 550 MB out of the copy); small
    # initializers stay, they may be shape operands (Reshape targets) that inference needs
    for t in m.graph.initializer:
        if int(np.prod(t.dims)) > 4096:
            t.ClearField("raw_data")
            t.ClearField("float_data")
    m = shape_inference.infer_shapes(m)
    shapes = {vi.name: tuple(d.dim_value for d in vi.type.tensor_type.shape.dim)
              for vi in list(m.graph.value_info) + list(m.graph.input) + list(m.graph.output)}
    shapes.update(inits)
    total = 0
    for n in m.graph.node:
        if n.op_type == "Conv":
            w = shapes.get(n.input[1])
            y = shapes.get(n.output[0])
            if not w or not y or 0 in y:
                raise ValueError(f"no shape for {n.name}")
            # y = [N, Cout, *spatial], w = [Cout, Cin/group, *kernel]
            total += 2 * int(np.prod(y)) * int(np.prod(w[1:]))
        elif n.op_type in ("Gemm", "MatMul"):
            a, b = shapes.get(n.input[0]), shapes.get(n.input[1])
            y = shapes.get(n.output[0])
            if not a or not b or not y:
                raise ValueError(f"no shape for {n.name}")
            attrs = {x.name: x.i for x in n.attribute}
            k = (a[-2] if attrs.get("transA") else a[-1]) if n.op_type == "Gemm" else a[-1]
            total += 2 * int(np.prod(y)) * int(k)
    return total


# ---- the machine's measured peak -----------------------------------------------------------------------------------
def measure_peak(threads_list, seconds=0.2, reps=5, quiet_wait=5.0):
    """{threads: GFLOP/s} of the FMA loop in benchmarks/peak/fma_peak.c ({} if it cannot be built): the best of
    several short runs, each after waiting (up to quiet_wait s) for other processes to go quiet. The machine is
    shared, so main() measures it again at the end and keeps the larger value (a peak can only be underestimated)."""
    src = os.path.join(HERE, "peak", "fma_peak.c")
    cc = shutil.which("gcc") or shutil.which("cc")
    if cc is None:
        return {}, "no C compiler"
    with tempfile.TemporaryDirectory() as tmp:
        exe = os.path.join(tmp, "fma_peak")
        r = subprocess.run([cc, "-O2", "-mavx2", "-mfma", "-pthread", src, "-o", exe], capture_output=True, text=True)
        if r.returncode != 0:
            return {}, f"build failed: {r.stderr.strip()[:200]}"
        out = {}
        for t in sorted(set(threads_list) | {1}):
            best = 0.0
            for _ in range(2):  # best of 2 invocations (x reps inside): the machine is shared
                wait_quiet(quiet_wait)
                r = subprocess.run([exe, str(t), str(seconds), str(reps)], capture_output=True, text=True)
                mt = re.search(r"gflops_total=([\d.]+)", r.stdout)
                if mt:
                    best = max(best, float(mt.group(1)))
            out[t] = best
        return out, f"{cc} -O2 -mavx2 -mfma"


# ---- runtimes ------------------------------------------------------------------------------------------------------
def make_cnnrt(path, threads):
    import cnnrt

    sess = cnnrt.Session(path, num_threads=threads)
    return lambda x: sess.run(x), sess


def make_ort(path, threads):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.log_severity_level = 3
    sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    return lambda x: sess.run(None, {name: x}), sess


_HZ = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def cpu_sample():
    """(wall s, CPU-seconds busy on the whole machine incl. hypervisor steal, CPU-seconds of this process)."""
    try:
        with open("/proc/stat") as f:
            v = [int(a) for a in f.readline().split()[1:]]
        busy = (v[0] + v[1] + v[2] + v[5] + v[6] + (v[7] if len(v) > 7 else 0)) / _HZ
    except (OSError, ValueError, IndexError):
        busy = float("nan")
    t = os.times()
    return time.perf_counter(), busy, t[0] + t[1]


def others_load(a, b):
    """Cores kept busy by OTHER processes (and the hypervisor) between two cpu_sample()s."""
    wall = b[0] - a[0]
    return max(0.0, ((b[1] - a[1]) - (b[2] - a[2])) / wall) if wall > 0 else float("nan")


def wait_quiet(max_wait, threshold=0.25, window=0.5):
    """Wait (at most max_wait s) until other processes use < threshold cores; returns (waited s, last load)."""
    t0 = time.perf_counter()
    while True:
        a = cpu_sample()
        time.sleep(window)
        load = others_load(a, cpu_sample())
        if load < threshold or time.perf_counter() - t0 >= max_wait:
            return time.perf_counter() - t0, load


def _block(fn, x, n, cpu=None):
    """n back-to-back runs; per-run wall seconds (and, into the list cpu, per-run CPU seconds of this process)."""
    times = []
    for _ in range(n):
        c0 = time.process_time()
        t0 = time.perf_counter()
        fn(x)
        times.append(time.perf_counter() - t0)
        if cpu is not None:
            cpu.append(time.process_time() - c0)
    return times


def compare(fns, x, blocks, block_s, pause_s, warmup_s, clean=0.3, max_rounds=None, deadline=None):
    """fns: {label: callable}, exactly two. Timed in alternating blocks; returns {label: stats}.

    A round = one block of each runtime (order A,B then B,A, alternating). A round during which OTHER processes
    used more than `clean` cores is discarded and another one is run, until `blocks` clean rounds are in, or
    max_rounds (default 3 x blocks) rounds were run, or (after `blocks` rounds) fewer than a quarter of the rounds
    were clean or time.time() passed `deadline`; if fewer than half of the wanted rounds were clean, every round is
    used (and the row says so)."""
    labels = list(fns)
    max_rounds = max_rounds or 3 * blocks
    # warm up each (also estimates one run's latency to size the blocks)
    est = {}
    for lb in labels:
        fns[lb](x)
        t_end = time.perf_counter() + warmup_s
        ts = []
        while True:
            ts.extend(_block(fns[lb], x, 1))
            if time.perf_counter() >= t_end and len(ts) >= 2:
                break
        est[lb] = statistics.median(ts)
        time.sleep(pause_s)
    n_per_block = {lb: max(1, int(round(block_s / est[lb]))) for lb in labels}
    rounds = []  # (others' load, {label: per-run wall times}, {label: per-run CPU times})
    i = 0
    while True:
        order = labels if i % 2 == 0 else labels[::-1]
        c0 = cpu_sample()
        times, cpus = {}, {}
        for lb in order:
            time.sleep(pause_s)
            cpus[lb] = []
            times[lb] = _block(fns[lb], x, n_per_block[lb], cpus[lb])
        rounds.append((others_load(c0, cpu_sample()), times, cpus))
        i += 1
        n_clean = sum(1 for r in rounds if r[0] <= clean)
        if n_clean >= blocks or i >= max_rounds:
            break
        if i >= blocks and (n_clean < i / 4 or (deadline is not None and time.time() > deadline)):
            break  # the machine is mostly busy (more rounds would not get clean ones) or the run's time is up
    kept = [r for r in rounds if r[0] <= clean]
    all_used = len(kept) < max(2, blocks // 2)
    if all_used:
        kept = rounds
    out = {}
    for lb in labels:
        per_block = [statistics.median(r[1][lb]) for r in kept]
        runs = [v for r in kept for v in r[1][lb]]
        out[lb] = {"median": statistics.median(per_block),
                   # CPU seconds per run: with 1 thread the run executes on the calling thread, so this is the
                   # latency minus the time the OS gave the core to other processes (robust on a busy machine)
                   "cpu_median": statistics.median([statistics.median(r[2][lb]) for r in kept]),
                   "p90": float(np.percentile(runs, 90)),
                   "runs": len(runs), "per_block": n_per_block[lb],
                   "rounds_kept": len(kept), "rounds_run": len(rounds), "all_rounds_used": all_used,
                   "others": float(np.mean([r[0] for r in kept])),
                   "blocks_median": per_block}
    return out


def input_for(path, batch):
    import onnx

    m = onnx.load(path, load_external_data=False)
    init = {t.name for t in m.graph.initializer}
    inp = [i for i in m.graph.input if i.name not in init][0]
    dims = [d.dim_value if d.dim_value > 0 else 1 for d in inp.type.tensor_type.shape.dim]
    dims[0] = batch
    return np.random.default_rng(0).standard_normal(dims, dtype=np.float32)


# ---- machine info --------------------------------------------------------------------------------------------------
def machine_info():
    cpu = platform.processor() or "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    import onnxruntime as ort

    import cnnrt

    try:
        commit = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", ROOT, "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True).stdout.strip()
        commit += " (+ uncommitted changes)" if dirty else ""
    except OSError:
        commit = "?"
    try:
        gcc = subprocess.run(["gcc", "--version"], capture_output=True, text=True).stdout.splitlines()[0]
    except (OSError, IndexError):
        gcc = "?"
    return {"cpu": cpu, "cores": os.cpu_count(), "cnnrt": f"{cnnrt.__version__} ({cnnrt.cpu_info()['isa']})",
            "onnxruntime": ort.__version__, "numpy": np.__version__, "python": platform.python_version(),
            "commit": commit, "gcc": gcc, "kernel": platform.release(),
            "date": datetime.datetime.now().strftime("%Y-%m-%d %H:%M")}


def loadavg():
    try:
        return " ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "?"


# ---- main ----------------------------------------------------------------------------------------------------------
def _ms(s):
    return f"{s * 1e3:.3g}" if s < 0.1 else f"{s * 1e3:.0f}"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", default="", help="comma-separated: convnet, convnet3, " + ", ".join(ZOO) +
                    " (or a path); default: the issue's table")
    ap.add_argument("--batch", default="", help="comma-separated batch sizes for every selected model "
                    "(default: each model's batches of the default table, else 1)")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--out", default=None, help="write the markdown here (default: print only)")
    ap.add_argument("--append", action="store_true", help="append to --out instead of overwriting it")
    ap.add_argument("--aa", action="store_true", help="A/A check: cnnrt vs cnnrt and onnxruntime vs onnxruntime")
    ap.add_argument("--blocks", type=int, default=12, help="timed blocks per runtime (default 12)")
    ap.add_argument("--block-s", type=float, default=0.25, help="seconds of runs per block (default 0.25)")
    ap.add_argument("--pause-s", type=float, default=0.1, help="sleep before each block (default 0.1)")
    ap.add_argument("--warmup-s", type=float, default=0.3, help="warm-up seconds per runtime (default 0.3)")
    ap.add_argument("--quiet-wait", type=float, default=5.0,
                    help="before each measurement wait up to this many s for other processes to use < 0.25 cores "
                         "(default 5; 0: do not wait)")
    ap.add_argument("--clean", type=float, default=0.3,
                    help="a round (one block of each runtime) during which other processes used more than this "
                         "many cores is discarded and replaced (up to 3x the rounds; default 0.3)")
    ap.add_argument("--budget-s", type=float, default=480.0,
                    help="stop waiting / replacing noisy rounds once the run has taken this long (default 480)")
    args = ap.parse_args(argv)

    threads_list = [int(t) for t in args.threads.split(",") if t]
    default = AA_DEFAULT_SET if args.aa else DEFAULT_SET
    if args.models:
        names = [s for s in args.models.split(",") if s]
        if args.batch:
            configs = [(n, int(b)) for n in names for b in args.batch.split(",") if b]
        else:
            configs = [(n, b) for n in names for b in ([b for m, b in default if m == n] or
                                                       [b for m, b in DEFAULT_SET if m == n] or [1])]
    else:
        configs = default if not args.batch else [(n, int(b)) for n in dict(default) for b in args.batch.split(",")]

    t_start = time.time()
    info = machine_info()
    info["load_start"] = loadavg()
    peak, peak_how = measure_peak(threads_list, quiet_wait=min(args.quiet_wait, 5.0))
    print(f"measured FMA peak ({peak_how}): " + ", ".join(f"{t} thread(s) {g:.1f} GFLOP/s" for t, g in peak.items()),
          flush=True)

    rows, skipped = [], []
    for name, batch in configs:
        path = model_path(name)
        if not os.path.exists(path):
            skipped.append(f"{name}: {os.path.relpath(path, ROOT)} not found (run benchmarks/export_models.py)")
            print(f"skip {name}: {path} not found", flush=True)
            continue
        x = input_for(path, batch)
        try:
            flops = count_flops(path, x.shape)
        except Exception as e:  # noqa: BLE001 - shapes behind data-dependent Reshapes: ask cnnrt's plan
            try:
                import cnnrt

                s1 = cnnrt.Session(path, num_threads=1)
                flops = sum(n.flops for n in s1.plan_info({s1.inputs[0].name: x.shape}).nodes
                            if n.op in ("Conv", "Gemm", "MatMul"))
                del s1
            except Exception:  # noqa: BLE001
                flops = None
                print(f"  (no FLOP count for {name}: {e})")
        for t in threads_list:
            try:
                if args.aa:
                    pairs = [("cnnrt", {"cnnrt A": make_cnnrt(path, t)[0], "cnnrt B": make_cnnrt(path, t)[0]}),
                             ("onnxruntime", {"ort A": make_ort(path, t)[0], "ort B": make_ort(path, t)[0]})]
                else:
                    pairs = [("cnnrt vs ort", {"cnnrt": make_cnnrt(path, t)[0], "ort": make_ort(path, t)[0]})]
            except Exception as e:  # noqa: BLE001 - a model cnnrt cannot load is reported, not fatal
                msg = str(e).strip().splitlines()[0]
                skipped.append(f"{name} batch {batch} threads {t}: {type(e).__name__}: {msg}")
                print(f"skip {name}: {type(e).__name__}: {msg}", flush=True)
                continue
            for what, fns in pairs:
                if args.quiet_wait > 0 and time.time() - t_start < args.budget_s:
                    wait_quiet(args.quiet_wait)
                st = compare(fns, x, args.blocks, args.block_s, args.pause_s, args.warmup_s, clean=args.clean,
                             deadline=t_start + args.budget_s)
                (a, sa), (b, sb) = st.items()
                row = {"model": name, "batch": batch, "threads": t, "what": what, "flops": flops,
                       "a": a, "b": b, "sa": sa, "sb": sb, "ratio": sa["median"] / sb["median"]}
                # spread of the paired per-round ratios (block i of A / block i of B): the row's own noise
                rr = np.array(sa["blocks_median"]) / np.array(sb["blocks_median"])
                row["ratio_q"] = (float(np.percentile(rr, 25)), float(np.percentile(rr, 75)))
                row["ratio_pm"] = float(np.median(rr))
                # 1 thread: the ratio of CPU time per run, immune to other processes taking the core away
                row["cpu_ratio"] = sa["cpu_median"] / sb["cpu_median"] if t == 1 else None
                rows.append(row)
                print(f"{name:>16} b{batch:<3} t{t} {a}: {_ms(sa['median'])} ms (p90 {_ms(sa['p90'])}), "
                      f"{b}: {_ms(sb['median'])} ms (p90 {_ms(sb['p90'])}), ratio {row['ratio']:.3f} "
                      f"[per-round median {row['ratio_pm']:.3f}, IQR {row['ratio_q'][0]:.3f}-{row['ratio_q'][1]:.3f}], "
                      + (f"CPU-time ratio {row['cpu_ratio']:.3f}, " if row["cpu_ratio"] else "") +
                      f"others {sa['others']:.2f} cores, "
                      f"rounds {sa['rounds_kept']}/{sa['rounds_run']}{' (all used)' if sa['all_rounds_used'] else ''}",
                      flush=True)
            del pairs, fns
    peak2, _ = measure_peak(threads_list, quiet_wait=min(args.quiet_wait, 5.0))
    peak = {t: max(g, peak2.get(t, 0.0)) for t, g in peak.items()}
    if peak.get(2) and peak.get(1) and peak[2] < 1.6 * peak[1]:
        info["peak_note"] = (f"the 2-thread peak is only {peak[2] / peak[1]:.2f}x the 1-thread one: other processes "
                             f"were running during the peak measurement, so % of peak at 2 threads is overstated")
    print("FMA peak, best of start and end: " + ", ".join(f"{t} thread(s) {g:.1f} GFLOP/s" for t, g in peak.items()))
    info["load_end"] = loadavg()
    info["elapsed"] = time.time() - t_start
    md = render(args, info, peak, peak_how, rows, skipped)
    print()
    print(md)
    if args.out:
        mode = "a" if args.append else "w"
        with open(args.out, mode) as f:
            f.write(("\n" if args.append else "") + md + "\n")
        print(f"wrote {args.out}", file=sys.stderr)
    return 0


def render(args, info, peak, peak_how, rows, skipped):
    L = []
    if args.aa:
        L.append(f"## A/A check (same runtime on both sides), {info['date']}, commit {info['commit']}")
    else:
        L.append("# cnnrt vs onnxruntime")
        L.append("")
        L.append(f"- date: {info['date']}; machine: {info['cpu']}, {info['cores']} cores, Linux {info['kernel']}")
        L.append(f"- measured FMA peak (benchmarks/peak/fma_peak.c, {peak_how}; best of runs at the start and the "
                 f"end): " + ", ".join(f"{g:.1f} GFLOP/s with {t} thread{'s' if t > 1 else ''}"
                                       for t, g in peak.items()) + " (% peak below is relative to the same thread count)")
        L.append("- GFLOP = 2 x MACs of Conv/Gemm/MatMul as a direct convolution computes them; Winograd (cnnrt's "
                 "3x3 path) does fewer multiplications, so these are *effective* rates and can exceed 100% of peak")
        if info.get("peak_note"):
            L.append(f"- WARNING: {info['peak_note']}")
        L.append(f"- cnnrt {info['cnnrt']}, commit {info['commit']}; onnxruntime {info['onnxruntime']}; "
                 f"numpy {info['numpy']}; python {info['python']}; {info['gcc']}")
    L.append(f"- method: {args.blocks} rounds per row; a round = one block of ~{args.block_s:g} s of back-to-back runs "
             f"of each runtime (order alternating A,B / B,A), {args.pause_s * 1e3:g} ms pause before each block; "
             f"median = median over rounds of each block's median run; p90 over all kept runs; ratio = ratio of the "
             f"medians; per-round = median (interquartile range) of the paired per-round ratios, block i of A / block i of "
             f"B (the IQR is the row's own noise; the median is the paired estimate, which drift of the machine between "
             f"rounds moves less than the ratio of the medians)")
    L.append(f"- the machine is shared (load average {info['load_start']} at start, {info['load_end']} at end; the run "
             f"took {info['elapsed']:.0f} s): \"others\" = cores used by OTHER processes (and the hypervisor) during "
             f"the kept rounds (/proc/stat); a round during which they used > {args.clean:g} cores is discarded and "
             f"replaced (up to 3x the rounds); \"rounds\" = kept/run, \"all\" = too few clean rounds, all kept. "
             f"2-thread rows on 2 cores are only meaningful when \"others\" is near 0. \"by CPU time\" (1 thread only): "
             f"the same ratio from the CPU time of each run (process_time; 1-thread runs execute on the calling "
             f"thread), which time the OS gave to other processes does not inflate")
    L.append("")

    def cpu_ratio(r, digits):
        return f"{r['cpu_ratio']:.{digits}f}" if r.get("cpu_ratio") else "-"

    def rounds(r):
        s = r["sa"]
        return f"{s['rounds_kept']}/{s['rounds_run']}" + (" all" if s["all_rounds_used"] else "")

    if args.aa:
        L.append("| model | batch | threads | pair | A median ms (p90) | B median ms (p90) | A/B | per-round (IQR) "
                 "| A/B by CPU time | others | rounds |")
        L.append("|---|---|---|---|---|---|---|---|---|---|---|")
        for r in rows:
            L.append(f"| {r['model']} | {r['batch']} | {r['threads']} | {r['what']} | {_ms(r['sa']['median'])} "
                     f"({_ms(r['sa']['p90'])}) | {_ms(r['sb']['median'])} ({_ms(r['sb']['p90'])}) | "
                     f"**{r['ratio']:.3f}** | {r['ratio_pm']:.3f} ({r['ratio_q'][0]:.3f}-{r['ratio_q'][1]:.3f}) | "
                     f"{cpu_ratio(r, 3)} | "
                     f"{r['sa']['others']:.2f} | {rounds(r)} |")
    else:
        L.append("| model | batch | threads | GFLOP | cnnrt ms (p90) | ort ms (p90) | cnnrt/ort | per-round (IQR) "
                 "| cnnrt/ort by CPU time | cnnrt GFLOP/s (% peak) | ort GFLOP/s (% peak) | others | rounds |")
        L.append("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
        for r in rows:
            pk = peak.get(r["threads"])

            def gf(st):
                if not r["flops"]:
                    return "-"
                g = r["flops"] / st["median"] / 1e9
                return f"{g:.1f} ({100 * g / pk:.0f}%)" if pk else f"{g:.1f}"
            gflop = f"{r['flops'] / 1e9:.3g}" if r["flops"] else "-"
            L.append(f"| {r['model']} | {r['batch']} | {r['threads']} | {gflop} | {_ms(r['sa']['median'])} "
                     f"({_ms(r['sa']['p90'])}) | {_ms(r['sb']['median'])} ({_ms(r['sb']['p90'])}) | "
                     f"**{r['ratio']:.2f}** | {r['ratio_pm']:.2f} ({r['ratio_q'][0]:.2f}-{r['ratio_q'][1]:.2f}) | "
                     f"{cpu_ratio(r, 2)} | {gf(r['sa'])} | "
                     f"{gf(r['sb'])} | {r['sa']['others']:.2f} | {rounds(r)} |")
    if skipped:
        L.append("")
        L.append("Skipped: " + "; ".join(skipped))
    return "\n".join(L)


if __name__ == "__main__":
    sys.exit(main())
