#!/usr/bin/env python3
"""Check models/convnet.onnx against the held-out split, without PyTorch.

Needs numpy, onnx, onnxruntime, Pillow.  Usage:  python3 models/verify_convnet.py
Checks: onnx.checker, metadata, ops, onnxruntime logits vs stored PyTorch logits
(max |diff|), equal accuracy/predictions, and the examples/digit-<d>.png round trip.
"""
import json
import os
import sys

import numpy as np
import onnx
import onnxruntime as ort
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def main():
    path = os.path.join(HERE, "convnet.onnx")
    m = onnx.load(path)
    onnx.checker.check_model(m, full_check=True)
    meta = {p.key: p.value for p in m.metadata_props}
    pre = json.loads(meta["preprocess"])
    labels = json.loads(meta["labels"])
    ops = sorted({n.op_type for n in m.graph.node})
    opset = [(o.domain or "ai.onnx", o.version) for o in m.opset_import]
    print(f"{path}: {os.path.getsize(path)} bytes, opset {opset}, {len(m.graph.node)} nodes, ops {ops}")
    for k, v in meta.items():
        print(f"  {k} = {v}")
    assert set(ops) <= {"Conv", "Relu", "MaxPool", "Flatten", "Reshape", "Gemm", "MatMul", "Add"}, ops
    assert not any(t.data_location == onnx.TensorProto.EXTERNAL for t in m.graph.initializer)

    mean = np.float32(pre["mean"][0])
    std = np.float32(pre["std"][0])

    def norm(u8):
        return (u8.astype(np.float32) / np.float32(255.0) - mean) / std

    d = np.load(os.path.join(HERE, "digits_heldout.npz"))
    x = norm(d["images_uint8"])[:, None]
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    (inp,), (out,) = sess.get_inputs(), sess.get_outputs()
    print(f"  io: {inp.name} {inp.shape} -> {out.name} {out.shape}")
    logits = np.concatenate([sess.run(None, {"input": x[i:i + 64]})[0] for i in range(0, len(x), 64)])
    diff = float(np.abs(logits - d["torch_logits"]).max())
    pred = logits.argmax(1)
    y = d["labels"]
    c_ort, c_torch = int((pred == y).sum()), int((d["torch_pred"] == y).sum())
    print(f"held-out: n={len(y)} onnxruntime {c_ort}/{len(y)} = {c_ort / len(y) * 100:.2f}%, "
          f"pytorch {c_torch}/{len(y)} = {c_torch / len(y) * 100:.2f}%, "
          f"max |logits diff| = {diff:.3g}, predictions identical: {bool((pred == d['torch_pred']).all())}")
    assert c_ort == c_torch and (pred == d["torch_pred"]).all() and diff < 1e-3

    for digit in range(10):
        p = os.path.join(ROOT, "examples", f"digit-{digit}.png")
        img = Image.open(p).convert("L").resize(tuple(pre["size"]), Image.BILINEAR)
        u8 = np.asarray(img)
        hits = np.flatnonzero((d["images_uint8"] == u8).all(axis=(1, 2)))
        assert len(hits) >= 1 and d["labels"][hits[0]] == digit, p
        xi = norm(u8)[None, None]
        assert np.array_equal(xi[0], x[hits[0]])
        lp = sess.run(None, {"input": xi})[0]
        assert labels[int(lp.argmax())] == str(digit), (p, lp)
        print(f"  {p}: = held-out #{hits[0]}, onnxruntime -> {labels[int(lp.argmax())]}")
    print("OK")


if __name__ == "__main__":
    sys.exit(main())
