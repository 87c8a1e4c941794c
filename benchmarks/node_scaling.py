"""2 threads vs 1 thread, per node, in one process: a 1-thread and a 2-thread session of the same model run in
alternating rounds (each round: 50 ms of warm-up runs, then 5 profiled runs; per-node medians), so the VM's drift hits
both alike. Prints each node that takes more than 0.2% of the 1-thread time, and the sums.

    PYTHONPATH=. python3 benchmarks/node_scaling.py MODEL BATCH [ROUNDS]
"""
import sys
import time

import numpy as np

import cnnrt

m, B = sys.argv[1], int(sys.argv[2])
ss = {t: cnnrt.Session(m, num_threads=t) for t in (1, 2)}
shape = [B] + [d if isinstance(d, int) else 1 for d in ss[1].inputs[0].shape[1:]]
x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
info = ss[1].plan_info({ss[1].inputs[0].name: tuple(shape)})
names = [f"{n.name[-28:]:28s} {n.algo:12s}" for n in info.nodes]
T = {1: [], 2: []}; W = {1: [], 2: []}
for r in range(int(sys.argv[3]) if len(sys.argv) > 3 else 12):
    for t, s in ss.items():
        # warm-up for 50 ms, not one run: after the pause below, the second vCPU wakes slowly, and at batch 1 one run
        # left the 2-thread session measuring that (seed ConvNet batch 1: 0.88x with one warm-up run, 1.73x with 20)
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < 0.05:
            s.run(x)
        per = []; tw = []
        for _ in range(5):
            t0 = time.perf_counter(); s.run(x, profile=True); tw.append(time.perf_counter() - t0)
            per.append(np.asarray(s.last_profile, float))
        T[t].append(np.median(per, axis=0)); W[t].append(np.median(tw))
        time.sleep(0.05)
a = np.median(T[1], axis=0); b = np.median(T[2], axis=0)
unit = 1e-6 if a.max() > 1e3 else 1.0
for n, x1, x2 in zip(names, a, b):
    if x1 * unit > 0.02 * a.sum() * unit / 10:
        print(f"{n} 1t {x1*unit:8.3f}  2t {x2*unit:8.3f}  x{x1/max(x2,1e-9):.2f}")
small = a * unit <= 0.02 * a.sum() * unit / 10
print("%d smaller nodes: 1t %.3f 2t %.3f  x%.2f" % (small.sum(), a[small].sum() * unit, b[small].sum() * unit,
                                                   a[small].sum() / max(b[small].sum(), 1e-9)))
by_algo = {}
for n, x1, x2 in zip(info.nodes, a, b):
    v = by_algo.setdefault(n.algo or n.op, [0, 0.0, 0.0])
    v[0] += 1; v[1] += x1 * unit; v[2] += x2 * unit
print("by kind: " + "; ".join(f"{k} ({v[0]}): 1t {v[1]:.3f} 2t {v[2]:.3f} x{v[1]/max(v[2],1e-9):.2f}"
                              for k, v in sorted(by_algo.items(), key=lambda kv: -kv[1][1])))
print("nodes sum: 1t %.3f 2t %.3f  x%.2f ; wall 1t %.3f 2t %.3f x%.2f" % (a.sum()*unit, b.sum()*unit, a.sum()/b.sum(), np.median(W[1])*1e3, np.median(W[2])*1e3, np.median(W[1])/np.median(W[2])))
