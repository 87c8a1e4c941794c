"""A/B of a load-time environment switch, in one process: session A is created (and planned, and run once) with
VAR=A, session B with VAR=B; then they run in alternating rounds (each round: 50 ms of warm-up runs, then 5 profiled
runs), so the VM's drift hits both alike. Prints the nodes whose time differs, the node sums, the wall-clock and (1
thread) the CPU-time medians and their ratio B/A.

    PYTHONPATH=. python3 benchmarks/ab_env.py MODEL BATCH THREADS VAR A B [ROUNDS]

e.g. `... mobilenet_v2-op17.onnx 1 1 CNNRT_EXPAND_DW 0 1 20`. The switch must be read when weights are created or
planned (CNNRT_EXPAND_DW, CNNRT_WINOGRAD, CNNRT_DIRECT, CNNRT_DW_ROWS are).
"""
import os
import sys
import time

import numpy as np

import cnnrt

model, B, threads, var, va, vb = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), *sys.argv[4:7]
rounds = int(sys.argv[7]) if len(sys.argv) > 7 else 12
old = os.environ.get(var)
ss = {}
x = None
for tag, val in (("A", va), ("B", vb)):
    os.environ[var] = val
    s = cnnrt.Session(model, num_threads=threads)
    if x is None:
        shape = [B] + [d if isinstance(d, int) else 1 for d in s.inputs[0].shape[1:]]
        x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    s.run(x)  # weights and plan made under this setting
    ss[tag] = s
if old is None:
    del os.environ[var]
else:
    os.environ[var] = old
info = {t: s.plan_info({s.inputs[0].name: tuple(x.shape)}) for t, s in ss.items()}
names = [f"{a.name[-30:]:30s} {a.algo:12s} {b.algo:12s}" for a, b in zip(info["A"].nodes, info["B"].nodes)]
T = {"A": [], "B": []}
W = {"A": [], "B": []}
C = {"A": [], "B": []}
for r in range(rounds):
    order = ("A", "B") if r % 2 == 0 else ("B", "A")
    for t in order:
        s = ss[t]
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < 0.05:
            s.run(x)
        per, tw, tc = [], [], []
        for _ in range(5):
            c0 = time.process_time()
            t0 = time.perf_counter()
            s.run(x, profile=True)
            tw.append(time.perf_counter() - t0)
            tc.append(time.process_time() - c0)
            per.append(np.asarray(s.last_profile, float))
        T[t].append(np.median(per, axis=0))
        W[t].append(np.median(tw))
        C[t].append(np.median(tc))
        time.sleep(0.05)
a = np.median(T["A"], axis=0)
b = np.median(T["B"], axis=0)
unit = 1e-6 if a.max() > 1e3 else 1.0
print(f"{model} batch {B} threads {threads}: {var}={va} (A) vs {var}={vb} (B), {rounds} rounds")
if len(info["A"].nodes) == len(info["B"].nodes):
    for n, x1, x2 in zip(names, a, b):
        if abs(x1 - x2) > 0.01 * a.sum() or n.split()[1:2] != n.split()[2:3]:
            print(f"  {n} A {x1*unit:8.3f}  B {x2*unit:8.3f}  B/A {x2/max(x1,1e-9):.3f}")
else:  # different plans (a fusion): each plan's nodes by name, the nodes one plan lacks summed into the next one
    ta = {nd.name: t for nd, t in zip(info["A"].nodes, a)}
    tb = {nd.name: t for nd, t in zip(info["B"].nodes, b)}
    acc = 0.0
    for nd in info["A"].nodes:
        acc += ta[nd.name]
        if nd.name in tb:
            if abs(acc - tb[nd.name]) > 0.005 * a.sum():
                print(f"  {nd.name[-34:]:34s} {nd.algo:16s} A {acc*unit:8.3f}  B {tb[nd.name]*unit:8.3f}  "
                      f"B/A {tb[nd.name]/max(acc,1e-9):.3f}")
            acc = 0.0
wa, wb = np.median(W["A"]) * 1e3, np.median(W["B"]) * 1e3
ratios = np.array(W["B"]) / np.array(W["A"])
print("nodes sum A %.3f B %.3f  B/A %.3f; wall A %.3f ms B %.3f ms  B/A %.3f (per-round ratios %.3f-%.3f IQR)"
      % (a.sum() * unit, b.sum() * unit, b.sum() / a.sum(), wa, wb, wb / wa, *np.percentile(ratios, [25, 75])))
if threads == 1:
    ca, cb = np.median(C["A"]) * 1e3, np.median(C["B"]) * 1e3
    print("cpu time A %.3f ms B %.3f ms  B/A %.3f" % (ca, cb, cb / ca))
