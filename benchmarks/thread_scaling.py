"""Thread scaling of cnnrt and onnxruntime on a many-core machine: median latency at 1, 2, 4, 8, 16 threads for the
shipped ConvNet (batch 32) and ResNet-50 (batch 1, random weights exported here if torchvision is present).

    python3 benchmarks/thread_scaling.py [--threads 1,2,4,8,16] [--out scaling.md]
"""
import argparse
import os
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def export_resnet50(path):
    import torch
    import torchvision

    m = torchvision.models.resnet50(weights=None).eval()
    torch.onnx.export(m, torch.randn(1, 3, 224, 224), path, input_names=["input"], output_names=["logits"],
                      dynamic_axes={"input": {0: "batch"}}, opset_version=17, dynamo=False)


def main():
    import onnxruntime as ort

    import cnnrt
    from cnnrt.tools import time_alternating

    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", default="1,2,4,8,16")
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    cases = [("convnet b32", os.path.join(ROOT, "models", "convnet.onnx"), (32, 1, 64, 64))]
    r50 = "/tmp/resnet50.onnx"
    try:
        if not os.path.exists(r50):
            export_resnet50(r50)
        cases.append(("resnet50 b1", r50, (1, 3, 224, 224)))
    except Exception as e:  # no torch here
        print("resnet50 skipped:", e)
    lines = [f"cpus: {os.cpu_count()}, cnnrt isa {cnnrt.cpu_info()['isa']}, onnxruntime {ort.__version__}",
             "", "| model | threads | cnnrt ms | ort ms | cnnrt/ort | cnnrt speed-up vs 1 | ort speed-up vs 1 |",
             "|---|---|---|---|---|---|---|"]
    for name, path, shape in cases:
        x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
        base = {}
        for t in [int(v) for v in a.threads.split(",")]:
            s = cnnrt.Session(path, num_threads=t)
            so = ort.SessionOptions()
            so.intra_op_num_threads = t
            so.inter_op_num_threads = 1
            o = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
            ts = time_alternating({"cnnrt": lambda: s.run(x), "ort": lambda: o.run(None, {"input": x})}, runs=15,
                                  block_seconds=0.3, max_seconds=12)
            c, r = float(np.median(ts["cnnrt"]) * 1e3), float(np.median(ts["ort"]) * 1e3)
            base.setdefault("c", c)
            base.setdefault("r", r)
            line = f"| {name} | {t} | {c:.2f} | {r:.2f} | {c / r:.2f} | {base['c'] / c:.2f} | {base['r'] / r:.2f} |"
            print(line, flush=True)
            lines.append(line)
            del s, o
            time.sleep(0.2)
    if a.out:
        with open(a.out, "w") as f:
            f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
